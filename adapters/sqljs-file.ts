/**
 * A file persister for the sql.js storage, for Node, Deno and Bun (through `node:fs`).
 *
 * Files: `<path>` holds the snapshot (a plain SQLite database file, readable by any
 * SQLite tool) and `<path>.tclog` the journal of changes since that snapshot. A flush
 * appends to the journal and syncs it (`fdatasync`); a snapshot and a fresh journal are
 * each written to a temporary file, synced, renamed over the old one, and the directory
 * synced, so a crash never leaves a half-written file.
 *
 * One process opens a database at a time: `<path>.lock` names the process (id and host)
 * that has it open. A second open, from this process or another one on the host, is
 * refused with a `StorageBlockedError` while that process lives; a lock left by a process
 * that died (a crash, a kill) is taken over. `close()` removes it. A persister serves one
 * storage at a time: a second open through the same persister is refused too.
 *
 * @example
 * ```ts
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { openSqlJsFileStorage } from "./sqljs-file.ts";
 * const dir = await mkdtemp(join(tmpdir(), "tasks-"));
 * const storage = await openSqlJsFileStorage(join(dir, "tasks.sqlite"));
 * console.assert(storage.capabilities.durable);
 * await storage.close();
 * await rm(dir, { recursive: true });
 * ```
 *
 * @module
 */

import { type FileHandle, link, mkdir, open, readFile, rename, unlink, writeFile } from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, resolve } from "node:path";
import process from "node:process";
import { StorageBlockedError, StorageError, StorageQuotaError } from "../src/errors.ts";
import { openSqlJsStorage, type SqlJsPersister, type SqlJsStorage, type SqlJsStorageOptions } from "./sqljs.ts";
import { alreadyOpen } from "./sqljs/persister.ts";

/** Options of {@link createFilePersister}. */
export interface FilePersisterOptions {
  /**
   * Sync every write to the disk (default `true`). `false` survives a crash of the process
   * but not of the machine; it is for tests and throwaway data.
   */
  sync?: boolean;
}

/** The `code` of a Node file-system error (`ENOENT`, `EEXIST`, ...). */
function code(e: unknown): string | undefined {
  return (e as { code?: string })?.code;
}

async function readIfExists(path: string): Promise<Uint8Array | null> {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if (code(e) === "ENOENT") return null;
    throw e;
  }
}

async function writeAll(fh: FileHandle, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) {
    const { bytesWritten } = await fh.write(bytes, at, bytes.length - at);
    at += bytesWritten;
  }
}

/** Whether process `pid` of this host is alive (signal 0 checks without signalling). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return code(e) === "EPERM"; // alive, owned by another user
  }
}

/**
 * Tokens of the locks this process holds. A lock naming this process whose token is not in
 * here was left by an earlier process with the same id (a restarted container gets the same
 * ids). Kept by token, not by path: the same file reached through a symlinked folder has
 * another path, and must still count as held.
 */
const heldLocks = new Set<string>();

/**
 * Create `lockPath` naming this process (id, host and a random token), taking over a lock
 * left by a process that is gone. Throws a `StorageBlockedError` when a live process (this
 * one included) holds it. Returns the token. The lock is written whole to a file of its own
 * and linked into place, so no opener ever reads a half-written lock; a stale lock is moved
 * aside under a unique name and checked to be the one judged stale before it is deleted, so
 * two openers taking it over at once cannot both win.
 */
async function lock(lockPath: string, path: string): Promise<string> {
  const host = hostname();
  const token = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
  const mine = `${lockPath}.${token}`;
  await writeFile(mine, `${process.pid}\n${host}\n${token}\n`);
  try {
    for (let attempt = 0;; attempt++) {
      try {
        await link(mine, lockPath);
        heldLocks.add(token);
        return token;
      } catch (e) {
        if (code(e) !== "EEXIST") throw e;
      }
      const text = await readFile(lockPath, "utf8").catch(() => null);
      if (text === null && attempt < 3) continue; // let go of just now: try again
      const [pidText = "", owner = "", held = ""] = (text ?? "").split("\n");
      const pid = Number(pidText);
      const stale = text !== null && Number.isInteger(pid) && pid > 0 && owner === host &&
        (pid === process.pid ? !heldLocks.has(held) : !alive(pid));
      if (!stale || attempt >= 3) {
        throw new StorageBlockedError(
          `"${path}" is open in process ${pidText || "?"} on ${owner || "?"}: a sql.js database is opened by one ` +
            `process at a time (close it there; if no such process uses it, delete "${lockPath}")`,
        );
      }
      const aside = `${mine}.stale`;
      try {
        await rename(lockPath, aside);
      } catch (e) {
        if (code(e) === "ENOENT") continue;
        throw e;
      }
      if ((await readFile(aside, "utf8").catch(() => null)) !== text) {
        // Another opener's fresh lock replaced the stale one meanwhile: put it back.
        await link(aside, lockPath).catch(() => {});
      }
      await unlink(aside).catch(() => {});
    }
  } finally {
    await unlink(mine).catch(() => {});
  }
}

