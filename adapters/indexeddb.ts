/**
 * IndexedDB storage (through `idb`): durable in the browser, shared by every tab and
 * worker of an origin. Each `createJob`, `commit` and `claimReady` is one readwrite
 * transaction, and IndexedDB runs overlapping readwrite transactions one after the
 * other, so two tabs never claim the same task. `watch()` wakes executors in other tabs
 * through a `BroadcastChannel` named after the database.
 *
 * Outside a browser, install the classes of `fake-indexeddb` first
 * (`import "fake-indexeddb/auto"`): `idb` checks records against the global IDB classes.
 *
 * @example
 * ```ts
 * import { openIndexedDbStorage } from "./indexeddb.ts";
 * if (globalThis.indexedDB) { // a browser, or fake-indexeddb/auto
 *   const storage = await openIndexedDbStorage({ name: "my-app-tasks" });
 *   console.log(await storage.listJobs({ status: "running" }));
 *   await storage.close();
 * }
 * ```
 *
 * @module
 */

import { applyCommit, applyCreateJob, checkClaimOptions, claimPatch } from "../src/commit-rules.ts";
import { StorageError, StorageVersionChangeError } from "../src/errors.ts";
import { deepFreeze } from "../src/json.ts";
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
import type { Job, JsonValue, Task } from "../src/types.ts";
import { toStorageError } from "./indexeddb/errors.ts";
import { IdbRuleTx, quiet, type WriteTx } from "./indexeddb/rule-tx.ts";
import { byId, listTasks, UPPER } from "./indexeddb/queries.ts";
import { freezeJob, fromRow, type TaskRow, toRow } from "./indexeddb/rows.ts";
import { openDatabase, SCHEMA_VERSION, type TaskCoreDb, type TaskCoreSchema } from "./indexeddb/schema.ts";
import { Wakeup } from "./indexeddb/wake.ts";
import type { IDBPTransaction, StoreNames } from "idb";

export { SCHEMA_VERSION } from "./indexeddb/schema.ts";

/**
 * How hard a write transaction insists on reaching the disk before it reports success
 * (IndexedDB's `durability` hint): `"strict"` flushes to disk, so a commit survives a
 * power loss; `"relaxed"` survives a crash of the tab or the browser but may lose the
 * last commits when the machine loses power; `"default"` lets the browser choose.
 */
export type IndexedDbDurability = "strict" | "relaxed" | "default";

/** Options of {@link openIndexedDbStorage}. */
export interface IndexedDbStorageOptions {
  /** The database name. Every tab or worker that opens the same name shares the tasks. */
  name: string;
  /** Durability of write transactions (default `"strict"`). */
  durability?: IndexedDbDurability;
  /**
   * The IndexedDB factory (default `globalThis.indexedDB`). It must be the implementation
   * behind the global IDB classes (`idb` checks `instanceof` against them): in Node, Deno
   * and Bun, `import "fake-indexeddb/auto"` and pass `new IDBFactory()` for an isolated one.
   */
  idbFactory?: IDBFactory;
  /** Wake executors in other tabs and workers through a `BroadcastChannel` (default `true` where one exists). */
  broadcast?: boolean;
  /** Clock used when a caller passes no `now` (default `Date.now`). */
  now?: () => number;
}

/** The storage returned by {@link openIndexedDbStorage}. */
export interface IndexedDbStorage extends Storage {
  /** The IndexedDB database name. */
  readonly databaseName: string;
  /** The durability of its write transactions. */
  readonly durability: IndexedDbDurability;
}

type ReadTx = IDBPTransaction<TaskCoreSchema, StoreNames<TaskCoreSchema>[], "readonly">;

const ALL_STORES: StoreNames<TaskCoreSchema>[] = ["jobs", "tasks", "cache", "state"];
const JOB_STORES: StoreNames<TaskCoreSchema>[] = ["jobs", "tasks"];

class IdbStorage implements IndexedDbStorage {
  readonly name: string = "indexeddb";
  readonly capabilities: StorageCapabilities = { durable: true, shared: true };
  readonly databaseName: string;
  readonly durability: IndexedDbDurability;
  readonly #db: TaskCoreDb;
  readonly #now: () => number;
  readonly #wake: Wakeup;
  readonly #txOptions: IDBTransactionOptions;
  #closed: StorageError | undefined;

