/**
 * The IndexedDB schema of task-core: stores, indexes, numbered migrations, and opening a
 * connection that turns `blocked`, `versionchange` and an abnormal close into typed errors.
 *
 * Every task index ends with the task id, so an index range `[...prefix, after]` to
 * `[...prefix, []]` (arrays sort after strings) pages in id order without a scan. Only
 * three indexes hold every task (agent, status, job): each index entry costs a write
 * in every put, and two puts per task (claim, completion) are most of a task's cost.
 *
 * @module
 */

import { type DBSchema, type IDBPDatabase, type IDBPTransaction, type StoreNames, wrap } from "idb";
import { StorageBlockedError, StorageError, StorageVersionError } from "../../src/errors.ts";
import type { Job, JobStatus, JsonValue, TaskStatus } from "../../src/types.ts";
import type { TaskRow } from "./rows.ts";
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
      /** `listTasks({ agent })`. */
      agent: [string, string];
      /** `listTasks({ status })`, running tasks for `expiredLeases`. */
      status: [TaskStatus, string];
      /** A job's tasks by status: job control (`RuleTx.jobTasks`), `listTasks({ jobId })`, `prune`. */
      job: [string, TaskStatus, string];
      /** `listTasks({ parentId })` (tasks without a parent are left out). */
      parentId: [string, string];
      /** `claimReady`: ready tasks only, by priority, then runAt, then id. */
      claim: [number, number, string];
    };
  };
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
export const STORE_NAMES: readonly StoreNames<TaskCoreSchema>[] = ["jobs", "tasks", "cache", "state", "meta"];

type UpgradeTx = IDBPTransaction<TaskCoreSchema, StoreNames<TaskCoreSchema>[], "versionchange">;

/** One schema step: `MIGRATIONS[v]` moves a database from version `v` to `v + 1`. */
export type Migration = (db: TaskCoreDb, tx: UpgradeTx) => void;

const noop = (): void => {};

/** The migrations, in order. Never edit a shipped one: append a new step. */
export const MIGRATIONS: readonly Migration[] = [
  // 0 -> 1: the initial layout.
  (db) => {
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
    meta.put({ key: "format", value: "task-core" }).catch(noop);
    meta.put({ key: "createdAt", value: Date.now() }).catch(noop);
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
}

/**
 * Open (creating or upgrading) a task-core database.
 *
 * Rejects with `StorageBlockedError` as soon as the upgrade is blocked by a connection
 * that does not close (task-core's own connections close on `versionchange`); should the
 * blocker close later, the abandoned upgrade is aborted, so nothing changes.
 */
export function openDatabase(options: OpenDatabaseOptions): Promise<TaskCoreDb> {
  const { factory, name } = options;
  const version = options.version ?? SCHEMA_VERSION;
  return new Promise<TaskCoreDb>((resolve, reject) => {
    let request: IDBOpenDBRequest;
    try {
      request = factory.open(name, version);
    } catch (e) {
      reject(toStorageError(e, name, "opening the database"));
      return;
    }
    let settled = false;
    let upgradeError: unknown;
    const fail = (e: unknown): void => {
      if (settled) return;
      settled = true;
      reject(e);
    };
    request.addEventListener("upgradeneeded", (event) => {
      const tx = request.transaction!;
      if (settled) {
        tx.abort();
        return;
      }
      try {
        const db = wrap(request.result) as unknown as TaskCoreDb;
        const utx = wrap(tx) as unknown as UpgradeTx;
        for (let v = event.oldVersion; v < version; v++) MIGRATIONS[v]?.(db, utx);
      } catch (e) {
        upgradeError = e;
        tx.abort();
      }
    });
    request.addEventListener("blocked", (event) => {
      fail(
        new StorageBlockedError(
          `IndexedDB database "${name}" cannot be upgraded from version ${event.oldVersion} to ${version}: ` +
            `another tab or worker keeps it open and does not close it; close the other tabs and retry`,
        ),
      );
    });
    request.addEventListener("error", (event) => {
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
      const raw = request.result;
      if (settled) {
        raw.close();
        return;
      }
      const missing = STORE_NAMES.find((s) => !raw.objectStoreNames.contains(s));
      if (missing !== undefined) {
        raw.close();
        fail(
          new StorageError(
            `IndexedDB database "${name}" (version ${raw.version}) is not a task-core database: ` +
              `it has no "${missing}" store`,
          ),
        );
        return;
      }
      raw.addEventListener("versionchange", (event) => {
        options.onVersionChange(event.newVersion);
        raw.close();
      });
      raw.addEventListener("close", () => options.onTerminated());
      settled = true;
      resolve(wrap(raw) as unknown as TaskCoreDb);
    });
  });
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
