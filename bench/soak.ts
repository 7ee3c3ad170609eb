/**
 * Soak: 1,000,000 no-op tasks through the memory adapter in one executor, as 100 jobs of
 * 10,000 run one after the other, with ended jobs deleted as it goes by the executor's
 * `retention` option (keep the last one). The heap after the run must be within 10% of
 * the heap after the first 100,000 tasks: nothing grows with the number of tasks run.
 * Prints a table of heap samples and writes bench/results/soak.json.
 *
 *   npm run bench:soak                  (100 jobs of 10,000)
 *   npm run bench:soak -- 20 5000       (another size: jobs, tasks per job)
 *
 * Needs `node --expose-gc` (the npm script passes it) to measure the heap after a full GC.
 */
import process from "node:process";
import { createMemoryStorage } from "../adapters/memory.ts";
import { Executor } from "../src/executor.ts";
import { AgentRegistry } from "../src/registry.ts";
import { writeResult } from "./report.ts";

const JOBS = Number(process.argv[2] ?? 100);
const PER_JOB = Number(process.argv[3] ?? 10_000);
const SAMPLE_EVERY = Math.max(1, Math.round(JOBS / 10));
const LIMIT = 0.1;

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) {
  console.error("Run with node --expose-gc (npm run bench:soak does)");
  process.exit(2);
}

async function heapAfterGc(): Promise<number> {
  for (let i = 0; i < 3; i++) {
    gc!();
    await new Promise((r) => setTimeout(r, 10));
  }
  return process.memoryUsage().heapUsed;
}

const storage = createMemoryStorage();
const registry = new AgentRegistry();
registry.register({ name: "noop", description: "does nothing", execute: () => null });
const executor = new Executor({
  storage,
  registry,
  maxWorkers: 10,
  queueCapacity: 1000,
  retention: { keepLast: 1, intervalMs: 100 },
});
executor.start();

const mb = (bytes: number) => Math.round(bytes / 1024 / 10.24) / 100;
const samples: { tasks: number; heapMB: number; rssMB: number; jobsStored: number; tasksPerSec: number }[] = [];
const t0 = performance.now();
let last = t0;
for (let j = 0; j < JOBS; j++) {
  const tasks = Array.from({ length: PER_JOB }, (_, i) => ({ key: `t${i}`, agent: "noop" }));
  const job = await executor.submit({ name: `soak-${j}`, tasks });
  await job.wait();
  if ((j + 1) % SAMPLE_EVERY === 0) {
    // Let retention catch up (every job but the last one deleted), then measure.
    while (executor.stats().pruned < j) await new Promise((r) => setTimeout(r, 20));
    const now = performance.now();
    const heap = await heapAfterGc();
    samples.push({
      tasks: (j + 1) * PER_JOB,
      heapMB: mb(heap),
      rssMB: mb(process.memoryUsage().rss),
      jobsStored: (await storage.listJobs()).length,
      tasksPerSec: Math.round((SAMPLE_EVERY * PER_JOB) / ((now - last) / 1000)),
    });
    last = performance.now();
  }
}
const seconds = (performance.now() - t0) / 1000;
await executor.shutdown();
const stats = executor.stats();
if (stats.completed !== JOBS * PER_JOB) throw new Error(`expected ${JOBS * PER_JOB} completed, got ${stats.completed}`);

const first = samples[0]!;
const final = samples.at(-1)!;
const growth = (final.heapMB - first.heapMB) / first.heapMB;
console.log(`\n${JOBS * PER_JOB} no-op tasks in ${JOBS} jobs of ${PER_JOB}, memory adapter, retention keepLast 1`);
console.table(samples);
console.log(
  `heap after ${first.tasks}: ${first.heapMB} MB; after ${final.tasks}: ${final.heapMB} MB; ` +
    `growth ${(growth * 100).toFixed(1)}% (limit ${LIMIT * 100}%); ${Math.round((JOBS * PER_JOB) / seconds)} tasks/s ` +
    `overall; ${stats.pruned} jobs pruned`,
);
await writeResult("soak", {
  jobs: JOBS,
  perJob: PER_JOB,
  seconds,
  samples,
  heapGrowth: growth,
  limit: LIMIT,
  pass: growth <= LIMIT,
  pruned: stats.pruned,
});
if (growth > LIMIT) {
  console.error(`FAIL: the heap grew by ${(growth * 100).toFixed(1)}%`);
  process.exit(1);
}
