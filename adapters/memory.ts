/**
 * In-memory storage: Maps with secondary indexes and a ready heap, the fastest backend
 * and the one to use in tests. Nothing survives the process.
 *
 * @example
 * ```ts
 * import { createMemoryStorage } from "@dagger/task-core/adapters/memory";
 * const storage = createMemoryStorage();
 * console.assert(storage.name === "memory");
 * await storage.close();
 * ```
 *
 * @module
 */

import {
  applyCommit,
  applyCreateJob,
  checkClaimOptions,
  checkIds,
  checkPruneOptions,
  checkQuery,
  checkRenewOptions,
  claimAgents,
  claimOrder,
  claimPatch,
  copyTask,
  expiredArgs,
  type RuleTx,
} from "../src/commit-rules.ts";
import { StorageClosedError } from "../src/errors.ts";
import { Heap } from "../src/heap.ts";
import { checkOptionNames } from "../src/options.ts";
import {
  changeOf,
  type ClaimOptions,
  type CommitOp,
  type CommitResult,
  type JobQuery,
  type PruneOptions,
  type RenewOptions,
  type Storage,
  type StorageCapabilities,
  type StorageChange,
  type TaskQuery,
  tellWatchers,
  watchClosed,
} from "../src/storage.ts";
import { isJobFinal } from "../src/status.ts";
import type { Job, JsonValue, Task, TaskStatus } from "../src/types.ts";

/** Options of {@link createMemoryStorage}. */
export interface MemoryStorageOptions {
  /** Clock used when a caller passes no `now` (default `Date.now`). */
  now?: () => number;
}

/** A stored task: its current record and its place in its status list. */
interface Slot {
  task: Task;
  prev: Slot | null;
  next: Slot | null;
  /** Deleted by `prune`: any list still holding it skips it. */
  gone: boolean;
}

/** The tasks of one status, as an intrusive doubly-linked list: O(1) moves, no hashing. */
class StatusList {
  head: Slot | null = null;
  tail: Slot | null = null;
  size = 0;

  /** Append (so a walk sees tasks in the order they took this status, mostly id order). */
  add(s: Slot): void {
    s.next = null;
    s.prev = this.tail;
    if (this.tail) this.tail.next = s;
    else this.head = s;
    this.tail = s;
    this.size++;
  }

  remove(s: Slot): void {
    if (s.prev) s.prev.next = s.next;
    else this.head = s.next;
    if (s.next) s.next.prev = s.prev;
    else this.tail = s.prev;
    s.prev = s.next = null;
    this.size--;
  }
}

/** Slots under one key (an agent, a parent), append-only; pruned slots are dropped lazily. */
class SlotList {
  slots: Slot[] = [];
  dead = 0;

  /** Count one pruned slot; compact when most are. */
  drop(): void {
    if (++this.dead * 2 > this.slots.length) {
      this.slots = this.slots.filter((s) => !s.gone);
      this.dead = 0;
    }
  }
}

/**
 * Ready tasks of one `(priority, runAt)`, in id order. Tasks made ready together share
 * both and arrive in id order, so a claim takes them from the front: O(1) per task
 * instead of a heap operation with string compares.
 */
interface Bucket {
  priority: number;
  runAt: number;
  slots: (Slot | undefined)[];
  head: number;
  /** Tasks made ready out of id order (dependents finishing in any order), by id. */
  late: Heap<Slot> | null;
}

const idFirst = (a: Slot, b: Slot): boolean => a.task.id < b.task.id;

function addTo<K>(map: Map<K, SlotList>, key: K, slot: Slot): void {
  let list = map.get(key);
  if (!list) map.set(key, list = new SlotList());
  list.slots.push(slot);
}

function removeFrom<K>(map: Map<K, SlotList>, key: K, slot: Slot): void {
  const list = map.get(key);
  const i = list ? list.slots.indexOf(slot) : -1;
  if (i >= 0) list!.slots.splice(i, 1);
}

/** Count one pruned slot under `key`; forget the key when none is left. */
function dropFrom<K>(map: Map<K, SlotList>, key: K): void {
  const list = map.get(key);
  if (!list) return;
  list.drop();
  if (list.slots.length === list.dead) map.delete(key);
}

