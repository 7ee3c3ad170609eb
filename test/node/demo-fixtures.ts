// Task records for the demo's view tests (not a test file itself).
import type { Task, TaskError, TaskStatus } from "../../mod.ts";

let seq = 0;

/** A stored-looking task with sensible defaults. */
export function task(key: string, overrides: Partial<Task> = {}): Task {
  seq++;
  const id = overrides.id ?? `id-${key}`;
  return {
    id,
    jobId: "job-1",
    key,
    agent: key.split("/").pop()!.replace(/-\d+$/, ""),
    input: null,
    output: null,
    error: null,
    status: "pending" as TaskStatus,
    statusReason: null,
    parentId: null,
    dependencies: [],
    remainingDeps: 0,
    attempts: 0,
    maxAttempts: 4,
    timeoutMs: null,
    durability: "at-least-once",
    onDependencyFailure: "cancel",
    priority: 0,
    runAt: 0,
    review: false,
    reviewFeedback: null,
    leaseOwner: null,
    leaseExpiresAt: null,
    version: 1,
    createdAt: seq,
    updatedAt: seq,
    startedAt: null,
    finishedAt: null,
    description: null,
    taskType: null,
    summary: null,
    acceptanceCriteria: null,
    ...overrides,
  };
}

/** A task error. */
export function error(message: string, name = "Error", retryable = true): TaskError {
  return { name, message, retryable, at: 0 };
}

/** The digest DAG of `n` articles, as the plan task spawns it. */
export function digest(n: number, status: (key: string) => Partial<Task> = () => ({})): Task[] {
  const plan = task("plan", status("plan"));
  const out = [plan];
  const summaries: string[] = [];
  for (let i = 1; i <= n; i++) {
    const fetch = task(`plan/fetch-${i}`, { parentId: plan.id, ...status(`plan/fetch-${i}`) });
    const parse = task(`plan/parse-${i}`, {
      parentId: plan.id,
      dependencies: [fetch.id],
      ...status(`plan/parse-${i}`),
    });
    const summarize = task(`plan/summarize-${i}`, {
      parentId: plan.id,
      dependencies: [parse.id],
      ...status(`plan/summarize-${i}`),
    });
    out.push(fetch, parse, summarize);
    summaries.push(summarize.id);
  }
  out.push(task("plan/report", { parentId: plan.id, dependencies: summaries, ...status("plan/report") }));
  return out;
}
