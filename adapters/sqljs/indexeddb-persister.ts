/**
 * A persister on IndexedDB, for the sql.js storage in browsers.
 *
 * One object store holds the snapshot (key `["snapshot"]`) and the journal as numbered
 * chunks (keys `["journal", n]`, one per flush). `append` writes one chunk in one
 * transaction; `replace` writes the snapshot and the new journal and deletes the old
 * chunks in one transaction, so IndexedDB's atomicity covers both.
 *
 * When another tab or worker deletes or upgrades the database, the persister lets go of it
 * and fails every later save with a `StorageVersionChangeError`; when the browser closes
 * the connection itself (the user cleared the site's data, or the browser's storage
 * failed), every later save fails with a `StorageClosedError`. Neither passes by retrying,
 * and the persister never reopens or recreates the database on its own: that would write
 * a journal without its snapshot into an empty database, or bring back data the user
 * chose to delete. Closing and reopening the storage opens the database as it is then.
 *
 * @module
 */

import { checkOptionNames } from "../../src/options.ts";
import { diskFull } from "../indexeddb/errors.ts";
import {
  StorageClosedError,
  StorageError,
  StorageQuotaError,
  StorageSetupError,
  StorageVersionChangeError,
} from "../../src/errors.ts";
import {
  alreadyOpen,
  concatBytes,
  DEFAULT_LOCK_WAIT_MS,
  exactBytes,
  holdWebLock,
  type SqlJsPersister,
} from "./persister.ts";

/**
 * `IDBFactory` (the type of `globalThis.indexedDB`) where the project's lib declares it
 * (the DOM lib); without it (a Node, Deno or Bun project), any object with IndexedDB's
 * `open`, so that importing the sql.js adapters needs no DOM types.
 */
export type IndexedDbFactory = typeof globalThis extends { indexedDB: infer F } ? F
  : { open(name: string, version?: number): unknown };

/** Options of {@link createIndexedDbPersister}. */
export interface IndexedDbPersisterOptions {
  /** The IndexedDB database name (one per task-core database). */
  name: string;
  /** The IndexedDB factory (default `globalThis.indexedDB`; pass `fake-indexeddb`'s in tests). */
  indexedDB?: IndexedDbFactory;
  /** Transaction durability (default `"strict"`: committed data is flushed to disk). */
  durability?: "strict" | "relaxed" | "default";
  /**
   * How long opening waits for another tab or worker that has this database open to close
   * it (default 2000 ms), before it fails with a `StorageBlockedError`. One tab opens a
   * sql.js database at a time (a Web Lock, where the runtime has them).
   */
  lockWaitMs?: number;
}

const STORE = "files";

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

function done(tx: IDBTransaction): Promise<void> {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new StorageError("IndexedDB transaction aborted"));
  });
}

