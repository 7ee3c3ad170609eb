/**
 * The `RuleTx` of the IndexedDB adapter: the scheduling rules of `commit-rules.ts` read
 * and write through one readwrite transaction.
 *
 * - Reads are cached per transaction (the rules read the state as of the start of the
 *   batch and write only at the end) and can be issued ahead of time: IndexedDB answers
 *   the requests of one transaction in order, so issuing them together costs one round
 *   trip instead of one each. A read that has answered is served synchronously.
 * - `dependents(id)` is answered from the task's own row (`_dependents`, see `rows.ts`),
 *   so completing a task costs no index lookup.
 * - Task writes are buffered and issued by {@link IdbRuleTx.finish}, once every new edge
 *   of the batch is known, without waiting for their results: a failing write aborts
 *   the transaction, which the adapter reports when it awaits `done`.
 *
 * @module
 */

import type { IDBPTransaction, StoreNames } from "idb";
import type { MaybePromise, RuleTx } from "../../src/commit-rules.ts";
import type { CommitOp } from "../../src/storage.ts";
import type { Job, JsonValue, Task, TaskStatus } from "../../src/types.ts";
import { freezeJob, fromRow, type TaskRow, toRow } from "./rows.ts";
import type { TaskCoreSchema } from "./schema.ts";

/** A readwrite transaction over some of the task-core stores. */
export type WriteTx = IDBPTransaction<TaskCoreSchema, StoreNames<TaskCoreSchema>[], "readwrite">;

const noop = (): void => {};

/** Mark a promise as handled (its error surfaces through the transaction) and return it. */
export function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(noop);
  return p;
}

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

/** A `RuleTx` over one IndexedDB readwrite transaction. Call {@link IdbRuleTx.finish} after the rules. */
export class IdbRuleTx implements RuleTx {
  readonly #tx: WriteTx;
  readonly #tasks = new Reads<Task | undefined>();
  readonly #jobs = new Reads<Job | undefined>();
  /** Rows as stored, by id, for every task read. */
  readonly #rows = new Map<string, TaskRow>();
  /** Task writes of the batch, issued by `finish()`. */
  readonly #puts = new Map<string, Task>();
  /** New edges of the batch: dependency id -> ids of tasks inserted with it. */
  readonly #added = new Map<string, string[]>();

  /** Wrap a transaction over at least `jobs` and `tasks` (plus `cache` and `state` for commits). */
  constructor(tx: WriteTx) {
    this.#tx = tx;
  }

  #remember(row: TaskRow | undefined): Task | undefined {
    if (!row) return undefined;
    this.#rows.set(row.id, row);
    return fromRow(row);
  }

  /** {@inheritDoc RuleTx.getTask} */
  getTask(id: string): MaybePromise<Task | undefined> {
    if (typeof id !== "string") return undefined;
    return this.#tasks.get(id, () => this.#tx.objectStore("tasks").get(id).then((row) => this.#remember(row)));
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
    const index = this.#tx.objectStore("tasks").index("job");
    const range = (s: TaskStatus): IDBKeyRange => IDBKeyRange.bound([jobId, s], [jobId, s, []]);
    const lists = await Promise.all(statuses.map((s) => quiet(index.getAll(range(s)))));
    const out: Task[] = [];
    for (const row of lists.flat().sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))) {
      const task = fromRow(row);
      if (!this.#tasks.has(row.id)) {
        this.#rows.set(row.id, row);
        this.#tasks.seed(row.id, task);
      }
      out.push(task);
    }
    return out;
  }

  /** {@inheritDoc RuleTx.putTask} */
  putTask(task: Task, prev: Task | undefined): void {
    this.#puts.set(task.id, task);
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

  /** {@inheritDoc RuleTx.setState} */
  setState(scope: string, key: string, value: JsonValue | undefined): void {
    const store = this.#tx.objectStore("state");
    if (value === undefined) quiet(store.delete([scope, key]));
    else quiet(store.put({ scope, key, value }));
  }

  /** Issue the task writes of the batch, each row carrying its (new) dependents. */
  async finish(): Promise<void> {
    const store = this.#tx.objectStore("tasks");
    const dependentsOf = (id: string): string[] | undefined => {
      const stored = this.#rows.get(id)?._dependents;
      const added = this.#added.get(id);
      return added ? [...(stored ?? []), ...added] : stored;
    };
    for (const [id, task] of this.#puts) quiet(store.put(toRow(task, dependentsOf(id))));
    for (const [id, added] of this.#added) {
      if (this.#puts.has(id)) continue;
      // A new task depends on a stored one the batch left unchanged: only its edge list changes.
      const row = this.#rows.get(id) ?? await store.get(id);
      if (!row) continue; // the rules refused unknown dependencies already
      quiet(store.put({ ...row, _dependents: [...(row._dependents ?? []), ...added] }));
    }
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
    if (wanted.length < 16) return this.prefetchTasks(wanted);
    wanted.sort();
    const store = this.#tx.objectStore("tasks");
    const range = IDBKeyRange.bound(wanted[0], wanted[wanted.length - 1]);
    const stored = await store.count(range);
    if (stored > wanted.length * 2) return this.prefetchTasks(wanted);
    const rows = stored === 0 ? [] : await store.getAll(range);
    const byId = new Map(rows.map((r) => [r.id, r]));
    for (const id of wanted) {
      if (this.#tasks.has(id)) continue;
      const row = byId.get(id);
      this.#tasks.seed(id, row && this.#remember(row));
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
