/**
 * The `RuleTx` of the IndexedDB adapter: the scheduling rules of `commit-rules.ts` read
 * and write through one readwrite transaction.
 *
 * - Reads are cached per transaction (the rules read the state as of the start of the
 *   batch and write only at the end) and can be issued ahead of time: IndexedDB answers
 *   the requests of one transaction in order, so issuing them together costs one round
 *   trip instead of one each. A read that has answered is served synchronously.
 * - A task read is its row with the claim holding it (if any) overlaid (`claims.ts`).
 * - `dependents(id)` is answered from the task's own row (`_dependents`, see `rows.ts`),
 *   so completing a task costs no index lookup.
 * - Task writes are buffered and issued by {@link IdbRuleTx.finish}, once every new edge
 *   of the batch is known, without waiting for their results: a failing write aborts
 *   the transaction, which the adapter reports when it awaits `done`. A write also keeps
 *   the claim queue (`ready.ts`), the claims and the job's `members` in step with the task.
 *
 * @module
 */

import type { IDBPTransaction, StoreNames } from "idb";
import type { MaybePromise, RuleTx } from "../../src/commit-rules.ts";
import type { CommitOp } from "../../src/storage.ts";
import { deepFreeze } from "../../src/json.ts";
import type { Job, JsonValue, Task, TaskStatus } from "../../src/types.ts";
import { ClaimBook, readRows } from "./claims.ts";
import { IdLeaves } from "./leaves.ts";
import { ReadyQueue } from "./ready.ts";
import { freezeJob, type TaskRow, toRow } from "./rows.ts";
import type { TaskCoreSchema } from "./schema.ts";
import { byId, putRows, quiet, RANGE_READ_MIN } from "./util.ts";

/** A readwrite transaction over some of the task-core stores. */
export type WriteTx = IDBPTransaction<TaskCoreSchema, StoreNames<TaskCoreSchema>[], "readwrite">;

/** Statuses whose arrival may change dependents (satisfy or fail them). */
const SETTLING: ReadonlySet<string> = new Set<TaskStatus>(["completed", "accepted", "failed", "cancelled", "rejected"]);

/**
 * A read cache: the first read of a key issues the request; once it has answered, later
 * reads get the value itself (no promise), which the rules then use synchronously.
 */
class Reads<V> {
  readonly #pending = new Map<string, Promise<V>>();
  readonly #settled = new Map<string, V>();

  get(key: string, load: () => Promise<V>): MaybePromise<V> {
    if (this.#settled.has(key)) return this.#settled.get(key)!;
    let p = this.#pending.get(key);
    if (!p) {
      p = quiet(
        load().then((v) => {
          this.#settled.set(key, v);
          this.#pending.delete(key);
          return v;
        }),
      );
      this.#pending.set(key, p);
    }
    return p;
  }

  has(key: string): boolean {
    return this.#settled.has(key) || this.#pending.has(key);
  }

  seed(key: string, value: V): void {
    if (!this.has(key)) this.#settled.set(key, value);
  }
}

/**
 * A `RuleTx` over one IndexedDB readwrite transaction. Call {@link IdbRuleTx.finish} after the rules.
 */
export class IdbRuleTx implements RuleTx {
  readonly #tx: WriteTx;
  readonly #tasks = new Reads<Task | undefined>();
  readonly #jobs = new Reads<Job | undefined>();
  /** Rows as stored, by id, for every task read. */
  readonly #rows = new Map<string, TaskRow>();
  /** Task writes of the batch (with the record as read), issued by `finish()`. */
  readonly #puts = new Map<string, { task: Task; prev: Task | undefined }>();
  /** New edges of the batch: dependency id -> ids of tasks inserted with it. */
  readonly #added = new Map<string, string[]>();
  readonly #claims: ClaimBook;
  readonly #ready: ReadyQueue;
  readonly #members: IdLeaves;

  /**
   * Wrap a transaction over `jobs`, `tasks`, `members`, `ready`, `claims` and `leases`
   * (plus `cache` and `state` for commits).
   */
  constructor(tx: WriteTx) {
    this.#tx = tx;
    this.#claims = new ClaimBook(tx);
    this.#ready = new ReadyQueue(tx);
    this.#members = new IdLeaves(tx, "members");
  }

