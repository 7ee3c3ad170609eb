/**
 * What tasks that are not yet due cost the claims of those that are: a chain of 300
 * dependent no-op tasks (each claim finds exactly one due task) run by an executor on a
 * storage that also holds 100k tasks scheduled for tomorrow, against the same chain on the
 * same kind of storage holding none, in one run. A claim should read the due tasks only,
 * so the ratio should stay near 1.0x whatever the number of scheduled tasks. Adapters:
 * memory, IndexedDB (fake-indexeddb), sql.js, and PostgreSQL when `TASK_CORE_PG_URL` is
 * set (`npm run bench:scheduled:pg` starts a throwaway server). Prints a table; writes JSON.
 *
 *   npm run bench:scheduled                 (100k scheduled, a chain of 300)
 *   npm run bench:scheduled -- 20000 100    (another number scheduled, another chain)
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

const SCHEDULED = Number(process.argv[2] ?? 100_000);
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
      const name = `bench-scheduled-${process.pid}-${opened++}`;
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
      const schema = `bench_scheduled_${process.pid}_${opened++}`;
      const storage = await openPostgresStorage({ client: fromPostgresJs(sql), schema });
      return { storage, dispose: async () => void await sql.unsafe(`DROP SCHEMA ${schema} CASCADE`) };
    },
  });
}

const registry = new AgentRegistry();
registry.register({ name: "noop", description: "does nothing", execute: () => Promise.resolve(null) });

/** Run a chain of `CHAIN` tasks on a fresh storage holding `scheduled` tasks due tomorrow; ms for the chain. */
async function chain(kind: Kind, scheduled: number): Promise<number> {
  const { storage, dispose } = await kind.open();
  const executor = new Executor({ storage, registry, maxWorkers: 10 });
  for (let done = 0; done < scheduled; done += 10_000) {
    const n = Math.min(10_000, scheduled - done);
    await executor.submit({
      name: `tomorrow-${done}`,
      tasks: Array.from({ length: n }, (_, i) => ({ key: `s${i}`, agent: "noop", delayMs: DAY, priority: i % 3 })),
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
  const job = await executor.submit({ name: "chain", tasks });
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
for (const kind of kinds) {
  // Alternate the two, best of each: a slow patch of the machine falls on both alike.
  await chain(kind, 0); // warm up the code paths first
  let empty = Infinity;
  let busy = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    empty = Math.min(empty, await chain(kind, 0));
    busy = Math.min(busy, await chain(kind, SCHEDULED));
  }
  rows.push({
    storage: kind.name,
    "chain alone (ms)": Math.round(empty),
    [`chain + ${SCHEDULED} scheduled (ms)`]: Math.round(busy),
    "ratio": `${(busy / empty).toFixed(2)}x`,
    emptyMs: empty,
    busyMs: busy,
  });
}
await sql?.end();
console.log(`\nA chain of ${CHAIN} tasks (one due at a time), with and without ${SCHEDULED} tasks due tomorrow`);
console.table(rows.map(({ emptyMs: _e, busyMs: _b, ...shown }) => shown));
await writeResult("scheduled", {
  scheduled: SCHEDULED,
  chain: CHAIN,
  rows: rows.map((r) => ({ storage: r.storage, emptyMs: r.emptyMs, busyMs: r.busyMs, ratio: r.busyMs / r.emptyMs })),
});
