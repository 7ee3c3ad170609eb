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

import { ConflictError, InvalidTransitionError, NotFoundError, StorageError, TaskCoreError } from "./errors.ts";
import { toJson } from "./json.ts";
import { canTransition, canTransitionJob, isFailure, isFinal, isJobFinal, isSatisfied } from "./status.ts";
import type { CommitOp, CommitResult } from "./storage.ts";
import type { Job, JobStatus, JsonValue, Task, TaskStatus } from "./types.ts";

/** A value or a promise of it: memory adapters answer synchronously, durable ones may not. */
export type MaybePromise<T> = T | Promise<T>;

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
}

const JOB_CONTROL: readonly JobStatus[] = ["running", "paused", "cancelled"];
const CANCELLABLE: readonly TaskStatus[] = ["pending", "ready", "running", "paused", "blocked"];

class Batch {
  readonly tasks = new Map<string, Task>();
  readonly prevTasks = new Map<string, Task | undefined>();
  readonly jobs = new Map<string, Job>();
  readonly prevJobs = new Map<string, Job | undefined>();
  readonly cache: { jobId: string; key: string; value: JsonValue | undefined }[] = [];
  readonly state: { scope: string; key: string; value: JsonValue | undefined }[] = [];
  readonly jobsEnding = new Set<string>();
  readied = 0;

  constructor(readonly tx: RuleTx, readonly now: number) {}

  async task(id: string): Promise<Task | undefined> {
    const hit = this.tasks.get(id);
    if (hit) return hit;
    if (this.prevTasks.has(id)) return undefined;
    const stored = await this.tx.getTask(id);
    this.prevTasks.set(id, stored);
    if (stored) this.tasks.set(id, stored);
    return stored;
  }

  async job(id: string): Promise<Job | undefined> {
    const hit = this.jobs.get(id);
    if (hit) return hit;
    if (this.prevJobs.has(id)) return undefined;
    const stored = await this.tx.getJob(id);
    this.prevJobs.set(id, stored);
    if (stored) this.jobs.set(id, stored);
    return stored;
  }

  setTask(next: Task): void {
    if (!this.prevTasks.has(next.id)) this.prevTasks.set(next.id, undefined);
    this.tasks.set(next.id, next);
  }

  bumpJob(job: Job, patch: Partial<Job>): Job {
    const next: Job = { ...job, ...patch, version: job.version + 1, updatedAt: this.now };
    this.jobs.set(next.id, next);
    return next;
  }

  /** Move a task to a new record, applying every rule the change triggers. */
  async transition(prev: Task, patch: Partial<Task>): Promise<Task> {
    const next: Task = { ...prev, ...patch, version: prev.version + 1, updatedAt: this.now };
    if (next.status !== prev.status) {
      if (isFinal(next) && next.finishedAt === null) next.finishedAt = this.now;
      if (next.status !== "running") {
        next.leaseOwner = null;
        next.leaseExpiresAt = null;
      }
      if (next.status === "ready" && prev.status !== "ready") this.readied++;
    }
    this.setTask(next);
    await this.effects(prev, next);
    return next;
  }

  private async effects(prev: Task, next: Task): Promise<void> {
    const wasFinal = isFinal(prev);
    const nowFinal = isFinal(next);
    if (wasFinal !== nowFinal) {
      const job = await this.job(next.jobId);
      if (job) {
        this.bumpJob(job, {
          openCount: job.openCount + (nowFinal ? -1 : 1),
          failedCount: job.failedCount + (nowFinal && isFailure(next) ? 1 : 0),
        });
        this.jobsEnding.add(job.id);
      }
    }
    if (!isSatisfied(prev) && isSatisfied(next)) await this.satisfyDependents(next);
    const failedNow = (next.status === "failed" || next.status === "cancelled" ||
      next.status === "rejected") && prev.status !== next.status;
    if (failedNow) await this.failDependents(next);
  }

