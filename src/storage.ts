/**
 * The storage contract: the source of truth for jobs, tasks, cache and shared state.
 *
 * Batch-first, because every durable backend pays per transaction: `createJob`,
 * `claimReady` and `commit` are each one atomic transaction. Every task update is a
 * compare-and-swap on `(status, version)` checked against the transition table in
 * `status.ts`; an illegal transition or a stale version rejects the whole batch.
 *
 * The scheduling rules are part of the contract, applied inside the same transaction by
 * every adapter (see `commit-rules.ts`): a task that becomes satisfied decrements its
 * dependents' `remainingDeps` (O(1) per edge) and makes them ready at zero; a task that
 * fails for good cancels or blocks its pending dependents, transitively; a job whose
 * last open task reaches a final status ends once.
 *
 * @module
 */

import type { Job, JobStatus, JsonValue, Task, TaskStatus } from "./types.ts";

/**
 * Fields of a task an update may set. `version` and `updatedAt` are set by the storage; a
 * task's identity and place in its job (`id`, `jobId`, `key`, `parentId`, `dependencies`)
 * never change.
 */
export type TaskPatch = Partial<
  Omit<Task, "id" | "jobId" | "key" | "parentId" | "version" | "createdAt" | "updatedAt" | "dependencies">
>;

/** Fields of a job an update may set. */
export type JobPatch = Partial<Pick<Job, "status" | "metadata" | "name">>;

/** What a compare-and-swap expects to find. */
export interface Expect<S extends string> {
  /** The version the record must have. */
  version: number;
  /** The status the record must have (optional: the version already pins it). */
  status?: S;
}

/** What a compare-and-swap of a task expects to find. */
export interface TaskExpect extends Expect<TaskStatus> {
  /**
   * The lease expiry the task must have (optional). Recovery sets it to the expired lease
   * it read, so that a lease its owner renewed meanwhile is not taken away: renewing does
   * not change a task's version.
   */
  leaseExpiresAt?: number | null;
}

/** Insert a new task into an existing job. The storage computes `remainingDeps` and the initial status. */
export interface InsertTaskOp {
  /** Discriminant. */
  type: "insertTask";
  /** The full record; `status` must be `pending` or `ready`, `version` 1. */
  task: Task;
}

/** Compare-and-swap update of one task. */
export interface UpdateTaskOp {
  /** Discriminant. */
  type: "updateTask";
  /** The task id. */
  id: string;
  /** What the task must look like now. */
  expect: TaskExpect;
  /** The fields to change. */
  set: TaskPatch;
}

/** Compare-and-swap update of one job: `status` moves to `paused`, `running` or `cancelled` cascade to its tasks. */
export interface UpdateJobOp {
  /** Discriminant. */
  type: "updateJob";
  /** The job id. */
  id: string;
  /** What the job must look like now. */
  expect: Expect<JobStatus>;
  /** The fields to change. */
  set: JobPatch;
}

/** Write (or delete, with `value: undefined`) one entry of a job's cache. */
export interface SetCacheOp {
  /** Discriminant. */
  type: "setCache";
  /** The job. */
  jobId: string;
  /** The cache key. */
  key: string;
  /** The value, or `undefined` to delete. */
  value: JsonValue | undefined;
  /**
   * Write only if the entry still holds `expect.value` (`undefined`: absent), as read by
   * the writer; otherwise the commit fails with a `KeyConflictError` naming this op.
   */
  expect?: { value: JsonValue | undefined };
}

/** Write (or delete, with `value: undefined`) one entry of shared state. */
export interface SetStateOp {
  /** Discriminant. */
  type: "setState";
  /** The scope (for example a user or a workflow name). */
  scope: string;
  /** The key within the scope. */
  key: string;
  /** The value, or `undefined` to delete. */
  value: JsonValue | undefined;
  /**
   * Write only if the entry still holds `expect.value` (`undefined`: absent), as read by
   * the writer; otherwise the commit fails with a `KeyConflictError` naming this op.
   */
  expect?: { value: JsonValue | undefined };
}

/** One op of a `commit` batch. */
export type CommitOp = InsertTaskOp | UpdateTaskOp | UpdateJobOp | SetCacheOp | SetStateOp;

