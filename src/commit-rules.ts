/**
 * The scheduling rules of the storage contract, written once for every adapter.
 *
 * An adapter opens one transaction, wraps it in a {@link RuleTx} and calls
 * {@link applyCommit} or {@link applyCreateJob}. The rules read through the transaction,
 * keep every change in an overlay (so later ops see earlier ones), and only write to the
 * transaction at the end; when a rule throws, nothing was written and the adapter aborts.
 *
 * Work is O(1) per op and per dependency edge: dependents are found through the
 * adapter's dependents index, never by scanning a job.
 *
 * @module
 */

import {
  ConflictError,
  InvalidTransitionError,
  JobValidationError,
  KeyConflictError,
  NotFoundError,
  StorageError,
  TaskCoreError,
} from "./errors.ts";
import { cycleAmong } from "./graph.ts";
import { isLoneSurrogate, toJson } from "./json.ts";
import { canTransition, canTransitionJob, isFailure, isJobFinal, JOB_STATUS_SET, TASK_STATUS_SET } from "./status.ts";
import type { CommitOp, CommitResult } from "./storage.ts";
import type { Job, JobStatus, JsonValue, Task, TaskStatus } from "./types.ts";

/**
 * Most tasks one job may hold: one submission is one transaction, and children spawned at
 * run time stop there too (a runaway spawn would otherwise grow its job without end).
 */
export const MAX_TASKS_PER_JOB = 1_000_000;

/**
 * Most attempts a task may be given (`maxAttempts`): 2^31 - 1, the largest count every
 * storage keeps (PostgreSQL's are 32-bit), so a job accepted by one adapter is by all.
 */
export const MAX_ATTEMPTS = 2_147_483_647;

/** What orders ready tasks for claims (see `claimOrder`). */
export type ClaimKey = Pick<Task, "priority" | "runAt" | "id">;

/** A value or a promise of it: memory adapters answer synchronously, durable ones may not. */
export type MaybePromise<T> = T | Promise<T>;

/**
 * A copy of a task record with every field written out. An object spread of a 32-field
 * record (`{ ...task, status }`) is ~10x slower in V8 and allocates several times the
 * record's size (the copy grows field by field); a literal is allocated once, with the
 * same shape as every other record.
 */
export function copyTask(t: Task): Task {
  return {
    id: t.id,
    jobId: t.jobId,
    key: t.key,
    agent: t.agent,
    input: t.input,
    output: t.output,
    error: t.error,
    status: t.status,
    statusReason: t.statusReason,
    parentId: t.parentId,
    dependencies: t.dependencies,
    remainingDeps: t.remainingDeps,
    attempts: t.attempts,
    maxAttempts: t.maxAttempts,
    timeoutMs: t.timeoutMs,
    durability: t.durability,
    onDependencyFailure: t.onDependencyFailure,
    priority: t.priority,
    runAt: t.runAt,
    review: t.review,
    reviewFeedback: t.reviewFeedback,
    leaseOwner: t.leaseOwner,
    leaseExpiresAt: t.leaseExpiresAt,
    version: t.version,
    createdAt: t.createdAt,
    updatedAt: t.updatedAt,
    startedAt: t.startedAt,
    finishedAt: t.finishedAt,
    description: t.description,
    taskType: t.taskType,
    summary: t.summary,
    acceptanceCriteria: t.acceptanceCriteria,
  };
}

/** A copy of a job record with every field written out (see {@link copyTask}). */
export function copyJob(j: Job): Job {
  return {
    id: j.id,
    name: j.name,
    status: j.status,
    metadata: j.metadata,
    taskCount: j.taskCount,
    openCount: j.openCount,
    failedCount: j.failedCount,
    version: j.version,
    createdAt: j.createdAt,
    updatedAt: j.updatedAt,
    finishedAt: j.finishedAt,
  };
}

/** The primitives an adapter offers inside one transaction. */
export interface RuleTx {
  /** Read a task as stored at the start of the batch. */
  getTask(id: string): MaybePromise<Task | undefined>;
  /** Read a job as stored at the start of the batch. */
  getJob(id: string): MaybePromise<Job | undefined>;
  /** Ids of the stored tasks whose `dependencies` contain `id`. */
  dependents(id: string): MaybePromise<readonly string[]>;
  /** Stored tasks of a job in one of `statuses` (job control only, never on the hot path). */
  jobTasks(jobId: string, statuses: readonly TaskStatus[]): MaybePromise<readonly Task[]>;
  /** Write a task (`prev` is the stored record, `undefined` for an insert). */
  putTask(task: Task, prev: Task | undefined): MaybePromise<void>;
  /** Write a job (`prev` is the stored record, `undefined` for an insert). */
  putJob(job: Job, prev: Job | undefined): MaybePromise<void>;
  /** Write or delete one cache entry. */
  setCache(jobId: string, key: string, value: JsonValue | undefined): MaybePromise<void>;
  /** Write or delete one shared-state entry. */
  setState(scope: string, key: string, value: JsonValue | undefined): MaybePromise<void>;
  /**
   * Read one cache entry as stored at the start of the batch (locked where the backend
   * locks reads). Needed for writes that carry an `expect`; a tx without it stores them
   * unchecked (last writer wins).
   */
  getCache?(jobId: string, key: string): MaybePromise<JsonValue | undefined>;
  /** Read one shared-state entry as stored at the start of the batch (see `getCache`). */
  getState?(scope: string, key: string): MaybePromise<JsonValue | undefined>;
}

/** Deep equality of two JSON values (`undefined`: an absent entry). */
function jsonEqual(a: JsonValue | undefined, b: JsonValue | undefined): boolean {
  if (a === b) return true;
  if (a === null || b === null || typeof a !== "object" || typeof b !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a)) {
    const bb = b as JsonValue[];
    if (a.length !== bb.length) return false;
    for (let i = 0; i < a.length; i++) if (!jsonEqual(a[i], bb[i])) return false;
    return true;
  }
  const ao = a as { [k: string]: JsonValue };
  const bo = b as { [k: string]: JsonValue };
  const keys = Object.keys(ao);
  if (keys.length !== Object.keys(bo).length) return false;
  for (const k of keys) if (!Object.hasOwn(bo, k) || !jsonEqual(ao[k], bo[k])) return false;
  return true;
}

const JOB_CONTROL: readonly JobStatus[] = ["running", "paused", "cancelled"];
/** Statuses a job's cancellation ends (a `completed` task only while it awaits review). */
const CANCELLABLE: readonly TaskStatus[] = ["pending", "ready", "running", "paused", "blocked", "completed"];

/** A read a rules step was not handed (it reads the record itself). */
const NOT_READ: unique symbol = Symbol("not read");

/** A rules step: yields what it reads from the transaction, returns its result. */
type Step<T> = Generator<unknown, T, unknown>;

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return v !== null && typeof v === "object" && typeof (v as { then?: unknown }).then === "function";
}

/**
 * Run a rules step: synchronously while the transaction answers synchronously (memory,
 * sql.js), switching to promises only when it answers with one (IndexedDB).
 */
function drive<T>(step: Step<T>): MaybePromise<T> {
  let r = step.next();
  while (!r.done) {
    if (isThenable(r.value)) return driveAsync(step, r.value);
    r = step.next(r.value);
  }
  return r.value;
}

async function driveAsync<T>(step: Step<T>, first: PromiseLike<unknown>): Promise<T> {
  let r = step.next(await first);
  while (!r.done) r = step.next(isThenable(r.value) ? await r.value : r.value);
  return r.value;
}

function finalOf(status: TaskStatus, review: boolean): boolean {
  return status === "failed" || status === "cancelled" || status === "accepted" || status === "rejected" ||
    (status === "completed" && !review);
}

function satisfiedOf(status: TaskStatus, review: boolean): boolean {
  return status === "accepted" || (status === "completed" && !review);
}

/** A record the batch read or wrote: as stored before it, as the batch sees it now. */
interface Entry<T> {
  prev: T | undefined;
  cur: T | undefined;
  /** `cur` is the batch's own copy, to change in place. */
  owned: boolean;
}