  private async satisfyDependents(task: Task): Promise<void> {
    for (const id of await this.tx.dependents(task.id)) {
      const dep = await this.task(id);
      if (!dep) continue;
      const remaining = Math.max(0, dep.remainingDeps - 1);
      if (dep.status === "pending" && remaining === 0) {
        const job = await this.job(dep.jobId);
        await this.transition(dep, {
          remainingDeps: 0,
          status: job?.status === "paused" ? "paused" : "ready",
        });
      } else {
        this.setTask({ ...dep, remainingDeps: remaining, version: dep.version + 1, updatedAt: this.now });
      }
    }
  }

  private async failDependents(task: Task): Promise<void> {
    for (const id of await this.tx.dependents(task.id)) {
      const dep = await this.task(id);
      if (!dep || dep.status !== "pending") continue;
      await this.transition(dep, {
        status: dep.onDependencyFailure === "block" ? "blocked" : "cancelled",
        statusReason: `Dependency "${task.key}" ${task.status}`,
      });
    }
  }

  async insertTask(raw: Task, batchIds: ReadonlySet<string>): Promise<void> {
    if (await this.task(raw.id)) throw new StorageError(`Task "${raw.id}" already exists`);
    const job = await this.job(raw.jobId);
    if (!job) throw new NotFoundError("job", raw.jobId);
    if (isJobFinal(job.status)) throw new StorageError(`Job "${job.id}" has ended; no task can be added`);
    const task = sanitizeTask(raw, this.now);
    let remaining = 0;
    let failedDep: Task | undefined;
    for (const depId of task.dependencies) {
      const dep = await this.task(depId);
      if (!dep) {
        if (batchIds.has(depId)) {
          remaining++;
          continue;
        }
        throw new NotFoundError("task", depId);
      }
      if (dep.jobId !== task.jobId) {
        throw new StorageError(`Dependency "${depId}" belongs to another job`);
      }
      if (!isSatisfied(dep)) remaining++;
      if (dep.status === "failed" || dep.status === "cancelled" || dep.status === "rejected") failedDep = dep;
    }
    task.remainingDeps = remaining;
    if (failedDep) {
      task.status = task.onDependencyFailure === "block" ? "blocked" : "cancelled";
      task.statusReason = `Dependency "${failedDep.key}" ${failedDep.status}`;
      if (task.status === "cancelled") task.finishedAt = this.now;
    } else if (remaining === 0) {
      task.status = job.status === "paused" ? "paused" : "ready";
      if (task.status === "ready") this.readied++;
    } else {
      task.status = "pending";
    }
    this.setTask(task);
    const final = isFinal(task);
    this.bumpJob(job, {
      taskCount: job.taskCount + 1,
      openCount: job.openCount + (final ? 0 : 1),
    });
    this.jobsEnding.add(job.id);
  }

  async updateTask(
    index: number,
    id: string,
    expect: { version: number; status?: TaskStatus },
    set: Partial<Task>,
  ): Promise<void> {
    const cur = await this.task(id);
    if (!cur || cur.version !== expect.version || (expect.status !== undefined && cur.status !== expect.status)) {
      throw new ConflictError(index, id, expect, {
        status: cur?.status ?? null,
        version: cur?.version ?? null,
      });
    }
    const patch = sanitizePatch(set);
    const to = patch.status ?? cur.status;
    if (!canTransition(cur.status, to)) throw new InvalidTransitionError(id, cur.status, to);
    if (to === "ready" && cur.status === "completed") {
      // A rejected review reruns the task: it is open again.
      patch.output = null;
      patch.finishedAt = null;
    }
    await this.transition(cur, patch);
  }

