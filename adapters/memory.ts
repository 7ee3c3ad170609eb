/**
 * In-memory storage: Maps with secondary indexes and a ready heap, the fastest backend
 * and the one to use in tests. Nothing survives the process.
 *
 * @example
 * ```ts
 * import { createMemoryStorage } from "./memory.ts";
 * const storage = createMemoryStorage();
 * console.assert(storage.name === "memory");
 * await storage.close();
 * ```
 *
 * @module
 */

import { applyCommit, applyCreateJob, checkClaimOptions, claimPatch, type RuleTx } from "../src/commit-rules.ts";
import { StorageError } from "../src/errors.ts";
import { Heap } from "../src/heap.ts";
import type {
  ClaimOptions,
  CommitOp,
  CommitResult,
  JobQuery,
  PruneOptions,
  RenewOptions,
  Storage,
  StorageCapabilities,
  TaskQuery,
} from "../src/storage.ts";
import { isJobFinal } from "../src/status.ts";
import type { Job, JsonValue, Task, TaskStatus } from "../src/types.ts";

/** Options of {@link createMemoryStorage}. */
export interface MemoryStorageOptions {
  /** Clock used when a caller passes no `now` (default `Date.now`). */
  now?: () => number;
}

interface ReadyEntry {
  id: string;
  version: number;
  priority: number;
  runAt: number;
}

function addTo<K>(map: Map<K, Set<string>>, key: K, id: string): void {
  let set = map.get(key);
  if (!set) map.set(key, set = new Set());
  set.add(id);
}

function removeFrom<K>(map: Map<K, Set<string>>, key: K, id: string): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(id);
  if (set.size === 0) map.delete(key);
}

const dueFirst = (a: ReadyEntry, b: ReadyEntry): boolean =>
  a.priority !== b.priority ? a.priority < b.priority : a.runAt !== b.runAt ? a.runAt < b.runAt : a.id < b.id;
const soonestFirst = (a: ReadyEntry, b: ReadyEntry): boolean =>
  a.runAt < b.runAt || (a.runAt === b.runAt && a.id < b.id);

/** In-memory implementation of the storage contract. */
export class MemoryStorage implements Storage {
  /** Adapter name. */
  readonly name: string = "memory";
  /** Not durable, not shared between processes. */
  readonly capabilities: StorageCapabilities = { durable: false, shared: false };

  readonly #now: () => number;
  readonly #tasks = new Map<string, Task>();
  readonly #jobs = new Map<string, Job>();
  readonly #byJob = new Map<string, Set<string>>();
  readonly #byAgent = new Map<string, Set<string>>();
  readonly #byStatus = new Map<TaskStatus, Set<string>>();
  readonly #byParent = new Map<string, Set<string>>();
  readonly #dependents = new Map<string, string[]>();
  readonly #jobsByStatus = new Map<string, Set<string>>();
  readonly #due = new Heap<ReadyEntry>(dueFirst);
  readonly #delayed = new Heap<ReadyEntry>(soonestFirst);
  readonly #cache = new Map<string, Map<string, JsonValue>>();
  readonly #state = new Map<string, JsonValue>();
  readonly #listeners = new Set<() => void>();
  #closed = false;
  #lastClaimAt = -Infinity;

  /** Create an empty store. */
  constructor(options: MemoryStorageOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  #open(): void {
    if (this.#closed) throw new StorageError("Storage is closed");
  }

  #sync<T>(fn: () => T): Promise<T> {
    try {
      return Promise.resolve(fn());
    } catch (e) {
      return Promise.reject(e);
    }
  }

  readonly #tx: RuleTx = this.#makeTx();