/**
 * Keep a record read from the transaction as the batch's view of it (unless a read of
 * the same record that finished first already did), and answer it.
 */
function remember<T>(
  entries: Map<string, Entry<T>>,
  id: string,
  stored: MaybePromise<T | undefined>,
): MaybePromise<T | undefined> {
  return isThenable(stored) ? stored.then((value) => keep(entries, id, value)) : keep(entries, id, stored);
}

function keep<T>(entries: Map<string, Entry<T>>, id: string, value: T | undefined): T | undefined {
  const hit = entries.get(id);
  if (hit) return hit.cur;
  entries.set(id, { prev: value, cur: value, owned: false });
  return value;
}

/** Make `copy` the batch's own version of its record (in its entry `e`, or a new one). */
function ownCopy<T extends { id: string }>(entries: Map<string, Entry<T>>, e: Entry<T> | undefined, copy: T): T {
  if (e) {
    e.cur = copy;
    e.owned = true;
  } else entries.set(copy.id, { prev: undefined, cur: copy, owned: true });
  return copy;
}

/**
 * The overlay of one batch. Reads answer synchronously from the overlay or from a
 * synchronous transaction, and with a promise only for the first read of a record from
 * an asynchronous one: rule steps yield only those promises, so memory and sql.js run
 * a batch without a single suspension.
 */
class Batch {
  readonly taskEntries = new Map<string, Entry<Task>>();
  readonly jobEntries = new Map<string, Entry<Job>>();
  readonly cache: { jobId: string; key: string; value: JsonValue | undefined }[] = [];
  readonly state: { scope: string; key: string; value: JsonValue | undefined }[] = [];
  /** Cache and state entries written earlier in this batch, by `JSON.stringify([kind, a, key])`. */
  readonly written = new Map<string, JsonValue | undefined>();
  readonly jobsEnding = new Set<string>();
  /** Tasks of a job created by this batch (`createJob`), written after every other change. */
  readonly created: Task[] = [];
  /** Dependents added by inserts of this batch, which the transaction does not know yet. */
  readonly newDependents = new Map<string, string[]>();
  readied = 0;
  /**
   * A read of this batch was answered with a promise: its rules run as steps, which read
   * each record once (see `rulesOf`).
   */
  #promised = false;
  /** Failed, cancelled or rejected tasks whose pending dependents are still to be ended. */
  readonly #toFail: Task[] = [];
  #failing = false;
  /**
   * Parents whose output ended without acceptance in this batch (rejected, or rejected and
   * run again): their children, gated on that acceptance, are cancelled whatever their
   * `onDependencyFailure`, also when a cancelled sibling reaches them first.
   */
  readonly #unaccepted = new Map<string, string>();

  constructor(readonly tx: RuleTx, readonly now: number) {}

  /** Stored dependents of a task plus those inserted earlier in this batch. */
  dependentsOf(id: string): MaybePromise<readonly string[]> {
    const stored = this.tx.dependents(id);
    if (isThenable(stored)) this.#promised = true;
    const added = this.newDependents.get(id);
    if (!added) return stored;
    return isThenable(stored) ? stored.then((s) => [...s, ...added]) : [...stored, ...added];
  }

  /** The task as the batch sees it. */
  task(id: string): MaybePromise<Task | undefined> {
    const hit = this.taskEntries.get(id);
    if (hit) return hit.cur;
    const stored = this.tx.getTask(id);
    if (isThenable(stored)) {
      this.#promised = true;
      return stored.then((value) => keep(this.taskEntries, id, value));
    }
    // Read synchronously: nothing can have kept it since the lookup above.
    this.taskEntries.set(id, { prev: stored, cur: stored, owned: false });
    return stored;
  }

  /** The job as the batch sees it. */
  job(id: string): MaybePromise<Job | undefined> {
    const hit = this.jobEntries.get(id);
    if (hit) return hit.cur;
    const stored = this.tx.getJob(id);
    if (isThenable(stored)) this.#promised = true;
    return remember(this.jobEntries, id, stored);
  }

  /** A copy of the task this batch may change in place (one copy per task per batch). */
  own(task: Task): Task {
    const e = this.taskEntries.get(task.id);
    if (e?.owned && e.cur === task) {
      task.version++;
      return task;
    }
    const copy = copyTask(task);
    copy.version = task.version + 1;
    copy.updatedAt = this.now;
    return ownCopy(this.taskEntries, e, copy);
  }

  /** A copy of the job this batch may change in place; its version moves once per batch. */
  ownJob(job: Job): Job {
    const e = this.jobEntries.get(job.id);
    if (e?.owned && e.cur === job) return job;
    const copy = copyJob(job);
    copy.version = job.version + 1;
    copy.updatedAt = this.now;
    return ownCopy(this.jobEntries, e, copy);
  }

  /** Change a task, applying every rule the change triggers. */
  *transition(cur: Task, patch: Partial<Task>): Step<Task> {
    const prevStatus = cur.status;
    const prevReview = cur.review;
    const next = this.own(cur);
    Object.assign(next, patch);
    const rules = this.rulesOf(next, prevStatus, prevReview);
    if (rules) yield* rules;
    return next;
  }

  /**
   * The rules a task's change of status or review triggers (see `rules`), applied at once
   * when they need no step: on a transaction that answers synchronously, a change that
   * satisfies no dependent and ends none (a task without dependents completing, a task made
   * ready) runs no generator. Otherwise answers the step of `rules`, with nothing applied.
   */
  rulesOf(next: Task, prevStatus: TaskStatus, prevReview: boolean): Step<void> | null {
    const status = next.status;
    // A change of neither status nor review (a stored start, a lease) triggers no rule.
    if (status === prevStatus && next.review === prevReview) return null;
    if (
      this.#promised ||
      (prevStatus !== status && (status === "failed" || status === "cancelled" || status === "rejected"))
    ) return this.rules(next, prevStatus, prevReview);
    let found: MaybePromise<readonly string[]> | typeof NOT_READ = NOT_READ;
    if (!satisfiedOf(prevStatus, prevReview) && satisfiedOf(status, next.review)) {
      found = this.dependentsOf(next.id);
      if (isThenable(found) || found.length > 0) return this.rules(next, prevStatus, prevReview, NOT_READ, found);
    }
    // (A task sent to `paused` below stays as unfinished and unsatisfied as `ready`.)
    const toReady = status === "ready" && prevStatus !== "ready";
    const wasFinal = finalOf(prevStatus, prevReview);
    const nowFinal = finalOf(status, next.review);
    let job: Job | undefined;
    if (toReady || wasFinal !== nowFinal) {
      const read = this.job(next.jobId);
      if (isThenable(read)) return this.rules(next, prevStatus, prevReview, read, found);
      job = read;
    }
    // Every read answered, nothing applied yet: the rules as `rules` applies them.
    if (toReady && job?.status === "paused") next.status = "paused";
    this.#statusFields(next, prevStatus);
    if (wasFinal !== nowFinal && job) this.#countEnd(job, next, nowFinal);
    return null;
  }

