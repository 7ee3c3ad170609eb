/**
 * Every adapter's open function names an option it does not know instead of opening with
 * the default in its place (a misspelt `lockStaleMs` or `idbFactory` from JavaScript, or
 * options built at run time, had no compile error to catch them). Checked before anything
 * is opened, so no database, lock or connection is left behind.
 */
import "fake-indexeddb/auto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, expect, test } from "vitest";
import { createMemoryStorage } from "../../adapters/memory.ts";
import { openIndexedDbStorage } from "../../adapters/indexeddb.ts";
import { openPostgresStorage } from "../../adapters/postgres.ts";
import {
  createIndexedDbPersister,
  createMemoryPersister,
  createOpfsPersister,
  openSqlJsStorage,
} from "../../adapters/sqljs.ts";
import { createFilePersister, openSqlJsFileStorage } from "../../adapters/sqljs-file.ts";

const dir = mkdtempSync(join(tmpdir(), "task-core-options-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const loose = <T>(o: T): never => o as never;

test("the memory adapter names an unknown option", () => {
  expect(() => createMemoryStorage(loose({ clock: () => 0 }))).toThrow(
    new TypeError('Unknown createMemoryStorage() option "clock"; the options are "now"'),
  );
  // A key set to undefined is no option given.
  createMemoryStorage(loose({ now: undefined, clock: undefined }));
});

test("the sql.js adapters and persisters name an unknown option and open nothing", async () => {
  await expect(openSqlJsStorage(loose({ persister: createMemoryPersister(), verfiy: true }))).rejects.toThrow(
    'Unknown sql.js option "verfiy"',
  );
  await expect(
    openSqlJsStorage(loose({ persister: createMemoryPersister(), compaction: { ratio: 2 } })),
  ).rejects.toThrow('Unknown sql.js option "compaction.ratio"; the options are "compaction.minJournalBytes"');
  const path = join(dir, "tasks.sqlite");
  await expect(openSqlJsFileStorage(path, loose({ lockStale: 1000 })))
    .rejects.toThrow('Unknown openSqlJsFileStorage() option "lockStale"');
  await expect(openSqlJsFileStorage(path, loose({ persister: createMemoryPersister() })))
    .rejects.toThrow('Unknown openSqlJsFileStorage() option "persister"');
  expect(() => createFilePersister(path, loose({ fsync: false }))).toThrow(
    'Unknown createFilePersister() option "fsync"; the options are "sync", "lockStaleMs"',
  );
  expect(readdirSync(dir)).toEqual([]);
  expect(() => createIndexedDbPersister(loose({ name: "x", lockWait: 5 }))).toThrow(
    'Unknown createIndexedDbPersister() option "lockWait"',
  );
  expect(() => createOpfsPersister(loose({ name: "x", dir: {} }))).toThrow(
    'Unknown createOpfsPersister() option "dir"',
  );
  // Known options still open.
  const storage = await openSqlJsFileStorage(path, { lockStaleMs: 10_000 });
  await storage.close();
});

test("the IndexedDB and PostgreSQL adapters name an unknown option, with the one meant", async () => {
  await expect(openIndexedDbStorage(loose({ name: "options-test", indexedDB }))).rejects.toThrow(
    'Unknown IndexedDB option "indexedDB" (did you mean "idbFactory"?)',
  );
  await expect(openPostgresStorage(loose({ connectionString: "postgres://localhost/x" }))).rejects.toThrow(
    'Unknown PostgreSQL option "connectionString" (did you mean "client" (a client, or a function that opens one)?)',
  );
  const idb = await openIndexedDbStorage({ name: "options-test" });
  await idb.close();
});
