/**
 * The storage contract on sql.js: one SQL transaction per `createJob`, `commit` and
 * `claimReady`, serialised in-process by a mutex; the scheduling rules from
 * `commit-rules.ts`; changes made durable by a journal with group commit (see
 * `group-commit.ts`) before any call that made them resolves.
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
  copyTask,
  expiredArgs,
  isContractError,
  takeJob,
  takeOps,
  takeTasks,
} from "../../src/commit-rules.ts";
import { StorageClosedError, StorageError } from "../../src/errors.ts";
import { Mutex } from "../../src/lock.ts";
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
} from "../../src/storage.ts";
import type { Job, JsonValue, Task } from "../../src/types.ts";
import type { SqlDb } from "./db.ts";
import { type CompactionOptions, GroupCommit } from "./group-commit.ts";
import type { SqlJsLoadOptions, SqlJsModule } from "./module.ts";
import type { SqlJsPersister } from "./persister.ts";

/** Options of `openSqlJsStorage`. */
export interface SqlJsStorageOptions extends SqlJsLoadOptions {
  /**
   * An initialised sql.js module, or a function that loads one (called once, at open).
   * Default: the `sql.js` package, loaded lazily with `locateFile` / `wasmBinary`.
   */
  sql?: SqlJsModule | (() => Promise<SqlJsModule>);
  /** Where the database is kept. Default: nowhere (memory only, not durable). */
  persister?: SqlJsPersister;
  /** When the journal is folded into a snapshot. */
  compaction?: CompactionOptions;
  /** Run `PRAGMA quick_check` on the stored snapshot at open (default `true`). */
  verify?: boolean;
  /** Clock used when a caller passes no `now` (default `Date.now`). */
  now?: () => number;
}

/**
 * Options a test sets to reach what users need not tune (not exported from the adapter's
 * entry point): pass them along with {@link SqlJsStorageOptions}.
 */
export interface SqlJsInternalOptions {
  /**
   * The most payload bytes of one journal frame (default `MAX_FRAME_BYTES` in `journal.ts`):
   * a flush writes as many frames as its changes need. Tests set a tiny one.
   */
  maxFrameBytes?: number;
}

/** What opening found and did. */
export interface SqlJsOpenReport {
  /** Size of the stored snapshot (0 for a new database). */
  snapshotBytes: number;
  /**
   * Journal frames replayed over the snapshot (a flush writes the transactions queued
   * together as one frame, or as several when their changes are large).
   */
  replayedFrames: number;
  /** Bytes of a torn journal tail that were dropped (changes whose call never resolved). */
  droppedBytes: number;
  /** Whether a journal older than the snapshot was discarded (a crash during compaction). */
  staleJournal: boolean;
  /** The schema version migrated from, or `null` when no migration ran. */
  migratedFrom: number | null;
}

/** Persisting counters. */
export interface SqlJsPersistStats {
  /** Journal appends (flushes) so far. */
  appends: number;
  /** Journal bytes appended so far. */
  appendedBytes: number;
  /** Snapshots written so far. */
  compactions: number;
}

/** A storage on sql.js. */
export interface SqlJsStorage extends Storage {
  /** What opening found (replayed journal, dropped torn tail, migration). */
  readonly openReport: SqlJsOpenReport;
  /** Persisting counters (all zero without a persister). */
  readonly persistStats: SqlJsPersistStats;
  /** Fold the journal into a new snapshot now (a no-op without a persister). */
  compact(): Promise<void>;
}

/** Watchers hear of commits that readied tasks or changed a job's status. */
const wakes = (r: CommitResult): boolean => r.readied > 0 || r.jobs.length > 0;
const never = (): boolean => false;

/** The storage; made by `openSqlJsStorage` (see `open.ts`). */
export class SqlJsStorageImpl implements SqlJsStorage {
  readonly name: string = "sqljs";
  readonly capabilities: StorageCapabilities;
  readonly openReport: SqlJsOpenReport;
  readonly #db: SqlDb;
  readonly #persister: SqlJsPersister | undefined;
  readonly #writer: GroupCommit | null;
  readonly #lock = new Mutex();
  readonly #now: () => number;
  readonly #listeners = new Set<(change?: StorageChange) => void>();
  #closed = false;
  #closing: Promise<void> | null = null;