  /** The fields a change of status sets: when it ended, the lease it no longer holds, readiness. */
  #statusFields(next: Task, prevStatus: TaskStatus): void {
    if (next.status === prevStatus) return;
    if (finalOf(next.status, next.review) && next.finishedAt === null) next.finishedAt = this.now;
    if (next.status !== "running") {
      next.leaseOwner = null;
      next.leaseExpiresAt = null;
    }
    if (next.status === "ready") this.readied++;
  }

  /** Count a task of `stored` that ended (`nowFinal`) or opened again in the job's counts. */
  #countEnd(stored: Job, next: Task, nowFinal: boolean): void {
    const job = this.ownJob(stored);
    job.openCount += nowFinal ? -1 : 1;
    if (nowFinal && isFailure(next)) job.failedCount++;
    this.jobsEnding.add(job.id);
  }

  /**
   * The rules a task's change of status or review (from `prevStatus`, `prevReview` to
   * `next`'s) triggers. `job` and `found`: the reads of its job and of its dependents that
   * `rulesOf` made already, so that no read is made twice (a sql.js query, a promise).
   */
  *rules(
    next: Task,
    prevStatus: TaskStatus,
    prevReview: boolean,
    job: MaybePromise<Job | undefined> | typeof NOT_READ = NOT_READ,
    found: MaybePromise<readonly string[]> | typeof NOT_READ = NOT_READ,
  ): Step<void> {
    if (next.status === "ready" && prevStatus !== "ready") {
      // Whatever sends it back (a retry, a recovered lease, a rejected review, a person),
      // a task of a paused job waits paused until the job resumes.
      const read = job !== NOT_READ ? job : this.job(next.jobId);
      const owner = isThenable(read) ? (yield read) as Job | undefined : read;
      if (owner?.status === "paused") next.status = "paused";
    }
    this.#statusFields(next, prevStatus);
    const wasFinal = finalOf(prevStatus, prevReview);
    const nowFinal = finalOf(next.status, next.review);
    if (wasFinal !== nowFinal) {
      const read = job !== NOT_READ ? job : this.job(next.jobId);
      const stored = isThenable(read) ? (yield read) as Job | undefined : read;
      if (stored) this.#countEnd(stored, next, nowFinal);
    }
    if (!satisfiedOf(prevStatus, prevReview) && satisfiedOf(next.status, next.review)) {
      const read = found !== NOT_READ ? found : this.dependentsOf(next.id);
      const ids = isThenable(read) ? (yield read) as readonly string[] : read;
      if (ids.length > 0) yield* this.satisfyDependents(ids);
    }
    if (
      prevStatus !== next.status &&
      (next.status === "failed" || next.status === "cancelled" || next.status === "rejected")
    ) {
      // Dependents are ended from a work list, not by recursion: a chain of thousands of
      // tasks would otherwise nest one call per link and overflow the stack. First in,
      // first out: a task's reason names its nearest ended dependency.
      this.#toFail.push(next);
      if (!this.#failing) {
        this.#failing = true;
        try {
          for (let i = 0; i < this.#toFail.length; i++) yield* this.failDependents(this.#toFail[i]!);
        } finally {
          this.#failing = false;
          this.#toFail.length = 0;
        }
      }
    }
  }

  /** Count one more satisfied dependency on each of `ids`, the dependents of a task that just became satisfied. */
  *satisfyDependents(ids: readonly string[]): Step<void> {
    for (const id of ids) {
      const read = this.task(id);
      const dep = isThenable(read) ? (yield read) as Task | undefined : read;
      if (!dep) continue;
      const remaining = Math.max(0, dep.remainingDeps - 1);
      // Only a pending task counts its dependencies: any other (blocked, cancelled) is not
      // waiting for them, and must not change (a new version would fail its next update).
      if (dep.status !== "pending") continue;
      if (remaining === 0) yield* this.transition(dep, { remainingDeps: 0, status: "ready" });
      else this.own(dep).remainingDeps = remaining;
    }
  }

  *failDependents(task: Task): Step<void> {
    const found = this.dependentsOf(task.id);
    const ids = isThenable(found) ? (yield found) as readonly string[] : found;
    if (ids.length === 0) return;
    // When the whole job is being cancelled, that is the reason, whatever reaches a task first.
    const readJob = this.job(task.jobId);
    const job = isThenable(readJob) ? (yield readJob) as Job | undefined : readJob;
    const jobCancelled = job?.status === "cancelled";
    if (task.status === "rejected") this.#unaccepted.set(task.id, `Parent "${task.key}" rejected in review`);
    for (const id of ids) {
      const read = this.task(id);
      const dep = isThenable(read) ? (yield read) as Task | undefined : read;
      if (!dep) continue;
      const parentReason = dep.parentId === null ? undefined : this.#unaccepted.get(dep.parentId);
      // A child of a rejected output is cancelled even when blocked (by a sibling that was
      // cancelled): it must never run, and blocked it would keep the job open.
      if (dep.status !== "pending" && !(dep.status === "blocked" && parentReason !== undefined)) continue;
      yield* this.transition(dep, {
        status: !jobCancelled && parentReason === undefined && dep.onDependencyFailure === "block"
          ? "blocked"
          : "cancelled",
        statusReason: jobCancelled ? "Job cancelled" : parentReason ?? `Dependency "${task.key}" ${task.status}`,
      });
    }
  }

  *insertTask(raw: Task, batchIds: ReadonlySet<string>): Step<void> {
    req(typeof raw === "object" && raw !== null && typeof raw.id === "string", "task", raw);
    const readTask = this.task(raw.id);
    if (isThenable(readTask) ? yield readTask : readTask) throw new StorageError(`Task "${raw.id}" already exists`);
    const readJob = this.job(raw.jobId);
    const stored = isThenable(readJob) ? (yield readJob) as Job | undefined : readJob;
    if (!stored) throw new NotFoundError("job", raw.jobId);
    if (isJobFinal(stored.status)) throw new StorageError(`Job "${stored.id}" has ended; no task can be added`);
    if (stored.taskCount >= MAX_TASKS_PER_JOB) {
      // `stored` counts the tasks inserted earlier in this batch too.
      throw new JobValidationError([{
        key: typeof raw.key === "string" ? raw.key : String(raw.key),
        code: "too-many-tasks",
        message: `Job "${stored.id}" holds ${stored.taskCount} tasks; one job holds at most ${MAX_TASKS_PER_JOB}, ` +
          `so task "${String(raw.key)}" cannot be added (split the work into several jobs)`,
      }]);
    }
    const task = sanitizeTask(raw, this.now);
    let remaining = 0;
    let failedDep: Task | undefined;
    for (const depId of task.dependencies) {
      const read = this.task(depId);
      const dep = isThenable(read) ? (yield read) as Task | undefined : read;
      if (!dep) {
        // A task inserted earlier in this batch is read above; a later one (or the task
        // itself) could close a cycle that no completion ever opens: the job would never end.
        if (batchIds.has(depId)) {
          throw new TypeError(
            `Task "${task.id}" depends on "${depId}", which is inserted after it (or is itself): ` +
              "insert a task after the tasks it depends on",
          );
        }
        throw new NotFoundError("task", depId);
      }
      if (dep.jobId !== task.jobId) throw new StorageError(`Dependency "${depId}" belongs to another job`);
      if (!satisfiedOf(dep.status, dep.review)) remaining++;
      if (dep.status === "failed" || dep.status === "cancelled" || dep.status === "rejected") failedDep = dep;
    }
    task.remainingDeps = remaining;
    if (failedDep) {
      task.status = task.onDependencyFailure === "block" ? "blocked" : "cancelled";
      task.statusReason = `Dependency "${failedDep.key}" ${failedDep.status}`;
      if (task.status === "cancelled") task.finishedAt = this.now;
    } else if (remaining === 0) {
      task.status = stored.status === "paused" ? "paused" : "ready";
      if (task.status === "ready") this.readied++;
    } else {
      task.status = "pending";
    }
    const entry = this.taskEntries.get(task.id); // left by the existence check above
    if (entry) {
      entry.cur = task;
      entry.owned = true;
    } else this.taskEntries.set(task.id, { prev: undefined, cur: task, owned: true });
    for (const depId of task.dependencies) {
      const list = this.newDependents.get(depId);
      if (list) list.push(task.id);
      else this.newDependents.set(depId, [task.id]);
    }
    const job = this.ownJob(stored);
    job.taskCount++;
    if (!finalOf(task.status, task.review)) job.openCount++;
    this.jobsEnding.add(job.id);
  }

  /**
   * Check an update of task `id` (`cur`, as the batch sees it) and apply it. Answers the
   * step (to run with `yield*`) of the reads and rules it still needs, or `null` when it
   * needs none: an update that changes neither status nor review runs no generator.
   */
  updateTask(
    index: number,
    id: string,
    expect: { version: number; status?: TaskStatus; leaseExpiresAt?: number | null },
    set: Partial<Task>,
    cur: Task | undefined,
  ): Step<void> | null {
    const lease = expect.leaseExpiresAt;
    if (
      !cur || cur.version !== expect.version || (expect.status !== undefined && cur.status !== expect.status) ||
      (lease !== undefined && cur.leaseExpiresAt !== lease)
    ) {
      throw new ConflictError(index, id, expect, {
        status: cur?.status ?? null,
        version: cur?.version ?? null,
        ...(lease !== undefined ? { leaseExpiresAt: cur?.leaseExpiresAt ?? null } : {}),
      });
    }
    // The update is written straight over the batch's own copy of the task (`cur` itself when
    // an earlier op of the batch changed it): a bad field or a refused transition throws, and
    // a batch that throws writes nothing.
    const from = cur.status;
    const review = cur.review;
    const remaining = cur.remainingDeps;
    const next = this.own(cur);
    writePatch(next, set);
    const to = next.status;
    // A completed task changes again only while it awaits its review.
    if (!canTransition(from, to) || (from === "completed" && !review)) {
      throw new InvalidTransitionError(id, from, to);
    }
    if (from === "pending" && (to === "ready" || to === "paused") && remaining > 0) {
      // Only the rules make a waiting task ready, as its dependencies end (a paused one
      // becomes ready on resume): a caller's write would run it before them.
      throw new InvalidTransitionError(id, from, to, `${remaining} of its dependencies have not ended`);
    }
    const rerun = to === "ready" && from === "completed";
    if (rerun) {
      // A rejected review reruns the task: it is open again.
      next.output = null;
      next.finishedAt = null;
    }
    const reopen = to === "ready" && from === "blocked" && next.dependencies.length > 0;
    if (rerun || reopen) return this.reopen(next, from, review, rerun, reopen);
    return this.rulesOf(next, from, review);
  }

  /**
   * The rest of an update (`next`, changed from `from` and `review`) that reruns a reviewed
   * task or sends a blocked one on (see `updateTask`).
   */
  *reopen(next: Task, from: TaskStatus, review: boolean, rerun: boolean, blocked: boolean): Step<void> {
    if (blocked) {
      // A person sends a task blocked by a failed dependency on without it: it still waits,
      // pending, for its dependencies that have not finished yet.
      let open = 0;
      for (const depId of next.dependencies) {
        const read = this.task(depId);
        const dep = isThenable(read) ? (yield read) as Task | undefined : read;
        if (dep && !finalOf(dep.status, dep.review)) open++;
      }
      next.remainingDeps = open;
      if (open > 0) next.status = "pending";
    }
    const rules = this.rulesOf(next, from, review);
    if (rules) yield* rules;
    if (rerun) yield* this.cancelChildren(next);
  }

  /**
   * The children a rejected output spawned are not run: they wait on their parent's
   * acceptance (it is their first dependency), and its rerun spawns its own.
   */
  *cancelChildren(parent: Task): Step<void> {
    const reason = `Parent "${parent.key}" rejected in review`;
    this.#unaccepted.set(parent.id, reason);
    const found = this.dependentsOf(parent.id);
    const ids = isThenable(found) ? (yield found) as readonly string[] : found;
    for (const id of ids) {
      const read = this.task(id);
      const child = isThenable(read) ? (yield read) as Task | undefined : read;
      // Pending, or blocked by a sibling that failed or was cancelled: none of them may run.
      if (!child || child.parentId !== parent.id || (child.status !== "pending" && child.status !== "blocked")) {
        continue;
      }
      yield* this.transition(child, { status: "cancelled", statusReason: reason });
    }
  }

  *updateJob(
    index: number,
    id: string,
    expect: { version: number; status?: JobStatus },
    set: Partial<Job>,
  ): Step<void> {
    const read = this.job(id);
    const cur = isThenable(read) ? (yield read) as Job | undefined : read;
    if (!cur || cur.version !== expect.version || (expect.status !== undefined && cur.status !== expect.status)) {
      throw new ConflictError(index, id, expect, {
        status: cur?.status ?? null,
        version: cur?.version ?? null,
      });
    }
    const patch: Partial<Job> = {};
    if (set.name !== undefined) {
      req(isText(set.name), "job name", set.name);
      patch.name = set.name;
    }
    if (set.metadata !== undefined) patch.metadata = toJson(set.metadata);
    const to = set.status ?? cur.status;
    if (to !== cur.status) {
      if (!JOB_CONTROL.includes(to) || !canTransitionJob(cur.status, to)) {
        throw new InvalidTransitionError(id, cur.status, to);
      }
      patch.status = to;
      if (to === "cancelled") patch.finishedAt = this.now;
    }
    const was = cur.status;
    // `cur` may be this batch's own copy already (an earlier op changed the job): it is
    // changed in place, so the status it had is read before.
    Object.assign(this.ownJob(cur), patch);
    if (to === was) return;
    const from: readonly TaskStatus[] = to === "paused" ? ["ready"] : to === "running" ? ["paused"] : CANCELLABLE;
    const target: TaskStatus = to === "paused" ? "paused" : to === "running" ? "ready" : "cancelled";
    const stored = (yield this.tx.jobTasks(id, from)) as readonly Task[];
    // The job's tasks as this batch sees them: stored ones, and those an earlier op of the
    // batch inserted or moved into one of `from` (the transaction does not know them yet).
    const ids = new Set<string>();
    for (const s of stored) ids.add(s.id);
    for (const [taskId, e] of this.taskEntries) if (e.cur?.jobId === id) ids.add(taskId);
    for (const taskId of ids) {
      const read = this.task(taskId);
      const task = (isThenable(read) ? (yield read) as Task | undefined : read)!;
      if (!from.includes(task.status) || finalOf(task.status, task.review)) continue;
      yield* this.transition(task, {
        status: target,
        statusReason: to === "cancelled" ? "Job cancelled" : task.statusReason,
      });
    }
  }

  /** End jobs whose last open task reached a final status. */
  endJobs(): void {
    for (const id of this.jobsEnding) {
      const job = this.jobEntries.get(id)?.cur;
      if (!job || isJobFinal(job.status) || job.openCount > 0) continue;
      const owned = this.ownJob(job);
      owned.status = owned.failedCount > 0 ? "failed" : "completed";
      owned.finishedAt = this.now;
    }
  }

  /** Write every changed record. The records in the result are the ones written: callers must not change them. */
  *flush(): Step<CommitResult> {
    const result: CommitResult = { tasks: [], jobs: [], readied: this.readied };
    for (const { prev, cur: job } of this.jobEntries.values()) {
      if (job === undefined || prev === job) continue;
      const written = this.tx.putJob(job, prev);
      if (isThenable(written)) yield written;
      if (!prev || prev.status !== job.status) result.jobs.push(job);
    }
    for (const { prev, cur: task } of this.taskEntries.values()) {
      if (task === undefined || prev === task) continue;
      const written = this.tx.putTask(task, prev);
      if (isThenable(written)) yield written;
      result.tasks.push(task);
    }
    // Indexed loops over a job's tasks: an array iterator costs an allocation per task in
    // code that runs once per job (and so is not optimized), 100,000 times for a large job.
    const created = this.created;
    for (let i = 0; i < created.length; i++) {
      const task = created[i]!;
      const written = this.tx.putTask(task, undefined);
      if (isThenable(written)) yield written;
      result.tasks.push(task);
    }
    for (const c of this.cache) yield this.tx.setCache(c.jobId, c.key, c.value);
    for (const s of this.state) yield this.tx.setState(s.scope, s.key, s.value);
    return result;
  }
}

