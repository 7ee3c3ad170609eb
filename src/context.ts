/**
 * What an agent's `execute` receives besides its input: the {@link TaskContext}.
 *
 * @module
 */

import type { Storage } from "./storage.ts";
import type { Durability, JsonValue, TaskSpec } from "./types.ts";

/** Who the running task is. */
export interface TaskInfo {
  /** Task id. */
  readonly id: string;
  /** Job id. */
  readonly jobId: string;
  /** Key within the job. */
  readonly key: string;
  /** Agent name. */
  readonly agent: string;
  /** The task that spawned this one, else `null`. */
  readonly parentId: string | null;
  /** Ids of the tasks this one depended on. */
  readonly dependencies: readonly string[];
  /** This attempt's number, from 1. */
  readonly attempt: number;
  /** Attempts allowed in all. */
  readonly maxAttempts: number;
  /** At-least-once or at-most-once. */
  readonly durability: Durability;
}

/** A child task to add to the running task's job. */
export type SpawnSpec = Omit<TaskSpec, "runAt"> & {
  /** Earliest start (epoch milliseconds). */
  runAt?: number;
};

/** What `spawn` returns: the child's identity (it is written with the parent's completion). */
export interface TaskHandle {
  /** The child's task id. */
  readonly id: string;
  /** The child's key in the job (`<parent key>/<key>`), as `wait()` shows its output; a later sibling's `dependsOn` may name it so. */
  readonly key: string;
}

/**
 * A key-value view whose writes are stored atomically with the task's completion. A write
 * of a key this attempt read first is stored only if the key still holds what was read;
 * otherwise the completion is not stored and the task runs again (an at-most-once task is
 * blocked), so a read-modify-write is never lost. A write of a key not read first is stored
 * as it is (last writer wins).
 */
export interface KeyValue {
  /** Read a value (this task's own unsaved writes are seen first). */
  get(key: string): Promise<JsonValue | undefined>;
  /** Write a value; stored when the task completes. */
  set(key: string, value: JsonValue): void;
  /** Delete a value; stored when the task completes. */
  delete(key: string): void;
}

/** The read-only part of the storage an agent may use. */
export type ReadonlyStorage = Pick<
  Storage,
  "getJob" | "listJobs" | "getTask" | "getTasks" | "listTasks" | "getCache" | "getState"
>;

/** Everything an agent's `execute` receives besides its input. */
export interface TaskContext<Input = JsonValue> {
  /** Who this task is. */
  readonly task: TaskInfo;
  /** The task's input (validated for JSON agents). */
  readonly input: Input;
  /** Aborted on timeout (with a `TaskTimeoutError`), job cancellation or shutdown. */
  readonly signal: AbortSignal;
  /** The reason of the last rejected review, else `null`. */
  readonly reviewFeedback: string | null;
  /**
   * Outputs of this task's dependencies, by key: those that completed (or were accepted).
   * A dependency that failed or was cancelled, which a person's `retryTask()` let this task
   * go on without, is left out.
   */
  dependencyOutputs(): Promise<Record<string, JsonValue>>;
  /**
   * Add a child task to this job. Children are written in the same commit as this
   * task's completion, so a retried parent never duplicates them. `dependsOn` names
   * earlier children of this attempt, by the keys given to `spawn` (which may not hold `/`
   * or `#`) or by the `key` of the handles it returned. A child's key in the job is `<parent key>/<key>`, or `<parent key>#<attempt>/<key>`
   * when the parent runs again after a rejected review: that is the key `wait()` and a
   * sibling's `dependencyOutputs()` show its output under. When this task asks for review,
   * its children wait for the acceptance (the parent is their first dependency, so its
   * output is among their `dependencyOutputs()`), and a rejection cancels them. This
   * task's own dependents do not wait for its children (to gather their outputs, spawn a
   * join child that depends on them); the job waits for all of them.
   * Keys are unique in a job, and a job holds at most 1,000,000 tasks: a completion whose
   * children would take it past that is not stored, and this task fails (not retried) with
   * a `JobValidationError` (problem code `too-many-tasks`). Like cache and state writes, a spawn
   * after the attempt ended (from work the agent did not await) throws: nothing would
   * store it.
   */
  spawn(spec: SpawnSpec): TaskHandle;
  /** The job's cache (persisted, read-your-writes inside the task). */
  readonly cache: KeyValue;
  /** Shared state of a scope (persisted, visible to every job). */
  state(scope: string): KeyValue;
  /** Read-only view of the storage. */
  readonly storage: ReadonlyStorage;
  /**
   * Report progress (0..1) with an optional message; emitted as a throttled `task:progress`
   * event. A report after the attempt ended (work the agent did not await) is not told.
   */
  progress(fraction: number, message?: string): void;
}
