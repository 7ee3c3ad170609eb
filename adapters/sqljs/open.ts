/**
 * Opening a sql.js storage: load what the persister holds, check it (refusing a damaged
 * or newer store before anything is written), migrate the schema, replay the journal,
 * and write a fresh snapshot when the store needs one.
 *
 * @module
 */

import { StorageBlockedError, StorageCorruptError } from "../../src/errors.ts";
import { checkOptionNames } from "../../src/options.ts";
import { SqlDb } from "./db.ts";
import { HEADER_BYTES, JOURNAL_FORMAT, parseJournal } from "./journal.ts";
import { resolveSqlJs, type SqlJsDatabase, type SqlJsLoadOptions, type SqlJsModule } from "./module.ts";
import { migrate, readGeneration, readSchemaVersion, SCHEMA_VERSION } from "./schema.ts";
import type { SqlJsPersisted, SqlJsPersister } from "./persister.ts";
import { type SqlJsOpenReport, type SqlJsStorage, SqlJsStorageImpl, type SqlJsStorageOptions } from "./storage.ts";

const SQLITE_MAGIC = "SQLite format 3\u0000";

function checkSnapshotBytes(bytes: Uint8Array, location: string): void {
  for (let i = 0; i < 16; i++) {
    if (bytes[i] !== SQLITE_MAGIC.charCodeAt(i)) {
      throw new StorageCorruptError(location, "the snapshot is not a SQLite database");
    }
  }
  if (bytes.length < 100) throw new StorageCorruptError(location, "the snapshot is truncated");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const raw = view.getUint16(16);
  const pageSize = raw === 1 ? 65536 : raw;
  const pages = view.getUint32(28);
  const headerValid = view.getUint32(24) === view.getUint32(92) && pages > 0;
  if (pageSize < 512 || (pageSize & (pageSize - 1)) !== 0 || bytes.length % pageSize !== 0) {
    throw new StorageCorruptError(location, `the snapshot is truncated or damaged (${bytes.length} bytes)`);
  }
  if (headerValid && bytes.length < pages * pageSize) {
    throw new StorageCorruptError(
      location,
      `the snapshot is truncated: ${bytes.length} bytes of ${pages * pageSize}`,
    );
  }
}

function openSnapshot(SQL: SqlJsModule, bytes: Uint8Array, location: string, verify: boolean): SqlJsDatabase {
  checkSnapshotBytes(bytes, location);
  let db: SqlJsDatabase | undefined;
  try {
    db = new SQL.Database(bytes);
    if (verify) {
      const r = db.exec("PRAGMA quick_check")[0]?.values.map((v) => v[0]) ?? [];
      if (r.length !== 1 || r[0] !== "ok") throw new Error(String(r.slice(0, 3).join("; ")));
    }
    return db;
  } catch (e) {
    db?.close();
    throw new StorageCorruptError(location, `SQLite cannot read the snapshot (${(e as Error).message})`, {
      cause: e,
    });
  }
}

/**
 * The options of `openSqlJsStorage()` besides `persister` (`maxFrameBytes` is the journal's
 * frame size, for tests of torn appends).
 */
export const SQLJS_OPTIONS: readonly string[] = [
  "sql",
  "compaction",
  "verify",
  "now",
  "locateFile",
  "wasmBinary",
  "maxFrameBytes",
];

function checkOptions(o: SqlJsStorageOptions): void {
  if (typeof o !== "object" || o === null) throw new TypeError(`openSqlJsStorage() expects an options object`);
  checkOptionNames("sql.js option", o, [...SQLJS_OPTIONS, "persister"]);
  if (typeof o.compaction === "object") {
    checkOptionNames("sql.js option", o.compaction, ["minJournalBytes", "journalRatio"], {}, "compaction.");
  }
  const p = o.persister as Partial<SqlJsPersister> | undefined;
  if (
    p !== undefined &&
    (typeof p !== "object" || p === null ||
      !["load", "append", "replace", "close"].every((m) => typeof (p as Record<string, unknown>)[m] === "function"))
  ) {
    throw new TypeError(`"persister" must have load, append, replace and close methods, got ${typeof p}`);
  }
  const c = o.compaction;
  if (c?.minJournalBytes !== undefined && !(c.minJournalBytes >= 0)) {
    throw new RangeError(`"compaction.minJournalBytes" must be a non-negative number, got ${c.minJournalBytes}`);
  }
  if (c?.journalRatio !== undefined && !(c.journalRatio >= 0)) {
    throw new RangeError(`"compaction.journalRatio" must be a non-negative number, got ${c.journalRatio}`);
  }
  if (o.now !== undefined && typeof o.now !== "function") {
    throw new TypeError(`"now" must be a function, got ${typeof o.now}`);
  }
}