function req(ok: boolean, what: string, value: unknown): void {
  if (!ok) {
    const shown = typeof value === "string" ? `"${value}"` : typeof value === "number" ? String(value) : typeof value;
    throw new TypeError(`Task field "${what}" is invalid: got ${shown}`);
  }
}

/** A task's `error` as every adapter reads it back: `{ name, message, retryable, at, details? }`. */
function checkedError(value: unknown): Task["error"] {
  const e = toJson(value) as Record<string, unknown>;
  req(
    typeof e === "object" && e !== null && !Array.isArray(e) && typeof e["name"] === "string" &&
      typeof e["message"] === "string" && typeof e["retryable"] === "boolean" && Number.isFinite(e["at"]),
    "error",
    value,
  );
  return e as unknown as Task["error"];
}

function optString(v: unknown): boolean {
  return v === null || isText(v);
}

function optNumber(v: unknown): boolean {
  return v === null || (typeof v === "number" && Number.isFinite(v));
}

const OPTIONAL_TEXT = [
  "description",
  "taskType",
  "summary",
  "acceptanceCriteria",
  "statusReason",
  "reviewFeedback",
] as const;

const NO_IDS: string[] = Object.freeze([]) as unknown as string[];

/** The ids without repeats, as a frozen array (the given one when it already is one). */
function uniqueFrozen(ids: string[]): string[] {
  if (ids.length === 0) return NO_IDS;
  if (ids.length === 1) return Object.isFrozen(ids) ? ids : Object.freeze([ids[0]!]) as string[];
  return Object.freeze([...new Set(ids)]) as string[];
}

