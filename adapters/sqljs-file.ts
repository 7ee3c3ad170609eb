/**
 * A file persister for the sql.js storage, for Node, Deno and Bun (through `node:fs`).
 *
 * Files: `<path>` holds the snapshot (a plain SQLite database file, readable by any
 * SQLite tool) and `<path>.tclog` the journal of changes since that snapshot. A flush
 * appends to the journal and syncs it (`fdatasync`); a snapshot and a fresh journal are
 * each written to a temporary file, synced, renamed over the old one, and the directory
 * synced, so a crash never leaves a half-written file.
 *
 * One process opens a database at a time: `<path>.lock` names the process (id, host, and
 * the PID namespace and boot it runs in) that has it open. A second open, from this process
 * or another one on the host, is refused with a `StorageBlockedError` while that process
 * lives; a lock left by a process that died (a crash, a kill, a zombie) is taken over. A process id
 * means nothing outside its PID namespace (two containers sharing a volume and a host name,
 * a container restarted): a lock from another namespace or boot is judged by its age
 * instead, which its holder refreshes while it has the database open, and is taken over
 * once it is older than `lockStaleMs`, as is a lock cut short by a crash of the machine. Openers
 * that take one lock over at once never both open. An open that cannot work until a path or
 * its permissions change (a folder, a read-only file system) is refused with a
 * `StorageSetupError`, as is one Deno refuses for want of a permission (it needs read and write
 * access to the folder and `--allow-sys=hostname`). `close()` removes the lock. A persister serves one storage
 * at a time: a second open through the same persister is refused too.
 *
 * @example
 * ```ts
 * import { mkdtemp, rm } from "node:fs/promises";
 * import { tmpdir } from "node:os";
 * import { join } from "node:path";
 * import { openSqlJsFileStorage } from "@dagger/task-core/adapters/sqljs-file";
 * const dir = await mkdtemp(join(tmpdir(), "tasks-"));
 * const storage = await openSqlJsFileStorage(join(dir, "tasks.sqlite"));
 * console.assert(storage.capabilities.durable);
 * await storage.close();
 * await rm(dir, { recursive: true });
 * ```
 *
 * @module
 */

import {
  type FileHandle,
  link,
  mkdir,
  open,
  readFile,
  readlink,
  rename,
  stat,
  unlink,
  utimes,
  writeFile,
} from "node:fs/promises";
import { hostname } from "node:os";
import { dirname, resolve } from "node:path";
import process from "node:process";
import { StorageBlockedError, StorageError, StorageQuotaError, StorageSetupError } from "../src/errors.ts";
import { openSqlJsStorage, type SqlJsPersister, type SqlJsStorage, type SqlJsStorageOptions } from "./sqljs.ts";
import { alreadyOpen } from "./sqljs/persister.ts";
import { SQLJS_OPTIONS } from "./sqljs/open.ts";
import { checkOptionNames } from "../src/options.ts";

/** Options of {@link createFilePersister}. */
export interface FilePersisterOptions {
  /**
   * Sync every write to the disk (default `true`). `false` survives a crash of the process
   * but not of the machine; it is for tests and throwaway data.
   */
  sync?: boolean;
  /**
   * How old a lock written in another PID namespace or boot (whose process cannot be
   * checked) must be to count as left behind (default 30 s). The holder refreshes its
   * lock every quarter of this; an opener that finds a fresh one waits this long once
   * before it refuses.
   */
  lockStaleMs?: number;
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
 * Whether live-looking process `pid` is a zombie (Linux): it died, and its parent has not
 * collected its exit status yet (a parent that never does, such as a PID 1 that reaps no
 * orphans, keeps it so for good). A zombie holds no files: its lock is stale.
 */
async function zombie(pid: number): Promise<boolean> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
    return state === "Z" || state === "X";
  } catch {
    return false; // no /proc here: `alive` alone judges
  }
}

/** Whether process `pid` (of this PID namespace) is gone: not alive, or a zombie. */
async function gone(pid: number): Promise<boolean> {
  return !alive(pid) || await zombie(pid);
}

/** How long ago `path` was last written (0 when it cannot be read: just let go of). */
async function ageMs(path: string): Promise<number> {
  const mtime = (await stat(path).catch(() => null))?.mtimeMs;
  return mtime === undefined ? 0 : Date.now() - mtime;
}

let herePromise: Promise<string> | null = null;

/**
 * Where a process id means this process's ids: the boot and the PID namespace it runs in
 * (Linux), or `""` where the system does not say (every lock then counts as from here).
 */