function addJobId(map: Map<string, Set<string>>, key: string, id: string): void {
  let set = map.get(key);
  if (!set) map.set(key, set = new Set());
  set.add(id);
}

function removeJobId(map: Map<string, Set<string>>, key: string, id: string): void {
  const set = map.get(key);
  if (!set) return;
  set.delete(id);
  if (set.size === 0) map.delete(key);
}

const dueFirst = (a: Bucket, b: Bucket): boolean =>
  a.priority !== b.priority ? a.priority < b.priority : a.runAt < b.runAt;
const soonestFirst = (a: Bucket, b: Bucket): boolean =>
  a.runAt < b.runAt || (a.runAt === b.runAt && a.priority < b.priority);

/**
 * The ready tasks of one agent, in claim order: buckets of one `(priority, runAt)` each,
 * a heap of the buckets due for the latest claimer (by priority, then runAt) and one of
 * those not yet due (by runAt). A claim reads only due tasks; a claim limited to some
 * agents reads only their indexes.
 */
class ReadyIndex {
  /** Buckets by priority, then runAt, for appending. */
  readonly buckets = new Map<number, Map<number, Bucket>>();
  /** Buckets due for the latest claimer, by priority then runAt. */
  readonly due = new Heap<Bucket>(dueFirst);
  /** Buckets not yet due, by runAt. */
  readonly delayed = new Heap<Bucket>(soonestFirst);
  /** The latest claimer's clock, even when it went back (see `peek`). */
  lastClaimAt = -Infinity;
  /** The bucket of the slot `peek` answered, and whether it is that bucket's front. */
  #at: Bucket | null = null;
  #front = false;

  constructor(readonly agent: string) {}

  /** Whether no task is filed (every bucket was used up and dropped). */
  get empty(): boolean {
    return this.due.size === 0 && this.delayed.size === 0;
  }

  /** File a ready task in the bucket of its priority and runAt. */
  file(slot: Slot, task: Task): void {
    let byRunAt = this.buckets.get(task.priority);
    if (!byRunAt) this.buckets.set(task.priority, byRunAt = new Map());
    let bucket = byRunAt.get(task.runAt);
    if (!bucket) {
      bucket = { priority: task.priority, runAt: task.runAt, slots: [slot], head: 0, late: null };
      byRunAt.set(task.runAt, bucket);
      // Already due for the latest claimer: skip the delayed heap.
      if (task.runAt <= this.lastClaimAt) this.due.push(bucket);
      else this.delayed.push(bucket);
      return;
    }
    const slots = bucket.slots;
    const last = slots.length > bucket.head ? slots[slots.length - 1] : undefined;
    if (last === undefined || last.task.id < task.id) slots.push(slot);
    else (bucket.late ??= new Heap<Slot>(idFirst)).push(slot); // O(log n), not a splice
  }

  /** A claim at `now`: move the buckets due by then to the due heap. */
  advance(now: number): void {
    // Buckets filed as due against a later clock are checked in `peek` and moved back.
    this.lastClaimAt = now;
    for (let b = this.delayed.peek(); b && b.runAt <= now; b = this.delayed.peek()) {
      this.due.push(this.delayed.pop()!);
    }
  }

  /**
   * The next ready task due at `now` in claim order, left in place (`take` removes it).
   * Entries left behind by a task that moved on (claimed, re-filed, pruned) are dropped on
   * the way, and used-up buckets forgotten.
   */
  peek(now: number): Slot | undefined {
    for (;;) {
      const b = this.due.peek();
      if (!b) return undefined;
      if (b.runAt > now) {
        this.delayed.push(this.due.pop()!);
        continue;
      }
      // The bucket's next task in id order: the front of its appended run or of its late heap.
      const late = b.late !== null && b.late.size > 0 ? b.late.peek()! : undefined;
      const front = b.head < b.slots.length ? b.slots[b.head]! : undefined;
      let slot: Slot;
      if (front !== undefined && (late === undefined || front.task.id < late.task.id)) {
        slot = front;
        this.#front = true;
      } else if (late !== undefined) {
        slot = late;
        this.#front = false;
      } else {
        this.due.pop();
        this.#drop(b);
        continue;
      }
      this.#at = b;
      if (!this.#stands(slot, b)) {
        this.take();
        continue;
      }
      return slot;
    }
  }