/**
 * Text every adapter stores as given: a string without a lone surrogate. UTF-8 databases
 * cannot hold one (SQLite and PostgreSQL changed it, so two keys could become one).
 */
function isText(v: unknown): v is string {
  return typeof v === "string" && !isLoneSurrogate(v);
}

/**
 * An id every adapter sorts alike: non-empty text with no character beyond U+FFFF.
 * JavaScript and IndexedDB compare UTF-16 units, SQLite and PostgreSQL ("C") UTF-8 bytes;
 * the two orders agree on the Basic Multilingual Plane only ("\u{10000}" sorts before
 * "\uFFFF" in UTF-16, after it in UTF-8), and claims, listings and leases break ties by id.
 */
function checkId(v: unknown, what: string): void {
  req(isText(v) && v.length > 0, what, v);
  if (/[\ud800-\udfff]/.test(v as string)) {
    throw new TypeError(
      `Task field "${what}" must not hold a character beyond U+FFFF (stores sort those apart), got "${v as string}"`,
    );
  }
}

function allText(values: readonly unknown[]): boolean {
  for (let i = 0; i < values.length; i++) if (!isText(values[i])) return false;
  return true;
}

/** Check the fields of a task record given to an insert (a `TypeError` naming the first bad one). */
function checkTaskFields(raw: Task): void {
  req(typeof raw === "object" && raw !== null, "task", raw);
  checkId(raw.id, "id");
  req(isText(raw.jobId), "jobId", raw.jobId);
  req(isText(raw.key) && raw.key.length > 0, "key", raw.key);
  req(isText(raw.agent) && raw.agent.length > 0, "agent", raw.agent);
  req(Array.isArray(raw.dependencies) && allText(raw.dependencies), "dependencies", raw.dependencies);
  req(
    Number.isInteger(raw.maxAttempts) && raw.maxAttempts >= 1 && raw.maxAttempts <= MAX_ATTEMPTS,
    "maxAttempts",
    raw.maxAttempts,
  );
  req(Number.isInteger(raw.attempts) && raw.attempts >= 0, "attempts", raw.attempts);
  req(Number.isFinite(raw.priority), "priority", raw.priority);
  req(Number.isFinite(raw.runAt), "runAt", raw.runAt);
  req(optNumber(raw.timeoutMs), "timeoutMs", raw.timeoutMs);
  req(raw.durability === "at-least-once" || raw.durability === "at-most-once", "durability", raw.durability);
  req(
    raw.onDependencyFailure === "cancel" || raw.onDependencyFailure === "block",
    "onDependencyFailure",
    raw.onDependencyFailure,
  );
  req(optString(raw.parentId), "parentId", raw.parentId);
  for (let i = 0; i < OPTIONAL_TEXT.length; i++) {
    const f = OPTIONAL_TEXT[i]!;
    req(optString(raw[f]), f, raw[f]);
  }
}

/**
 * Task lists made by `buildJob`: frozen lists of frozen records whose status and
 * `remainingDeps` are already what `createJob` would give them. `createJob` checks their
 * fields and stores the records themselves instead of copies.
 */
const sealedTaskLists = new WeakSet<readonly Task[]>();

/**
 * Freeze the task records of a new job (built as `createJob` would store them) and their
 * list, and mark the list so that `createJob` stores the records without copying them.
 */
export function sealNewJobTasks(tasks: Task[]): Task[] {
  for (let i = 0; i < tasks.length; i++) {
    const t = tasks[i]!;
    Object.freeze(t.dependencies);
    Object.freeze(t);
  }
  sealedTaskLists.add(Object.freeze(tasks));
  return tasks;
}

/** Check a task record given to an insert and return a clean copy with frozen JSON. */
export function sanitizeTask(raw: Task, now: number): Task {
  checkTaskFields(raw);
  return {
    id: raw.id,
    jobId: raw.jobId,
    key: raw.key,
    agent: raw.agent,
    input: toJson(raw.input),
    output: toJson(raw.output ?? null),
    error: raw.error ? checkedError(raw.error) : null,
    status: "pending",
    statusReason: raw.statusReason ?? null,
    parentId: raw.parentId ?? null,
    dependencies: uniqueFrozen(raw.dependencies),
    remainingDeps: 0,
    attempts: raw.attempts + 0,
    maxAttempts: raw.maxAttempts,
    timeoutMs: raw.timeoutMs === null || raw.timeoutMs === undefined ? null : raw.timeoutMs + 0,
    durability: raw.durability,
    onDependencyFailure: raw.onDependencyFailure,
    priority: raw.priority + 0, // -0 is 0, as every store reads it back
    runAt: raw.runAt + 0,
    review: raw.review === true,
    reviewFeedback: raw.reviewFeedback ?? null,
    leaseOwner: null,
    leaseExpiresAt: null,
    version: 1,
    createdAt: Number.isFinite(raw.createdAt) ? raw.createdAt + 0 : now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
    description: raw.description ?? null,
    taskType: raw.taskType ?? null,
    summary: raw.summary ?? null,
    acceptanceCriteria: raw.acceptanceCriteria ?? null,
  };
}

const hasOwn = Object.prototype.hasOwnProperty;

/**
 * Check an update's fields (the fields of `TaskPatch`), in order, and write them over `out`
 * (JSON as frozen copies): a `TypeError` names the first bad one. Own enumerable fields only,
 * as `Object.keys` lists them; `undefined` ones are skipped.
 */
function writePatch(target: Task, set: Partial<Task>): void {
  const out = target as unknown as Record<string, unknown>;
  for (const key in set) {
    if (!hasOwn.call(set, key)) continue;
    const value = (set as Record<string, unknown>)[key];
    if (value === undefined) continue;
    switch (key) {
      case "input":
      case "output":
        out[key] = toJson(value);
        break;
      case "error":
        out[key] = value === null ? null : checkedError(value);
        break;
      case "status":
        req(typeof value === "string" && TASK_STATUS_SET.has(value), "status", value);
        out[key] = value;
        break;
      case "attempts":
      case "remainingDeps":
        req(Number.isInteger(value) && (value as number) >= 0, key, value);
        out[key] = (value as number) + 0; // -0 is 0, as every store reads it back
        break;
      case "maxAttempts":
        req(Number.isInteger(value) && (value as number) >= 1 && (value as number) <= MAX_ATTEMPTS, key, value);
        out[key] = value;
        break;
      case "runAt":
      case "priority":
        req(Number.isFinite(value), key, value);
        out[key] = (value as number) + 0;
        break;
      case "leaseExpiresAt":
      case "startedAt":
      case "finishedAt":
      case "timeoutMs":
        req(optNumber(value), key, value);
        out[key] = value === null ? null : (value as number) + 0; // -0 is 0, as every store reads it back
        break;
      case "review":
        req(typeof value === "boolean", key, value);
        out[key] = value;
        break;
      // The same rules as a new task's fields (`checkTaskFields`): a record every adapter
      // can read back.
      case "agent":
        req(isText(value) && value.length > 0, key, value);
        out[key] = value;
        break;
      case "durability":
        req(value === "at-least-once" || value === "at-most-once", key, value);
        out[key] = value;
        break;
      case "onDependencyFailure":
        req(value === "cancel" || value === "block", key, value);
        out[key] = value;
        break;
      case "statusReason":
      case "reviewFeedback":
      case "leaseOwner":
      case "description":
      case "taskType":
      case "summary":
      case "acceptanceCriteria":
        req(optString(value), key, value);
        out[key] = value;
        break;
      default:
        throw new TypeError(`Task field "${key}" cannot be updated`);
    }
  }
}

