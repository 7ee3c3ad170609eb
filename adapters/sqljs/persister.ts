/**
 * Where a sql.js database is kept: the persister contract and an in-memory persister.
 *
 * The storage keeps two byte strings in a persister: a snapshot (a SQLite file image)
 * and a journal (the changes since that snapshot, appended per flush). The storage owns
 * both formats; a persister only stores bytes, with the guarantees below.
 *
 * @module
 */

import { StorageBlockedError, StorageSetupError } from "../../src/errors.ts";

/** What a persister holds. */
export interface SqlJsPersisted {
  /** The last snapshot, or `null` when nothing was stored yet. */
  snapshot: Uint8Array | null;
  /** The journal, or `null` when there is none. */
  journal: Uint8Array | null;
}

/**
 * Stores the snapshot and journal of one database. The storage never calls two methods
 * at once.
 *
 * - `load()` opens the database for one storage. It throws a `StorageBlockedError` while
 *   the database is open elsewhere, and also while this very persister is open (loaded and
 *   not closed yet): two storages on one persister would append to one journal and erase
 *   each other's changes. A load refused that way holds nothing, and the storage does not
 *   call `close()` for it (that would close the storage that has it open); after any other
 *   failed load, the storage calls `close()`.
 * - `append(bytes)` resolves once the bytes are durable at the end of the journal. A crash
 *   during it may leave any prefix of them (a torn tail, which the storage detects).
 * - `replace(snapshot, journal)` resolves once both are durable. A crash or failure during
 *   it leaves the old snapshot and the old journal, the new ones, or the new snapshot with
 *   the old journal (write the snapshot first), never the old snapshot with the new journal,
 *   and never a partly written snapshot.
 */
export interface SqlJsPersister {
  /** A short name (`file`, `indexeddb`, `opfs`, `memory`). */
  readonly name: string;
  /** Where the data lives (a path, a database name), shown in error messages. */
  readonly location?: string;
  /**
   * The most appends this persister keeps between two snapshots at a cost that does not
   * grow with their number (default: no limit). Where each append is a file of its own,
   * opening reads and the next snapshot deletes every one of them: the storage writes a
   * snapshot once this many appends were made since the last one, whatever the
   * `compaction` options say. Anything but a number >= 1 means no limit.
   */
  readonly maxAppends?: number;
  /** Open the database for one storage and read what is stored. */
  load(): Promise<SqlJsPersisted>;
  /** Append bytes to the journal, durably. */
  append(bytes: Uint8Array): Promise<void>;
  /** Replace the snapshot, then the whole journal, durably. */
  replace(snapshot: Uint8Array, journal: Uint8Array): Promise<void>;
  /** Release files, connections and locks; `load()` may be called again afterwards. */
  close(): Promise<void>;
}

/** A persister that keeps the bytes in memory: survives closing and reopening the storage, not the process. */
export interface MemoryPersister extends SqlJsPersister {
  /** The stored snapshot (tests may read or damage it). */
  snapshot: Uint8Array | null;
  /** The stored journal (tests may read or damage it). */
  journal: Uint8Array | null;
}

/**
 * Create a persister that keeps the bytes in memory. Useful in tests (the data outlives
 * a closed storage, so reopening works) and to measure the journal without a disk.
 *
 * @example
 * ```ts
 * import { createMemoryPersister } from "@dagger/task-core/adapters/sqljs";
 * const persister = createMemoryPersister();
 * console.assert((await persister.load()).snapshot === null);
 * ```
 */
export function createMemoryPersister(): MemoryPersister {
  let chunks: Uint8Array[] | null = null;
  let loaded = false;
  const joined = (): Uint8Array | null => {
    if (chunks === null) return null;
    if (chunks.length !== 1) chunks = [concatBytes(chunks)];
    return chunks[0]!;
  };
  return {
    name: "memory",
    snapshot: null,
    get journal(): Uint8Array | null {
      return joined();
    },
    set journal(bytes: Uint8Array | null) {
      chunks = bytes === null ? null : [bytes];
    },
    load() {
      if (loaded) return Promise.reject(alreadyOpen("The memory persister's database"));
      loaded = true;
      return Promise.resolve({ snapshot: this.snapshot && this.snapshot.slice(), journal: joined()?.slice() ?? null });
    },
    append(bytes) {
      (chunks ??= []).push(bytes.slice());
      return Promise.resolve();
    },
    replace(snapshot, journal) {
      this.snapshot = snapshot.slice();
      chunks = [journal.slice()];
      return Promise.resolve();
    },
    close() {
      loaded = false;
      return Promise.resolve();
    },
  };
}

