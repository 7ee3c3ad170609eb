/**
 * How tasks and jobs are stored: a task row is the task plus two derived fields that
 * the indexes and the rules use, never handed out.
 *
 * - `_claim`: `[priority, runAt, id]` while the task is `ready`, absent otherwise. The
 *   claim index is on this field, so it holds ready tasks only (IndexedDB leaves records
 *   without the key out of an index): a claim reads and writes no entry for the others.
 * - `_dependents`: ids of the tasks that depend on this one (absent when none). The
 *   rules need them when a task settles; reading them with the row it already reads for
 *   the compare-and-swap costs no extra request, where a multiEntry index on
 *   `dependencies` costs one lookup per settled task and one index entry per edge.
 *
 * @module
 */

import { deepFreeze } from "../../src/json.ts";
import { checkJobRecord, checkTaskRecord } from "../../src/record-check.ts";
import type { Job, JsonValue, Task } from "../../src/types.ts";

/** A task as stored. */
export interface TaskRow extends Task {
  /** `[priority, runAt, id]` while `ready`. */
  _claim?: [number, number, string];
  /** Ids of the tasks that depend on this one. */
  _dependents?: string[];
}

/** The row of `task`, with its dependents (from the stored row plus the batch's new edges). */
export function toRow(task: Task, dependents: readonly string[] | undefined): TaskRow {
  const row: TaskRow = { ...task };
  if (task.status === "ready") row._claim = [task.priority, task.runAt, task.id];
  if (dependents && dependents.length > 0) row._dependents = [...dependents];
  return row;
}

/**
 * The task of a row read from the database (a fresh copy): derived fields dropped, JSON
 * values frozen. A row of the wrong shape (damaged or tampered with) is a `StorageCorruptError`.
 */
export function fromRow(row: TaskRow): Task {
  checkTaskRecord(row, "indexeddb tasks");
  const { _claim: _c, _dependents: _d, ...task } = row;
  deepFreeze(task.input);
  deepFreeze(task.output);
  if (task.error) deepFreeze(task.error as unknown as JsonValue);
  Object.freeze(task.dependencies);
  return task;
}

/** Check and freeze the JSON values of a job read from the database (a fresh copy). */
export function freezeJob(job: Job | undefined): Job | undefined {
  if (job) deepFreeze(checkJobRecord(job, "indexeddb jobs").metadata);
  return job;
}