/**
 * Apply one `commit` batch inside an adapter's transaction: validate and run every op
 * and the rules they trigger, then write the changes. Throws before writing on any error.
 * Answers synchronously when the transaction does.
 */
export function applyCommit(tx: RuleTx, ops: readonly CommitOp[], now: number): MaybePromise<CommitResult> {
  if (!Array.isArray(ops)) throw new TypeError(`commit() expects an array of ops, got ${typeof ops}`);
  checkNow(now, "commit()");
  // -0 is 0 (as in every number field): it is stored as updatedAt, finishedAt ...
  return drive(commitSteps(new Batch(tx, now + 0), ops));
}

const NO_INSERTS: ReadonlySet<string> = new Set();

/**
 * Check a cache or state write against what its op expects to find (the entry as stored,
 * or as an earlier op of the batch wrote it), then note it as written. Without `read` (a
 * `RuleTx` that cannot read entries) the write is stored unchecked.
 */
function* writeEntry(
  batch: Batch,
  index: number,
  entry: [kind: "c" | "s", a: string, key: string],
  expect: unknown,
  value: JsonValue | undefined,
  read: (() => MaybePromise<JsonValue | undefined>) | undefined,
  where: string,
): Step<void> {
  const slot = JSON.stringify(entry);
  const expected = expectedValue(index, expect);
  if (expected !== NO_EXPECT && read) {
    let found = batch.written.has(slot) ? batch.written.get(slot) : read();
    if (isThenable(found)) found = (yield found) as JsonValue | undefined;
    if (!jsonEqual(found, expected)) throw new KeyConflictError(index, where);
  }
  batch.written.set(slot, value);
}

/** The value a cache or state write expects to find (`expect.value`, checked as JSON), or `NO_EXPECT`. */
function expectedValue(index: number, expect: unknown): JsonValue | undefined | typeof NO_EXPECT {
  if (expect === undefined) return NO_EXPECT;
  if (expect === null || typeof expect !== "object" || !("value" in expect)) {
    throw new TypeError(
      `Op ${index}: "expect" must be an object with a "value" (undefined: absent), got ${typeof expect}`,
    );
  }
  const value = (expect as { value: unknown }).value;
  return value === undefined ? undefined : toJson(value);
}

const NO_EXPECT: unique symbol = Symbol("no expectation");

function* commitSteps(batch: Batch, ops: readonly CommitOp[]): Step<CommitResult> {
  let inserted: ReadonlySet<string> = NO_INSERTS;
  for (const op of ops) {
    if (op?.type !== "insertTask" || typeof op.task?.id !== "string") continue;
    if (inserted === NO_INSERTS) inserted = new Set<string>();
    (inserted as Set<string>).add(op.task.id);
  }
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    switch (op?.type) {
      case "insertTask":
        yield* batch.insertTask(op.task, inserted);
        break;
      case "updateTask": {
        requireExpect(i, op.expect);
        const read = batch.task(op.id);
        const cur = isThenable(read) ? (yield read) as Task | undefined : read;
        const rest = batch.updateTask(i, op.id, op.expect, op.set ?? {}, cur);
        if (rest) yield* rest;
        break;
      }
      case "updateJob":
        requireExpect(i, op.expect);
        yield* batch.updateJob(i, op.id, op.expect, op.set ?? {});
        break;
      case "setCache": {
        req(typeof op.jobId === "string" && isText(op.key), "cache key", op.key);
        const read = batch.job(op.jobId);
        if (!(isThenable(read) ? yield read : read)) throw new NotFoundError("job", op.jobId);
        const value = op.value === undefined ? undefined : toJson(op.value);
        const { jobId, key } = op;
        const readEntry = batch.tx.getCache && (() => batch.tx.getCache!(jobId, key));
        yield* writeEntry(batch, i, ["c", jobId, key], op.expect, value, readEntry, `cache "${key}"`);
        batch.cache.push({ jobId, key, value });
        break;
      }
      case "setState": {
        req(isText(op.scope), "state scope", op.scope);
        req(isText(op.key), "state key", op.key);
        const value = op.value === undefined ? undefined : toJson(op.value);
        const { scope, key } = op;
        const readEntry = batch.tx.getState && (() => batch.tx.getState!(scope, key));
        yield* writeEntry(batch, i, ["s", scope, key], op.expect, value, readEntry, `state "${scope}" "${key}"`);
        batch.state.push({ scope, key, value });
        break;
      }
      default:
        throw new TypeError(`Op ${i} has an unknown type: "${String((op as { type?: unknown })?.type)}"`);
    }
  }
  batch.endJobs();
  return yield* batch.flush();
}

function requireExpect(index: number, expect: unknown): void {
  const e = expect as { version?: unknown } | undefined;
  if (!e || !Number.isInteger(e.version)) {
    throw new TypeError(`Op ${index} needs "expect.version" (an integer), got ${typeof e?.version}`);
  }
}

/** Store a new job and its tasks inside an adapter's transaction. Answers synchronously when the transaction does. */
export function applyCreateJob(
  tx: RuleTx,
  rawJob: Job,
  tasks: readonly Task[],
  now: number,
): MaybePromise<CommitResult> {
  req(typeof rawJob === "object" && rawJob !== null, "job", rawJob);
  checkNow(now, "createJob()");
  checkId(rawJob.id, "job id");
  req(isText(rawJob.name), "job name", rawJob.name);
  if (!Array.isArray(tasks)) throw new TypeError(`createJob() expects an array of tasks, got ${typeof tasks}`);
  // Nothing would ever end a job without tasks (a job ends when its last open task does).
  if (tasks.length === 0) throw new TypeError("createJob() needs at least one task: a job without tasks never ends");
  return drive(createSteps(new Batch(tx, now + 0), rawJob, tasks));
}

