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

import { StorageError, StorageQuotaError } from "../../src/errors.ts";
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

function isNotFound(e: unknown): boolean {
  return (e as { name?: string })?.name === "NotFoundError";
}

function wrap(e: unknown, what: string): Error {
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
 * import { createOpfsPersister, openSqlJsStorage } from "../sqljs.ts";
 * const storage = await openSqlJsStorage({ persister: createOpfsPersister({ name: "tasks" }) });
 * ```
 */
export function createOpfsPersister(options: OpfsPersisterOptions): SqlJsPersister {
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
    if (!storage?.getDirectory) throw new StorageError("The Origin Private File System is not available here");
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
    const stream = await handle.createWritable();
    await stream.write(bytes as Uint8Array<ArrayBuffer>); // never a SharedArrayBuffer here
    await stream.close();
  };

  return {
    name: "opfs",
    location: `opfs:${name}`,
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
        for (chunks = 0;; chunks++) {
          const chunk = await read(`${journalFile}.${chunks + 1}`);
          if (!chunk) break;
          parts.push(chunk);
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