  async updateJob(
    index: number,
    id: string,
    expect: { version: number; status?: JobStatus },
    set: Partial<Job>,
  ): Promise<void> {
    const cur = await this.job(id);
    if (!cur || cur.version !== expect.version || (expect.status !== undefined && cur.status !== expect.status)) {
      throw new ConflictError(index, id, expect, {
        status: cur?.status ?? null,
        version: cur?.version ?? null,
      });
    }
    const patch: Partial<Job> = {};
    if (set.name !== undefined) {
      if (typeof set.name !== "string") throw new TypeError(`Job name must be a string, got ${typeof set.name}`);
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
    this.bumpJob(cur, patch);
    if (to === cur.status) return;
    const from: readonly TaskStatus[] = to === "paused" ? ["ready"] : to === "running" ? ["paused"] : CANCELLABLE;
    const target: TaskStatus = to === "paused" ? "paused" : to === "running" ? "ready" : "cancelled";
    for (const stored of await this.tx.jobTasks(id, from)) {
      const task = (await this.task(stored.id))!;
      if (!from.includes(task.status)) continue;
      await this.transition(task, {
        status: target,
        statusReason: to === "cancelled" ? "Job cancelled" : task.statusReason,
      });
    }
  }

  /** End jobs whose last open task reached a final status. */
  endJobs(): void {
    for (const id of this.jobsEnding) {
      const job = this.jobs.get(id);
      if (!job || isJobFinal(job.status) || job.openCount > 0) continue;
      const status: JobStatus = job.failedCount > 0 ? "failed" : "completed";
      this.jobs.set(id, { ...job, status, finishedAt: this.now, updatedAt: this.now });
    }
  }

  async flush(): Promise<CommitResult> {
    const result: CommitResult = { tasks: [], jobs: [], readied: this.readied };
    for (const [id, job] of this.jobs) {
      const prev = this.prevJobs.get(id);
      if (prev === job) continue;
      await this.tx.putJob(job, prev);
      if (!prev || prev.status !== job.status) result.jobs.push({ ...job });
    }
    for (const [id, task] of this.tasks) {
      const prev = this.prevTasks.get(id);
      if (prev === task) continue;
      await this.tx.putTask(task, prev);
      result.tasks.push({ ...task });
    }
    for (const c of this.cache) await this.tx.setCache(c.jobId, c.key, c.value);
    for (const s of this.state) await this.tx.setState(s.scope, s.key, s.value);
    return result;
  }
}

const TASK_STATUS_SET: ReadonlySet<string> = new Set<TaskStatus>([
  "pending",
  "ready",
  "running",
  "completed",
  "failed",
  "cancelled",
  "blocked",
  "paused",
  "accepted",
  "rejected",
]);

function req(ok: boolean, what: string, value: unknown): void {
  if (!ok) {
    const shown = typeof value === "string" ? `"${value}"` : typeof value === "number" ? String(value) : typeof value;
    throw new TypeError(`Task field "${what}" is invalid: got ${shown}`);
  }
}

function optString(v: unknown): boolean {
  return v === null || typeof v === "string";
}

function optNumber(v: unknown): boolean {
  return v === null || (typeof v === "number" && Number.isFinite(v));
}

/** Check a task record given to an insert and return a clean copy with frozen JSON. */
export function sanitizeTask(raw: Task, now: number): Task {
  req(typeof raw === "object" && raw !== null, "task", raw);
  req(typeof raw.id === "string" && raw.id.length > 0, "id", raw.id);
  req(typeof raw.jobId === "string", "jobId", raw.jobId);
  req(typeof raw.key === "string" && raw.key.length > 0, "key", raw.key);
  req(typeof raw.agent === "string" && raw.agent.length > 0, "agent", raw.agent);
  req(
    Array.isArray(raw.dependencies) && raw.dependencies.every((d) => typeof d === "string"),
    "dependencies",
    raw.dependencies,
  );
  req(Number.isInteger(raw.maxAttempts) && raw.maxAttempts >= 1, "maxAttempts", raw.maxAttempts);
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
  for (
    const f of ["description", "taskType", "summary", "acceptanceCriteria", "statusReason", "reviewFeedback"] as const
  ) {
    req(optString(raw[f]), f, raw[f]);
  }
  return {
    id: raw.id,
    jobId: raw.jobId,
    key: raw.key,
    agent: raw.agent,
    input: toJson(raw.input),
    output: toJson(raw.output ?? null),
    error: raw.error ? (toJson(raw.error) as unknown as Task["error"]) : null,
    status: "pending",
    statusReason: raw.statusReason ?? null,
    parentId: raw.parentId ?? null,
    dependencies: Object.freeze([...new Set(raw.dependencies)]) as string[],
    remainingDeps: 0,
    attempts: raw.attempts,
    maxAttempts: raw.maxAttempts,
    timeoutMs: raw.timeoutMs ?? null,
    durability: raw.durability,
    onDependencyFailure: raw.onDependencyFailure,
    priority: raw.priority,
    runAt: raw.runAt,
    review: raw.review === true,
    reviewFeedback: raw.reviewFeedback ?? null,
    leaseOwner: null,
    leaseExpiresAt: null,
    version: 1,
    createdAt: Number.isFinite(raw.createdAt) ? raw.createdAt : now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
    description: raw.description ?? null,
    taskType: raw.taskType ?? null,
    summary: raw.summary ?? null,
    acceptanceCriteria: raw.acceptanceCriteria ?? null,
  };
}

const PATCHABLE = new Set([
  "agent",
  "input",
  "output",
  "error",
  "status",
  "statusReason",
  "parentId",
  "remainingDeps",
  "attempts",
  "maxAttempts",
  "timeoutMs",
  "durability",
  "onDependencyFailure",
  "priority",
  "runAt",
  "review",
  "reviewFeedback",
  "leaseOwner",
  "leaseExpiresAt",
  "startedAt",
  "finishedAt",
  "description",
  "taskType",
  "summary",
  "acceptanceCriteria",
]);

function sanitizePatch(set: Partial<Task>): Partial<Task> {
  const out: Record<string, unknown> = {};
  for (const key of Object.keys(set)) {
    const value = (set as Record<string, unknown>)[key];
    if (value === undefined) continue;
    if (!PATCHABLE.has(key)) throw new TypeError(`Task field "${key}" cannot be updated`);
    if (key === "input" || key === "output") out[key] = toJson(value);
    else if (key === "error") out[key] = value === null ? null : toJson(value);
    else if (key === "status") {
      req(typeof value === "string" && TASK_STATUS_SET.has(value), "status", value);
      out[key] = value;
    } else if (key === "attempts" || key === "maxAttempts" || key === "remainingDeps") {
      req(Number.isInteger(value) && (value as number) >= 0, key, value);
      out[key] = value;
    } else if (key === "runAt" || key === "priority") {
      req(Number.isFinite(value), key, value);
      out[key] = value;
    } else if (key === "leaseExpiresAt" || key === "startedAt" || key === "finishedAt" || key === "timeoutMs") {
      req(optNumber(value), key, value);
      out[key] = value;
    } else if (key === "review") {
      req(typeof value === "boolean", key, value);
      out[key] = value;
    } else {
      req(typeof value === "string" || value === null, key, value);
      out[key] = value;
    }
  }
  return out as Partial<Task>;
}

/**
 * Apply one `commit` batch inside an adapter's transaction: validate and run every op
 * and the rules they trigger, then write the changes. Throws before writing on any error.
 */
export async function applyCommit(tx: RuleTx, ops: readonly CommitOp[], now: number): Promise<CommitResult> {
  if (!Array.isArray(ops)) throw new TypeError(`commit() expects an array of ops, got ${typeof ops}`);
  const batch = new Batch(tx, now);
  const inserted = new Set<string>();
  for (const op of ops) if (op?.type === "insertTask" && typeof op.task?.id === "string") inserted.add(op.task.id);
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    switch (op?.type) {
      case "insertTask":
        await batch.insertTask(op.task, inserted);
        break;
      case "updateTask":
        requireExpect(i, op.expect);
        await batch.updateTask(i, op.id, op.expect, op.set ?? {});
        break;
      case "updateJob":
        requireExpect(i, op.expect);
        await batch.updateJob(i, op.id, op.expect, op.set ?? {});
        break;
      case "setCache":
        req(typeof op.jobId === "string" && typeof op.key === "string", "cache key", op.key);
        if (!(await batch.job(op.jobId))) throw new NotFoundError("job", op.jobId);
        batch.cache.push({
          jobId: op.jobId,
          key: op.key,
          value: op.value === undefined ? undefined : toJson(op.value),
        });
        break;
      case "setState":
        req(typeof op.scope === "string" && typeof op.key === "string", "state key", op.key);
        batch.state.push({
          scope: op.scope,
          key: op.key,
          value: op.value === undefined ? undefined : toJson(op.value),
        });
        break;
      default:
        throw new TypeError(`Op ${i} has an unknown type: "${String((op as { type?: unknown })?.type)}"`);
    }
  }
  batch.endJobs();
  return await batch.flush();
}