function* createSteps(batch: Batch, rawJob: Job, tasks: readonly Task[]): Step<CommitResult> {
  if (yield batch.tx.getJob(rawJob.id)) throw new StorageError(`Job "${rawJob.id}" already exists`);
  const now = batch.now;
  const job: Job = {
    id: rawJob.id,
    name: rawJob.name,
    status: "running",
    metadata: toJson(rawJob.metadata ?? null),
    taskCount: 0,
    openCount: 0,
    failedCount: 0,
    version: 1,
    createdAt: Number.isFinite(rawJob.createdAt) ? rawJob.createdAt + 0 : now,
    updatedAt: now,
    finishedAt: null,
  };
  batch.jobEntries.set(job.id, { prev: undefined, cur: job, owned: true });
  // Every dependency is a task of this new job, inserted now and not settled: a task
  // waits for all of its dependencies, so no rule needs to read them.
  if (sealedTaskLists.has(tasks)) {
    // Frozen records built for a new job (see `sealNewJobTasks`): unique ids, dependencies
    // within the list, by construction. Their values cannot change any more; check them
    // and keep them. No task can already have one of their ids: `newId` made them for this
    // job (increasing within a process, 80 random bits across processes), and the job is
    // new (a list stored before was stored with it, in one transaction).
    for (let i = 0; i < tasks.length; i++) {
      const t = tasks[i]!;
      if (t.jobId !== job.id) throw new StorageError(`Task "${t.key}" names job "${t.jobId}", not "${job.id}"`);
      checkTaskFields(t);
      req(typeof t.review === "boolean", "review", t.review);
      req(t.remainingDeps === t.dependencies.length, "remainingDeps", t.remainingDeps);
      req(t.status === (t.remainingDeps === 0 ? "ready" : "pending"), "status", t.status);
      if (t.status === "ready") batch.readied++;
      batch.created.push(t);
    }
  } else {
    const ids = new Map<string, number>();
    for (const t of tasks) {
      if (t?.jobId !== job.id) throw new StorageError(`Task "${t?.key}" names job "${t?.jobId}", not "${job.id}"`);
      if (ids.has(t.id)) throw new StorageError(`Task id "${t.id}" appears twice`);
      ids.set(t.id, ids.size);
    }
    // A task on a dependency cycle (itself included) never becomes ready: the job would
    // never end. `insertTask` refuses the same shape; here the list may come in any order.
    const edges: (number[] | undefined)[] = new Array(tasks.length);
    for (let i = 0; i < tasks.length; i++) {
      const deps = tasks[i]!.dependencies;
      if (!Array.isArray(deps) || deps.length === 0) continue;
      const at: number[] = (edges[i] = []);
      for (const d of deps) {
        const j = typeof d === "string" ? ids.get(d) : undefined;
        if (j === undefined) throw new NotFoundError("task", String(d));
        at.push(j);
      }
    }
    const cycle = cycleAmong(tasks.length, edges);
    if (cycle.length > 0) {
      const shown = [...cycle, cycle[0]!].map((i) => `"${tasks[i]!.id}"`).join(" -> ");
      throw new TypeError(`createJob() dependencies form a cycle: ${shown}`);
    }
    for (const t of tasks) {
      const found = batch.tx.getTask(t.id);
      if (isThenable(found) ? yield found : found) throw new StorageError(`Task "${t.id}" already exists`);
      const task = sanitizeTask(t, now);
      task.remainingDeps = task.dependencies.length;
      if (task.remainingDeps === 0) {
        task.status = "ready";
        batch.readied++;
      }
      batch.created.push(task);
    }
  }
  job.taskCount = job.openCount = batch.created.length;
  batch.jobsEnding.add(job.id);
  batch.endJobs();
  return yield* batch.flush();
}

/**
 * The fields `claimReady` sets on a claimed task: `running`, attempts + 1 and the lease.
 * `startedAt` is left `null` (the executor stores each start just before calling the
 * agent) unless the claim `starts` the task for a free worker; never for an at-most-once one.
 */
export function claimPatch(task: Task, owner: string, at: number, leaseMs: number, starts = false): Task {
  const now = at + 0; // -0 is 0, as every store reads it back
  const next = copyTask(task);
  next.status = "running";
  next.attempts = task.attempts + 1;
  next.leaseOwner = owner;
  next.leaseExpiresAt = now + leaseMs;
  // The executor stores the start just before the agent is called: after a crash, a task
  // claimed into a ready queue but never started goes back to ready uncounted.
  next.startedAt = starts && task.durability !== "at-most-once" ? now : null;
  next.version = task.version + 1;
  next.updatedAt = now;
  return next;
}

