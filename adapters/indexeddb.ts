/**
 * IndexedDB storage (through `idb`): durable in the browser, shared by every tab and
 * worker of an origin. Each `createJob`, `commit` and `claimReady` is one readwrite
 * transaction, and IndexedDB runs overlapping readwrite transactions one after the
 * other, so two tabs never claim the same task. `watch()` wakes executors in other tabs
 * through a `BroadcastChannel` named after the database.
 *
 * A claim of many tasks is one record, not a write per task (see `indexeddb/claims.ts`),
 * so a task costs about one row write after its creation: its completion.
 *
 * Outside a browser, install the classes of `fake-indexeddb` first
 * (`import "fake-indexeddb/auto"`): `idb` checks records against the global IDB classes.
 *
 * @example
 * ```ts
 * import { openIndexedDbStorage } from "@dagger/task-core/adapters/indexeddb";
 * if (globalThis.indexedDB) { // a browser, or fake-indexeddb/auto
 *   const storage = await openIndexedDbStorage({ name: "my-app-tasks" });
 *   console.log(await storage.listJobs({ status: "running" }));
 *   await storage.close();
 * }
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
  claimPatch,
  expiredArgs,
  takeJob,
  takeOps,
  takeTasks,
} from "../src/commit-rules.ts";
import { StorageClosedError, type StorageError, StorageVersionChangeError } from "../src/errors.ts";
import { deepFreeze } from "../src/json.ts";
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
} from "../src/storage.ts";
import { isJobFinal } from "../src/status.ts";
import type { Job, JsonValue, Task } from "../src/types.ts";
import { ClaimBook, mayHaveExpired, readRows } from "./indexeddb/claims.ts";
import { toStorageError } from "./indexeddb/errors.ts";
import { IdLeaves } from "./indexeddb/leaves.ts";
import { IdbRuleTx, type WriteTx } from "./indexeddb/rule-tx.ts";
import { listTasks } from "./indexeddb/queries.ts";
import { ReadyQueue } from "./indexeddb/ready.ts";
import { freezeJob, fromRow, type TaskRow, toRow } from "./indexeddb/rows.ts";
import {
  type LeaseRecord,
  openDatabase,
  SCHEMA_VERSION,
  type TaskCoreDb,
  type TaskCoreSchema,
} from "./indexeddb/schema.ts";
import { byId, putRows, quiet, readCount, UPPER } from "./indexeddb/util.ts";
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
  /**
   * A claim of at least this many tasks is stored as one claim record instead of a
   * write per task (default 8); a smaller one rewrites each claimed task's row, which
   * costs fewer requests for one or two tasks.
   */
  claimRecordFrom?: number;
  /**
   * Where the storage notes that this database exists, apart from IndexedDB, so that an
   * open can tell a database deleted since (see {@link IndexedDbOpenReport.recreated}):
   * default the page's `localStorage`; `null` notes nothing. Workers, Node, Deno and Bun
   * have none by default.
   */
  markers?: IndexedDbMarkers | null;
}

/** A synchronous key-value store, as `localStorage` is. */
export interface IndexedDbMarkers {
  /** The value stored under `key`, or `null`. */
  getItem(key: string): string | null;
  /** Store `value` under `key`. */
  setItem(key: string, value: string): void;
}

/** What an open found. */
export interface IndexedDbOpenReport {
  /** This open created the database: there was none of that name. */
  readonly created: boolean;
  /**
   * This open created the database although one of that name was opened here before (its
   * marker says so): it was deleted since, with everything in it. By the browser (Chromium
   * deletes an origin's IndexedDB that it could not write, as on a disk with no byte left,
   * and reports nothing), by another tab or by the app's own code. Clearing the site's data
   * clears the marker too, and is not reported.
   */
  readonly recreated: boolean;
}

/** The storage returned by {@link openIndexedDbStorage}. */
export interface IndexedDbStorage extends Storage {
  /** The IndexedDB database name. */
  readonly databaseName: string;
  /** The durability of its write transactions. */
  readonly durability: IndexedDbDurability;
  /** What the open found: whether it created the database, and whether one was deleted before. */
  readonly openReport: IndexedDbOpenReport;
}

type ReadTx = IDBPTransaction<TaskCoreSchema, StoreNames<TaskCoreSchema>[], "readonly">;

