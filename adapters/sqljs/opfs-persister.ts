/**
 * A persister on the Origin Private File System, for the sql.js storage in browsers
 * (main thread or workers).
 *
 * Files, in the chosen directory: `<name>.sqlite` (the snapshot), `<name>.tclog` (the
 * journal's start) and `<name>.tclog.1`, `.2` ... (one chunk per flush). Every file is
 * written through `createWritable()`, which replaces a file atomically on `close()`, so a
 * flush costs what it writes, not the journal's size. `replace` writes the snapshot,
 * deletes the chunks (newest first, so a crash leaves no gap), then writes the journal.
 *
 * @module
 */

import { StorageError, StorageQuotaError, StorageSetupError } from "../../src/errors.ts";
import { checkOptionNames } from "../../src/options.ts";
import { alreadyOpen, concatBytes, DEFAULT_LOCK_WAIT_MS, holdWebLock, type SqlJsPersister } from "./persister.ts";

/** The part of `FileSystemFileHandle` this persister uses. */
export interface OpfsFileHandle {
  /** The file's current content. */
  getFile(): Promise<{ arrayBuffer(): Promise<ArrayBuffer> }>;
  /** A stream whose content replaces the file on `close()`. */
  createWritable(): Promise<{ write(data: Uint8Array<ArrayBuffer>): Promise<void>; close(): Promise<void> }>;
}

/** The part of `FileSystemDirectoryHandle` this persister uses. */
export interface OpfsDirectoryHandle {
  /** Open (or create) a file. */
  getFileHandle(name: string, options?: { create?: boolean }): Promise<OpfsFileHandle>;
  /** Delete a file. */
  removeEntry(name: string): Promise<void>;
  /** The path from this directory to a descendant (`null`: not inside it), as browsers' handles have. */
  resolve?(possibleDescendant: object): Promise<string[] | null>;
  /** The directory's own name (the origin root's is ""). */
  readonly name?: string;
}

/** Options of {@link createOpfsPersister}. */
export interface OpfsPersisterOptions {
  /** The database name: the files are `<name>.sqlite`, `<name>.tclog` and `<name>.tclog.<n>`. */
  name: string;
  /** The directory (default: the origin's root, `navigator.storage.getDirectory()`). */
  directory?: OpfsDirectoryHandle;
  /**
   * How long opening waits for another tab or worker that has this database open to close
   * it (default 2000 ms), before it fails with a `StorageBlockedError`. One tab opens a
   * sql.js database at a time (a Web Lock, where the runtime has them).
   */
  lockWaitMs?: number;
}

/** The runtime's `navigator.storage`, where it has one. */
function originStorage(): { getDirectory?: () => Promise<OpfsDirectoryHandle> } | undefined {
  return (globalThis as unknown as { navigator?: { storage?: { getDirectory?: () => Promise<OpfsDirectoryHandle> } } })
    .navigator
    ?.storage;
}

/**
 * Appends (chunk files) between two snapshots. Each costs ~0.5 ms to read at open and
 * ~1 ms to delete at the next snapshot in Chromium: below the default compaction size (8 MiB
 * of journal), 10,000 small flushes made as many files, which took 17 s to open (read one
 * after the other), and the next snapshot stalled every call for 9 s. A snapshot every 1,000
 * appends costs an export of the database per 1,000 flushes.
 */
const MAX_APPENDS = 1000;

/** How many journal chunks `load()` reads at once. */
const READ_BATCH = 64;

function isNotFound(e: unknown): boolean {
  return (e as { name?: string })?.name === "NotFoundError";
}