/** The claim order of ready tasks: priority (lower first), then runAt, then id (creation). */
export function claimOrder(a: ClaimKey, b: ClaimKey): number {
  return a.priority - b.priority || a.runAt - b.runAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/**
 * Check the arguments of `claimReady`, throwing a `TypeError`/`RangeError` naming the bad
 * one. Answers the limit to apply: one past `Number.MAX_SAFE_INTEGER` is no limit
 * (`Infinity`), as every store reads it alike (SQL integers stop at 2^63).
 */
export function checkClaimOptions(
  o: {
    limit: number;
    now: number;
    owner: string;
    leaseMs: number;
    start?: number | undefined;
    agents?: readonly string[] | undefined;
  },
): number {
  if (!Number.isInteger(o?.limit) || o.limit < 0) {
    throw new RangeError(`claimReady() "limit" must be a non-negative integer, got ${o?.limit}`);
  }
  if (!Number.isFinite(o.now)) throw new RangeError(`claimReady() "now" must be a finite number, got ${o.now}`);
  if (typeof o.owner !== "string" || o.owner === "") {
    throw new TypeError(`claimReady() "owner" must be a non-empty string, got ${typeof o.owner}`);
  }
  // Stored as `leaseOwner`: a UTF-8 database would store U+FFFD in its place, and two
  // owners differing only there would hold (and renew) each other's leases.
  if (isLoneSurrogate(o.owner)) {
    throw new TypeError(`claimReady() "owner" must be well-formed text: it holds a lone surrogate`);
  }
  if (!Number.isFinite(o.leaseMs) || o.leaseMs <= 0) {
    throw new RangeError(`claimReady() "leaseMs" must be a positive number, got ${o.leaseMs}`);
  }
  if (o.start !== undefined && (!Number.isInteger(o.start) || o.start < 0)) {
    throw new RangeError(`claimReady() "start" must be a non-negative integer, got ${o.start}`);
  }
  if (!Number.isFinite(o.now + o.leaseMs)) {
    throw new RangeError(`claimReady() "now" + "leaseMs" must be a finite time, got ${o.now} + ${o.leaseMs}`);
  }
  claimAgents(o.agents);
  return o.limit > Number.MAX_SAFE_INTEGER ? Infinity : o.limit;
}

/**
 * The agents a claim is limited to (`claimReady({ agents })`), checked: `null` for any
 * agent, else the names without repeats, in a stable (sorted) order. A name no task holds
 * (not text, or text with a lone surrogate, which no stored agent name holds) is refused
 * with a `TypeError`, as a misspelt filter would silently claim nothing.
 */
export function claimAgents(
  agents: readonly string[] | undefined,
  what = 'claimReady() "agents"',
): string[] | null {
  if (agents === undefined) return null;
  if (!Array.isArray(agents)) {
    throw new TypeError(`${what} must be an array of agent names, got ${agents === null ? "null" : typeof agents}`);
  }
  for (let i = 0; i < agents.length; i++) {
    const a: unknown = agents[i];
    if (typeof a !== "string" || a === "" || isLoneSurrogate(a)) {
      throw new TypeError(`${what} must hold agent names (non-empty well-formed text): entry ${i} is not`);
    }
  }
  return [...new Set(agents)].sort();
}

/** The ids of a `getTasks()` call: an array (an entry that is not text names no task). */
export function checkIds(ids: unknown, call: string): void {
  if (!Array.isArray(ids)) {
    throw new TypeError(`${call} "ids" must be an array of task ids, got ${ids === null ? "null" : typeof ids}`);
  }
}

/** Check `renewLeases()` options (a bad `now` or `leaseMs` would store a lease that never expires). */
export function checkRenewOptions(o: { ids: readonly string[]; owner: string; now: number; leaseMs: number }): void {
  if (o === null || typeof o !== "object" || !Array.isArray(o.ids)) {
    throw new TypeError(`renewLeases() "ids" must be an array of task ids`);
  }
  if (typeof o.owner !== "string" || o.owner === "") {
    throw new TypeError(`renewLeases() "owner" must be a non-empty string, got ${typeof o.owner}`);
  }
  if (isLoneSurrogate(o.owner)) {
    throw new TypeError(`renewLeases() "owner" must be well-formed text: it holds a lone surrogate`);
  }
  if (!Number.isFinite(o.now)) throw new RangeError(`renewLeases() "now" must be a finite number, got ${o.now}`);
  if (!Number.isFinite(o.leaseMs) || o.leaseMs <= 0) {
    throw new RangeError(`renewLeases() "leaseMs" must be a positive number, got ${o.leaseMs}`);
  }
  if (!Number.isFinite(o.now + o.leaseMs)) {
    throw new RangeError(`renewLeases() "now" + "leaseMs" must be a finite time, got ${o.now} + ${o.leaseMs}`);
  }
}

/**
 * Read `expiredLeases()` arguments alike on every adapter: a `now` that is not a number is no
 * time any lease expired at (`null`: answer nothing); `limit` is floored, a negative one is 0,
 * one past `Number.MAX_SAFE_INTEGER` (or `Infinity`) is no limit (`null`), and one that is not
 * a number (or NaN) is 0.
 */
export function expiredArgs(now: unknown, limit: unknown): { now: number | null; limit: number | null } {
  const at = typeof now === "number" && !Number.isNaN(now) ? now : null;
  if (typeof limit !== "number" || Number.isNaN(limit)) return { now: at, limit: 0 };
  if (limit > Number.MAX_SAFE_INTEGER) return { now: at, limit: null };
  return { now: at, limit: Math.max(0, Math.floor(limit)) };
}

/** Check `prune()` options: a negative or fractional `keepLast` would delete every ended job. */
export function checkPruneOptions(
  o: { finishedBefore?: number | undefined; keepLast?: number | undefined } | null | undefined,
): { finishedBefore?: number; keepLast?: number } {
  if (o === undefined || o === null) return {}; // nothing asked: nothing pruned
  if (typeof o !== "object") throw new TypeError(`prune() expects { finishedBefore?, keepLast? }`);
  const { finishedBefore, keepLast } = o;
  if (finishedBefore != null && !(typeof finishedBefore === "number" && !Number.isNaN(finishedBefore))) {
    throw new RangeError(`prune() "finishedBefore" must be a number, got ${finishedBefore}`);
  }
  if (keepLast != null && !((Number.isInteger(keepLast) || keepLast === Infinity) && keepLast >= 0)) {
    throw new RangeError(`prune() "keepLast" must be a non-negative integer, got ${keepLast}`);
  }
  return {
    ...(finishedBefore != null ? { finishedBefore } : {}),
    // Past the largest safe integer no store holds that many jobs: keep them all (a bound
    // that large is not an integer SQLite's LIMIT takes).
    ...(keepLast != null && keepLast <= Number.MAX_SAFE_INTEGER ? { keepLast } : {}),
  };
}

const JOB_QUERY_KEYS: ReadonlySet<string> = new Set(["status", "after", "limit"]);
const TASK_QUERY_KEYS: ReadonlySet<string> = new Set(["jobId", "agent", "status", "parentId", "after", "limit"]);

/**
 * Check a `listTasks()` / `listJobs()` query: `limit` a non-negative integer, `after` an id,
 * `status` a known one; `null` fields read as not given; a filter it does not know (given
 * a value) is a `TypeError`.
 */
export function checkQuery<Q extends { limit?: number; after?: string; status?: string }>(
  query: Q | null | undefined,
  what: "listTasks" | "listJobs",
): Q {
  if (query === undefined || query === null) return {} as Q;
  if (typeof query !== "object") throw new TypeError(`${what}() expects a query object, got ${query}`);
  // A misspelt filter (`jobID`) left out would list every record, as if none was given.
  const known = what === "listTasks" ? TASK_QUERY_KEYS : JOB_QUERY_KEYS;
  for (const key of Object.keys(query)) {
    if (!known.has(key) && (query as Record<string, unknown>)[key] !== undefined) {
      throw new TypeError(
        `${what}() has no filter "${key}"; the filters are ${[...known].map((k) => `"${k}"`).join(", ")}`,
      );
    }
  }
  const q = { ...query };
  // `null` reads as "not given", as `undefined` does; a limit past any store's size is no limit.
  if ((q.limit as unknown) === null || (typeof q.limit === "number" && q.limit > Number.MAX_SAFE_INTEGER)) {
    delete q.limit;
  }
  if ((q.after as unknown) === null) delete q.after;
  if (q.limit !== undefined && !((Number.isInteger(q.limit) || q.limit === Infinity) && q.limit >= 0)) {
    throw new RangeError(`${what}() "limit" must be a non-negative integer, got ${q.limit}`);
  }
  if (q.after !== undefined && typeof q.after !== "string") {
    throw new TypeError(`${what}() "after" must be a task or job id, got ${typeof q.after}`);
  }
  if ((q.status as unknown) === null) delete q.status;
  // An unknown status is a mistake, not a filter that matches nothing.
  if (q.status !== undefined && !(what === "listTasks" ? TASK_STATUS_SET : JOB_STATUS_SET).has(q.status)) {
    throw new RangeError(
      `${what}() "status" must be a ${what === "listTasks" ? "task" : "job"} status, got ${q.status}`,
    );
  }
  return q;
}

/** Check the time a commit runs at (stored as `updatedAt`, `finishedAt`, ...). */
function checkNow(now: number, what: string): void {
  if (!Number.isFinite(now)) throw new RangeError(`${what} "now" must be a finite number, got ${now}`);
}

/** Whether an error is one of the contract's own (adapters rethrow these untouched). */
export function isContractError(e: unknown): boolean {
  return e instanceof TaskCoreError || e instanceof TypeError || e instanceof RangeError;
}

/**
 * A batch as it is at the call, for adapters that apply it after an await (IndexedDB,
 * sql.js, PostgreSQL): a caller that reuses its arrays, op objects or JSON values once the
 * call returned does not change what is stored. Copies of the ops and of what they hold,
 * JSON values as frozen copies (`toJson`, which the rules then find checked); a value that
 * is not an array, an op or JSON is passed on for the rules to refuse.
 */
export function takeOps(ops: readonly CommitOp[]): readonly CommitOp[] {
  if (!Array.isArray(ops)) return ops;
  return ops.map((op: CommitOp) => {
    if (op === null || typeof op !== "object") return op;
    const copy = { ...op } as Record<string, unknown>;
    for (const field of ["set", "expect"]) {
      const v = copy[field];
      if (v !== null && typeof v === "object") copy[field] = takeJsonFields({ ...v });
    }
    if ("value" in copy) copy["value"] = takeJson(copy["value"]);
    const expect = copy["expect"];
    if (
      (copy["type"] === "setCache" || copy["type"] === "setState") && expect !== null && typeof expect === "object" &&
      "value" in expect
    ) {
      (expect as Record<string, unknown>)["value"] = takeJson((expect as Record<string, unknown>)["value"]);
    }
    if (copy["task"] !== null && typeof copy["task"] === "object") copy["task"] = takeTask(copy["task"] as Task);
    return copy as unknown as CommitOp;
  });
}

/** The JSON fields of a task or job patch (`input`, `output`, `error`, `metadata`) as frozen copies. */
function takeJsonFields(fields: Record<string, unknown>): Record<string, unknown> {
  for (const key of ["input", "output", "error", "metadata"]) if (key in fields) fields[key] = takeJson(fields[key]);
  return fields;
}

/** A frozen copy of a JSON value, or the value itself when it is not JSON (the rules refuse it). */
function takeJson(value: unknown): unknown {
  try {
    return value === undefined ? value : toJson(value);
  } catch {
    return value;
  }
}

/** The task list of a `createJob` as it is at the call (see `takeOps`); a sealed list is immutable already. */
export function takeTasks(tasks: readonly Task[]): readonly Task[] {
  if (!Array.isArray(tasks) || sealedTaskLists.has(tasks)) return tasks;
  return tasks.map((t: Task) => (t !== null && typeof t === "object" ? takeTask(t) : t));
}

/** The job of a `createJob` as it is at the call (see `takeOps`). */
export function takeJob(job: Job): Job {
  if (job === null || typeof job !== "object" || Object.isFrozen(job)) return job;
  return takeJsonFields({ ...job }) as unknown as Job;
}

function takeTask(t: Task): Task {
  if (Object.isFrozen(t) && Object.isFrozen(t.dependencies)) return t;
  const copy = takeJsonFields({ ...t }) as unknown as Task;
  if (Array.isArray(t.dependencies)) copy.dependencies = [...t.dependencies];
  return copy;
}