  #makeTx(): RuleTx {
    return {
      getTask: (id) => this.#tasks.get(id),
      getJob: (id) => this.#jobs.get(id),
      dependents: (id) => this.#dependents.get(id) ?? [],
      jobTasks: (jobId, statuses) => {
        const out: Task[] = [];
        for (const id of this.#byJob.get(jobId) ?? []) {
          const t = this.#tasks.get(id)!;
          if (statuses.includes(t.status)) out.push(t);
        }
        return out;
      },
      putTask: (task, prev) => this.#putTask(task, prev),
      putJob: (job, prev) => {
        this.#jobs.set(job.id, Object.freeze(job));
        if (prev?.status !== job.status) {
          if (prev) removeFrom(this.#jobsByStatus, prev.status, job.id);
          addTo(this.#jobsByStatus, job.status, job.id);
        }
      },
      setCache: (jobId, key, value) => {
        let m = this.#cache.get(jobId);
        if (value === undefined) {
          m?.delete(key);
          return;
        }
        if (!m) this.#cache.set(jobId, m = new Map());
        m.set(key, value);
      },
      setState: (scope, key, value) => {
        const k = `${scope}\u0000${key}`;
        if (value === undefined) this.#state.delete(k);
        else this.#state.set(k, value);
      },
    };
  }

  #putTask(task: Task, prev: Task | undefined): void {
    // Stored records are frozen, so they can be handed out without copying.
    this.#tasks.set(task.id, Object.freeze(task));
    if (!prev) {
      addTo(this.#byJob, task.jobId, task.id);
      addTo(this.#byAgent, task.agent, task.id);
      if (task.parentId !== null) addTo(this.#byParent, task.parentId, task.id);
      for (const dep of task.dependencies) {
        const list = this.#dependents.get(dep);
        if (list) list.push(task.id);
        else this.#dependents.set(dep, [task.id]);
      }
    } else if (prev.agent !== task.agent) {
      removeFrom(this.#byAgent, prev.agent, task.id);
      addTo(this.#byAgent, task.agent, task.id);
    }
    if (prev?.status !== task.status) {
      if (prev) removeFrom(this.#byStatus, prev.status, task.id);
      addTo(this.#byStatus, task.status, task.id);
    }
    if (
      task.status === "ready" &&
      (prev?.status !== "ready" || prev.runAt !== task.runAt || prev.priority !== task.priority)
    ) {
      const entry = { id: task.id, version: task.version, priority: task.priority, runAt: task.runAt };
      // Already due for the latest claimer: skip the delayed heap.
      if (task.runAt <= this.#lastClaimAt) this.#due.push(entry);
      else this.#delayed.push(entry);
    }
  }

  #live(e: ReadyEntry): Task | undefined {
    const t = this.#tasks.get(e.id);
    return t && t.status === "ready" && t.runAt === e.runAt && t.priority === e.priority ? t : undefined;
  }

  #notify(result: CommitResult): void {
    if (result.readied > 0 || result.jobs.length > 0) {
      for (const l of this.#listeners) queueMicrotask(l);
    }
  }

  // The rules run synchronously on this adapter's transaction, so every batch is atomic
  // without a lock: nothing can interleave with it.

  /** {@inheritDoc Storage.createJob} */
  createJob(job: Job, tasks: readonly Task[]): Promise<CommitResult> {
    try {
      this.#open();
      const r = applyCreateJob(this.#tx, job, tasks, this.#now()) as CommitResult;
      this.#notify(r);
      return Promise.resolve(r);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** {@inheritDoc Storage.commit} */
  commit(ops: readonly CommitOp[], now?: number): Promise<CommitResult> {
    try {
      this.#open();
      const r = applyCommit(this.#tx, ops, now ?? this.#now()) as CommitResult;
      this.#notify(r);
      return Promise.resolve(r);
    } catch (e) {
      return Promise.reject(e);
    }
  }

  /** {@inheritDoc Storage.claimReady} */
  claimReady(options: ClaimOptions): Promise<Task[]> {
    return this.#sync(() => {
      this.#open();
      checkClaimOptions(options);
      const { limit, now, owner, leaseMs } = options;
      // The latest claimer's clock, even when it went back: entries filed as due against a
      // later clock are checked below and moved back to the delayed heap.
      this.#lastClaimAt = now;
      for (let e = this.#delayed.peek(); e && e.runAt <= now; e = this.#delayed.peek()) {
        this.#delayed.pop();
        if (this.#live(e)) this.#due.push(e);
      }
      const out: Task[] = [];
      while (out.length < limit) {
        const e = this.#due.pop();
        if (!e) break;
        const t = this.#live(e);
        if (!t) continue;
        if (t.runAt > now) {
          this.#delayed.push(e);
          continue;
        }
        const next = claimPatch(t, owner, now, leaseMs);
        this.#putTask(next, t);
        out.push(next);
      }
      return out;
    });
  }

  /** {@inheritDoc Storage.renewLeases} */
  renewLeases(options: RenewOptions): Promise<string[]> {
    return this.#sync(() => {
      this.#open();
      const out: string[] = [];
      for (const id of options.ids) {
        const t = this.#tasks.get(id);
        if (!t || t.status !== "running" || t.leaseOwner !== options.owner) continue;
        this.#tasks.set(id, Object.freeze({ ...t, leaseExpiresAt: options.now + options.leaseMs }));
        out.push(id);
      }
      return out;
    });
  }

  /** {@inheritDoc Storage.expiredLeases} */
  expiredLeases(now: number, limit: number = Infinity): Promise<Task[]> {
    this.#open();
    const out: Task[] = [];
    for (const id of this.#byStatus.get("running") ?? []) {
      const t = this.#tasks.get(id)!;
      if (t.leaseExpiresAt !== null && t.leaseExpiresAt <= now) out.push(t);
    }
    out.sort((a, b) => a.leaseExpiresAt! - b.leaseExpiresAt! || (a.id < b.id ? -1 : 1));
    return Promise.resolve(out.slice(0, limit));
  }

  /** {@inheritDoc Storage.getJob} */
  getJob(id: string): Promise<Job | undefined> {
    this.#open();
    const j = this.#jobs.get(id);
    return Promise.resolve(j);
  }

  /** {@inheritDoc Storage.listJobs} */
  listJobs(query: JobQuery = {}): Promise<Job[]> {
    this.#open();
    const ids = query.status ? this.#jobsByStatus.get(query.status) ?? [] : this.#jobs.keys();
    return Promise.resolve(page([...ids], query).map((id) => this.#jobs.get(id)!));
  }

  /** {@inheritDoc Storage.getTask} */
  getTask(id: string): Promise<Task | undefined> {
    this.#open();
    const t = this.#tasks.get(id);
    return Promise.resolve(t);
  }

  /** {@inheritDoc Storage.getTasks} */
  getTasks(ids: readonly string[]): Promise<Task[]> {
    this.#open();
    const out: Task[] = [];
    for (const id of ids) {
      const t = this.#tasks.get(id);
      if (t) out.push(t);
    }
    return Promise.resolve(out);
  }

  /** {@inheritDoc Storage.listTasks} */
  listTasks(query: TaskQuery): Promise<Task[]> {
    this.#open();
    const candidates: (Set<string> | undefined)[] = [];
    if (query.jobId !== undefined) candidates.push(this.#byJob.get(query.jobId) ?? new Set());
    if (query.agent !== undefined) candidates.push(this.#byAgent.get(query.agent) ?? new Set());
    if (query.status !== undefined) candidates.push(this.#byStatus.get(query.status) ?? new Set());
    if (query.parentId !== undefined) candidates.push(this.#byParent.get(query.parentId) ?? new Set());
    let ids: Iterable<string> = this.#tasks.keys();
    if (candidates.length > 0) {
      ids = candidates.reduce((a, b) => (a!.size <= b!.size ? a : b))!;
    }
    const matched: string[] = [];
    for (const id of ids) {
      const t = this.#tasks.get(id)!;
      if (query.jobId !== undefined && t.jobId !== query.jobId) continue;
      if (query.agent !== undefined && t.agent !== query.agent) continue;
      if (query.status !== undefined && t.status !== query.status) continue;
      if (query.parentId !== undefined && t.parentId !== query.parentId) continue;
      matched.push(id);
    }
    return Promise.resolve(page(matched, query).map((id) => this.#tasks.get(id)!));
  }

  /** {@inheritDoc Storage.getCache} */
  getCache(jobId: string, key: string): Promise<JsonValue | undefined> {
    this.#open();
    return Promise.resolve(this.#cache.get(jobId)?.get(key));
  }

  /** {@inheritDoc Storage.getState} */
  getState(scope: string, key: string): Promise<JsonValue | undefined> {
    this.#open();
    return Promise.resolve(this.#state.get(`${scope}\u0000${key}`));
  }

  /** {@inheritDoc Storage.prune} */
  prune(options: PruneOptions): Promise<number> {
    return this.#sync(() => {
      this.#open();
      const ended: Job[] = [];
      for (const status of ["completed", "failed", "cancelled"] as const) {
        for (const id of this.#jobsByStatus.get(status) ?? []) ended.push(this.#jobs.get(id)!);
      }
      ended.sort((a, b) => (b.finishedAt ?? 0) - (a.finishedAt ?? 0) || (a.id < b.id ? 1 : -1));
      let removed = 0;
      ended.forEach((job, index) => {
        const old = options.finishedBefore !== undefined && (job.finishedAt ?? 0) < options.finishedBefore;
        const extra = options.keepLast !== undefined && index >= options.keepLast;
        if (!old && !extra) return;
        if (!isJobFinal(job.status)) return;
        for (const id of this.#byJob.get(job.id) ?? []) {
          const t = this.#tasks.get(id)!;
          this.#tasks.delete(id);
          removeFrom(this.#byAgent, t.agent, id);
          removeFrom(this.#byStatus, t.status, id);
          if (t.parentId !== null) removeFrom(this.#byParent, t.parentId, id);
          this.#dependents.delete(id);
        }
        this.#byJob.delete(job.id);
        this.#cache.delete(job.id);
        this.#jobs.delete(job.id);
        removeFrom(this.#jobsByStatus, job.status, job.id);
        removed++;
      });
      return removed;
    });
  }

  /** {@inheritDoc Storage.watch} */
  watch(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** {@inheritDoc Storage.close} */
  close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    return Promise.resolve();
  }
}

function page(ids: string[], query: { after?: string; limit?: number }): string[] {
  // Ids are usually inserted in order already: sort only when they are not.
  for (let i = 1; i < ids.length; i++) {
    if (ids[i - 1]! > ids[i]!) {
      ids.sort();
      break;
    }
  }
  let start = 0;
  if (query.after !== undefined) {
    const after = query.after;
    let lo = 0;
    let hi = ids.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (ids[mid]! <= after) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  const end = query.limit === undefined ? ids.length : start + Math.max(0, query.limit);
  return ids.slice(start, end);
}

/**
 * Create an in-memory storage.
 *
 * @example
 * ```ts
 * import { createMemoryStorage } from "./memory.ts";
 * const storage = createMemoryStorage();
 * const jobs = await storage.listJobs();
 * console.assert(jobs.length === 0);
 * ```
 */
export function createMemoryStorage(options: MemoryStorageOptions = {}): MemoryStorage {
  return new MemoryStorage(options);
}