function requireExpect(index: number, expect: unknown): void {
  const e = expect as { version?: unknown } | undefined;
  if (!e || !Number.isInteger(e.version)) {
    throw new TypeError(`Op ${index} needs "expect.version" (an integer), got ${typeof e?.version}`);
  }
}

/** Store a new job and its tasks inside an adapter's transaction. */
export async function applyCreateJob(
  tx: RuleTx,
  rawJob: Job,
  tasks: readonly Task[],
  now: number,
): Promise<CommitResult> {
  req(typeof rawJob === "object" && rawJob !== null, "job", rawJob);
  req(typeof rawJob.id === "string" && rawJob.id.length > 0, "job id", rawJob.id);
  req(typeof rawJob.name === "string", "job name", rawJob.name);
  if (!Array.isArray(tasks)) throw new TypeError(`createJob() expects an array of tasks, got ${typeof tasks}`);
  if (await tx.getJob(rawJob.id)) throw new StorageError(`Job "${rawJob.id}" already exists`);
  const job: Job = {
    id: rawJob.id,
    name: rawJob.name,
    status: "running",
    metadata: toJson(rawJob.metadata ?? null),
    taskCount: 0,
    openCount: 0,
    failedCount: 0,
    version: 1,
    createdAt: Number.isFinite(rawJob.createdAt) ? rawJob.createdAt : now,
    updatedAt: now,
    finishedAt: null,
  };
  const batch = new Batch(tx, now);
  batch.prevJobs.set(job.id, undefined);
  batch.jobs.set(job.id, job);
  const ids = new Set<string>();
  for (const t of tasks) {
    if (t?.jobId !== job.id) throw new StorageError(`Task "${t?.key}" names job "${t?.jobId}", not "${job.id}"`);
    if (ids.has(t.id)) throw new StorageError(`Task id "${t.id}" appears twice`);
    ids.add(t.id);
  }
  for (const t of tasks) {
    for (const d of t.dependencies ?? []) if (!ids.has(d)) throw new NotFoundError("task", d);
    await batch.insertTask(t, ids);
  }
  batch.endJobs();
  return await batch.flush();
}

