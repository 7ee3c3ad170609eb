/**
 * DAG scaling on the memory adapter: jobs of 1k, 10k and 100k tasks shaped as a chain,
 * a wide fan-out and a random DAG. Reports submission time, run time and time per task
 * (which should not grow with the job: at 100k within 1.5x of 1k) and the retained heap
 * per stored task (target under 1 KB), measured after a forced GC. The peer, in the same run:
 * p-queue at the same concurrency running the same DAG, each task added once its
 * dependencies' promises resolved (scheduling only: no records, no durability).
 *
 *   npm run bench:dag              (sizes 1000,10000,100000)
 *   npm run bench:dag -- 1000,5000 (other sizes)
 */
import PQueue from "p-queue";
import { createMemoryStorage } from "../adapters/memory.ts";
import { Executor } from "../src/executor.ts";
import { AgentRegistry } from "../src/registry.ts";
import type { TaskSpec } from "../src/types.ts";
import { writeResult } from "./report.ts";

const sizes = (process.argv[2] ?? "1000,10000,100000").split(",").map(Number);
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with node --expose-gc (npm run bench:dag does)");

type Shape = "chain" | "fan-out" | "random";

function specs(shape: Shape, n: number): TaskSpec[] {
  let seed = 42;
  const rand = () => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff);
  return Array.from({ length: n }, (_, i) => {
    const key = `t${i}`;
    if (i === 0) return { key, agent: "noop" };
    if (shape === "chain") return { key, agent: "noop", dependsOn: [`t${i - 1}`] };
    if (shape === "fan-out") return { key, agent: "noop", dependsOn: ["t0"] };
    const deps = new Set<string>();
    const count = 1 + Math.floor(rand() * 3);
    for (let d = 0; d < count; d++) deps.add(`t${Math.floor(rand() * i)}`);
    return { key, agent: "noop", dependsOn: [...deps] };
  });
}

function heapUsed(): number {
  gc!();
  gc!();
  return process.memoryUsage().heapUsed;
}

interface Row {
  shape: Shape;
  tasks: number;
  submitMs: number;
  runMs: number;
  usPerTask: number;
  heapBytesPerTask: number;
  /** The same DAG on p-queue (submit to last task). */
  peerMs: number;
  /** task-core's tasks/s over p-queue's. */
  vsPeer: number;
}

/** The same DAG on p-queue: each task is added once its dependencies ran. */
async function viaPQueue(list: readonly TaskSpec[]): Promise<number> {
  const q = new PQueue({ concurrency: 10 });
  let ran = 0;
  const noop = (): Promise<null> => {
    ran++;
    return Promise.resolve(null);
  };
  const t0 = performance.now();
  const done = new Map<string, Promise<unknown>>();
  for (const t of list) {
    const deps = (t.dependsOn ?? []).map((k) => done.get(k)!);
    const ready = deps.length === 0 ? Promise.resolve() : deps.length === 1 ? deps[0]! : Promise.all(deps);
    done.set(t.key, ready.then(() => q.add(noop)));
  }
  await Promise.all(done.values());
  const ms = performance.now() - t0;
  if (ran !== list.length) throw new Error(`p-queue ran ${ran} of ${list.length} tasks`);
  return ms;
}

async function measure(shape: Shape, n: number): Promise<Row> {
  const registry = new AgentRegistry();
  registry.register({ name: "noop", description: "does nothing", execute: () => null });
  const list = specs(shape, n);
  const before = heapUsed();
  const storage = createMemoryStorage();
  const executor = new Executor({ storage, registry, maxWorkers: 10 });
  const t0 = performance.now();
  const job = await executor.submit({ name: `${shape}-${n}`, tasks: list });
  const t1 = performance.now();
  const done = new Promise<void>((resolve, reject) => {
    const offs = [
      executor.on("job:completed", (e) => {
        if (e.job.id !== job.id) return;
        for (const off of offs) off();
        resolve();
      }),
      executor.on("job:failed", (e) => {
        if (e.job.id !== job.id) return;
        for (const off of offs) off();
        reject(new Error(`${shape} ${n}: the job failed`));
      }),
    ];
  });
  executor.start();
  await done;
  const t2 = performance.now();
  await executor.shutdown();
  const after = heapUsed();
  const stats = executor.stats();
  if (stats.completed !== n) throw new Error(`${shape} ${n}: ${stats.completed} completed`);
  // Keep the storage alive until the heap was measured.
  if ((await storage.getJob(job.id))?.status !== "completed") throw new Error("job did not complete");
  const peerMs = await viaPQueue(list);
  return {
    shape,
    tasks: n,
    submitMs: t1 - t0,
    runMs: t2 - t1,
    usPerTask: ((t2 - t0) * 1000) / n,
    heapBytesPerTask: Math.round((after - before) / n),
    peerMs,
    vsPeer: peerMs / (t2 - t0),
  };
}

const rows: Row[] = [];
for (const shape of ["chain", "fan-out", "random"] as const) {
  for (const n of sizes) rows.push(await measure(shape, n));
}
console.table(rows.map((r) => ({
  shape: r.shape,
  tasks: r.tasks,
  "submit ms": r.submitMs.toFixed(0),
  "run ms": r.runMs.toFixed(0),
  "µs/task": r.usPerTask.toFixed(1),
  "heap B/task": r.heapBytesPerTask,
  "p-queue ms": r.peerMs.toFixed(0),
  "vs p-queue": `${r.vsPeer.toFixed(2)}x`,
})));
const smallest = Math.min(...sizes);
const largest = Math.max(...sizes);
for (const shape of ["chain", "fan-out", "random"] as const) {
  const a = rows.find((r) => r.shape === shape && r.tasks === smallest)!;
  const b = rows.find((r) => r.shape === shape && r.tasks === largest)!;
  console.log(
    `${shape}: time per task at ${largest} / at ${smallest} = ${(b.usPerTask / a.usPerTask).toFixed(2)}x; ` +
      `heap per task at ${largest}: ${b.heapBytesPerTask} B`,
  );
}
await writeResult("dag", { rows });