function here(): Promise<string> {
  return herePromise ??= (async () => {
    try {
      const boot = (await readFile("/proc/sys/kernel/random/boot_id", "utf8")).trim();
      const ns = await readlink("/proc/self/ns/pid");
      return `${boot} ${ns}`;
    } catch {
      return "";
    }
  })();
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
 * one included) holds it. Returns the token. The lock is written whole (and synced) to a
 * file of its own and linked into place, so no opener reads a half-written lock while its
 * writer runs; a lock that cannot be read (cut short by a crash of the machine before it
 * reached the disk) is judged by its age, as one from another namespace. A stale lock is
 * deleted only by the opener holding `<lockPath>.takeover` (made exclusively; one left by
 * an opener that died is deleted once older than `staleMs`), after reading it again there:
 * openers taking one lock over at once, however many, never delete a lock another opener
 * has just taken, so at most one of them opens.
 */
async function lock(lockPath: string, path: string, staleMs: number, sync: boolean): Promise<string> {
  const host = hostname();
  const place = await here();
  const token = Array.from(crypto.getRandomValues(new Uint8Array(8)), (b) => b.toString(16).padStart(2, "0")).join("");
  const mine = `${lockPath}.${token}`;
  const content = `${process.pid}\n${host}\n${token}\n${place}\n`;
  const claim = `${lockPath}.takeover`;
  let waited = false;
  try {
    // Inside the try: a write that fails (a full disk) leaves no file behind.
    const fh = await open(mine, "w");
    try {
      await writeAll(fh, new TextEncoder().encode(content));
      if (sync) await fh.datasync(); // a lock that reached the disk empty would hold for lockStaleMs after a crash
    } finally {
      await fh.close();
    }
    for (let attempt = 0;; attempt++) {
      // Counted as held before it is in place: an opener of this process that reads it the
      // moment it is linked must not take it for one an earlier process left.
      heldLocks.add(token);
      try {
        await link(mine, lockPath);
        return token;
      } catch (e) {
        heldLocks.delete(token);
        if (code(e) !== "EEXIST") throw e;
      }
      const text = await readFile(lockPath, "utf8").catch(() => null);
      if (text === null && attempt < 3) continue; // let go of just now: try again
      const [pidText = "", owner = "", held = "", from = ""] = (text ?? "").split("\n");
      const pid = Number(pidText);
      // Written whole, a lock names a process and a host; one that does not was cut short.
      const readable = owner !== "" && Number.isInteger(pid) && pid > 0;
      // A lock written without a place (an earlier version) counts as from here.
      const samePlace = readable && owner === host && (from === "" || from === place);
      let stale = false;
      if (text !== null && samePlace) {
        stale = pid === process.pid ? !heldLocks.has(held) : await gone(pid);
      } else if (text !== null && (owner === host || !readable)) {
        // Another PID namespace or boot: its process cannot be checked; its age tells.
        const age = await ageMs(lockPath);
        stale = age > staleMs;
        if (!stale && !waited) {
          waited = true; // its holder refreshes it while alive: wait once for it to age
          await new Promise((r) => setTimeout(r, staleMs - age + 50));
          attempt--;
          continue;
        }
      }
      if (!stale || attempt >= 3) {
        throw new StorageBlockedError(
          `"${path}" is open in process ${pidText || "?"} on ${owner || "?"}: a sql.js database is opened by one ` +
            `process at a time (close it there; if no such process uses it, delete "${lockPath}")`,
        );
      }
      // Only the holder of the takeover claim deletes a stale lock, after reading it again:
      // no lock can take its place while it is there, and no other opener deletes it.
      try {
        await writeFile(claim, content, { flag: "wx" });
      } catch (e) {
        if (code(e) !== "EEXIST") throw e;
        // Another opener is taking it over (for a moment), or died doing so: a claim of a
        // process of this place that is gone, or one older than staleMs, is let go.
        const [claimPid = "", claimHost = "", , claimFrom = ""] = ((await readFile(claim, "utf8").catch(() =>
          null
        )) ?? "").split("\n");
        const by = Number(claimPid);
        const left = claimHost === host && claimFrom === place && Number.isInteger(by) && by > 0 &&
          by !== process.pid && await gone(by);
        if (left || (await ageMs(claim)) > staleMs) await unlink(claim).catch(() => {});
        else await new Promise((r) => setTimeout(r, 5 + Math.random() * 20));
        attempt--;
        continue;
      }
      try {
        if ((await readFile(lockPath, "utf8").catch(() => null)) === text) await unlink(lockPath);
      } catch (e) {
        if (code(e) !== "ENOENT") throw e;
      } finally {
        if ((await readFile(claim, "utf8").catch(() => null)) === content) await unlink(claim).catch(() => {});
      }
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

/** Errors opening a database that trying again does not cure: the path or its permissions must change. */
// (EEXIST: a file where the folder should be.)
const SETUP_CODES = new Set(["EACCES", "EPERM", "EROFS", "EISDIR", "ENOTDIR", "EEXIST", "ENAMETOOLONG", "ELOOP"]);

/**
 * Whether `e` is Deno's refusal for want of a permission (`--allow-read`, `--allow-write`,
 * `--allow-sys`): `NotCapable` (Deno 2) or `PermissionDenied` (Deno 1), with no `code`.
 */
function denoPermission(e: unknown): boolean {
  const name = (e as Error)?.name;
  return (name === "NotCapable" || name === "PermissionDenied") &&
    (globalThis as { Deno?: unknown }).Deno !== undefined;
}

function wrap(e: unknown, what: string, path: string, opening = false): Error {
  const message = `Could not ${what} "${path}": ${(e as Error)?.message ?? String(e)}`;
  return code(e) === "ENOSPC" || code(e) === "EDQUOT"
    ? new StorageQuotaError(message, { cause: e })
    : opening && (SETUP_CODES.has(code(e) ?? "") || denoPermission(e))
    ? new StorageSetupError(message, { cause: e })
    : new StorageError(message, { cause: e });
}

/** The options of the file persister. */
const FILE_OPTIONS: readonly string[] = ["sync", "lockStaleMs"];

/**
 * Create a persister that keeps a database in `path` and `path + ".tclog"`. The directory
 * is created when missing. A relative `path` is resolved against the working directory
 * once, here: a later `process.chdir()` does not move the files.
 *
 * @example
 * ```ts ignore
 * import { openSqlJsStorage } from "@dagger/task-core/adapters/sqljs";
 * import { createFilePersister } from "@dagger/task-core/adapters/sqljs-file";
 * const storage = await openSqlJsStorage({ persister: createFilePersister("data/tasks.sqlite") });
 * ```
 */
export function createFilePersister(path: string, options: FilePersisterOptions = {}): SqlJsPersister {
  if (typeof path !== "string" || path === "") {
    throw new TypeError(`"path" must be a non-empty string, got ${typeof path === "string" ? '""' : typeof path}`);
  }
  checkOptionNames("createFilePersister() option", options, FILE_OPTIONS);
  const sync = options.sync ?? true;
  const staleMs = options.lockStaleMs ?? 30_000;
  if (typeof staleMs !== "number" || !(staleMs > 0) || !Number.isFinite(staleMs)) {
    throw new RangeError(`"lockStaleMs" must be a positive number of milliseconds, got ${String(staleMs)}`);
  }
  /** Keeps the lock's age fresh while the database is open (see `lockStaleMs`). */
  let refresher: ReturnType<typeof setInterval> | null = null;
  const stopRefreshing = (): void => {
    if (refresher !== null) clearInterval(refresher);
    refresher = null;
  };
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
    try {
      const fh = await open(temp, "w");
      try {
        await writeAll(fh, bytes);
        if (sync) await fh.sync();
      } finally {
        await fh.close();
      }
      await rename(temp, target);
    } catch (e) {
      // A write cut short (a full disk) would hold its space until the next save.
      await unlink(temp).catch(() => {});
      throw e;
    }
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
        token = await lock(lockPath, snapshotPath, staleMs, sync);
        refresher = setInterval(() => {
          const now = new Date();
          utimes(lockPath, now, now).catch(() => {});
        }, staleMs / 4);
        // It must not keep the process alive (a storage left open is the caller's to close).
        if (typeof refresher === "number") {
          (globalThis as { Deno?: { unrefTimer?: (id: number) => void } }).Deno?.unrefTimer?.(refresher);
        } else (refresher as { unref?: () => void }).unref?.();
        return { snapshot: await readIfExists(snapshotPath), journal: await readIfExists(journalPath) };
      } catch (e) {
        if (e instanceof StorageBlockedError) {
          loaded = false; // refused before anything was held
          throw e;
        }
        throw wrap(e, "open", snapshotPath, true);
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
      stopRefreshing();
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
 * import { openSqlJsFileStorage } from "@dagger/task-core/adapters/sqljs-file";
 * const storage = await openSqlJsFileStorage("data/tasks.sqlite");
 * ```
 */
export async function openSqlJsFileStorage(
  path: string,
  options: Omit<SqlJsStorageOptions, "persister"> & FilePersisterOptions = {},
): Promise<SqlJsStorage> {
  // No "persister": the file is the persister (openSqlJsStorage() takes one).
  checkOptionNames("openSqlJsFileStorage() option", options, [...SQLJS_OPTIONS, ...FILE_OPTIONS]);
  const { sync, lockStaleMs, ...rest } = options ?? {};
  const persister = createFilePersister(path, {
    ...(sync === undefined ? {} : { sync }),
    ...(lockStaleMs === undefined ? {} : { lockStaleMs }),
  });
  return await openSqlJsStorage({ ...rest, persister });
}