  /** Remove the task `peek` answered from its bucket. */
  take(): void {
    const b = this.#at!;
    if (this.#front) {
      b.slots[b.head++] = undefined;
      if (b.head > 1024 && b.head * 2 > b.slots.length) {
        b.slots = b.slots.slice(b.head);
        b.head = 0;
      }
    } else b.late!.pop();
  }

  /**
   * Drop the entries that no longer stand for a ready task of this index (a task cancelled
   * or paused while ready stays filed until a claim passes its `runAt`, which for a task due
   * far ahead is long after its job was pruned), and forget the buckets left empty.
   */
  sweep(): void {
    const keep = (b: Bucket): boolean => {
      const slots: Slot[] = [];
      for (let i = b.head; i < b.slots.length; i++) {
        const s = b.slots[i];
        if (s !== undefined && this.#stands(s, b)) slots.push(s);
      }
      b.slots = slots;
      b.head = 0;
      if (b.late !== null) {
        b.late.retain((s) => this.#stands(s, b));
        if (b.late.size === 0) b.late = null;
      }
      if (slots.length > 0 || b.late !== null) return true;
      this.#drop(b);
      return false;
    };
    this.due.retain(keep);
    this.delayed.retain(keep);
  }

  /**
   * Whether the entry of `slot` in `bucket` still stands for a ready task of this index (not
   * left behind by a task that moved on: claimed, re-filed, pruned).
   */
  #stands(slot: Slot, bucket: Bucket): boolean {
    const t = slot.task;
    return !slot.gone && t.status === "ready" && t.runAt === bucket.runAt && t.priority === bucket.priority &&
      t.agent === this.agent;
  }

  /** Forget an empty bucket (it left its heap). */
  #drop(bucket: Bucket): void {
    const byRunAt = this.buckets.get(bucket.priority);
    if (byRunAt?.get(bucket.runAt) === bucket) {
      byRunAt.delete(bucket.runAt);
      if (byRunAt.size === 0) this.buckets.delete(bucket.priority);
    }
  }
}

/** One agent's next due task, for merging the indexes of several agents in claim order. */
interface Head {
  index: ReadyIndex;
  slot: Slot;
}

const headFirst = (a: Head, b: Head): boolean => claimOrder(a.slot.task, b.slot.task) < 0;

/** In-memory implementation of the storage contract. */
export class MemoryStorage implements Storage {
  /** Adapter name. */
  readonly name: string = "memory";
  /** Not durable, not shared between processes. */
  readonly capabilities: StorageCapabilities = { durable: false, shared: false };

  readonly #now: () => number;
  readonly #tasks = new Map<string, Slot>();
  readonly #jobs = new Map<string, Job>();
  readonly #byJob = new Map<string, Slot[]>();
  readonly #byAgent = new Map<string, SlotList>();
  readonly #byParent = new Map<string, SlotList>();
  readonly #byStatus = new Map<TaskStatus, StatusList>();
  readonly #dependents = new Map<string, string[]>();
  readonly #jobsByStatus = new Map<string, Set<string>>();
  /** Ready tasks, by agent (an agent with none has no entry). */
  readonly #ready = new Map<string, ReadyIndex>();
  readonly #cache = new Map<string, Map<string, JsonValue>>();
  readonly #state = new Map<string, Map<string, JsonValue>>();
  readonly #listeners = new Set<(change?: StorageChange) => void>();
  #closed = false;
  /** Tasks pruned since the ready indexes were last swept of the entries they left (see `#sweepReady`). */
  #prunedSinceSweep = 0;

  /** Create an empty store. */
  constructor(options: MemoryStorageOptions = {}) {
    this.#now = options.now ?? Date.now;
  }

  #open(): void {
    if (this.#closed) throw new StorageClosedError("Storage is closed");
  }