  constructor(db: TaskCoreDb, name: string, durability: IndexedDbDurability, wake: Wakeup, now: () => number) {
    this.#db = db;
    this.databaseName = name;
    this.durability = durability;
    this.#txOptions = durability === "default" ? {} : { durability };
    this.#wake = wake;
    this.#now = now;
  }

  /** Called by the connection's `versionchange` handler, before it closes. */
  versionChanged(newVersion: number | null): void {
    this.#closed ??= new StorageVersionChangeError(
      newVersion === null
        ? `Storage is closed: IndexedDB database "${this.databaseName}" was deleted by another tab or worker`
        : `Storage is closed: another tab or worker is upgrading IndexedDB database "${this.databaseName}" ` +
          `to version ${newVersion} (this code writes version ${SCHEMA_VERSION}); reload to continue`,
      newVersion,
    );
    // Wake the watchers once more, so an idle executor learns at once (its next call throws).
    this.#wake.close(true);
  }

  /** Called when the browser closes the connection abnormally. */
  terminated(): void {
    this.#closed ??= new StorageError(
      `Storage is closed: the browser closed IndexedDB database "${this.databaseName}" ` +
        `(site data cleared, or a storage failure)`,
    );
    this.#wake.close(true);
  }

  #check(): void {
    if (this.#closed) throw this.#closed;
  }

  #fail(e: unknown, action: string): Error {
    // A transaction refused because the connection closed under us says why it closed.
    if (this.#closed && (e as { name?: unknown })?.name === "InvalidStateError") return this.#closed;
    return toStorageError(e, this.databaseName, action);
  }

  /** Run `body` in one readwrite transaction; abort it (writing nothing) when `body` throws. */
  async #write<T>(
    stores: StoreNames<TaskCoreSchema>[],
    action: string,
    body: (tx: WriteTx) => T | Promise<T>,
  ): Promise<T> {
    this.#check();
    let tx: WriteTx;
    try {
      tx = this.#db.transaction(stores, "readwrite", this.#txOptions);
    } catch (e) {
      throw this.#fail(e, action);
    }
    const done = quiet(tx.done);
    try {
      const result = await body(tx);
      try {
        tx.commit();
      } catch {
        // Already committing.
      }
      await done;
      return result;
    } catch (e) {
      try {
        tx.abort();
      } catch {
        // Already aborted or finished.
      }
      // A failed request aborts the transaction; its error says more than the abort does.
      throw this.#fail(tx.error ?? e, action);
    }
  }

  /** Run `body` in one readonly transaction. */
  async #read<T>(
    stores: StoreNames<TaskCoreSchema>[],
    action: string,
    body: (tx: ReadTx) => Promise<T>,
  ): Promise<T> {
    this.#check();
    try {
      return await body(this.#db.transaction(stores, "readonly"));
    } catch (e) {
      throw this.#fail(e, action);
    }
  }

  async createJob(job: Job, tasks: readonly Task[]): Promise<CommitResult> {
    const r = await this.#write(JOB_STORES, "creating a job", async (tx) => {
      const rtx = new IdbRuleTx(tx);
      rtx.prefetchJobs([job?.id]);
      if (Array.isArray(tasks)) await rtx.prefetchMany(tasks.map((t) => t?.id));
      const result = await applyCreateJob(rtx, job, tasks, this.#now());
      await rtx.finish();
      return result;
    });
    if (r.readied > 0 || r.jobs.length > 0) this.#wake.notify();
    return r;
  }

  async commit(ops: readonly CommitOp[], now?: number): Promise<CommitResult> {
    const r = await this.#write(ALL_STORES, "committing", async (tx) => {
      const rtx = new IdbRuleTx(tx);
      await rtx.prefetchCommit(ops);
      const result = await applyCommit(rtx, ops, now ?? this.#now());
      await rtx.finish();
      return result;
    });
    if (r.readied > 0 || r.jobs.length > 0) this.#wake.notify();
    return r;
  }

  async claimReady(options: ClaimOptions): Promise<Task[]> {
    this.#check();
    checkClaimOptions(options);
    const { limit, now, owner, leaseMs } = options;
    if (limit === 0) return [];
    return await this.#write(["tasks"], "claiming tasks", async (tx) => {
      const store = tx.objectStore("tasks");
      const index = store.index("claim");
      const out: Task[] = [];
      // Skip-scan over [priority, runAt, id]: per priority (lowest first) take the due part,
      // `runAt <= now`, in one request, then jump past that priority's delayed tasks.
      let from: IDBKeyRange | null = null;
      while (out.length < limit) {
        const head = await index.openKeyCursor(from);
        if (!head) break;
        const priority = head.key[0];
        const due = IDBKeyRange.bound([priority, -Infinity], [priority, now, UPPER]);
        for (const row of await index.getAll(due, limit - out.length)) {
          const next = claimPatch(fromRow(row), owner, now, leaseMs);
          quiet(store.put(toRow(next, row._dependents)));
          out.push(next);
        }
        from = IDBKeyRange.lowerBound([priority, Infinity], true);
      }
      return out;
    });
  }

  async renewLeases(options: RenewOptions): Promise<string[]> {
    const ids = Array.isArray(options?.ids) ? options.ids.filter((id) => typeof id === "string") : [];
    if (ids.length === 0) {
      this.#check();
      return [];
    }
    return await this.#write(["tasks"], "renewing leases", async (tx) => {
      const store = tx.objectStore("tasks");
      const found = await Promise.all(ids.map((id) => quiet(store.get(id))));
      const out: string[] = [];
      for (const t of found) {
        if (!t || t.status !== "running" || t.leaseOwner !== options.owner) continue;
        quiet(store.put({ ...t, leaseExpiresAt: options.now + options.leaseMs }));
        out.push(t.id);
      }
      return out;
    });
  }

  expiredLeases(now: number, limit: number = Infinity): Promise<Task[]> {
    return this.#read(["tasks"], "reading expired leases", async (tx) => {
      const running = await tx.objectStore("tasks").index("status").getAll(
        IDBKeyRange.bound(["running"], ["running", UPPER]),
      );
      const out = running.filter((t) => t.leaseExpiresAt !== null && t.leaseExpiresAt <= now);
      out.sort((a, b) => a.leaseExpiresAt! - b.leaseExpiresAt! || byId(a, b));
      return out.slice(0, limit).map(fromRow);
    });
  }

  getJob(id: string): Promise<Job | undefined> {
    return this.#read(["jobs"], "reading a job", async (tx) => {
      if (typeof id !== "string") return undefined;
      return freezeJob(await tx.objectStore("jobs").get(id));
    });
  }

  listJobs(query: JobQuery = {}): Promise<Job[]> {
    return this.#read(["jobs"], "listing jobs", async (tx) => {
      const { status, after, limit } = query;
      if (limit !== undefined && !(limit > 0)) return [];
      const count = limit === undefined ? undefined : Math.floor(limit);
      const jobs = tx.objectStore("jobs");
      let found: Job[];
      if (status !== undefined) {
        const range = after === undefined
          ? IDBKeyRange.bound([status], [status, UPPER])
          : IDBKeyRange.bound([status, after], [status, UPPER], true);
        found = await jobs.index("status").getAll(range, count);
      } else {
        found = await jobs.getAll(after === undefined ? null : IDBKeyRange.lowerBound(after, true), count);
      }
      return found.map((j) => freezeJob(j)!);
    });
  }

  getTask(id: string): Promise<Task | undefined> {
    return this.#read(["tasks"], "reading a task", async (tx) => {
      if (typeof id !== "string") return undefined;
      const row = await tx.objectStore("tasks").get(id);
      return row && fromRow(row);
    });
  }

  getTasks(ids: readonly string[]): Promise<Task[]> {
    return this.#read(["tasks"], "reading tasks", async (tx) => {
      const store = tx.objectStore("tasks");
      const found = await Promise.all(
        ids.map((id) => (typeof id === "string" ? quiet(store.get(id)) : Promise.resolve(undefined))),
      );
      return found.filter((t): t is TaskRow => t !== undefined).map(fromRow);
    });
  }

  listTasks(query: TaskQuery): Promise<Task[]> {
    return this.#read(["tasks"], "listing tasks", (tx) => listTasks(tx.objectStore("tasks"), query ?? {}));
  }

  getCache(jobId: string, key: string): Promise<JsonValue | undefined> {
    return this.#read(["cache"], "reading the cache", async (tx) => {
      if (typeof jobId !== "string" || typeof key !== "string") return undefined;
      const r = await tx.objectStore("cache").get([jobId, key]);
      return r && deepFreeze(r.value);
    });
  }

  getState(scope: string, key: string): Promise<JsonValue | undefined> {
    return this.#read(["state"], "reading shared state", async (tx) => {
      if (typeof scope !== "string" || typeof key !== "string") return undefined;
      const r = await tx.objectStore("state").get([scope, key]);
      return r && deepFreeze(r.value);
    });
  }

  prune(options: PruneOptions): Promise<number> {
    return this.#write(["jobs", "tasks", "cache"], "pruning jobs", async (tx) => {
      const { finishedBefore, keepLast } = options ?? {};
      const jobs = tx.objectStore("jobs");
      const index = jobs.index("finished");
      // Ended jobs, newest first (finishedAt, then id, descending).
      const ended = keepLast !== undefined
        ? (await index.getAll()).reverse()
        : finishedBefore !== undefined
        ? (await index.getAll(IDBKeyRange.upperBound([finishedBefore], true))).reverse()
        : [];
      const doomed = ended.filter((job, i) => {
        const old = finishedBefore !== undefined && (job.finishedAt ?? 0) < finishedBefore;
        const extra = keepLast !== undefined && i >= keepLast;
        return (old || extra) && isJobFinal(job.status);
      });
      const tasks = tx.objectStore("tasks");
      const taskIds = await Promise.all(
        doomed.map((job) => quiet(tasks.index("job").getAllKeys(IDBKeyRange.bound([job.id], [job.id, UPPER])))),
      );
      const cache = tx.objectStore("cache");
      doomed.forEach((job, i) => {
        for (const id of taskIds[i]!) quiet(tasks.delete(id));
        quiet(cache.delete(IDBKeyRange.bound([job.id], [job.id, UPPER])));
        quiet(jobs.delete(job.id));
      });
      return doomed.length;
    });
  }

  watch(listener: () => void): () => void {
    return this.#wake.add(listener);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = new StorageError(`Storage is closed (IndexedDB database "${this.databaseName}")`);
      this.#wake.close();
      this.#db.close();
    }
    return Promise.resolve();
  }
}

