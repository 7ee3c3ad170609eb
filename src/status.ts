/**
 * The one table of legal status transitions. Every storage write is checked against it.
 *
 * @module
 */

import type { JobStatus, Task, TaskStatus } from "./types.ts";

/**
 * Legal task transitions: `TASK_TRANSITIONS[from]` lists the statuses a task may move to.
 * A write that keeps the status (a lease renewal, a progress note) is legal for every
 * status that is not final. `completed` is final unless the task awaits review: the
 * storage rules refuse any change of a completed task without `review`.
 */
export const TASK_TRANSITIONS: Readonly<Record<TaskStatus, readonly TaskStatus[]>> = Object
  .freeze({
    pending: ["ready", "paused", "cancelled", "blocked"],
    ready: ["running", "paused", "cancelled", "blocked"],
    running: ["completed", "failed", "ready", "blocked", "cancelled"],
    paused: ["ready", "cancelled"],
    blocked: ["ready", "failed", "cancelled"],
    completed: ["accepted", "rejected", "ready", "cancelled"], // while it awaits review
    failed: [],
    cancelled: [],
    accepted: [],
    rejected: [],
  });

/** Legal job transitions. */
export const JOB_TRANSITIONS: Readonly<Record<JobStatus, readonly JobStatus[]>> = Object.freeze({
  running: ["paused", "completed", "failed", "cancelled"],
  paused: ["running", "completed", "failed", "cancelled"],
  completed: [],
  failed: [],
  cancelled: [],
});

/** Whether `from -> to` is a legal task transition (staying in a non-final status is). */
export function canTransition(from: TaskStatus, to: TaskStatus): boolean {
  if (from === to) return TASK_TRANSITIONS[from].length > 0;
  return TASK_TRANSITIONS[from].includes(to);
}

/** Whether `from -> to` is a legal job transition. */
export function canTransitionJob(from: JobStatus, to: JobStatus): boolean {
  if (from === to) return JOB_TRANSITIONS[from].length > 0;
  return JOB_TRANSITIONS[from].includes(to);
}

/** Whether a task in this status satisfies its dependents. */
export function isSatisfied(task: Pick<Task, "status" | "review">): boolean {
  return task.status === "accepted" || (task.status === "completed" && !task.review);
}

/** Whether the task will never change again on its own (its job can end). */
export function isFinal(task: Pick<Task, "status" | "review">): boolean {
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

/** Whether the task ended unsuccessfully (counts towards a failed job). */
export function isFailure(task: Pick<Task, "status">): boolean {
  return task.status === "failed" || task.status === "rejected";
}

/** Whether the job has ended. */
export function isJobFinal(status: JobStatus): boolean {
  return status === "completed" || status === "failed" || status === "cancelled";
}

/** Every task status, in lifecycle order. */
export const TASK_STATUSES: readonly TaskStatus[] = Object.freeze(
  Object.keys(TASK_TRANSITIONS) as TaskStatus[],
);

/** Every task status, for membership checks. */
export const TASK_STATUS_SET: ReadonlySet<string> = new Set(TASK_STATUSES);

/** Every job status, for membership checks. */
export const JOB_STATUS_SET: ReadonlySet<string> = new Set(Object.keys(JOB_TRANSITIONS));