  constructor(
    db: SqlDb,
    persister: SqlJsPersister | undefined,
    options: SqlJsStorageOptions,
    report: SqlJsOpenReport,
    start: { generation: number; journalBytes: number; snapshotBytes: number; appends: number },
  ) {
    this.#db = db;
    this.#persister = persister;
    this.#now = options.now ?? Date.now;
    this.openReport = report;
    this.capabilities = { durable: persister !== undefined, shared: false };
    this.#writer = persister
      ? new GroupCommit({
        persister,
        ...start,
        compaction: options.compaction,
        maxFrameBytes: (options as SqlJsInternalOptions).maxFrameBytes,
        exportSnapshot: (generation, onExported) =>
          this.#lock.run(() => {
            const bytes = this.#db.snapshot(generation);
            onExported();
            return bytes;
          }),
      })
      : null;
  }

  get persistStats(): SqlJsPersistStats {
    return { ...(this.#writer?.stats ?? { appends: 0, appendedBytes: 0, compactions: 0 }) };
  }

  /** Checked when a call starts: calls made before `close()` still complete. */
  #check(): void {
    if (this.#closed) throw new StorageClosedError("Storage is closed");
  }

  /**
   * Under the lock, before any work: after a failed save, save the whole database again
   * (see `GroupCommit.recover`, which spaces out attempts that keep failing). Throws while
   * that fails.
   */
  async #recover(): Promise<void> {
    const writer = this.#writer;
    if (writer?.failure) await writer.recover((generation) => this.#db.snapshot(generation), this.#now());
  }

  /**
   * Run a write in one transaction under the lock; resolve once its changes are durable. A
   * write that changes nothing (a claim of no task, a compare-and-swap that fails) answers,
   * as a read does, once what it saw is durable: a `ConflictError` reports the state it found.
   */
  async #write<T>(fn: () => T | Promise<T>, wakes: (value: T) => boolean): Promise<T> {
    this.#check();
    const outcome = await this.#lock.run(async () => {
      if (this.#writer?.failure) await this.#recover();
      const writer = this.#writer;
      const seen = writer?.seq ?? 0;
      try {
        let parts = null as Uint8Array[] | null;
        const { value } = await this.#db.transaction(fn, (records) => {
          if (records.length === 0 || !writer) return;
          try {
            parts = writer.encode(records);
          } catch (e) {
            // Before COMMIT: the transaction rolls back, and the call may be tried again.
            throw new StorageError(
              `Encoding the journal failed; nothing was changed: ${(e as Error)?.message ?? String(e)}`,
              { cause: e },
            );
          }
        });
        return { value, seq: parts ? writer!.enqueue(parts) : seen, refused: false as const };
      } catch (e) {
        if (isContractError(e)) return { error: e, seq: seen, refused: true as const };
        throw new StorageError(`sql.js failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
      }
    });
    if (outcome.seq > 0) await this.#writer!.whenDurable(outcome.seq);
    if (outcome.refused) throw outcome.error;
    const value = outcome.value;
    if (wakes(value)) {
      const change = changeOf(value as CommitResult);
      tellWatchers(this.#listeners, change);
    }
    return value;
  }

  /** Run a read under the lock (never inside another transaction); answer once what it saw is durable. */
  async #read<T>(fn: () => T): Promise<T> {
    this.#check();
    const { value, seq } = await this.#lock.run(async () => {
      if (this.#writer?.failure) await this.#recover();
      try {
        return { value: fn(), seq: this.#writer?.seq ?? 0 };
      } catch (e) {
        // sql.js throws strings for some misuse: callers get an Error, as from writes.
        if (isContractError(e)) throw e;
        throw new StorageError(`sql.js failed: ${(e as Error)?.message ?? String(e)}`, { cause: e });
      }
    });
    if (seq > 0) await this.#writer!.whenDurable(seq);
    return value;
  }

  createJob(given: Job, list: readonly Task[]): Promise<CommitResult> {
    // Written when earlier writes are done: the batch as it was at the call.
    const job = takeJob(given);
    const tasks = takeTasks(list);
    return this.#write(() => applyCreateJob(this.#db.ruleTx(), job, tasks, this.#now()), wakes);
  }

  commit(given: readonly CommitOp[], now?: number): Promise<CommitResult> {
    const ops = takeOps(given);
    return this.#write(() => applyCommit(this.#db.ruleTx(), ops, now ?? this.#now()), wakes);
  }

  claimReady(options: ClaimOptions): Promise<Task[]> {
    let limit: number;
    try {
      this.#check();
      limit = checkClaimOptions(options);
    } catch (e) {
      return Promise.reject(e);
    }
    const { now, owner, leaseMs } = options;
    const start = options.start ?? 0;
    const agents = claimAgents(options.agents);
    if (limit === 0) return Promise.resolve([]);
    return this.#write(() => {
      const out: Task[] = [];
      // SQLite's LIMIT -1 is none.
      for (const t of this.#db.claimable(now, limit === Infinity ? -1 : limit, agents)) {
        const next = claimPatch(t, owner, now, leaseMs, out.length < start);
        this.#db.putTask(next, t);
        out.push(next);
      }
      return out;
    }, never);
  }

  renewLeases(options: RenewOptions): Promise<string[]> {
    return this.#write(() => {
      checkRenewOptions(options);
      const out: string[] = [];
      for (const id of options.ids) {
        if (typeof id !== "string") continue; // no such task, as on every adapter
        const t = this.#db.getTask(id);
        if (!t || t.status !== "running" || t.leaseOwner !== options.owner) continue;
        const renewed = copyTask(t);
        renewed.leaseExpiresAt = options.now + options.leaseMs;
        this.#db.putTask(renewed, t);
        out.push(id);
      }
      return out;
    }, never);
  }

  expiredLeases(now: number, limit: number = Infinity): Promise<Task[]> {
    // As on the other adapters (`expiredArgs`): a time that is not a number is no time any
    // lease expired at (bound as text, it would compare above every number: every lease).
    return this.#read(() => {
      const a = expiredArgs(now, limit);
      return a.now === null ? [] : this.#db.expired(a.now, a.limit);
    });
  }

  getJob(id: string): Promise<Job | undefined> {
    return this.#read(() => typeof id === "string" ? this.#db.getJob(id) : undefined);
  }

  listJobs(query: JobQuery = {}): Promise<Job[]> {
    return this.#read(() => this.#db.listJobs(checkQuery(query, "listJobs")));
  }

  getTask(id: string): Promise<Task | undefined> {
    return this.#read(() => typeof id === "string" ? this.#db.getTask(id) : undefined);
  }

  getTasks(ids: readonly string[]): Promise<Task[]> {
    return this.#read(() => {
      checkIds(ids, "getTasks()");
      const out: Task[] = [];
      for (const id of ids) {
        const t = typeof id === "string" ? this.#db.getTask(id) : undefined;
        if (t) out.push(t);
      }
      return out;
    });
  }

  listTasks(query: TaskQuery): Promise<Task[]> {
    return this.#read(() => {
      const q = checkQuery(query, "listTasks");
      // A filter that is no id (a number, an object, null) matches no task, as on every adapter.
      const noId = (v: unknown): boolean => v !== undefined && typeof v !== "string";
      return noId(q.jobId) || noId(q.agent) || noId(q.parentId) ? [] : this.#db.listTasks(q);
    });
  }

  getCache(jobId: string, key: string): Promise<JsonValue | undefined> {
    return this.#read(() =>
      typeof jobId === "string" && typeof key === "string" ? this.#db.getCache(jobId, key) : undefined
    );
  }

  getState(scope: string, key: string): Promise<JsonValue | undefined> {
    return this.#read(() =>
      typeof scope === "string" && typeof key === "string" ? this.#db.getState(scope, key) : undefined
    );
  }

  prune(options: PruneOptions): Promise<number> {
    return this.#write(() => {
      const { finishedBefore, keepLast } = checkPruneOptions(options);
      const doomed = this.#db.prunable(finishedBefore, keepLast);
      for (const id of doomed) this.#db.dropJob(id);
      return doomed.size;
    }, never);
  }

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

  async compact(): Promise<void> {
    this.#check();
    await this.#lock.run(() => this.#recover());
    await this.#writer?.compact();
  }

  close(): Promise<void> {
    if (!this.#closing) {
      this.#closed = true;
      // Told once more: whoever waits on a watcher calls again and learns of the close.
      tellWatchers(this.#listeners, undefined, true);
      this.#closing = (async () => {
        await this.#lock.run(() => {});
        await this.#writer?.settle();
        try {
          this.#db.close();
        } finally {
          await this.#persister?.close();
        }
      })();
    }
    return this.#closing;
  }
}