/**
 * The error of a `load()` on a persister that is open already (loaded and not closed):
 * `what` names its database.
 */
export function alreadyOpen(what: string): StorageBlockedError {
  return new StorageBlockedError(
    `${what} is already open through this persister: a persister serves one storage at a time ` +
      `(close the storage that opened it first)`,
  );
}

/** Concatenate byte arrays. */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const p of parts) length += p.length;
  const out = new Uint8Array(length);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** `bytes` itself when it spans its whole buffer, else a copy that does (for structured clone). */
export function exactBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}

/** The part of the Web Locks API (`navigator.locks`) a persister uses. */
interface WebLocks {
  request(
    name: string,
    options: { ifAvailable?: boolean; signal?: AbortSignal },
    callback: (lock: unknown) => Promise<void> | undefined,
  ): Promise<unknown>;
}

/** How long a browser persister waits for another tab to let go of its database (default). */
export const DEFAULT_LOCK_WAIT_MS = 2000;

/**
 * Node, Deno or Bun, detected through `globalThis`: a process no browser tab shares. An
 * Electron renderer has Node's `process` too, but it is a page among others: not one.
 */
function serverRuntime(): boolean {
  const g = globalThis as {
    process?: { versions?: { node?: unknown; electron?: unknown } };
    Deno?: unknown;
    Bun?: unknown;
  };
  const versions = g.process?.versions;
  if (versions?.electron !== undefined) return false;
  return typeof versions?.node === "string" || g.Deno !== undefined || g.Bun !== undefined;
}

/** Locks held in this realm where there are no Web Locks (see `holdWebLock`). */
const heldHere = new Set<string>();

/**
 * Hold the Web Lock `name` (one tab or worker of the origin at a time) until the returned
 * function is called. Waits up to `waitMs` for its holder to let go (a reloading tab's lock
 * goes with its old page), then throws a `StorageBlockedError` naming `what`. Where there
 * are no Web Locks (a runtime without `navigator.locks`: Node, Bun), no other tab shares the
 * database, but this realm may open it twice: a lock of this realm refuses that the same
 * way. A browser page or worker without Web Locks (one that is not a secure context, such
 * as a page served over http from a LAN address, or an old browser) is refused with a
 * `StorageSetupError`: another tab of its origin could open the database at once, and the
 * snapshot each writes would erase the changes the other had confirmed.
 */
export async function holdWebLock(name: string, what: string, waitMs: number): Promise<() => void> {
  const locks = (globalThis as { navigator?: { locks?: WebLocks } }).navigator?.locks;
  if (!locks || typeof locks.request !== "function") {
    // Browsers (windows and workers) say whether they are a secure context; Node, Deno and
    // Bun do not, unless a DOM emulation (jsdom) or a polyfill put one there: no other tab
    // shares their databases, whatever it says.
    const secure = (globalThis as { isSecureContext?: unknown }).isSecureContext;
    if (typeof secure === "boolean" && !serverRuntime()) {
      throw new StorageSetupError(
        `${what} cannot be opened here: this page has no Web Locks (navigator.locks)` +
          (secure ? "" : ", which browsers give only to secure contexts (https, or http on localhost)") +
          `, and without them another tab could open the database at the same time and erase its saved changes`,
      );
    }
    const giveUpAt = Date.now() + waitMs;
    while (heldHere.has(name)) {
      if (Date.now() >= giveUpAt) {
        throw new StorageBlockedError(`${what} is already open here: a sql.js database is opened by one at a time`);
      }
      await new Promise((r) => setTimeout(r, Math.min(20, Math.max(1, giveUpAt - Date.now()))));
    }
    heldHere.add(name);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      heldHere.delete(name);
    };
  }
  let release: () => void = () => {};
  const held = new Promise<void>((resolve) => (release = resolve));
  // Resolves whether the lock was granted (then it is held until `release`).
  const ask = (options: { ifAvailable?: boolean; signal?: AbortSignal }) =>
    new Promise<boolean>((resolve, reject) => {
      locks.request(name, options, (lock) => {
        resolve(lock !== null);
        return lock === null ? undefined : held;
      }).catch(reject);
    });
  let cause: unknown = undefined;
  if (await ask({ ifAvailable: true })) return release;
  if (waitMs > 0) {
    const giveUp = new AbortController();
    const timer = setTimeout(() => giveUp.abort(), waitMs);
    try {
      if (await ask({ signal: giveUp.signal })) return release;
    } catch (e) {
      cause = e; // aborted: still held elsewhere
    } finally {
      clearTimeout(timer);
    }
  }
  throw new StorageBlockedError(
    `${what} is open in another tab or worker of this origin: a sql.js database is opened by one at a time`,
    { cause },
  );
}