/**
 * Open (creating or upgrading) an IndexedDB storage.
 *
 * Throws `StorageBlockedError` when another tab keeps an older version of the database
 * open, `StorageVersionError` when a newer task-core wrote it, and `StorageError` when
 * it belongs to something else. Once open, an upgrade or deletion by another tab closes this storage, whose
 * calls then throw `StorageVersionChangeError`; a full disk makes a write throw
 * `StorageQuotaError` and apply nothing.
 *
 * @example
 * ```ts
 * import { openIndexedDbStorage } from "./indexeddb.ts";
 * if (globalThis.indexedDB) {
 *   const storage = await openIndexedDbStorage({ name: "tasks", durability: "strict" });
 *   const stop = storage.watch(() => console.log("tasks are ready"));
 *   stop();
 *   await storage.close();
 * }
 * ```
 */
export async function openIndexedDbStorage(options: IndexedDbStorageOptions): Promise<IndexedDbStorage> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(
      `openIndexedDbStorage() expects an options object, got ${options === null ? "null" : typeof options}`,
    );
  }
  const { name, durability = "strict", broadcast = true, now = Date.now } = options;
  if (typeof name !== "string" || name === "") {
    throw new TypeError(
      `IndexedDB option "name" must be a non-empty string, got ${typeof name === "string" ? '""' : typeof name}`,
    );
  }
  if (durability !== "strict" && durability !== "relaxed" && durability !== "default") {
    throw new RangeError(
      `IndexedDB option "durability" must be "strict", "relaxed" or "default", got "${String(durability)}"`,
    );
  }
  if (typeof now !== "function") throw new TypeError(`IndexedDB option "now" must be a function, got ${typeof now}`);
  const factory = options.idbFactory ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  const g = globalThis as { IDBRequest?: unknown; IDBKeyRange?: unknown };
  if (
    !factory || typeof factory.open !== "function" || typeof g.IDBRequest !== "function" ||
    typeof g.IDBKeyRange !== "function"
  ) {
    throw new TypeError(
      `IndexedDB is not available in this runtime: use a browser, or import "fake-indexeddb/auto" ` +
        `(idb needs the global IDB classes; "idbFactory" alone is not enough)`,
    );
  }
  // The connection's handlers are attached before the storage exists; they reach it
  // through this holder (no event can fire in between: `await` resumes in a microtask).
  const holder: { storage?: IdbStorage } = {};
  const db = await openDatabase({
    factory,
    name,
    onVersionChange: (v) => holder.storage?.versionChanged(v),
    onTerminated: () => holder.storage?.terminated(),
  });
  const storage = new IdbStorage(db, name, durability, new Wakeup(name, broadcast), now);
  holder.storage = storage;
  return storage;
}