/** Stores a task write may touch: the row, the claim queue, the claims. */
const TASK_STORES: StoreNames<TaskCoreSchema>[] = ["jobs", "tasks", "members", "ready", "claims", "leases"];
const ALL_STORES: StoreNames<TaskCoreSchema>[] = [...TASK_STORES, "cache", "state"];
/** Stores a task read may touch: the rows and the claims overlaid on them. */
const READ_STORES: StoreNames<TaskCoreSchema>[] = ["tasks", "claims", "leases"];
/** Stores a task query may touch: those, and the jobs' members. */
const LIST_STORES: StoreNames<TaskCoreSchema>[] = [...READ_STORES, "members"];

class IdbStorage implements IndexedDbStorage {
  readonly name: string = "indexeddb";
  readonly capabilities: StorageCapabilities = { durable: true, shared: true };
  readonly databaseName: string;
  readonly durability: IndexedDbDurability;
  openReport: IndexedDbOpenReport = { created: false, recreated: false };
  readonly #db: TaskCoreDb;
  readonly #now: () => number;
  readonly #wake: Wakeup;
  readonly #txOptions: IDBTransactionOptions;
  readonly #claimRecordFrom: number;
  #closed: StorageError | undefined;

  constructor(
    db: TaskCoreDb,
    name: string,
    durability: IndexedDbDurability,
    wake: Wakeup,
    now: () => number,
    claimRecordFrom: number,
  ) {
    this.#db = db;
    this.databaseName = name;
    this.durability = durability;
    this.#txOptions = durability === "default" ? {} : { durability };
    this.#wake = wake;
    this.#now = now;
    this.#claimRecordFrom = claimRecordFrom;
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
    this.#wake.close();
  }

  /** Called when the browser closes the connection abnormally. */
  terminated(): void {
    this.#closed ??= new StorageClosedError(
      `Storage is closed: the browser closed IndexedDB database "${this.databaseName}" ` +
        `(site data cleared, or a storage failure)`,
    );
    this.#wake.close();
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

