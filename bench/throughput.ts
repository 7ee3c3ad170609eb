/**
 * Throughput of independent no-op tasks: task-core on the memory adapter (full task
 * records, leases, group commit) against p-queue and fastq doing the same no-op work with
 * the same concurrency, in one run. Prints tasks/s and the ratios; writes JSON.
 *
 *   npm run bench:throughput            (100k tasks, concurrency 10)
 *   npm run bench:throughput -- 20000   (another size)
 */
import fastq from "fastq";
import PQueue from "p-queue";
import { createMemoryStorage } from "../adapters/memory.ts";
import { Executor } from "../src/executor.ts";
import { AgentRegistry } from "../src/registry.ts";
import { writeResult } from "./report.ts";

const N = Number(process.argv[2] ?? 100_000);
const CONCURRENCY = 10;
const ROUNDS = 3;

const noop = (): Promise<null> => Promise.resolve(null);

// Each runner counts the tasks its peer really ran: a faster result over fewer tasks is an error.
let ran = 0;
const counted = (): Promise<null> => {
  ran++;
  return noop();
};
function checkRan(who: string): void {
  if (ran !== N) throw new Error(`${who}: expected ${N} tasks run, got ${ran}`);
  ran = 0;
}

async function viaPQueue(): Promise<number> {
  const q = new PQueue({ concurrency: CONCURRENCY });
  const t0 = performance.now();
  for (let i = 0; i < N; i++) void q.add(counted);
  await q.onIdle();
  const ms = performance.now() - t0;
  checkRan("p-queue");
  return ms;
}

async function viaFastq(): Promise<number> {
  const q = fastq.promise(counted, CONCURRENCY);
  const t0 = performance.now();
  const all: Promise<unknown>[] = new Array(N);
  for (let i = 0; i < N; i++) all[i] = q.push(null);
  await Promise.all(all);
  const ms = performance.now() - t0;
  checkRan("fastq");
  return ms;
}

async function viaTaskCore(): Promise<number> {
  const storage = createMemoryStorage();
  const registry = new AgentRegistry();
  registry.register({ name: "noop", description: "does nothing", execute: counted });
  const executor = new Executor({ storage, registry, maxWorkers: CONCURRENCY, queueCapacity: 1000 });
  const tasks = Array.from({ length: N }, (_, i) => ({ key: `t${i}`, agent: "noop" }));
  const t0 = performance.now();
  executor.start();
  const job = await executor.submit({ name: "throughput", tasks });
  await job.wait();
  const ms = performance.now() - t0;
  await executor.shutdown();
  const stats = executor.stats();
  if (stats.completed !== N) throw new Error(`expected ${N} completed, got ${stats.completed}`);
  checkRan("task-core");
  return ms;
}

// Rounds interleave the runners (p-queue, fastq, task-core, then again), so that a slow
// patch of this shared machine falls on every runner alike; each keeps its best round.
let pq = Infinity;
let fq = Infinity;
let tc = Infinity;
for (let r = 0; r < ROUNDS; r++) {
  pq = Math.min(pq, await viaPQueue());
  fq = Math.min(fq, await viaFastq());
  tc = Math.min(tc, await viaTaskCore());
}

const rate = (ms: number) => Math.round(N / (ms / 1000));
const rows = [
  { runner: "task-core (memory adapter, durable records)", ms: tc, tasksPerSec: rate(tc) },
  { runner: "p-queue", ms: pq, tasksPerSec: rate(pq) },
  { runner: "fastq", ms: fq, tasksPerSec: rate(fq) },
];
console.log(`\n${N} no-op tasks, concurrency ${CONCURRENCY}, best of ${ROUNDS}`);
console.table(rows.map((r) => ({ runner: r.runner, "ms": r.ms.toFixed(0), "tasks/s": r.tasksPerSec })));
console.log(
  `task-core / p-queue: ${(rate(tc) / rate(pq)).toFixed(2)}x   task-core / fastq: ${(rate(tc) / rate(fq)).toFixed(2)}x`,
);
await writeResult("throughput", {
  n: N,
  concurrency: CONCURRENCY,
  rows,
  vsPQueue: rate(tc) / rate(pq),
  vsFastq: rate(tc) / rate(fq),
});