  /** A call on a closed storage: a rejected promise, as every adapter answers, not a throw. */
  #closedCall(): Promise<never> {
    return Promise.reject(new StorageClosedError("Storage is closed"));
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
      getTask: (id) => this.#tasks.get(id)?.task,
      getJob: (id) => this.#jobs.get(id),
      dependents: (id) => this.#dependents.get(id) ?? NONE,
      jobTasks: (jobId, statuses) => {
        const out: Task[] = [];
        for (const s of this.#byJob.get(jobId) ?? NO_SLOTS) {
          if (statuses.includes(s.task.status)) out.push(s.task);
        }
        return out;
      },
      putTask: (task, prev) => this.#putTask(task, prev),
      putJob: (job, prev) => {
        this.#jobs.set(job.id, Object.freeze(job));
        if (prev?.status !== job.status) {
          if (prev) removeJobId(this.#jobsByStatus, prev.status, job.id);
          addJobId(this.#jobsByStatus, job.status, job.id);
        }
      },
      setCache: (jobId, key, value) => {
        let m = this.#cache.get(jobId);
        if (value === undefined) {
          // No empty map left per job (prune would drop it, but a job may be kept for long).
          if (m?.delete(key) && m.size === 0) this.#cache.delete(jobId);
          return;
        }
        if (!m) this.#cache.set(jobId, m = new Map());
        m.set(key, value);
      },
      getCache: (jobId, key) => this.#cache.get(jobId)?.get(key),
      getState: (scope, key) => this.#state.get(scope)?.get(key),
      setState: (scope, key, value) => {
        // By scope, then key: a joined string key would make ("a\0b", "c") and ("a", "b\0c") one entry.
        let m = this.#state.get(scope);
        if (value === undefined) {
          if (m?.delete(key) && m.size === 0) this.#state.delete(scope);
          return;
        }
        if (!m) this.#state.set(scope, m = new Map());
        m.set(key, value);
      },
    };
  }