/**
 * Open a storage on sql.js. With a persister, the stored snapshot is checked and the
 * journal replayed; a damaged store is refused with `StorageCorruptError`, a store
 * written by a newer version with `StorageVersionError`, and in both cases nothing is
 * written. A torn journal tail (a crash during a flush) is dropped: it holds only changes
 * whose call had not resolved.
 *
 * @example
 * ```ts
 * import { openSqlJsStorage } from "@dagger/task-core/adapters/sqljs";
 * const storage = await openSqlJsStorage();
 * console.assert(storage.capabilities.durable === false);
 * await storage.close();
 * ```
 */
export async function openSqlJsStorage(options: SqlJsStorageOptions = {}): Promise<SqlJsStorage> {
  checkOptions(options);
  const load: SqlJsLoadOptions = {};
  if (options.locateFile) load.locateFile = options.locateFile;
  if (options.wasmBinary) load.wasmBinary = options.wasmBinary;
  const SQL = await resolveSqlJs(options.sql, load);
  const persister = options.persister;
  const location = persister?.location ?? persister?.name ?? "memory";
  try {
    const stored = persister ? await persister.load() : { snapshot: null, journal: null };
    return await openLoaded(SQL, options, persister, location, stored);
  } catch (e) {
    // A store that failed to load or was refused is not open: let the persister go (its
    // files, handles, lock). A load blocked by another holder took nothing, and the holder
    // may be this very persister, open for another storage: closing it would pull the
    // database from under that storage.
    if (!(e instanceof StorageBlockedError)) await persister?.close().catch(() => {});
    throw e;
  }
}

async function openLoaded(
  SQL: SqlJsModule,
  options: SqlJsStorageOptions,
  persister: SqlJsPersister | undefined,
  location: string,
  stored: SqlJsPersisted,
): Promise<SqlJsStorage> {
  const report: SqlJsOpenReport = {
    snapshotBytes: stored.snapshot?.length ?? 0,
    replayedFrames: 0,
    droppedBytes: 0,
    staleJournal: false,
    migratedFrom: null,
  };
  const hasJournal = stored.journal !== null && stored.journal.length > 0;
  let raw: SqlJsDatabase;
  let version = 0;
  let generation = 0;
  if (stored.snapshot && stored.snapshot.length > 0) {
    raw = openSnapshot(SQL, stored.snapshot, location, options.verify ?? true);
    try {
      version = readSchemaVersion(raw, location);
      generation = version > 0 ? readGeneration(raw) : 0;
    } catch (e) {
      raw.close();
      throw e;
    }
  } else {
    if (hasJournal) throw new StorageCorruptError(location, "a journal exists but its snapshot is missing");
    raw = new SQL.Database();
  }
  let journal;
  try {
    journal = hasJournal ? parseJournal(stored.journal!, location) : undefined;
    if (journal && journal.generation > generation) {
      throw new StorageCorruptError(
        location,
        `the journal (generation ${journal.generation}) is newer than the snapshot (${generation})`,
      );
    }
  } catch (e) {
    raw.close();
    throw e;
  }
  // Migration and replay run in memory: the stored bytes change only once they succeed.
  const db = new SqlDb(raw, persister !== undefined);
  let needSnapshot = persister !== undefined && (!stored.snapshot || !hasJournal);
  try {
    if (version < SCHEMA_VERSION) {
      migrate(raw, version);
      if (version > 0) report.migratedFrom = version;
      if (persister) needSnapshot = true;
    }
    if (journal && journal.generation < generation) {
      report.staleJournal = true;
      needSnapshot = true;
    } else if (journal) {
      try {
        await db.transaction(() => {
          for (const frame of journal.frames) db.replay(frame, location);
        });
      } catch (e) {
        if (e instanceof StorageCorruptError) throw e;
        throw new StorageCorruptError(location, `replaying the journal failed (${(e as Error)?.message})`, {
          cause: e,
        });
      }
      report.replayedFrames = journal.frames.length;
      report.droppedBytes = journal.tornBytes;
      // A torn tail is cleaned up; a journal of an older format is not appended to (a
      // reader of that format would misread the frames of this one): a new one starts.
      if (journal.tornBytes > 0 || journal.format < JOURNAL_FORMAT) needSnapshot = true;
    }
  } catch (e) {
    db.close();
    throw e;
  }
  const storage = new SqlJsStorageImpl(db, persister, options, report, {
    generation,
    journalBytes: hasJournal && !report.staleJournal ? stored.journal!.length : HEADER_BYTES,
    snapshotBytes: report.snapshotBytes,
    appends: report.staleJournal ? 0 : report.replayedFrames,
  });
  if (needSnapshot) {
    try {
      await storage.compact();
    } catch (e) {
      await storage.close();
      throw e;
    }
  }
  return storage;
}
