/**
 * What the ready tasks a claim does not take cost the claims of those it does. A chain of
 * 300 dependent no-op tasks (each claim finds exactly one due task) runs on a storage that
 * also holds 100k tasks the claims must pass over, against the same chain on the same kind
 * of storage holding none, in one run:
 *
 * - "scheduled": 100k tasks due tomorrow (scheduled, or waiting out a retry's backoff);
 * - "other agent": 100k tasks due now of an agent this executor does not run
 *   (`claimAgents: "registered"`; another executor would run them).
 *
 * A claim should read only what it takes, so each ratio should stay near 1.0x whatever the
 * number of other tasks. Adapters: memory, IndexedDB (fake-indexeddb), sql.js, and
 * PostgreSQL when `TASK_CORE_PG_URL` is set (`npm run bench:claims:pg` starts a throwaway
 * server). Prints a table; writes JSON.
 *
 *   npm run bench:claims                 (100k others, a chain of 300)
 *   npm run bench:claims -- 20000 100    (another number of others, another chain)
 */
import "fake-indexeddb/auto";
import process from "node:process";
import { cpus, loadavg } from "node:os";
import postgres from "postgres";
import { openIndexedDbStorage } from "../adapters/indexeddb.ts";
import { createMemoryStorage } from "../adapters/memory.ts";
import { fromPostgresJs, openPostgresStorage } from "../adapters/postgres.ts";
import { openSqlJsStorage } from "../adapters/sqljs.ts";
import { Executor } from "../src/executor.ts";
import { AgentRegistry } from "../src/registry.ts";
import type { Storage } from "../src/storage.ts";
import { writeResult } from "./report.ts";

const OTHERS = Number(process.argv[2] ?? 100_000);
const CHAIN = Number(process.argv[3] ?? 300);
const ROUNDS = 3;
const DAY = 86_400_000;

interface Kind {
  name: string;
  open(): Promise<{ storage: Storage; dispose(): Promise<void> }>;
}

const pgUrl = process.env.TASK_CORE_PG_URL;
const sql = pgUrl ? postgres(pgUrl, { onnotice: () => {} }) : null;
let opened = 0;
const kinds: Kind[] = [
  { name: "memory", open: () => Promise.resolve({ storage: createMemoryStorage(), dispose: () => Promise.resolve() }) },
  {
    name: "indexeddb (fake-indexeddb)",
    async open() {
      const name = `bench-claims-${process.pid}-${opened++}`;
      const storage = await openIndexedDbStorage({ name });
      return {
        storage,
        dispose: async () => {
          await new Promise((resolve) => {
            const r = indexedDB.deleteDatabase(name);
            r.onsuccess = r.onerror = r.onblocked = resolve;
          });
        },
      };
    },
  },
  {
    name: "sql.js",
    async open() {
      const storage = await openSqlJsStorage();
      return { storage, dispose: () => Promise.resolve() };
    },
  },
];
if (sql) {
  kinds.push({
    name: "postgresql",
    async open() {
      const schema = `bench_claims_${process.pid}_${opened++}`;
      const storage = await openPostgresStorage({ client: fromPostgresJs(sql), schema });
      return { storage, dispose: async () => void await sql.unsafe(`DROP SCHEMA ${schema} CASCADE`) };
    },
  });
}

/** The two kinds of tasks a claim passes over. */
type Others = "scheduled" | "other agent";

const registry = new AgentRegistry();
registry.register({ name: "noop", description: "does nothing", execute: () => Promise.resolve(null) });
// Submits the other agent's tasks (an executor that runs nothing); the runner lacks that agent.
const submitter = new AgentRegistry();
submitter.register({ name: "noop", description: "does nothing", execute: () => Promise.resolve(null) });
submitter.register({ name: "elsewhere", description: "run by another executor", execute: () => null });

/** Run a chain of `CHAIN` tasks on a fresh storage holding `others` other tasks; ms for the chain. */
async function chain(kind: Kind, scenario: Others, others: number): Promise<number> {
  const { storage, dispose } = await kind.open();
  const executor = new Executor({ storage, registry, maxWorkers: 10, claimAgents: "registered" });
  const client = new Executor({ storage, registry: submitter });
  for (let done = 0; done < others; done += 10_000) {
    const n = Math.min(10_000, others - done);
    await client.submit({
      name: `others-${done}`,
      tasks: Array.from(
        { length: n },
        (_, i) =>
          scenario === "scheduled"
            ? { key: `s${i}`, agent: "noop", delayMs: DAY, priority: i % 3 }
            : { key: `s${i}`, agent: "elsewhere", priority: i % 3 },
      ),
    });
  }
  const tasks = Array.from({ length: CHAIN }, (_, i) => ({
    key: `c${i}`,
    agent: "noop",
    priority: 1,
    dependsOn: i > 0 ? [`c${i - 1}`] : [],
  }));
  const t0 = performance.now();
  executor.start();
  const job = await client.submit({ name: "chain", tasks });
  await job.wait();
  const ms = performance.now() - t0;
  await executor.shutdown();
  const stats = executor.stats();
  if (stats.completed !== CHAIN) throw new Error(`${kind.name}: expected ${CHAIN} completed, got ${stats.completed}`);
  await storage.close();
  await dispose();
  return ms;
}

console.log(`node ${process.version}, ${cpus().length} cpus, load ${loadavg().map((l) => l.toFixed(2)).join(" ")}`);
const rows = [];
for (const scenario of ["scheduled", "other agent"] as const) {
  for (const kind of kinds) {
    await chain(kind, scenario, 0); // warm up the code paths first
    // Alternate the two, best of each: a slow patch of the machine falls on both alike.
    let alone = Infinity;
    let among = Infinity;
    for (let r = 0; r < ROUNDS; r++) {
      alone = Math.min(alone, await chain(kind, scenario, 0));
      among = Math.min(among, await chain(kind, scenario, OTHERS));
    }
    rows.push({ scenario, storage: kind.name, aloneMs: alone, amongMs: among });
  }
}
await sql?.end();
console.log(`\nA chain of ${CHAIN} tasks (one due at a time), alone and among ${OTHERS} other ready tasks`);
console.table(rows.map((r) => ({
  "others": r.scenario,
  storage: r.storage,
  "alone (ms)": Math.round(r.aloneMs),
  "among others (ms)": Math.round(r.amongMs),
  ratio: `${(r.amongMs / r.aloneMs).toFixed(2)}x`,
})));
await writeResult("claims", {
  others: OTHERS,
  chain: CHAIN,
  rows: rows.map((r) => ({ ...r, ratio: r.amongMs / r.aloneMs })),
});