function wrap(e: unknown, what: string): Error {
  if (e instanceof StorageSetupError) return e;
  if ((e as { name?: string })?.name === "QuotaExceededError") {
    return new StorageQuotaError(`OPFS is full: ${what} was not stored`, { cause: e });
  }
  return new StorageError(`OPFS failed to ${what}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}

/**
 * Create a persister on the Origin Private File System.
 *
 * @example
 * ```ts ignore
 * import { createOpfsPersister, openSqlJsStorage } from "@dagger/task-core/adapters/sqljs";
 * const storage = await openSqlJsStorage({ persister: createOpfsPersister({ name: "tasks" }) });
 * ```
 */
export function createOpfsPersister(options: OpfsPersisterOptions): SqlJsPersister {
  checkOptionNames("createOpfsPersister() option", options, ["name", "directory", "lockWaitMs"]);
  const name = options?.name;
  if (typeof name !== "string" || name === "" || name.includes("/")) {
    throw new TypeError(
      `"name" must be a non-empty file name, got ${typeof name === "string" ? `"${name}"` : typeof name}`,
    );
  }
  if (options.lockWaitMs !== undefined && !(Number.isFinite(options.lockWaitMs) && options.lockWaitMs >= 0)) {
    throw new RangeError(`"lockWaitMs" must be a non-negative number, got ${options.lockWaitMs}`);
  }
  let dir: OpfsDirectoryHandle | undefined = options.directory;
  let chunks = 0;
  let unlock: (() => void) | null = null;
  /** Loaded and not closed: a second `load()` is refused (it would share the journal). */
  let loaded = false;
  const snapshotFile = `${name}.sqlite`;
  const journalFile = `${name}.tclog`;

  const directory = async (): Promise<OpfsDirectoryHandle> => {
    if (dir) return dir;
    const storage = originStorage();
    if (!storage?.getDirectory) {
      // Not a passing failure: retrying cannot make it appear.
      const secure = (globalThis as { isSecureContext?: unknown }).isSecureContext;
      throw new StorageSetupError(
        "The Origin Private File System is not available here (navigator.storage.getDirectory is missing" +
          (secure === false ? ": browsers give it only to secure contexts, https or http on localhost" : "") + ")",
      );
    }
    return dir = await storage.getDirectory();
  };
  // The lock names the database by its directory's path from the origin's root and its
  // own name; a directory outside the origin's file system (or a runtime without
  // `resolve`) is named by its own name.
  const lockName = async (): Promise<string> => {
    const d = await directory();
    let path: string[] | null = null;
    if (options.directory) {
      const root = await originStorage()?.getDirectory?.().catch(() => undefined);
      path = (await root?.resolve?.(d).catch(() => null)) ?? null;
    } else path = [];
    return path
      ? `task-core:sqljs:opfs:/${[...path, name].join("/")}`
      : `task-core:sqljs:opfs:?${d.name ?? ""}/${name}`;
  };
  const read = async (file: string): Promise<Uint8Array | null> => {
    try {
      const handle = await (await directory()).getFileHandle(file);
      return new Uint8Array(await (await handle.getFile()).arrayBuffer());
    } catch (e) {
      if (isNotFound(e)) return null;
      throw e;
    }
  };
  const write = async (file: string, bytes: Uint8Array): Promise<void> => {
    const handle = await (await directory()).getFileHandle(file, { create: true });
    if (typeof handle.createWritable !== "function") {
      // Safari before 17.4 has none, where it has OPFS; only createSyncAccessHandle(), in workers.
      throw new StorageSetupError(
        `OPFS files cannot be written here: this browser has no createWritable() on them (use the IndexedDB persister)`,
      );
    }
    const stream = await handle.createWritable();
    await stream.write(bytes as Uint8Array<ArrayBuffer>); // never a SharedArrayBuffer here
    await stream.close();
  };

  return {
    name: "opfs",
    location: `opfs:${name}`,
    maxAppends: MAX_APPENDS,
    async load() {
      if (loaded) throw alreadyOpen(`OPFS database "${name}"`);
      loaded = true;
      try {
        unlock = await holdWebLock(
          await lockName(),
          `OPFS database "${name}"`,
          options.lockWaitMs ?? DEFAULT_LOCK_WAIT_MS,
        );
      } catch (e) {
        loaded = false; // refused (or the directory is unavailable) before anything was held
        throw e;
      }
      try {
        const snapshot = await read(snapshotFile);
        const parts: Uint8Array[] = [];
        const base = await read(journalFile);
        if (base) parts.push(base);
        // The chunks are read READ_BATCH at a time: one after the other, a journal of
        // thousands of small flushes took seconds to open (a file costs ~1.5 ms in
        // Chromium). The journal ends at the first missing chunk, as before: chunks read
        // past it are dropped.
        for (chunks = 0;;) {
          const batch = await Promise.all(
            Array.from({ length: READ_BATCH }, (_, i) => read(`${journalFile}.${chunks + i + 1}`)),
          );
          const end = batch.indexOf(null);
          for (const chunk of end === -1 ? batch : batch.slice(0, end)) parts.push(chunk!);
          chunks += end === -1 ? batch.length : end;
          if (end !== -1) break;
        }
        return { snapshot, journal: parts.length ? concatBytes(parts) : null };
      } catch (e) {
        throw wrap(e, "read the database");
      }
    },
    async append(bytes) {
      try {
        await write(`${journalFile}.${chunks + 1}`, bytes);
        chunks++;
      } catch (e) {
        throw wrap(e, "append to the journal");
      }
    },
    async replace(snapshot, journal) {
      try {
        await write(snapshotFile, snapshot);
        const d = await directory();
        for (; chunks > 0; chunks--) {
          try {
            await d.removeEntry(`${journalFile}.${chunks}`);
          } catch (e) {
            if (!isNotFound(e)) throw e;
          }
        }
        await write(journalFile, journal);
      } catch (e) {
        throw wrap(e, "write a snapshot");
      }
    },
    close() {
      loaded = false;
      unlock?.();
      unlock = null;
      return Promise.resolve();
    },
  };
}