  /** Remember a row whose claim (if any) is resolved, and return its task. */
  #remember(row: TaskRow | undefined): Task | undefined {
    if (!row) return undefined;
    this.#rows.set(row.id, row);
    return this.#claims.view(row);
  }

  async #load(id: string): Promise<Task | undefined> {
    const row = await this.#tx.objectStore("tasks").get(id);
    await this.#claims.resolve([row]);
    return this.#remember(row);
  }

  /** {@inheritDoc RuleTx.getTask} */
  getTask(id: string): MaybePromise<Task | undefined> {
    if (typeof id !== "string") return undefined;
    return this.#tasks.get(id, () => this.#load(id));
  }

  /** {@inheritDoc RuleTx.getJob} */
  getJob(id: string): MaybePromise<Job | undefined> {
    if (typeof id !== "string") return undefined;
    return this.#jobs.get(id, () => this.#tx.objectStore("jobs").get(id).then(freezeJob));
  }

  /** {@inheritDoc RuleTx.dependents} */
  dependents(id: string): MaybePromise<readonly string[]> {
    if (typeof id !== "string") return [];
    const known = (): readonly string[] => this.#rows.get(id)?._dependents ?? [];
    if (this.#rows.has(id) || this.#puts.has(id)) return known();
    const read = this.getTask(id);
    return read instanceof Promise ? read.then(known) : known();
  }

  /** {@inheritDoc RuleTx.jobTasks} */
  async jobTasks(jobId: string, statuses: readonly TaskStatus[]): Promise<readonly Task[]> {
    // Job control reads the job's rows (its members) and keeps those in `statuses`.
    const ids = await this.#members.ids([jobId]);
    const found = await readRows(this.#tx.objectStore("tasks"), ids);
    const rows = [...found.values()].sort(byId);
    await this.#claims.resolve(rows);
    const out: Task[] = [];
    for (const row of rows) {
      const task = this.#claims.view(row);
      if (!this.#tasks.has(row.id)) {
        this.#rows.set(row.id, row);
        this.#tasks.seed(row.id, task);
      }
      if (statuses.includes(task.status)) out.push(task);
    }
    return out;
  }

  /** {@inheritDoc RuleTx.putTask} */
  putTask(task: Task, prev: Task | undefined): void {
    this.#puts.set(task.id, { task, prev });
    if (prev) return;
    for (const dep of task.dependencies) {
      const list = this.#added.get(dep);
      if (list) list.push(task.id);
      else this.#added.set(dep, [task.id]);
    }
  }

  /** {@inheritDoc RuleTx.putJob} */
  putJob(job: Job): void {
    quiet(this.#tx.objectStore("jobs").put(job));
  }

  /** {@inheritDoc RuleTx.setCache} */
  setCache(jobId: string, key: string, value: JsonValue | undefined): void {
    const store = this.#tx.objectStore("cache");
    if (value === undefined) quiet(store.delete([jobId, key]));
    else quiet(store.put({ jobId, key, value }));
  }

  /** {@inheritDoc RuleTx.getCache} */
  getCache(jobId: string, key: string): Promise<JsonValue | undefined> {
    return this.#tx.objectStore("cache").get([jobId, key]).then((r) => r && deepFreeze(r.value));
  }

  /** {@inheritDoc RuleTx.getState} */
  getState(scope: string, key: string): Promise<JsonValue | undefined> {
    return this.#tx.objectStore("state").get([scope, key]).then((r) => r && deepFreeze(r.value));
  }

  /** {@inheritDoc RuleTx.setState} */
  setState(scope: string, key: string, value: JsonValue | undefined): void {
    const store = this.#tx.objectStore("state");
    if (value === undefined) quiet(store.delete([scope, key]));
    else quiet(store.put({ scope, key, value }));
  }

  /**
   * Issue the task writes of the batch, each row carrying its (new) dependents; keep the
   * claim queue in step (a task that stops being ready leaves it, one that becomes ready
   * joins it) and count written tasks off the claims that held them.
   */
  async finish(): Promise<void> {
    const store = this.#tx.objectStore("tasks");
    const dependentsOf = (id: string): string[] | undefined => {
      const stored = this.#rows.get(id)?._dependents;
      const added = this.#added.get(id);
      return added ? [...(stored ?? []), ...added] : stored;
    };
    const rows: TaskRow[] = [];
    for (const [id, { task, prev }] of this.#puts) {
      rows.push(toRow(task, dependentsOf(id)));
      if (!prev) this.#members.add([task.jobId], id);
      this.#claims.release(id);
      const wasReady = prev?.status === "ready";
      const isReady = task.status === "ready";
      if (
        wasReady && isReady && prev.priority === task.priority && prev.runAt === task.runAt && prev.agent === task.agent
      ) continue;
      if (wasReady) this.#ready.remove(prev.agent, prev.priority, prev.runAt, id);
      if (isReady) this.#ready.add(task.agent, task.priority, task.runAt, id);
    }
    putRows(store, rows);
    for (const [id, added] of this.#added) {
      if (this.#puts.has(id)) continue;
      // A new task depends on a stored one the batch left unchanged: only its edge list changes
      // (its version too stays, so a claim holding it still does).
      const row = this.#rows.get(id) ?? await store.get(id);
      if (!row) continue; // the rules refused unknown dependencies already
      quiet(store.put({ ...row, _dependents: [...(row._dependents ?? []), ...added] }));
    }
    this.#claims.flush();
    await Promise.all([this.#ready.flush(), this.#members.flush()]);
  }

  /** Issue the reads of these tasks now (ids that are not strings are ignored). */
  prefetchTasks(ids: Iterable<unknown>): void {
    for (const id of ids) if (typeof id === "string") void this.getTask(id);
  }

  /**
   * Read many tasks at once. Ids made together sort together, so they are often dense in
   * their key range: one `count` tells, and then one range read (or none at all, for new
   * ids) replaces a request per id. Otherwise, one `get` each.
   */
  async prefetchMany(ids: Iterable<unknown>): Promise<void> {
    const wanted = [...new Set(ids)].filter((id): id is string => typeof id === "string" && !this.#tasks.has(id));
    if (wanted.length < RANGE_READ_MIN) return this.prefetchTasks(wanted);
    const rows = await readRows(this.#tx.objectStore("tasks"), wanted);
    await this.#claims.resolve(rows.values());
    for (const id of wanted) {
      if (this.#tasks.has(id)) continue;
      this.#tasks.seed(id, this.#remember(rows.get(id)));
    }
  }

  /** Issue the reads of these jobs now. */
  prefetchJobs(ids: Iterable<unknown>): void {
    for (const id of ids) if (typeof id === "string") void this.getJob(id);
  }

  /**
   * Issue, in two pipelined rounds, the reads a commit will make: first the tasks and jobs
   * its ops name, then the jobs of those tasks and the dependents of tasks that settle.
   * Never throws: a bad op is reported by the rules themselves.
   */
  async prefetchCommit(ops: readonly CommitOp[]): Promise<void> {
    try {
      if (!Array.isArray(ops)) return;
      const updated: string[] = [];
      const settling = new Set<string>();
      for (const op of ops) {
        switch (op?.type) {
          case "insertTask":
            this.prefetchTasks([op.task?.id, ...(Array.isArray(op.task?.dependencies) ? op.task.dependencies : [])]);
            this.prefetchJobs([op.task?.jobId]);
            break;
          case "updateTask":
            if (typeof op.id !== "string") break;
            updated.push(op.id);
            if (SETTLING.has(op.set?.status as string)) settling.add(op.id);
            break;
          case "updateJob":
          case "setCache":
            this.prefetchJobs([op.type === "updateJob" ? op.id : op.jobId]);
            break;
        }
      }
      await this.prefetchMany(updated);
      const tasks = await Promise.all(updated.map((id) => this.getTask(id)));
      // The second round is not awaited: it is answered while the rules run.
      this.prefetchJobs(tasks.map((t) => t?.jobId));
      quiet(this.prefetchMany([...settling].flatMap((id) => this.#rows.get(id)?._dependents ?? [])));
    } catch {
      // The rules read again and report the failure.
    }
  }
}