/** Delete `lockPath` if it is still the lock with `token` (nobody took it over meanwhile). */
async function unlock(lockPath: string, token: string): Promise<void> {
  heldLocks.delete(token);
  const text = await readFile(lockPath, "utf8").catch(() => "");
  if (text.split("\n")[2] === token) await unlink(lockPath).catch(() => {});
}

function wrap(e: unknown, what: string, path: string): Error {
  const message = `Could not ${what} "${path}": ${(e as Error)?.message ?? String(e)}`;
  return code(e) === "ENOSPC" || code(e) === "EDQUOT"
    ? new StorageQuotaError(message, { cause: e })
    : new StorageError(message, { cause: e });
}

/**
 * Create a persister that keeps a database in `path` and `path + ".tclog"`. The directory
 * is created when missing. A relative `path` is resolved against the working directory
 * once, here: a later `process.chdir()` does not move the files.
 *
 * @example
 * ```ts ignore
 * import { openSqlJsStorage } from "./sqljs.ts";
 * import { createFilePersister } from "./sqljs-file.ts";
 * const storage = await openSqlJsStorage({ persister: createFilePersister("data/tasks.sqlite") });
 * ```
 */
export function createFilePersister(path: string, options: FilePersisterOptions = {}): SqlJsPersister {
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`"path" must be a non-empty string, got ${typeof path === "string" ? '""' : typeof path}`);
  }
  const sync = options.sync ?? true;
  // Resolved once: a relative path keeps naming these files when the working directory
  // changes later (the snapshot, journal and lock must stay together).
  const snapshotPath = resolve(path);
  const journalPath = `${snapshotPath}.tclog`;
  const lockPath = `${snapshotPath}.lock`;
  const dir = dirname(snapshotPath);
  let journal: FileHandle | null = null;
  let token: string | null = null;
  /** Loaded and not closed: a second `load()` is refused (it would share the journal). */
  let loaded = false;

  const syncDir = async (): Promise<void> => {
    if (!sync) return;
    let fh: FileHandle | undefined;
    try {
      fh = await open(dir, "r");
      await fh.sync();
    } catch {
      // Some platforms (Windows) cannot open or sync a directory; the rename is still atomic.
    } finally {
      await fh?.close();
    }
  };
  const writeAtomic = async (target: string, bytes: Uint8Array): Promise<void> => {
    const temp = `${target}.tmp`;
    const fh = await open(temp, "w");
    try {
      await writeAll(fh, bytes);
      if (sync) await fh.sync();
    } finally {
      await fh.close();
    }
    await rename(temp, target);
    await syncDir();
  };
  const closeJournal = async (): Promise<void> => {
    const fh = journal;
    journal = null;
    await fh?.close();
  };

  return {
    name: "file",
    location: snapshotPath,
    async load() {
      if (loaded) throw alreadyOpen(`"${snapshotPath}"`);
      loaded = true;
      try {
        await mkdir(dir, { recursive: true });
        token = await lock(lockPath, snapshotPath);
        return { snapshot: await readIfExists(snapshotPath), journal: await readIfExists(journalPath) };
      } catch (e) {
        if (e instanceof StorageBlockedError) {
          loaded = false; // refused before anything was held
          throw e;
        }
        throw wrap(e, "read", snapshotPath);
      }
    },
    async append(bytes) {
      try {
        journal ??= await open(journalPath, "a");
        await writeAll(journal, bytes);
        if (sync) await journal.datasync();
      } catch (e) {
        throw wrap(e, "append to", journalPath);
      }
    },
    async replace(snapshot, bytes) {
      try {
        await closeJournal();
        await mkdir(dir, { recursive: true });
        await writeAtomic(snapshotPath, snapshot);
        await writeAtomic(journalPath, bytes);
      } catch (e) {
        throw wrap(e, "write a snapshot to", snapshotPath);
      }
    },
    async close() {
      loaded = false;
      await closeJournal();
      if (token === null) return;
      const held = token;
      token = null;
      await unlock(lockPath, held);
    },
  };
}

/**
 * Open a sql.js storage kept in a file: `openSqlJsStorage` with a {@link createFilePersister}.
 *
 * @example
 * ```ts ignore
 * import { openSqlJsFileStorage } from "./sqljs-file.ts";
 * const storage = await openSqlJsFileStorage("data/tasks.sqlite");
 * ```
 */
export function openSqlJsFileStorage(
  path: string,
  options: Omit<SqlJsStorageOptions, "persister"> & FilePersisterOptions = {},
): Promise<SqlJsStorage> {
  const { sync, ...rest } = options;
  return openSqlJsStorage({ ...rest, persister: createFilePersister(path, sync === undefined ? {} : { sync }) });
}
