/**
 * The rows of the task table, computed from task records (pure: `now` is passed in).
 *
 * @module
 */

import type { Task } from "../../mod.ts";
import { formatDuration } from "./format.ts";
import { type VisualStatus, visualStatus } from "./progress.ts";

/** The fields of a task a row needs. */
export type RowTask = Pick<
  Task,
  | "id"
  | "key"
  | "agent"
  | "status"
  | "statusReason"
  | "error"
  | "attempts"
  | "maxAttempts"
  | "startedAt"
  | "finishedAt"
  | "runAt"
>;

/** One row of the task table. */
export interface TaskRow {
  /** Task id. */
  id: string;
  /** Task key. */
  key: string;
  /** Agent name. */
  agent: string;
  /** Status it is drawn with. */
  status: VisualStatus;
  /** `attempts/maxAttempts`, and the executions this tab saw when more (`· ran 2×`: an attempt interrupted by a reload is not counted). */
  attempts: string;
  /** Duration of the last attempt (running ones count up to `now`), or `—`. */
  duration: string;
  /** The error of the last failed attempt, or the status reason, or an empty string. */
  error: string;
  /** Extra words for the status (`in 1.2 s` for a retry that waits). */
  note: string;
}

/** Duration of the task's last attempt in milliseconds, or `null` when it never started. */
export function attemptDuration(task: Pick<Task, "status" | "startedAt" | "finishedAt">, now: number): number | null {
  if (task.startedAt === null) return null;
  if (task.status === "running") return Math.max(0, now - task.startedAt);
  if (task.finishedAt !== null && task.finishedAt >= task.startedAt) return task.finishedAt - task.startedAt;
  return null;
}

/** The error text of a row. */
export function errorText(task: Pick<Task, "status" | "error" | "statusReason">): string {
  if (task.error) return `${task.error.name}: ${task.error.message}`;
  if (task.status === "cancelled" || task.status === "blocked") return task.statusReason ?? "";
  return "";
}

/**
 * One row per task, in the given order. `runs` are the executions per task key this page
 * counted: an attempt released after a reload is not counted in `attempts`, yet its agent ran.
 */
export function taskRows(
  tasks: readonly RowTask[],
  now: number,
  runs: Readonly<Record<string, number>> = {},
): TaskRow[] {
  return tasks.map((t) => {
    const status = visualStatus(t);
    const wait = t.runAt - now;
    const ran = runs[t.key] ?? 0;
    return {
      id: t.id,
      key: t.key,
      agent: t.agent,
      status,
      attempts: `${t.attempts}/${t.maxAttempts}` + (ran > t.attempts ? ` · ran ${ran}×` : ""),
      duration: formatDuration(attemptDuration(t, now)),
      error: errorText(t),
      note: status === "retrying" && wait > 0 ? `in ${formatDuration(wait)}` : "",
    };
  });
}