/** The fields `claimReady` sets on a claimed task. */
export function claimPatch(task: Task, owner: string, now: number, leaseMs: number): Task {
  return {
    ...task,
    status: "running",
    attempts: task.attempts + 1,
    leaseOwner: owner,
    leaseExpiresAt: now + leaseMs,
    startedAt: now,
    version: task.version + 1,
    updatedAt: now,
  };
}

/** Check the arguments of `claimReady`, throwing a `TypeError`/`RangeError` naming the bad one. */
export function checkClaimOptions(o: { limit: number; now: number; owner: string; leaseMs: number }): void {
  if (!Number.isInteger(o?.limit) || o.limit < 0) {
    throw new RangeError(`claimReady() "limit" must be a non-negative integer, got ${o?.limit}`);
  }
  if (!Number.isFinite(o.now)) throw new RangeError(`claimReady() "now" must be a finite number, got ${o.now}`);
  if (typeof o.owner !== "string" || o.owner === "") {
    throw new TypeError(`claimReady() "owner" must be a non-empty string, got ${typeof o.owner}`);
  }
  if (!Number.isFinite(o.leaseMs) || o.leaseMs <= 0) {
    throw new RangeError(`claimReady() "leaseMs" must be a positive number, got ${o.leaseMs}`);
  }
}

/** Whether an error is one of the contract's own (adapters rethrow these untouched). */
export function isContractError(e: unknown): boolean {
  return e instanceof TaskCoreError || e instanceof TypeError || e instanceof RangeError;
}
