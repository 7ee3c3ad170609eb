import "fake-indexeddb/auto";
import { forceCloseDatabase } from "fake-indexeddb";
import { tmpdir } from "node:os";
import { test } from "vitest";
import { createIndexedDbPersister } from "../../adapters/sqljs.ts";
import { registerSqlJsSuites } from "../sqljs/suites.ts";
import { registerSuites } from "../suites.ts";
import {
  sqljsFileTarget,
  sqljsMemoryPersisterTarget,
  sqljsMemoryTarget,
  sqljsPersistedTarget,
} from "../targets-sqljs.ts";

const registrar = {
  test: (name: string, fn: () => Promise<void>) => test(name, fn),
  skip: (name: string) => test.todo(name),
};

let n = 0;
const fakeIndexedDbTarget = sqljsPersistedTarget("sqljs+indexeddb(fake)", () => {
  const name = `sqljs-${Date.now()}-${n++}`;
  return Promise.resolve({
    persister: createIndexedDbPersister({ name }),
    again: () => createIndexedDbPersister({ name }),
    cleanup: () =>
      new Promise<void>((resolve) => {
        const r = indexedDB.deleteDatabase(name);
        r.onsuccess = r.onerror = r.onblocked = () => resolve();
      }),
  });
});

registerSuites(registrar, [
  sqljsMemoryTarget,
  sqljsMemoryPersisterTarget,
  sqljsFileTarget(tmpdir()),
  fakeIndexedDbTarget,
]);
// fake-indexeddb closes a connection as the browser does when the site's data is cleared.
registerSqlJsSuites(registrar, tmpdir(), { forceCloseIndexedDb: (db) => forceCloseDatabase(db as never) });
