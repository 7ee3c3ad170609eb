/**
 * The IndexedDB schema of task-core: stores, indexes, numbered migrations, and opening a
 * connection that turns `blocked`, `versionchange` and an abnormal close into typed errors.
 *
 * What shapes it (Chromium 156, measured in the browser process, BENCHMARKS.md): a `put`
 * has a fixed price per request (~130 us of CPU for a lean task row, and a tiny record
 * costs 3/4 of that), each index entry of the record adds ~45 us, and ranged requests cost a
 * fraction per record (`getAll` ~17 us, a ranged `delete` ~40 us). So a task's life is
 * written with as few per-task requests and index entries as possible: its row is
 * written when it is created and when a commit changes it, never when it is claimed
 * (`ready.ts`, `claims.ts`), and the row carries one index entry.
 *
 * - `tasks`: lean rows (`rows.ts`). One index holds every task: `status`, keyed
 *   `[status, agent, id]`, so it serves `listTasks({ status })`, `({ status, agent })` and
 *   `({ agent })` (one range per status). It ends with the task id, so an index range
 *   `[...prefix, after]` to `[...prefix, []]` (arrays sort after strings) pages in id
 *   order without a scan. `parentId` holds spawned tasks only.
 * - `members`: the task ids of each job in leaves of up to 16 ids (`leaves.ts`), written
 *   when tasks are created: a job's tasks never change, and an index `[jobId, ...]` on the
 *   rows would add an entry to every write of every row.
 * - `ready`: the claim queue, ready tasks by `[priority, runAt, id]` in leaves; a claim
 *   takes the head of it with one read and one ranged delete (`ready.ts`).
 * - `claims` + `leases`: one record each per claim of many tasks; a claimed task's row
 *   stays as it was, and reads overlay the claim on it (`claims.ts`).
 *
 * @module
 */

import { type DBSchema, type IDBPDatabase, type StoreNames, wrap } from "idb";
import { StorageBlockedError, StorageError, StorageVersionError } from "../../src/errors.ts";
import type { Job, JobStatus, JsonValue, TaskStatus } from "../../src/types.ts";
import { type TaskRow, toRow } from "./rows.ts";
import { toStorageError } from "./errors.ts";

/** One entry of a job's cache, keyed by `[jobId, key]`. */
export interface CacheRecord {
  /** The job. */
  jobId: string;
  /** The cache key. */
  key: string;
  /** The value. */
  value: JsonValue;
}

/** One entry of shared state, keyed by `[scope, key]`. */
export interface StateRecord {
  /** The scope. */
  scope: string;
  /** The key within the scope. */
  key: string;
  /** The value. */
  value: JsonValue;
}

/** One entry of the `meta` store. */
export interface MetaRecord {
  /** The entry's name (`format`, `createdAt`). */
  key: string;
  /** Its value. */
  value: JsonValue;
}

/** One leaf of the ready queue: ready tasks of one agent, priority and runAt, ids ascending (see `ready.ts`). */
export interface ReadyLeaf {
  /** `[agent, priority, runAt, last id]`: leaves of one agent, priority and runAt never overlap in ids. */
  k: [string, number, number, string];
  /** The ids, ascending (at least one). */
  ids: string[];
}

/** One leaf of a job's task ids, ascending (see `leaves.ts`). */
export interface MemberLeaf {
  /** `[jobId, last id]`: the leaves of a job never overlap in ids. */
  k: [string, string];
  /** The ids, ascending (at least one). */
  ids: string[];
}

/** What a claim of many tasks recorded instead of rewriting their rows (see `claims.ts`). Never rewritten. */
export interface ClaimRecord {
  /** The claim id (also the key of its {@link LeaseRecord}). */
  id: string;
  /** The claim time: the tasks' `updatedAt`, and `startedAt` of the first `s` (the others have none until started). */
  at: number;
  /** The claimed task ids. */
  ids: string[];
  /** The version of each task's row when claimed (the claim holds the task while its row keeps it). */
  v: number[];
  /** How many of the first `ids` the claim started (`startedAt = at`; absent: none). */
  s?: number;
}

