/**
 * The page side of `bench/indexeddb-browser.mjs`: durable claim + commit throughput of the
 * IndexedDB adapter in real Chromium, batched against a naive baseline that stores every
 * state change in its own transaction (claim one task, commit one completion).
 *
 * Bundled by esbuild and run in a persistent Chromium profile, so IndexedDB writes go to
 * disk. Exposes `globalThis.runIndexedDbBench(config)`.
 */

import { type IndexedDbDurability, openIndexedDbStorage } from "../adapters/indexeddb.ts";
import { ClaimBook, readRows } from "../adapters/indexeddb/claims.ts";
import { IdLeaves } from "../adapters/indexeddb/leaves.ts";
import { ReadyQueue } from "../adapters/indexeddb/ready.ts";
import { type TaskRow, toRow } from "../adapters/indexeddb/rows.ts";
import { openDatabase } from "../adapters/indexeddb/schema.ts";
import { putRows } from "../adapters/indexeddb/util.ts";
import { newId } from "../src/ids.ts";
import { AgentRegistry } from "../src/registry.ts";
import { buildJob, type BuiltJob } from "../src/scheduler.ts";
import type { CommitOp } from "../src/storage.ts";

/** What the driver asks for. */
export interface BenchConfig {
  tasks: number;
  batches: number[];
  durabilities: IndexedDbDurability[];
  naiveTasks: number;
  rounds: number;
  floorBatch: number;
}

/** One measured run. */
export interface BenchRow {
  round: number;
  mode: "batched" | "naive" | "floor";
  durability: IndexedDbDurability;
  batch: number;
  tasks: number;
  submitMs: number;
  ms: number;
  tasksPerSec: number;
  transactions: number;
}

const registry = new AgentRegistry();
registry.register({ name: "noop", description: "does nothing", execute: () => null });

/** A job of `n` independent no-op tasks, built as the executor builds one. */
function job(n: number): BuiltJob {
  const tasks = Array.from({ length: n }, (_, i) => ({ key: `t${i}`, agent: "noop", input: { i } }));
  return buildJob({ name: "bench", tasks }, registry, { maxAttempts: 3 }, Date.now());
}

/** Submit `n` no-op tasks, then claim `batch` at a time and commit each batch's completions in one commit. */
async function run(
  round: number,
  mode: "batched" | "naive",
  durability: IndexedDbDurability,
  batch: number,
  n: number,
): Promise<BenchRow> {
  const name = `bench-${mode}-${durability}-${batch}-${newId()}`;
  const storage = await openIndexedDbStorage({ name, durability, broadcast: false });
  const built = job(n);
  const t0 = performance.now();
  await storage.createJob(built.job, built.tasks);
  const t1 = performance.now();
  let done = 0;
  let transactions = 0;
  while (done < n) {
    const claimed = await storage.claimReady({ limit: batch, now: Date.now(), owner: "bench", leaseMs: 60_000 });
    transactions++;
    if (claimed.length === 0) throw new Error(`nothing to claim after ${done} of ${n}`);
    const ops: CommitOp[] = claimed.map((t) => ({
      type: "updateTask",
      id: t.id,
      expect: { version: t.version, status: "running" },
      set: { status: "completed", output: null },
    }));
    await storage.commit(ops);
    transactions++;
    done += claimed.length;
  }
  const t2 = performance.now();
  const ended = await storage.getJob(built.job.id);
  if (ended?.status !== "completed") throw new Error(`job ended as ${ended?.status}`);
  await storage.close();
  await new Promise<void>((resolve) => {
    const r = indexedDB.deleteDatabase(name);
    r.onsuccess = r.onerror = r.onblocked = () => resolve();
  });
  const ms = t2 - t1;
  return {
    round,
    mode,
    durability,
    batch,
    tasks: n,
    submitMs: Math.round(t1 - t0),
    ms: Math.round(ms),
    tasksPerSec: Math.round(n / (ms / 1000)),
    transactions,
  };
}

/**
 * The floor of this design: the same schema and the same requests per batch (claim: take
 * the head of the claim queue, read the rows, write one claim record; completion: read
 * the rows and their claim, write each row, drop the claim), with no rules, no job
 * record, no checks beyond reading rows. What `batched` costs above it is the adapter's
 * own overhead.
 */
async function floor(round: number, durability: IndexedDbDurability, batch: number, n: number): Promise<BenchRow> {
  const name = `bench-floor-${newId()}`;
  const db = await openDatabase({ factory: indexedDB, name, onVersionChange: () => {}, onTerminated: () => {} });
  const opts = durability === "default" ? {} : { durability };
  const built = job(n);
  const t0 = performance.now();
  const create = db.transaction(["tasks", "members", "ready"], "readwrite", opts);
  const queue = new ReadyQueue(create);
  const members = new IdLeaves(create, "members");
  putRows(create.objectStore("tasks"), built.tasks.map((t) => toRow({ ...t, status: "ready" }, undefined)));
  for (const t of built.tasks) {
    queue.add(t.agent, t.priority, t.runAt, t.id);
    members.add([t.jobId], t.id);
  }
  await Promise.all([queue.flush(), members.flush()]);
  await create.done;
  const t1 = performance.now();
  let transactions = 0;
  for (let done = 0; done < n;) {
    const claim = db.transaction(["tasks", "ready", "claims", "leases"], "readwrite", opts);
    const ids = await new ReadyQueue(claim).take(batch, Date.now(), null);
    if (ids.length === 0) throw new Error(`floor: nothing left to claim after ${done} of ${n} tasks`);
    const rows = await readRows(claim.objectStore("tasks"), ids);
    const held = ids.map((id) => rows.get(id)!);
    new ClaimBook(claim).create(held, "bench", Date.now(), 60_000);
    await claim.done;
    const commit = db.transaction(["tasks", "claims", "leases"], "readwrite", opts);
    const current = await readRows(commit.objectStore("tasks"), ids);
    const claims = new ClaimBook(commit);
    await claims.resolve(current.values());
    const completed: TaskRow[] = [];
    for (const row of current.values()) {
      const t = claims.view(row);
      claims.release(t.id);
      completed.push(toRow({ ...t, status: "completed", version: t.version + 1 }, undefined));
    }
    putRows(commit.objectStore("tasks"), completed);
    claims.flush();
    await commit.done;
    transactions += 2;
    done += ids.length;
  }
  const ms = performance.now() - t1;
  db.close();
  indexedDB.deleteDatabase(name);
  return {
    round,
    mode: "floor",
    durability,
    batch,
    tasks: n,
    submitMs: Math.round(t1 - t0),
    ms: Math.round(ms),
    tasksPerSec: Math.round(n / (ms / 1000)),
    transactions,
  };
}

async function runIndexedDbBench(config: BenchConfig): Promise<BenchRow[]> {
  await run(0, "batched", "relaxed", 100, 300); // warm-up: JIT, first database
  const rows: BenchRow[] = [];
  // Rounds interleave every configuration, so a burst of load elsewhere hits them alike.
  for (let round = 1; round <= config.rounds; round++) {
    for (const durability of config.durabilities) {
      rows.push(await run(round, "naive", durability, 1, config.naiveTasks));
      for (const batch of config.batches) rows.push(await run(round, "batched", durability, batch, config.tasks));
      rows.push(await floor(round, durability, config.floorBatch, config.tasks));
    }
  }
  return rows;
}

(globalThis as { runIndexedDbBench?: typeof runIndexedDbBench }).runIndexedDbBench = runIndexedDbBench;