  async createJob(given: Job, list: readonly Task[]): Promise<CommitResult> {
    const job = takeJob(given);
    const tasks = takeTasks(list);
    const r = await this.#write(TASK_STORES, "creating a job", async (tx) => {
      const rtx = new IdbRuleTx(tx);
      rtx.prefetchJobs([job?.id]);
      if (Array.isArray(tasks)) await rtx.prefetchMany(tasks.map((t) => t?.id));
      const result = await applyCreateJob(rtx, job, tasks, this.#now());
      await rtx.finish();
      return result;
    });
    if (r.readied > 0 || r.jobs.length > 0) this.#wake.notify(changeOf(r));
    return r;
  }

  async commit(given: readonly CommitOp[], now?: number): Promise<CommitResult> {
    const ops = takeOps(given);
    const r = await this.#write(ALL_STORES, "committing", async (tx) => {
      const rtx = new IdbRuleTx(tx);
      await rtx.prefetchCommit(ops);
      const result = await applyCommit(rtx, ops, now ?? this.#now());
      await rtx.finish();
      return result;
    });
    if (r.readied > 0 || r.jobs.length > 0) this.#wake.notify(changeOf(r));
    return r;
  }

  async claimReady(options: ClaimOptions): Promise<Task[]> {
    this.#check();
    const limit = checkClaimOptions(options);
    const { now, owner, leaseMs } = options;
    const start = options.start ?? 0;
    const agents = claimAgents(options.agents);
    if (limit === 0) return [];
    return await this.#write(["tasks", "ready", "claims", "leases"], "claiming tasks", async (tx) => {
      const ids = [...new Set(await new ReadyQueue(tx).take(limit, now, agents))];
      if (ids.length === 0) return [];
      const store = tx.objectStore("tasks");
      const rows = await readRows(store, ids);
      const held: TaskRow[] = [];
      const out: Task[] = [];
      for (const id of ids) {
        const row = rows.get(id);
        if (!row || row.status !== "ready") continue; // not ready any more: the queue entry was stale
        held.push(row);
        out.push(claimPatch(fromRow(row), owner, now, leaseMs, out.length < start));
      }
      if (held.length >= this.#claimRecordFrom) {
        new ClaimBook(tx).create(held, owner, now, leaseMs, Math.min(start, held.length));
      } else {
        putRows(store, held.map((row, i) => toRow(out[i]!, row._dependents)));
      }
      return out;
    });
  }

  async renewLeases(options: RenewOptions): Promise<string[]> {
    this.#check(); // closed says so whatever the arguments, as on every adapter
    checkRenewOptions(options);
    const ids = Array.isArray(options?.ids) ? options.ids.filter((id) => typeof id === "string") : [];
    if (ids.length === 0) {
      this.#check();
      return [];
    }
    return await this.#write(READ_STORES, "renewing leases", async (tx) => {
      const store = tx.objectStore("tasks");
      const rows = await readRows(store, ids);
      const claims = new ClaimBook(tx);
      await claims.resolve(rows.values());
      const exp = options.now + options.leaseMs;
      const byLease = new Map<LeaseRecord, Set<string>>();
      const out: string[] = [];
      for (const id of ids) {
        const t = rows.get(id);
        if (!t) continue;
        const ref = claims.ref(id);
        if (ref) {
          if (ref.lease.owner !== options.owner) continue;
          const set = byLease.get(ref.lease);
          if (set) set.add(id);
          else byLease.set(ref.lease, new Set([id]));
        } else {
          if (t.status !== "running" || t.leaseOwner !== options.owner) continue;
          quiet(store.put({ ...t, leaseExpiresAt: exp }));
        }
        out.push(id);
      }
      for (const [lease, held] of byLease) claims.renew(lease, held, exp);
      claims.flush();
      return out;
    });
  }

  expiredLeases(now: number, limit: number = Infinity): Promise<Task[]> {
    const a = expiredArgs(now, limit);
    now = a.now ?? 0;
    return this.#read(READ_STORES, "reading expired leases", async (tx) => {
      // Checked inside the read, so that a closed storage says so whatever `now` is.
      if (a.now === null) return [];
      const [running, held] = await Promise.all([
        tx.objectStore("tasks").index("status").getAll(IDBKeyRange.bound(["running"], ["running", UPPER])),
        new ClaimBook(tx).held((lease) => mayHaveExpired(lease, now)),
      ]);
      const out = [
        ...running.filter((t) => typeof t.leaseExpiresAt === "number" && t.leaseExpiresAt <= now).map(fromRow),
        ...held.filter((t) => t.leaseExpiresAt !== null && t.leaseExpiresAt <= now),
      ];
      out.sort((a, b) => a.leaseExpiresAt! - b.leaseExpiresAt! || byId(a, b));
      return a.limit === null ? out : out.slice(0, a.limit);
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
      const { status, after, limit } = checkQuery(query, "listJobs");
      if (limit !== undefined && !(limit > 0)) return [];
      const count = limit === undefined ? undefined : readCount(Math.floor(limit));
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
    return this.#read(READ_STORES, "reading a task", async (tx) => {
      if (typeof id !== "string") return undefined;
      const row = await tx.objectStore("tasks").get(id);
      if (!row) return undefined;
      const claims = new ClaimBook(tx);
      await claims.resolve([row]);
      return claims.view(row);
    });
  }

  getTasks(ids: readonly string[]): Promise<Task[]> {
    try {
      checkIds(ids, "getTasks()");
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#read(READ_STORES, "reading tasks", async (tx) => {
      const rows = await readRows(tx.objectStore("tasks"), ids.filter((id) => typeof id === "string"));
      const claims = new ClaimBook(tx);
      await claims.resolve(rows.values());
      const out: Task[] = [];
      for (const id of ids) {
        const row = typeof id === "string" ? rows.get(id) : undefined;
        if (row) out.push(claims.view(row));
      }
      return out;
    });
  }

  listTasks(query: TaskQuery): Promise<Task[]> {
    return this.#read(LIST_STORES, "listing tasks", (tx) => listTasks(tx, checkQuery(query, "listTasks")));
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
    let checked: PruneOptions;
    try {
      this.#check();
      checked = checkPruneOptions(options);
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#write(["jobs", "tasks", "members", "cache"], "pruning jobs", async (tx) => {
      const { finishedBefore, keepLast } = checked;
      const jobs = tx.objectStore("jobs");
      const index = jobs.index("finished");
      // Ended jobs by end time, then id. Those to delete are the oldest: the ones ended before
      // `finishedBefore`, and those past the newest `keepLast`, both a prefix of the index;
      // only they are read (the kept ones are counted, not read).
      let oldest: Job[] = [];
      if (keepLast !== undefined) {
        const total = await index.count();
        const newer = finishedBefore !== undefined
          ? await index.count(IDBKeyRange.lowerBound([finishedBefore]))
          : total;
        const n = total - Math.min(keepLast, newer);
        if (n > 0) oldest = await index.getAll(null, readCount(n));
      } else if (finishedBefore !== undefined) {
        oldest = await index.getAll(IDBKeyRange.upperBound([finishedBefore], true));
      }
      const doomed = oldest.filter((job) => isJobFinal(job.status));
      const tasks = tx.objectStore("tasks");
      const members = new IdLeaves(tx, "members");
      const taskIds = await Promise.all(doomed.map((job) => members.ids([job.id])));
      const cache = tx.objectStore("cache");
      doomed.forEach((job, i) => {
        for (const id of taskIds[i]!) quiet(tasks.delete(id));
        members.clear([job.id]);
        quiet(cache.delete(IDBKeyRange.bound([job.id], [job.id, UPPER])));
        quiet(jobs.delete(job.id));
      });
      return doomed.length;
    });
  }

  watch(listener: (change?: StorageChange) => void): () => void {
    return this.#wake.add(listener);
  }

  close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = new StorageClosedError(`Storage is closed (IndexedDB database "${this.databaseName}")`);
      // Told once more: whoever waits on a watcher calls again and learns of the close.
      this.#wake.close();
      this.#db.close();
    }
    return Promise.resolve();
  }
}