/** The mutable part of a claim: owner, lease expiry, and how many of its tasks it still holds. */
export interface LeaseRecord {
  /** The claim id. */
  id: string;
  /** The lease owner. */
  owner: string;
  /** When the lease expires. */
  exp: number;
  /** How many of the claim's tasks are still held (the records go when it reaches zero). */
  left: number;
  /** Tasks whose lease was renewed apart from the others: task id -> expiry. */
  over?: Record<string, number>;
}

/** The database layout, typed for `idb`. */
export interface TaskCoreSchema extends DBSchema {
  /** Jobs by id. */
  jobs: {
    key: string;
    value: Job;
    indexes: {
      /** `listJobs({ status })` in id order. */
      status: [JobStatus, string];
      /** Ended jobs by end time (running jobs have no `finishedAt` and are left out): `prune`. */
      finished: [number, string];
    };
  };
  /** Task rows by id (see `rows.ts`). */
  tasks: {
    key: string;
    value: TaskRow;
    indexes: {
      /** `listTasks({ status })` and `listTasks({ agent })`; stored running tasks for `expiredLeases`. */
      status: [TaskStatus, string, string];
      /** `listTasks({ parentId })` (tasks without a parent are left out). */
      parentId: [string, string];
    };
  };
  /** The claim queue: leaves of ready task ids by `[agent, priority, runAt, last id]`. */
  ready: { key: [string, number, number, string]; value: ReadyLeaf };
  /** The tasks of each job: leaves of ids by `[jobId, last id]`. */
  members: { key: [string, string]; value: MemberLeaf };
  /** Claims of many tasks, by claim id. */
  claims: {
    key: string;
    value: ClaimRecord;
    indexes: {
      /** The claims naming a task (multiEntry). */
      ids: string;
    };
  };
  /** The lease of each claim, by claim id. */
  leases: { key: string; value: LeaseRecord };
  /** Job cache entries. */
  cache: { key: [string, string]; value: CacheRecord };
  /** Shared state entries. */
  state: { key: [string, string]; value: StateRecord };
  /** Facts about the database itself. */
  meta: { key: string; value: MetaRecord };
}

/** An open task-core database. */
export type TaskCoreDb = IDBPDatabase<TaskCoreSchema>;

/** The stores every task-core database has. */
export const STORE_NAMES: readonly StoreNames<TaskCoreSchema>[] = [
  "jobs",
  "tasks",
  "members",
  "ready",
  "claims",
  "leases",
  "cache",
  "state",
  "meta",
];

/** Most ids in one leaf of `ready` or `members` (a claim of one task rewrites one leaf). */
export const LEAF_SIZE = 16;

/**
 * One schema step: `MIGRATIONS[v]` moves a database from version `v` to `v + 1`, on the
 * raw connection and its `versionchange` transaction (a step describes an older layout
 * than `TaskCoreSchema`). A step calls `done` once it has issued its last request, and the
 * next step starts then (it reads what this one wrote); a step that goes on asynchronously
 * reports a failure through `fail`, which aborts the upgrade.
 */
export type Migration = (db: IDBDatabase, tx: IDBTransaction, fail: (e: unknown) => void, done: () => void) => void;

const noop = (): void => {};

