/**
 * The Node side of the stress scenario of `indexeddb-tabs.e2e.mjs`: the workload of
 * `test/chaos/stress-plan.ts`, the ledger of the executions the pages report, and the
 * checks of a run's outcome. The driver bundles this file with esbuild at start.
 */

import { type Behaviour, expected } from "../chaos/stress-plan.ts";

export { stressJobs } from "../chaos/stress-plan.ts";

/** One execution reported by a page. */
export interface Execution {
  event: "start" | "end";
  tab: string;
  id: string;
  key: string;
  attempt: number;
}

/** A stored task as the driver reads it back from a page. */
export interface StoredTask {
  id: string;
  jobId: string;
  key: string;
  status: string;
  durability: string;
  input: Behaviour;
  dependencies: string[];
  final: boolean;
}

/** Executions reported by the pages: runs per task id, who holds a task now, and overlaps. */
export class Ledger {
  readonly runs = new Map<string, number>();
  readonly holder = new Map<string, string>();
  readonly violations: string[] = [];
  /** Executions started per tab. */
  readonly byTab: Record<string, number> = {};

  /** Count a start, or release the holder at an end. */
  report(r: Execution): void {
    const who = `${r.tab} (attempt ${r.attempt})`;
    if (r.event === "start") {
      const other = this.holder.get(r.id);
      if (other !== undefined) this.violations.push(`task ${r.id} (${r.key}) started in ${who} while ${other} ran it`);
      this.holder.set(r.id, who);
      this.runs.set(r.id, (this.runs.get(r.id) ?? 0) + 1);
      this.byTab[r.tab] = (this.byTab[r.tab] ?? 0) + 1;
    } else if (r.event === "end" && this.holder.get(r.id) === who) {
      this.holder.delete(r.id);
    }
  }
}

/**
 * What is wrong with the stored tasks of one run, given the ledger: a task not final, an
 * at-most-once task run twice, a task whose runs or status differ from its plan, a task
 * after a failed dependency that is not cancelled or ran.
 */
export function outcomeProblems(tasks: readonly StoredTask[], ledger: Ledger): string[] {
  const ran = canRun(tasks);
  const problems: string[] = [];
  for (const t of tasks) {
    const runs = ledger.runs.get(t.id) ?? 0;
    const name = `${t.key} of ${t.jobId} (${t.input.plan}, ${t.durability})`;
    if (!t.final) problems.push(`${name} ended ${t.status}`);
    if (t.durability === "at-most-once" && runs > 1) problems.push(`at-most-once ${name} ran ${runs} times`);
    if (ran(t)) {
      const want = expected(t.input);
      if (t.status !== want.status || runs !== want.runs) {
        problems.push(`${name}: ${t.status} after ${runs} runs, want ${want.status} after ${want.runs}`);
      }
    } else if (t.status !== "cancelled" || runs !== 0) {
      problems.push(`${name} after a failed dependency: ${t.status} after ${runs} runs`);
    }
  }
  return problems;
}

/**
 * The timeouts and retries the executors must have counted, from the plans: a timeout for
 * each task planned to time out, a retry for each flaky one and each at-least-once one
 * planned to time out (tasks after a failed dependency never run).
 */
export function expectedStats(tasks: readonly StoredTask[]): { timedOut: number; retried: number } {
  const ran = canRun(tasks);
  let timedOut = 0;
  let retried = 0;
  for (const t of tasks.filter(ran)) {
    if (t.input.plan === "timeout") timedOut++;
    if (t.input.plan === "flaky" || (t.input.plan === "timeout" && t.durability === "at-least-once")) retried++;
  }
  return { timedOut, retried };
}

/** Whether a task's dependencies all completed (so it ran as its plan says), over the tasks of a run. */
function canRun(tasks: readonly StoredTask[]): (t: StoredTask) => boolean {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  return (t) => t.dependencies.every((d) => byId.get(d)?.status === "completed");
}