/** The page's `localStorage` (not a worker's, Node's, Deno's or Bun's: they have no page). */
function pageMarkers(): IndexedDbMarkers | null {
  const g = globalThis as { document?: unknown; localStorage?: IndexedDbMarkers };
  try {
    return typeof g.document === "object" && g.document !== null && g.localStorage ? g.localStorage : null;
  } catch {
    return null; // a sandboxed frame refuses localStorage
  }
}

/**
 * Note in `markers` that database `name` was opened; answers whether it was noted before.
 * A store that refuses (full, disabled) notes nothing and answers `false`.
 */
function noteOpened(markers: IndexedDbMarkers | null, name: string): boolean {
  if (markers === null) return false;
  const key = `task-core:indexeddb:${name}`;
  try {
    if (markers.getItem(key) !== null) return true;
    markers.setItem(key, "opened");
  } catch {
    // Nothing noted: a later deletion goes unreported.
  }
  return false;
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
 * import { openIndexedDbStorage } from "@dagger/task-core/adapters/indexeddb";
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
  checkOptionNames(
    "IndexedDB option",
    options,
    ["name", "durability", "idbFactory", "broadcast", "now", "claimRecordFrom", "markers"],
    { indexedDB: `"idbFactory"`, factory: `"idbFactory"`, databaseName: `"name"`, dbName: `"name"` },
  );
  const { name, durability = "strict", broadcast = true, now = Date.now, claimRecordFrom = 8 } = options;
  const markers = options.markers === undefined ? pageMarkers() : options.markers;
  if (
    markers !== null && (typeof markers !== "object" || typeof markers.getItem !== "function" ||
      typeof markers.setItem !== "function")
  ) {
    throw new TypeError(`IndexedDB option "markers" must have getItem() and setItem(), or be null`);
  }
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
  if (!Number.isInteger(claimRecordFrom) || claimRecordFrom < 1) {
    throw new RangeError(`IndexedDB option "claimRecordFrom" must be an integer >= 1, got ${String(claimRecordFrom)}`);
  }
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
  let created = false;
  const db = await openDatabase({
    factory,
    name,
    onVersionChange: (v) => holder.storage?.versionChanged(v),
    onTerminated: () => holder.storage?.terminated(),
    onCreated: () => (created = true),
  });
  const storage = new IdbStorage(db, name, durability, new Wakeup(name, broadcast), now, claimRecordFrom);
  holder.storage = storage;
  // Noted at every open: a database made by an older version gets its marker too.
  const seen = noteOpened(markers, name);
  storage.openReport = Object.freeze({ created, recreated: created && seen });
  return storage;
}