/** What a `watch()` listener is told about a change, when the backend knows it. */
export interface StorageChange {
  /** Ids of the jobs whose status changed (empty when none did). */
  readonly jobs: readonly string[];
}

/** The {@link StorageChange} a commit's result describes (what adapters tell their watchers). */
export function changeOf(result: CommitResult): StorageChange {
  const jobs: string[] = [];
  for (const job of result.jobs) jobs.push(job.id);
  return { jobs };
}

/**
 * Tell each listener in `listeners` about `change`, each in a microtask of its own, unless
 * it stopped listening (left the set) before then. With `drop` (a close), the set is
 * emptied once they were told.
 */
export function tellWatchers(
  listeners: Set<(change?: StorageChange) => void>,
  change: StorageChange | undefined,
  drop = false,
): void {
  for (const l of listeners) {
    queueMicrotask(() => {
      if (listeners.has(l)) l(change);
    });
  }
  if (drop) queueMicrotask(() => listeners.clear());
}

/**
 * `watch()` on a closed storage: the listener is told once, at once (as `close()` tells
 * every watcher), so whoever waits on it calls again and learns of the close; nothing is
 * kept. Returns its stop, which prevents the call when made first.
 */
export function watchClosed(listener: (change?: StorageChange) => void): () => void {
  if (typeof listener !== "function") throw new TypeError(`watch() expects a function, got ${typeof listener}`);
  let stopped = false;
  queueMicrotask(() => {
    if (!stopped) listener();
  });
  return () => {
    stopped = true;
  };
}

/** What a commit changed. */
export interface CommitResult {
  /** Every task written by the batch (ops and scheduling rules), as stored now, in no order adapters agree on. */
  tasks: Task[];
  /** Jobs whose status changed, as stored now (an ended job appears here exactly once, ever). */
  jobs: Job[];
  /** How many tasks became `ready` (callers wake their claim loop when it is above zero). */
  readied: number;
}

/** Arguments of `claimReady`. */
export interface ClaimOptions {
  /** Most tasks to claim. */
  limit: number;
  /** The claimer's clock (epoch milliseconds): only tasks with `runAt <= now` are claimed. */
  now: number;
  /** The claimer's id, stored as `leaseOwner`. */
  owner: string;
  /** Lease length: `leaseExpiresAt = now + leaseMs`. */
  leaseMs: number;
  /**
   * How many of the first tasks claimed (in claim order) the claim also starts
   * (`startedAt = now`): those the claimer hands to free workers at once, whose start then
   * needs no write of its own. An at-most-once task is never started by a claim. Default 0.
   */
  start?: number;
  /**
   * Claim only tasks whose `agent` is one of these (default: any agent), in the same claim
   * order among them; the others stay `ready` for claimers that run them. An empty list
   * claims nothing. Served by an index per agent, never by reading past other agents' tasks.
   */
  agents?: readonly string[];
}

/** Arguments of `renewLeases`. */
export interface RenewOptions {
  /** Tasks to renew. */
  ids: readonly string[];
  /** The owner that must hold each lease. */
  owner: string;
  /** The renewer's clock. */
  now: number;
  /** New lease length from `now`. */
  leaseMs: number;
}

/**
 * Filters of `listTasks`. Served by an index; at least one of `jobId`, `agent`, `status`,
 * `parentId` is recommended. Another key (a misspelt `jobID`) is a `TypeError`, not ignored.
 */
export interface TaskQuery {
  /** Tasks of this job. */
  jobId?: string;
  /** Tasks of this agent. */
  agent?: string;
  /** Tasks in this status. */
  status?: TaskStatus;
  /** Children of this task. */
  parentId?: string;
  /** Only ids greater than this one (pagination cursor). */
  after?: string;
  /** Most records to return (default: all). */
  limit?: number;
}

/** Filters of `listJobs`. Another key (a `name`) is a `TypeError`, not ignored. */
export interface JobQuery {
  /** Jobs in this status. */
  status?: JobStatus;
  /** Only ids greater than this one (pagination cursor). */
  after?: string;
  /** Most records to return (default: all). */
  limit?: number;
}