/** The migrations, in order. Never edit a shipped one: append a new step. */
export const MIGRATIONS: readonly Migration[] = [
  // 0 -> 1: the initial layout.
  (db, _tx, _fail, done) => {
    const jobs = db.createObjectStore("jobs", { keyPath: "id" });
    jobs.createIndex("status", ["status", "id"]);
    jobs.createIndex("finished", ["finishedAt", "id"]);
    const tasks = db.createObjectStore("tasks", { keyPath: "id" });
    tasks.createIndex("agent", ["agent", "id"]);
    tasks.createIndex("status", ["status", "id"]);
    tasks.createIndex("job", ["jobId", "status", "id"]);
    tasks.createIndex("parentId", ["parentId", "id"]);
    tasks.createIndex("claim", "_claim");
    db.createObjectStore("cache", { keyPath: ["jobId", "key"] });
    db.createObjectStore("state", { keyPath: ["scope", "key"] });
    const meta = db.createObjectStore("meta", { keyPath: "key" });
    meta.put({ key: "format", value: "task-core" }).onerror = noop;
    meta.put({ key: "createdAt", value: Date.now() }).onerror = noop;
    done();
  },
  // 1 -> 2: lean rows; the `claim` index becomes the `ready` store, the `job` index the
  // `members` store; claims and leases; `agent` folds into `status` ([status, agent, id]).
  (db, tx, fail, done) => {
    const tasks = tx.objectStore("tasks");
    tasks.deleteIndex("agent");
    tasks.deleteIndex("status");
    tasks.deleteIndex("claim");
    tasks.deleteIndex("job");
    tasks.createIndex("status", ["status", "agent", "id"]);
    const members = db.createObjectStore("members", { keyPath: "k" });
    const ready = db.createObjectStore("ready", { keyPath: "k" });
    db.createObjectStore("claims", { keyPath: "id" }).createIndex("ids", "ids", { multiEntry: true });
    db.createObjectStore("leases", { keyPath: "id" });
    // Rewrite every row lean, list each job's tasks, and queue the ready ones (the cursor
    // walks ids in order, so each list arrives sorted). A task stored as running stays so:
    // its lease is in its row.
    const groups = new Map<number, Map<number, string[]>>();
    const jobs = new Map<string, string[]>();
    const leaves = (store: IDBObjectStore, prefix: unknown[], ids: string[]): void => {
      for (let i = 0; i < ids.length; i += LEAF_SIZE) {
        const leaf = ids.slice(i, i + LEAF_SIZE);
        store.put({ k: [...prefix, leaf[leaf.length - 1]!], ids: leaf });
      }
    };
    const cursor = tasks.openCursor();
    cursor.onsuccess = () => {
      try {
        const c = cursor.result;
        if (c) {
          const { _claim: _, ...row } = c.value as TaskRow;
          c.update(toRow(row as Parameters<typeof toRow>[0], row._dependents));
          const { status, priority = 0, runAt, id, jobId } = row;
          if (typeof jobId === "string" && typeof id === "string") {
            const list = jobs.get(jobId);
            if (list) list.push(id);
            else jobs.set(jobId, [id]);
          }
          if (status === "ready" && Number.isFinite(priority) && Number.isFinite(runAt) && typeof id === "string") {
            let byRunAt = groups.get(priority);
            if (!byRunAt) groups.set(priority, byRunAt = new Map());
            const ids = byRunAt.get(runAt!);
            if (ids) ids.push(id);
            else byRunAt.set(runAt!, [id]);
          }
          c.continue();
          return;
        }
        for (const [priority, byRunAt] of groups) {
          for (const [runAt, ids] of byRunAt) leaves(ready, [priority, runAt], ids);
        }
        for (const [jobId, ids] of jobs) leaves(members, [jobId], ids);
        done();
      } catch (e) {
        fail(e);
      }
    };
  },
  // 2 -> 3: the claim queue per agent: leaves keyed `[agent, priority, runAt, last id]`
  // (were `[priority, runAt, last id]`), so a claim limited to some agents reads only
  // theirs. Each queued id's agent is read from its row; an id whose row is gone is dropped
  // (a claim would have skipped it).
  (_db, tx, fail, done) => {
    const ready = tx.objectStore("ready");
    const tasks = tx.objectStore("tasks");
    const all = ready.getAll();
    all.onerror = () => fail(all.error);
    all.onsuccess = () => {
      try {
        const old = all.result as { k: [number, number, string]; ids: string[] }[];
        ready.clear();
        const groups = new Map<string, { key: [string, number, number]; ids: string[] }>();
        const write = (): void => {
          for (const { key, ids } of groups.values()) {
            ids.sort();
            for (let i = 0; i < ids.length; i += LEAF_SIZE) {
              const leaf = ids.slice(i, i + LEAF_SIZE);
              ready.put({ k: [...key, leaf[leaf.length - 1]!], ids: leaf });
            }
          }
          done();
        };
        let pending = 0;
        for (const leaf of old) {
          const [priority, runAt] = leaf.k;
          for (const id of leaf.ids) {
            pending++;
            const read = tasks.get(id);
            read.onerror = () => fail(read.error);
            read.onsuccess = () => {
              try {
                const agent = (read.result as TaskRow | undefined)?.agent;
                if (typeof agent === "string") {
                  const name = JSON.stringify([agent, priority, runAt]);
                  let group = groups.get(name);
                  if (!group) groups.set(name, group = { key: [agent, priority, runAt], ids: [] });
                  group.ids.push(id);
                }
                if (--pending === 0) write();
              } catch (e) {
                fail(e);
              }
            };
          }
        }
        if (pending === 0) write();
      } catch (e) {
        fail(e);
      }
    };
  },
];

