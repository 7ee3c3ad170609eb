/**
 * Many jobs alive at once, as queue users submit them: K jobs of 5 no-op tasks each on the
 * memory adapter, every job followed with `job.on("task:completed")` and `job.wait()`, at
 * K = 1k, 2k, 4k and 8k. Time per task should not grow with the number of jobs followed.
 * The baseline, in the same run: the same jobs followed with `executor.on()` and a filter
 * on the job id per listener (what `job.on()` did before its listeners were kept by job),
 * where every event is offered to every job's listener.
 *
 *   npm run bench:jobs                 (sizes 1000,2000,4000,8000)
 *   npm run bench:jobs -- 1000,4000    (other sizes)
 */
import { createMemoryStorage } from "../adapters/memory.ts";
import { Executor } from "../src/executor.ts";
import type { JobHandle } from "../src/job-handle.ts";
import { AgentRegistry } from "../src/registry.ts";
import { writeResult } from "./report.ts";

const sizes = (process.argv[2] ?? "1000,2000,4000,8000").split(",").map(Number);
const TASKS = 5;
const ROUNDS = 3;

type Follow = "job.on" | "filtered executor.on";

/** Run K jobs followed as `follow` says; answers the ms from start to the last job's end. */
async function run(k: number, follow: Follow): Promise<number> {
  const registry = new AgentRegistry();
  registry.register({ name: "noop", description: "does nothing", execute: () => null });
  const storage = createMemoryStorage();
  const executor = new Executor({ storage, registry, maxWorkers: 10 });
  const tasks = Array.from({ length: TASKS }, (_, i) => ({ key: `t${i}`, agent: "noop" }));
  const handles: JobHandle[] = [];
  for (let i = 0; i < k; i++) handles.push(await executor.submit({ name: `job-${i}`, tasks }));
  let heard = 0;
  for (const h of handles) {
    if (follow === "job.on") h.on("task:completed", () => heard++);
    else executor.on("task:completed", (e) => e.task.jobId === h.id && heard++);
  }
  const t0 = performance.now();
  executor.start();
  await Promise.all(handles.map((h) => h.wait()));
  const ms = performance.now() - t0;
  await executor.shutdown();
  await storage.close();
  if (heard !== k * TASKS) throw new Error(`${follow} ${k}: heard ${heard} of ${k * TASKS} completions`);
  return ms;
}

interface Row {
  jobs: number;
  tasks: number;
  usPerTask: number;
  baselineUsPerTask: number;
  /** The baseline's time over job.on()'s. */
  vsBaseline: number;
}

const rows: Row[] = [];
for (const k of sizes) {
  // Rounds interleave the two, so a slow patch of a shared machine falls on both; each keeps its best.
  let mine = Infinity;
  let base = Infinity;
  for (let r = 0; r < ROUNDS; r++) {
    mine = Math.min(mine, await run(k, "job.on"));
    base = Math.min(base, await run(k, "filtered executor.on"));
  }
  const n = k * TASKS;
  rows.push({
    jobs: k,
    tasks: n,
    usPerTask: (mine * 1000) / n,
    baselineUsPerTask: (base * 1000) / n,
    vsBaseline: base / mine,
  });
}
console.log(`\njobs of ${TASKS} no-op tasks, each followed with on("task:completed") and wait(), best of ${ROUNDS}`);
console.table(rows.map((r) => ({
  jobs: r.jobs,
  tasks: r.tasks,
  "job.on µs/task": r.usPerTask.toFixed(1),
  "filtered executor.on µs/task": r.baselineUsPerTask.toFixed(1),
  "baseline / job.on": `${r.vsBaseline.toFixed(2)}x`,
})));
const a = rows[0]!;
const b = rows[rows.length - 1]!;
console.log(
  `time per task at ${b.jobs} jobs / at ${a.jobs}: job.on ${(b.usPerTask / a.usPerTask).toFixed(2)}x, ` +
    `filtered executor.on ${(b.baselineUsPerTask / a.baselineUsPerTask).toFixed(2)}x`,
);
await writeResult("jobs", { tasksPerJob: TASKS, rows });
