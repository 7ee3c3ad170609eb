/**
 * How tasks and jobs are stored.
 *
 * A task row is the task without the fields that hold their default value (`null`, an
 * empty `dependencies`, `attempts: 0`, `review: false` ...), plus one derived field, never
 * handed out. Most of a task's fields are at their default most of the time, and what a
 * `put` costs in Chromium grows with the bytes it writes: a lean row is about half the
 * size of the full record. {@link fromRow} puts the defaults back before checking the row.
 *
 * - `_dependents`: ids of the tasks that depend on this one (absent when none). The
 *   rules need them when a task settles; reading them with the row it already reads for
 *   the compare-and-swap costs no extra request, where a multiEntry index on
 *   `dependencies` costs one lookup per settled task and one index entry per edge.
 *
 * Schema version 1 stored the full record plus `_claim`; {@link fromRow} reads both forms.
 *
 * @module
 */

import { copyTask } from "../../src/commit-rules.ts";
import { deepFreeze } from "../../src/json.ts";
import { checkJobRecord, checkTaskRecord } from "../../src/record-check.ts";
import type { Job, JsonValue, Task } from "../../src/types.ts";

/** A task as stored: the fields that are not at their default, and `_dependents`. */
export type TaskRow = Partial<Task> & Pick<Task, "id" | "jobId" | "agent" | "status" | "version"> & {
  /** Ids of the tasks that depend on this one. */
  _dependents?: string[];
  /** Schema version 1 only: `[priority, runAt, id]` while `ready`. */
  _claim?: unknown;
};

/** The value each omitted field stands for (`dependencies` is an empty array, made fresh per read). */
const DEFAULTS: Readonly<Partial<Record<keyof Task, unknown>>> = {
  input: null,
  output: null,
  error: null,
  statusReason: null,
  parentId: null,
  remainingDeps: 0,
  attempts: 0,
  timeoutMs: null,
  durability: "at-least-once",
  onDependencyFailure: "cancel",
  priority: 0,
  review: false,
  reviewFeedback: null,
  leaseOwner: null,
  leaseExpiresAt: null,
  startedAt: null,
  finishedAt: null,
  description: null,
  taskType: null,
  summary: null,
  acceptanceCriteria: null,
};
const DEFAULT_KEYS = Object.keys(DEFAULTS) as (keyof Task)[];

/** The row of `task`, with its dependents (from the stored row plus the batch's new edges). */
export function toRow(task: Task, dependents: readonly string[] | undefined): TaskRow {
  const row: Record<string, unknown> = {};
  for (const key in task) {
    const value = task[key as keyof Task];
    if (value === undefined || value === DEFAULTS[key as keyof Task]) continue;
    if (key === "dependencies" && (value as string[]).length === 0) continue;
    row[key] = value;
  }
  if (dependents && dependents.length > 0) row._dependents = [...dependents];
  return row as TaskRow;
}

/**
 * The task of a row read from the database (a fresh copy): defaults restored, derived
 * fields dropped, JSON values frozen. A row of the wrong shape (damaged or tampered with)
 * is a `StorageCorruptError`.
 */
export function fromRow(row: TaskRow): Task {
  const task = { ...row } as Record<string, unknown>;
  delete task._dependents;
  delete task._claim;
  for (const key of DEFAULT_KEYS) if (task[key] === undefined) task[key] = DEFAULTS[key];
  if (task.dependencies === undefined) task.dependencies = [];
  checkTaskRecord(task, "indexeddb tasks");
  // In the fields' own order, as every adapter answers (the row keeps only what differs from the defaults).
  const out = copyTask(task as unknown as Task);
  deepFreeze(out.input);
  deepFreeze(out.output);
  if (out.error) deepFreeze(out.error as unknown as JsonValue);
  Object.freeze(out.dependencies);
  return out;
}

/** Check and freeze the JSON values of a job read from the database (a fresh copy). */
export function freezeJob(job: Job | undefined): Job | undefined {
  if (job) deepFreeze(checkJobRecord(job, "indexeddb jobs").metadata);
  return job;
}
