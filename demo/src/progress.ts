/**
 * How far a job is: counts by status, the segments of the progress bar, and the line the
 * page shows after resuming a job.
 *
 * @module
 */

import type { Job, Task, TaskStatus } from "../../mod.ts";
import { shortId } from "./format.ts";

/** A task as the demo draws it: its stored status, or `retrying` for a ready task that failed before. */
export type VisualStatus = TaskStatus | "retrying";

/** The fields of a task the progress needs. */
export type ProgressTask = Pick<Task, "status" | "error" | "attempts" | "review">;

/** The status a task is drawn with. */
export function visualStatus(task: Pick<Task, "status" | "error">): VisualStatus {
  return task.status === "ready" && task.error !== null ? "retrying" : task.status;
}

/** Whether a task reached a status that will not change on its own. */
export function isDone(task: Pick<Task, "status" | "review">): boolean {
  switch (task.status) {
    case "failed":
    case "cancelled":
    case "accepted":
    case "rejected":
      return true;
    case "completed":
      return !task.review;
    default:
      return false;
  }
}

/** A job's progress. */
export interface JobProgress {
  /** Tasks known (spawned children included). */
  total: number;
  /** Tasks in a final status. */
  done: number;
  /** Tasks completed (or accepted). */
  completed: number;
  /** Tasks failed for good (or rejected). */
  failed: number;
  /** Tasks cancelled. */
  cancelled: number;
  /** Tasks running now. */
  running: number;
  /** Tasks waiting to run again after a failed attempt. */
  retrying: number;
  /** Failed attempts that were or will be retried, over all tasks. */
  retries: number;
  /** `done / total` (0 for an empty job). */
  fraction: number;
  /** Tasks by visual status. */
  byStatus: Partial<Record<VisualStatus, number>>;
}

/** Sum up the tasks of a job. */
export function jobProgress(tasks: readonly ProgressTask[]): JobProgress {
  const byStatus: Partial<Record<VisualStatus, number>> = {};
  let done = 0;
  let retries = 0;
  for (const t of tasks) {
    const v = visualStatus(t);
    byStatus[v] = (byStatus[v] ?? 0) + 1;
    if (isDone(t)) done++;
    // Every attempt before the current one failed; a task waiting to retry has one more.
    retries += Math.max(0, t.attempts - 1) + (v === "retrying" ? 1 : 0);
  }
  const n = (s: VisualStatus) => byStatus[s] ?? 0;
  return {
    total: tasks.length,
    done,
    completed: n("completed") + n("accepted"),
    failed: n("failed") + n("rejected"),
    cancelled: n("cancelled"),
    running: n("running"),
    retrying: n("retrying"),
    retries,
    fraction: tasks.length === 0 ? 0 : done / tasks.length,
    byStatus,
  };
}

/** One coloured part of the stacked progress bar. */
export interface BarSegment {
  /** The status it stands for (a CSS class `s-<status>`). */
  status: VisualStatus;
  /** How many tasks. */
  count: number;
  /** Width as a fraction of the bar. */
  fraction: number;
}

const BAR_ORDER: readonly VisualStatus[] = [
  "completed",
  "accepted",
  "failed",
  "rejected",
  "cancelled",
  "running",
  "retrying",
  "blocked",
  "paused",
];

/** The segments of the stacked bar (finished work first, then work in flight); the rest is empty. */
export function barSegments(progress: JobProgress): BarSegment[] {
  if (progress.total === 0) return [];
  const out: BarSegment[] = [];
  for (const status of BAR_ORDER) {
    const count = progress.byStatus[status] ?? 0;
    if (count > 0) out.push({ status, count, fraction: count / progress.total });
  }
  return out;
}

/**
 * The line shown when the page picks up an unfinished job from durable storage:
 * `after reload` when the page just loaded, else (a storage switch) `from <storage>`.
 */
export function resumeMessage(
  job: Pick<Job, "id" | "status">,
  progress: Pick<JobProgress, "done" | "total">,
  storageLabel: string,
  afterReload = true,
): string {
  const paused = job.status === "paused" ? " It is paused: press Resume to continue." : "";
  const tasks = progress.done === 1 ? "task" : "tasks";
  const how = afterReload ? "after reload" : `from ${storageLabel}`;
  return `Resumed job ${shortId(job.id, 10)} ${how}: ${progress.done} ${tasks} already done, ` +
    `${progress.total - progress.done} to go (storage: ${storageLabel}).${paused}`;
}