function wrap(e: unknown, what: string): Error {
  if (e instanceof StorageVersionChangeError || e instanceof StorageClosedError || e instanceof StorageSetupError) {
    return e;
  }
  const full = diskFull(e);
  if (full !== null) {
    return new StorageQuotaError(`IndexedDB is full (${full}): ${what} was not stored`, { cause: e });
  }
  return new StorageError(`IndexedDB failed to ${what}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}

/**
 * Create a persister on IndexedDB.
 *
 * @example
 * ```ts ignore
 * import { createIndexedDbPersister, openSqlJsStorage } from "@dagger/task-core/adapters/sqljs";
 * const storage = await openSqlJsStorage({ persister: createIndexedDbPersister({ name: "tasks" }) });
 * ```
 */
export function createIndexedDbPersister(options: IndexedDbPersisterOptions): SqlJsPersister {
  checkOptionNames("createIndexedDbPersister() option", options, ["name", "indexedDB", "durability", "lockWaitMs"]);
  if (typeof options?.name !== "string" || options.name === "") {
    throw new TypeError(`"name" must be a non-empty string, got ${typeof options?.name}`);
  }
  if (options.lockWaitMs !== undefined && !(Number.isFinite(options.lockWaitMs) && options.lockWaitMs >= 0)) {
    throw new RangeError(`"lockWaitMs" must be a non-negative number, got ${options.lockWaitMs}`);
  }
  const factory = options.indexedDB ?? (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  const durability = options.durability ?? "strict";
  let db: IDBDatabase | undefined;
  let next = 0;
  let unlock: (() => void) | null = null;
  /** Loaded and not closed: a second `load()` is refused (it would share the journal). */
  let loaded = false;

  /**
   * Set once another connection deleted or upgraded the database under this persister, or
   * the browser closed the connection: every later save fails with it, until `load()`.
   */
  let changed: StorageVersionChangeError | StorageClosedError | null = null;

  const open = async (): Promise<IDBDatabase> => {
    if (changed) throw changed;
    if (db) return db;
    if (!factory) {
      throw new StorageSetupError("IndexedDB is not available here: pass `indexedDB` (fake-indexeddb in tests)");
    }
    const req = factory.open(options.name, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    const opened = await request(req);
    // Another tab deletes or upgrades the database: let it, and stop. Opening it again on
    // our own would create an empty database, whose journal (our next append) has no
    // snapshot: commits confirmed that no open could ever read.
    opened.onversionchange = (event) => {
      opened.close();
      if (db !== opened) return;
      db = undefined;
      changed = new StorageVersionChangeError(
        `IndexedDB database "${options.name}" was ${
          event.newVersion === null ? "deleted" : "upgraded"
        } by another tab or worker: this storage stopped saving (reload the page, or close and reopen the storage)`,
        event.newVersion,
      );
    };
    // The browser closed the connection (site data cleared, a failure of its storage):
    // saves fail with an error that says so, not with a transient one, as reopening on our
    // own would (like above) write into an empty database or undo the user's clearing.
    opened.onclose = () => {
      if (db !== opened) return;
      db = undefined;
      changed = new StorageClosedError(
        `IndexedDB database "${options.name}" was closed by the browser (as when the site's data is cleared): ` +
          `this storage stopped saving (reload the page, or close and reopen the storage)`,
      );
    };
    return db = opened;
  };
  const tx = async (mode: IDBTransactionMode): Promise<IDBObjectStore> =>
    (await open()).transaction(STORE, mode, { durability }).objectStore(STORE);
  const journalRange = (): IDBKeyRange => IDBKeyRange.bound(["journal", 0], ["journal", Infinity]);

  return {
    name: "indexeddb",
    location: `indexeddb:${options.name}`,
    async load() {
      if (loaded) throw alreadyOpen(`IndexedDB database "${options.name}"`);
      loaded = true;
      changed = null; // opened anew, as it is now
      try {
        unlock = await holdWebLock(
          `task-core:sqljs:indexeddb:${options.name}`,
          `IndexedDB database "${options.name}"`,
          options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS,
        );
      } catch (e) {
        loaded = false; // refused before anything was held
        throw e;
      }
      try {
        const store = await tx("readonly");
        const [snapshot, keys, chunks] = await Promise.all([
          request(store.get(["snapshot"])),
          request(store.getAllKeys(journalRange())),
          request(store.getAll(journalRange())),
        ]);
        const last = keys[keys.length - 1] as [string, number] | undefined;
        next = last ? last[1] + 1 : 0;
        return {
          snapshot: snapshot instanceof Uint8Array ? snapshot : null,
          journal: chunks.length ? concatBytes(chunks as Uint8Array[]) : null,
        };
      } catch (e) {
        throw wrap(e, "read the database");
      }
    },
    async append(bytes) {
      try {
        const store = await tx("readwrite");
        store.put(exactBytes(bytes), ["journal", next++]);
        await done(store.transaction);
      } catch (e) {
        throw wrap(e, "append to the journal");
      }
    },
    async replace(snapshot, journal) {
      try {
        const store = await tx("readwrite");
        store.put(exactBytes(snapshot), ["snapshot"]);
        store.delete(journalRange());
        store.put(exactBytes(journal), ["journal", 0]);
        next = 1;
        await done(store.transaction);
      } catch (e) {
        throw wrap(e, "write a snapshot");
      }
    },
    close() {
      loaded = false;
      db?.close();
      db = undefined;
      unlock?.();
      unlock = null;
      return Promise.resolve();
    },
  };
}
