/**
 * Multi-executor stress: four executors on one storage run thousands of tasks in DAG
 * jobs, with random retryable and permanent failures and timeouts. Every task ends in a
 * final status that matches what its agent did, no task runs in two executors at once,
 * at-most-once tasks never run twice, no task runs more often than its failures ask for,
 * and every job ends once (one end event across all executors).
 */

import type { Agent } from "../../src/agent.ts";
import { NonRetryableError } from "../../src/errors.ts";
import type { Executor } from "../../src/executor.ts";
import { isFinal } from "../../src/status.ts";
import type { JsonValue, Task } from "../../src/types.ts";
import { equal, ok } from "../conformance/assert.ts";
import type { Case } from "../conformance/harness.ts";
import { type ReliabilityContext, type Report, reportingExecutor, settled } from "./kit.ts";
import { type Behaviour, expected, stressJobs } from "./stress-plan.ts";

/** Size of a stress run. */
export interface StressSize {
  /** Tasks in all. */
  tasks: number;
  /** Executors sharing the storage (default 4). */
  executors?: number;
  /** Tasks per job (default 50). */
  perJob?: number;
  /** PRNG seed (default 7). */
  seed?: number;
}

const TIMEOUT_MS = 30;

/** Runs of each task and the overlaps seen. */
class Ledger {
  readonly runs = new Map<string, number>();
  readonly holder = new Map<string, number>();
  readonly violations: string[] = [];
  start(id: string, executor: number): void {
    const other = this.holder.get(id);
    if (other !== undefined) this.violations.push(`task ${id} ran in executors ${other} and ${executor} at once`);
    this.holder.set(id, executor);
    this.runs.set(id, (this.runs.get(id) ?? 0) + 1);
  }
  end(id: string, executor: number): void {
    if (this.holder.get(id) === executor) this.holder.delete(id);
  }
}

function worker(index: number, ledger: Ledger): Agent<JsonValue, JsonValue> {
  return {
    name: "work",
    description: "a stress task",
    async execute(input, ctx) {
      const b = input as unknown as Behaviour;
      ledger.start(ctx.task.id, index);
      try {
        await Promise.resolve();
        if (b.plan === "fatal") throw new NonRetryableError("planned permanent failure");
        if (ctx.task.attempt === 1 && b.plan === "flaky") throw new Error("planned retryable failure");
        if (ctx.task.attempt === 1 && b.plan === "timeout") {
          // Honours its signal: the attempt ends at its timeout.
          await new Promise((_, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason)));
        }
        return ctx.task.attempt;
      } finally {
        ledger.end(ctx.task.id, index);
      }
    },
  };
}

async function stress(ctx: ReliabilityContext, size: StressSize): Promise<void> {
  const executors = size.executors ?? 4;
  const ledger = new Ledger();
  const started: { executor: Executor; report: Report }[] = [];
  for (let i = 0; i < executors; i++) {
    started.push(reportingExecutor(ctx.storage, [worker(i, ledger)], {
      maxWorkers: 8,
      queueCapacity: 32,
      leaseMs: 30_000,
      pollIntervalMs: 20,
      retry: { delayMs: 1, factor: 2, maxDelayMs: 10 },
    }));
  }
  for (const s of started) s.executor.start();
  const behaviours = new Map<string, Behaviour>();
  const jobs = [];
  const specs = stressJobs({
    tasks: size.tasks,
    perJob: size.perJob,
    seed: size.seed,
    agent: "work",
    timeoutMs: TIMEOUT_MS,
  });
  for (const [j, spec] of specs.entries()) jobs.push(await started[j % executors]!.executor.submit(spec));
  await Promise.all(jobs.map((job) => settled(job, 120_000)));
  await Promise.all(started.map((s) => s.executor.shutdown()));

  ok(ledger.violations.length === 0, ledger.violations.slice(0, 5).join("; "));
  let total = 0;
  const problems: string[] = [];
  for (const job of jobs) {
    const tasks = await ctx.storage.listTasks({ jobId: job.id });
    total += tasks.length;
    const byId = new Map<string, Task>(tasks.map((t) => [t.id, t]));
    for (const t of tasks) {
      const b = t.input as unknown as Behaviour;
      behaviours.set(t.id, b);
      const runs = ledger.runs.get(t.id) ?? 0;
      if (!isFinal(t)) problems.push(`${t.key} of ${job.id} ended ${t.status}`);
      if (t.durability === "at-most-once" && runs > 1) problems.push(`at-most-once ${t.key} ran ${runs} times`);
      const depsOk = t.dependencies.every((d) => byId.get(d)?.status === "completed");
      if (depsOk) {
        const want = expected(b);
        if (t.status !== want.status || runs !== want.runs) {
          problems.push(`${t.key} (${b.plan}, ${b.durability}): ${t.status} after ${runs} runs, want ${want.status}`);
        }
      } else if (t.status !== "cancelled" || runs !== 0) {
        problems.push(`${t.key} after a failed dependency: ${t.status} after ${runs} runs`);
      }
    }
    const ends = started.flatMap((s) => s.report.jobEnds.get(job.id) ?? []);
    if (ends.length !== 1) problems.push(`job ${job.id} ended ${ends.length} times (${ends.join(", ")})`);
  }
  equal(total, size.tasks, "every task was stored");
  ok(problems.length === 0, `${problems.length} problems: ${problems.slice(0, 8).join("; ")}`);
  const sum = (k: "timedOut" | "retried" | "failed") => started.reduce((n, s) => n + s.executor.stats()[k], 0);
  ok(sum("timedOut") > 0 && sum("retried") > 0 && sum("failed") > 0, "timeouts, retries and failures happened");
  const claimedBy = started.map((s) => s.executor.stats().claimed);
  ok(claimedBy.filter((c) => c > 0).length > 1, `work was shared between executors: ${claimedBy.join(", ")}`);
}

/** The stress case at `size`. */
export function stressCases(size: StressSize): Case<ReliabilityContext>[] {
  const executors = size.executors ?? 4;
  return [{
    name: `${executors} executors on one storage, ${size.tasks} tasks with random failures and timeouts: ` +
      "every task ends final, none runs in two executors at once, at-most-once tasks never run twice",
    run: (ctx) => stress(ctx, size),
  }];
}