/** The schema version this code writes. */
export const SCHEMA_VERSION: number = MIGRATIONS.length;

/** Arguments of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** The factory to open with (its classes must be the global IDB classes: `idb` checks `instanceof`). */
  factory: IDBFactory;
  /** Database name. */
  name: string;
  /** Version to open (default {@link SCHEMA_VERSION}; tests open higher ones). */
  version?: number;
  /** Called, before the connection closes itself, when another connection upgrades (`newVersion`) or deletes (`null`) the database. */
  onVersionChange(newVersion: number | null): void;
  /** Called when the browser closes the connection abnormally (site data cleared, disk failure). */
  onTerminated(): void;
  /** Called, before the open resolves, when it created the database (there was none of that name). */
  onCreated?(): void;
}

/**
 * Open (creating or upgrading) a task-core database.
 *
 * Rejects with `StorageBlockedError` as soon as the upgrade is blocked by a connection
 * that does not close (task-core's own connections close on `versionchange`); should the
 * blocker close later, the abandoned upgrade is aborted, so nothing changes.
 *
 * The abandoned request stays in IndexedDB's queue of opens of that database until the
 * blocker closes, and an open queued behind it gets no event at all: it would wait for as
 * long as the other tab keeps the database open. So while an open of this realm is
 * blocked, the other opens of the database in this realm (pending, or made meanwhile: a
 * retry) are refused with `StorageBlockedError` too.
 */