  #statusList(status: TaskStatus): StatusList {
    let list = this.#byStatus.get(status);
    if (!list) this.#byStatus.set(status, list = new StatusList());
    return list;
  }

  #putTask(task: Task, prev: Task | undefined): void {
    // Stored records are frozen, so they can be handed out without copying.
    Object.freeze(task);
    if (prev) {
      this.#replace(this.#tasks.get(task.id)!, task, prev);
      return;
    }
    const slot: Slot = { task, prev: null, next: null, gone: false };
    this.#tasks.set(task.id, slot);
    const siblings = this.#byJob.get(task.jobId);
    if (siblings) siblings.push(slot);
    else this.#byJob.set(task.jobId, [slot]);
    addTo(this.#byAgent, task.agent, slot);
    if (task.parentId !== null) addTo(this.#byParent, task.parentId, slot);
    const deps = task.dependencies;
    for (let i = 0; i < deps.length; i++) {
      const dep = deps[i]!;
      const list = this.#dependents.get(dep);
      if (list) list.push(task.id);
      else this.#dependents.set(dep, [task.id]);
    }
    this.#statusList(task.status).add(slot);
    if (task.status === "ready") this.#fileReady(slot, task);
  }

  /** Put the frozen `task` in `slot` in place of `prev`, moving it between indexes. */
  #replace(slot: Slot, task: Task, prev: Task): void {
    slot.task = task;
    if (prev.agent !== task.agent) {
      removeFrom(this.#byAgent, prev.agent, slot);
      addTo(this.#byAgent, task.agent, slot);
    }
    if (prev.status !== task.status) {
      this.#statusList(prev.status).remove(slot);
      this.#statusList(task.status).add(slot);
    }
    if (
      task.status === "ready" &&
      (prev.status !== "ready" || prev.runAt !== task.runAt || prev.priority !== task.priority ||
        prev.agent !== task.agent)
    ) this.#fileReady(slot, task);
  }

  /** File a ready task in its agent's index. */
  #fileReady(slot: Slot, task: Task): void {
    let index = this.#ready.get(task.agent);
    if (!index) this.#ready.set(task.agent, index = new ReadyIndex(task.agent));
    index.file(slot, task);
  }

  #notify(result: CommitResult): void {
    if (result.readied > 0 || result.jobs.length > 0) {
      const change = changeOf(result);
      tellWatchers(this.#listeners, change);
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
      const start = options.start ?? 0;
      const agents = claimAgents(options.agents);
      const out: Task[] = [];
      const claim = (slot: Slot) => {
        const t = slot.task;
        const next = Object.freeze(claimPatch(t, owner, now, leaseMs, out.length < start));
        this.#replace(slot, next, t);
        out.push(next);
      };
      const indexes: ReadyIndex[] = [];
      if (agents === null) { for (const index of this.#ready.values()) indexes.push(index); }
      else {
        for (const agent of agents) {
          const index = this.#ready.get(agent);
          if (index) indexes.push(index);
        }
      }
      if (indexes.length === 1) {
        // One agent's tasks (the usual case): straight from its index.
        const index = indexes[0]!;
        index.advance(now);
        for (let slot = out.length < limit ? index.peek(now) : undefined; slot; slot = index.peek(now)) {
          index.take();
          claim(slot);
          if (out.length >= limit) break;
        }
      } else if (indexes.length > 1 && limit > 0) {
        // Several agents: merge their next due tasks in claim order.
        const heads = new Heap<Head>(headFirst);
        for (const index of indexes) {
          index.advance(now);
          const slot = index.peek(now);
          if (slot) heads.push({ index, slot });
        }
        for (let head = heads.pop(); head; head = heads.pop()) {
          head.index.take();
          claim(head.slot);
          if (out.length >= limit) break;
          const slot = head.index.peek(now);
          if (slot) heads.push({ index: head.index, slot });
        }
      }
      for (const index of indexes) if (index.empty) this.#ready.delete(index.agent);
      return out;
    });
  }

  /** {@inheritDoc Storage.renewLeases} */
  renewLeases(options: RenewOptions): Promise<string[]> {
    return this.#sync(() => {
      this.#open();
      checkRenewOptions(options);
      const out: string[] = [];
      for (const id of options.ids) {
        const slot = this.#tasks.get(id);
        const t = slot?.task;
        if (!t || t.status !== "running" || t.leaseOwner !== options.owner) continue;
        const renewed = copyTask(t);
        renewed.leaseExpiresAt = options.now + options.leaseMs;
        slot!.task = Object.freeze(renewed);
        out.push(id);
      }
      return out;
    });
  }

  /** {@inheritDoc Storage.expiredLeases} */
  expiredLeases(now: number, limit: number = Infinity): Promise<Task[]> {
    if (this.#closed) return this.#closedCall();
    let a: ReturnType<typeof expiredArgs>;
    try {
      a = expiredArgs(now, limit);
    } catch (e) {
      return Promise.reject(e);
    }
    const out: Task[] = [];
    if (a.now === null) return Promise.resolve(out);
    now = a.now;
    for (let s = this.#byStatus.get("running")?.head; s; s = s.next) {
      const t = s.task;
      if (t.leaseExpiresAt !== null && t.leaseExpiresAt <= now) out.push(t);
    }
    out.sort((a, b) => a.leaseExpiresAt! - b.leaseExpiresAt! || (a.id < b.id ? -1 : 1));
    return Promise.resolve(a.limit === null ? out : out.slice(0, a.limit));
  }

  /** {@inheritDoc Storage.getJob} */
  getJob(id: string): Promise<Job | undefined> {
    if (this.#closed) return this.#closedCall();
    const j = this.#jobs.get(id);
    return Promise.resolve(j);
  }

  /** {@inheritDoc Storage.listJobs} */
  listJobs(raw: JobQuery = {}): Promise<Job[]> {
    if (this.#closed) return this.#closedCall();
    let query: JobQuery;
    try {
      query = checkQuery(raw, "listJobs");
    } catch (e) {
      return Promise.reject(e);
    }
    const ids = query.status ? this.#jobsByStatus.get(query.status) ?? [] : this.#jobs.keys();
    const jobs: Job[] = [];
    for (const id of ids) jobs.push(this.#jobs.get(id)!);
    return Promise.resolve(page(jobs, query));
  }

  /** {@inheritDoc Storage.getTask} */
  getTask(id: string): Promise<Task | undefined> {
    if (this.#closed) return this.#closedCall();
    return Promise.resolve(this.#tasks.get(id)?.task);
  }

  /** {@inheritDoc Storage.getTasks} */
  getTasks(ids: readonly string[]): Promise<Task[]> {
    return this.#sync(() => {
      this.#open();
      checkIds(ids, "getTasks()");
      const out: Task[] = [];
      for (const id of ids) {
        const t = typeof id === "string" ? this.#tasks.get(id)?.task : undefined;
        if (t) out.push(t);
      }
      return out;
    });
  }

  /** {@inheritDoc Storage.listTasks} */
  listTasks(raw: TaskQuery): Promise<Task[]> {
    if (this.#closed) return this.#closedCall();
    let query: TaskQuery;
    try {
      query = checkQuery(raw, "listTasks");
    } catch (e) {
      return Promise.reject(e);
    }
    // Walk the smallest index that applies, then check every condition on the records.
    let source: Iterable<Slot> | StatusList | null = null;
    let size = Infinity;
    const consider = (slots: Iterable<Slot> | StatusList | undefined, n: number) => {
      if (n < size) [source, size] = [slots ?? NO_SLOTS, n];
    };
    if (query.jobId !== undefined) {
      const slots = this.#byJob.get(query.jobId);
      consider(slots, slots?.length ?? 0);
    }
    if (query.agent !== undefined) {
      const list = this.#byAgent.get(query.agent);
      consider(list?.slots, list ? list.slots.length - list.dead : 0);
    }
    if (query.status !== undefined) {
      const list = this.#byStatus.get(query.status);
      consider(list, list?.size ?? 0);
    }
    if (query.parentId !== undefined) {
      const list = this.#byParent.get(query.parentId);
      consider(list?.slots, list ? list.slots.length - list.dead : 0);
    }
    const matched: Task[] = [];
    const test = (t: Task) => {
      if (query.jobId !== undefined && t.jobId !== query.jobId) return;
      if (query.agent !== undefined && t.agent !== query.agent) return;
      if (query.status !== undefined && t.status !== query.status) return;
      if (query.parentId !== undefined && t.parentId !== query.parentId) return;
      matched.push(t);
    };
    const from = source as Iterable<Slot> | StatusList | null;
    if (from === null) { for (const s of this.#tasks.values()) test(s.task); }
    else if (from instanceof StatusList) { for (let s = from.head; s; s = s.next) test(s.task); }
    else if (Array.isArray(from)) {
      // An index list (a job's, an agent's): walked by index, without an iterator step per task.
      const slots = from as readonly Slot[];
      for (let i = 0; i < slots.length; i++) if (!slots[i]!.gone) test(slots[i]!.task);
    } else for (const s of from) if (!s.gone) test(s.task);
    return Promise.resolve(page(matched, query));
  }

  /** {@inheritDoc Storage.getCache} */
  getCache(jobId: string, key: string): Promise<JsonValue | undefined> {
    if (this.#closed) return this.#closedCall();
    return Promise.resolve(this.#cache.get(jobId)?.get(key));
  }

  /** {@inheritDoc Storage.getState} */
  getState(scope: string, key: string): Promise<JsonValue | undefined> {
    if (this.#closed) return this.#closedCall();
    return Promise.resolve(this.#state.get(scope)?.get(key));
  }

  /** {@inheritDoc Storage.prune} */
  prune(options: PruneOptions): Promise<number> {
    return this.#sync(() => {
      this.#open();
      const { finishedBefore, keepLast } = checkPruneOptions(options);
      const ended: Job[] = [];
      for (const status of ["completed", "failed", "cancelled"] as const) {
        for (const id of this.#jobsByStatus.get(status) ?? []) ended.push(this.#jobs.get(id)!);
      }
      ended.sort((a, b) => (b.finishedAt ?? 0) - (a.finishedAt ?? 0) || (a.id < b.id ? 1 : -1));
      let removed = 0;
      ended.forEach((job, index) => {
        const old = finishedBefore !== undefined && (job.finishedAt ?? 0) < finishedBefore;
        const extra = keepLast !== undefined && index >= keepLast;
        if (!old && !extra) return;
        if (!isJobFinal(job.status)) return;
        const slots = this.#byJob.get(job.id) ?? NO_SLOTS;
        for (const slot of slots) {
          const t = slot.task;
          slot.gone = true;
          this.#tasks.delete(t.id);
          this.#statusList(t.status).remove(slot);
          dropFrom(this.#byAgent, t.agent);
          if (t.parentId !== null) dropFrom(this.#byParent, t.parentId);
          this.#dependents.delete(t.id);
          // Lists that drop pruned slots lazily (a ready bucket a claim has not passed yet, an
          // agent's or a parent's list) still hold the slot: it keeps the id they order by,
          // not the record (its input and output would stay in memory until then).
          slot.task = { id: t.id } as Task;
        }
        this.#byJob.delete(job.id);
        this.#cache.delete(job.id);
        this.#jobs.delete(job.id);
        removeJobId(this.#jobsByStatus, job.status, job.id);
        this.#prunedSinceSweep += slots.length;
        removed++;
      });
      // Amortized: a sweep walks the ready entries, no more than the tasks pruned since the last one.
      const ready = this.#byStatus.get("ready")?.size ?? 0;
      if (this.#prunedSinceSweep >= SWEEP_MIN && this.#prunedSinceSweep >= ready) this.#sweepReady();
      return removed;
    });
  }

  /** Sweep every agent's ready index of the entries pruned and ended tasks left (see `ReadyIndex.sweep`). */
  #sweepReady(): void {
    this.#prunedSinceSweep = 0;
    for (const index of this.#ready.values()) {
      index.sweep();
      if (index.empty) this.#ready.delete(index.agent);
    }
  }

  /** {@inheritDoc Storage.watch} */
  watch(listener: (change?: StorageChange) => void): () => void {
    if (typeof listener !== "function") throw new TypeError(`watch() expects a function, got ${typeof listener}`);
    if (this.#closed) return watchClosed(listener);
    // One entry per call: the same function watched twice is told twice, and each stop ends its own.
    const entry = (change?: StorageChange): void => listener(change);
    this.#listeners.add(entry);
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /** {@inheritDoc Storage.close} */
  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      // Told once more: whoever waits on a watcher calls again and learns of the close.
      tellWatchers(this.#listeners, undefined, true);
    }
    return Promise.resolve();
  }
}

const NONE: readonly string[] = Object.freeze([]);
/** Fewest tasks pruned before the ready indexes are swept of what they left there. */
const SWEEP_MIN = 1024;
const NO_SLOTS: readonly Slot[] = Object.freeze([]);

/** Sort by id (only when not in order already) and cut the page `after` / `limit` ask for. */
function page<T extends { id: string }>(items: T[], query: { after?: string; limit?: number }): T[] {
  // Records are usually listed in id order already: sort only when they are not.
  for (let i = 1; i < items.length; i++) {
    if (items[i - 1]!.id > items[i]!.id) {
      items.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      break;
    }
  }
  let start = 0;
  if (query.after !== undefined) {
    const after = query.after;
    let lo = 0;
    let hi = items.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (items[mid]!.id <= after) lo = mid + 1;
      else hi = mid;
    }
    start = lo;
  }
  const end = query.limit === undefined ? items.length : start + Math.max(0, query.limit);
  // `items` is the caller's own new list: the whole of it needs no copy.
  return start === 0 && end >= items.length ? items : items.slice(start, end);
}

/**
 * Create an in-memory storage.
 *
 * @example
 * ```ts
 * import { createMemoryStorage } from "@dagger/task-core/adapters/memory";
 * const storage = createMemoryStorage();
 * const jobs = await storage.listJobs();
 * console.assert(jobs.length === 0);
 * ```
 */
export function createMemoryStorage(options: MemoryStorageOptions = {}): MemoryStorage {
  checkOptionNames("createMemoryStorage() option", options, ["now"]);
  return new MemoryStorage(options);
}