/** What a backend can and cannot do; the conformance suite skips, with a reason, what is missing. */
export interface StorageCapabilities {
  /** Data survives a restart of the process or page. */
  durable: boolean;
  /** Several processes or pages may share the data. */
  shared: boolean;
}

/** Arguments of `prune`. */
export interface PruneOptions {
  /** Delete ended jobs that finished before this time (epoch milliseconds). */
  finishedBefore?: number;
  /** Keep at most this many ended jobs (the newest). */
  keepLast?: number;
}

/**
 * The storage contract every adapter implements.
 *
 * Records handed out are copies (with frozen JSON values): mutating one changes nothing stored.
 */
export interface Storage {
  /** A short name of the adapter (`memory`, `indexeddb`, `sqljs` ...). */
  readonly name: string;
  /** What the backend can do. */
  readonly capabilities: StorageCapabilities;

  /**
   * Store a job and its tasks atomically. Task dependencies must name tasks of this batch;
   * tasks with no dependencies become `ready`, the others `pending`. A job needs at least
   * one task (a job ends when its last open task ends): an empty list is a `TypeError`.
   * Throws `JsonValueError` for a non-JSON value and writes nothing.
   */
  createJob(job: Job, tasks: readonly Task[]): Promise<CommitResult>;

  /** One job, or `undefined`. */
  getJob(id: string): Promise<Job | undefined>;
  /** Jobs in id (creation) order. */
  listJobs(query?: JobQuery): Promise<Job[]>;
  /** One task, or `undefined`. */
  getTask(id: string): Promise<Task | undefined>;
  /** Several tasks, in the order of `ids`; missing ones are left out. */
  getTasks(ids: readonly string[]): Promise<Task[]>;
  /** Tasks matching every given filter, in id order, served by an index. */
  listTasks(query: TaskQuery): Promise<Task[]>;

  /**
   * Atomically move up to `limit` ready tasks with `runAt <= now` to `running`
   * (`attempts + 1`, a lease for `owner`, `startedAt = null`: the executor stores each start
   * before calling the agent, unless `start` asks the claim to; see `claimPatch`), in order of priority (lower first), then `runAt`, then creation. Two claimers never get
   * the same task.
   */
  claimReady(options: ClaimOptions): Promise<Task[]>;

  /**
   * Apply a batch atomically: all ops and the scheduling rules they trigger, or nothing.
   * A failing compare-and-swap throws `ConflictError` naming the op and the found state;
   * an illegal status change throws `InvalidTransitionError`.
   */
  commit(ops: readonly CommitOp[], now?: number): Promise<CommitResult>;

  /** Extend the leases of running tasks still held by `owner`; returns the ids renewed (a lost lease is left out). */
  renewLeases(options: RenewOptions): Promise<string[]>;
  /**
   * Running tasks whose lease expired at or before `now`, oldest expiry first: at most `limit`
   * (floored; none past `Number.MAX_SAFE_INTEGER`; 0 when negative or not a number). A `now`
   * that is not a number answers none.
   */
  expiredLeases(now: number, limit?: number): Promise<Task[]>;

  /** One entry of a job's cache, or `undefined`. */
  getCache(jobId: string, key: string): Promise<JsonValue | undefined>;
  /** One entry of shared state, or `undefined`. */
  getState(scope: string, key: string): Promise<JsonValue | undefined>;

  /** Delete ended jobs, their tasks and cache; returns how many jobs were deleted. */
  prune(options: PruneOptions): Promise<number>;

  /**
   * Be told when tasks may have become claimable or a job's status changed (a commit with
   * `readied > 0` or a non-empty `jobs`), by this process or (where the backend can) by
   * another one. The listener gets a {@link StorageChange} naming the jobs whose status
   * changed when the backend knows them, and `undefined` when anything may have changed.
   * Returns a function that stops listening.
   */
  watch(listener: (change?: StorageChange) => void): () => void;

  /**
   * Release the backend. Further calls throw `StorageClosedError`. Every watcher is told
   * once more (with `undefined`), so that whoever waits on one (an idle executor, a
   * `wait()`) calls again and learns at once that the storage is closed; then watchers are
   * dropped.
   */
  close(): Promise<void>;
}