export function openDatabase(options: OpenDatabaseOptions): Promise<TaskCoreDb> {
  const { factory, name } = options;
  const version = options.version ?? SCHEMA_VERSION;
  return new Promise<TaskCoreDb>((resolve, reject) => {
    const opens = pendingOpens(factory, name);
    if (opens.blocked > 0) {
      reject(queuedBehindBlocked(name));
      return;
    }
    let request: IDBOpenDBRequest;
    try {
      request = factory.open(name, version);
    } catch (e) {
      if (opens.waiting.size === 0) forgetOpens(factory, name);
      reject(toStorageError(e, name, "opening the database"));
      return;
    }
    let settled = false;
    let upgradeError: unknown;
    let created = false;
    const fail = (e: unknown): void => {
      if (settled) return;
      settled = true;
      reject(e);
    };
    // Until the request ends (it may outlive `settled`: see `blocked`), it is one of the
    // realm's pending opens of the database; once blocked, it holds up the others.
    let isBlocked = false;
    const pending = (): void => fail(queuedBehindBlocked(name));
    opens.waiting.add(pending);
    const ended = (): void => {
      if (!opens.waiting.delete(pending)) return;
      if (isBlocked) opens.blocked--;
      if (opens.waiting.size === 0) forgetOpens(factory, name);
    };
    request.addEventListener("upgradeneeded", (event) => {
      const tx = request.transaction!;
      if (settled) {
        tx.abort();
        return;
      }
      const abort = (e: unknown): void => {
        upgradeError ??= e;
        try {
          tx.abort();
        } catch {
          // Already aborted.
        }
      };
      // Upgrade only what task-core made: a database of another kind is left as it was.
      const raw = request.result;
      const missing = event.oldVersion > 0 ? V1_STORES.find((s) => !raw.objectStoreNames.contains(s)) : undefined;
      if (missing !== undefined) {
        abort(notTaskCore(name, event.oldVersion, missing));
        return;
      }
      // One step after the other: a step may go on in request callbacks, and the next one
      // reads what it wrote.
      const step = (v: number): void => {
        if (v >= version) return;
        let next = false;
        try {
          MIGRATIONS[v]!(raw, tx, abort, () => {
            if (next) return;
            next = true;
            step(v + 1);
          });
        } catch (e) {
          abort(e);
        }
      };
      step(event.oldVersion);
      created = event.oldVersion === 0;
    });
    request.addEventListener("blocked", (event) => {
      if (!isBlocked && opens.waiting.has(pending)) {
        isBlocked = true;
        opens.blocked++;
      }
      fail(
        new StorageBlockedError(
          `IndexedDB database "${name}" cannot be upgraded from version ${event.oldVersion} to ${version}: ` +
            `another tab or worker keeps it open and does not close it; close the other tabs and retry`,
        ),
      );
      // The opens queued behind this one would wait as long, without a word.
      for (const other of [...opens.waiting]) if (other !== pending) other();
    });
    request.addEventListener("error", (event) => {
      ended();
      event.preventDefault();
      if (upgradeError !== undefined) {
        fail(toStorageError(upgradeError, name, `upgrading the schema to version ${version}`));
      } else if (request.error?.name === "VersionError") {
        void currentVersion(factory, name).then((found) =>
          fail(new StorageVersionError(`IndexedDB database "${name}" schema`, found ?? version + 1, version))
        );
      } else fail(toStorageError(request.error, name, "opening the database"));
    });
    request.addEventListener("success", () => {
      ended();
      const raw = request.result;
      if (settled) {
        raw.close();
        return;
      }
      const missing = (raw.version < 2 ? V1_STORES : STORE_NAMES).find((s) => !raw.objectStoreNames.contains(s));
      if (missing !== undefined) {
        raw.close();
        fail(notTaskCore(name, raw.version, missing));
        return;
      }
      raw.addEventListener("versionchange", (event) => {
        options.onVersionChange(event.newVersion);
        raw.close();
      });
      raw.addEventListener("close", () => options.onTerminated());
      if (created) options.onCreated?.();
      settled = true;
      resolve(wrap(raw) as unknown as TaskCoreDb);
    });
  });
}

/** The opens of one database in this realm that have not ended, and how many of them are blocked. */
interface PendingOpens {
  /** Each pending open's way to refuse it (a no-op once it settled). */
  waiting: Set<() => void>;
  /** How many of them got `blocked` (and hold up every open queued behind them). */
  blocked: number;
}

const openRequests = new WeakMap<IDBFactory, Map<string, PendingOpens>>();

function pendingOpens(factory: IDBFactory, name: string): PendingOpens {
  let byName = openRequests.get(factory);
  if (!byName) openRequests.set(factory, byName = new Map());
  let opens = byName.get(name);
  if (!opens) byName.set(name, opens = { waiting: new Set(), blocked: 0 });
  return opens;
}

function forgetOpens(factory: IDBFactory, name: string): void {
  openRequests.get(factory)?.delete(name);
}

function queuedBehindBlocked(name: string): StorageBlockedError {
  return new StorageBlockedError(
    `IndexedDB database "${name}" cannot be opened yet: an upgrade of it that this page asked for is blocked ` +
      `by another tab or worker that keeps it open and does not close it; close the other tabs and retry`,
  );
}

/** The stores of schema version 1: an older database without one of them is not task-core's. */
const V1_STORES = ["jobs", "tasks", "cache", "state", "meta"];

function notTaskCore(name: string, version: number, missing: string): StorageError {
  return new StorageError(
    `IndexedDB database "${name}" (version ${version}) is not a task-core database: it has no "${missing}" store`,
  );
}

/** The version of an existing database, where the factory can list databases (no side effect). */
async function currentVersion(factory: IDBFactory, name: string): Promise<number | undefined> {
  try {
    const list = await factory.databases();
    return list.find((d) => d.name === name)?.version;
  } catch {
    return undefined;
  }
}
