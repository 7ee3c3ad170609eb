// The sql.js adapter in real Chromium: the shared suites on the IndexedDB and OPFS
// persisters (durable, reopened), and the adapter's own cases on the in-memory persister.
import { test } from "vitest";
import { createIndexedDbPersister, createOpfsPersister, loadSqlJs } from "../../adapters/sqljs.ts";
import { registerSqlJsSuites } from "../sqljs/suites.ts";
import { registerSuites } from "../suites.ts";
import {
  sqljsMemoryPersisterTarget,
  sqljsMemoryTarget,
  sqljsPersistedTarget,
  sqljsTestModule,
} from "../targets-sqljs.ts";

// The vite dev server serves the WASM from node_modules; a built page would use
// `import wasmUrl from "sql.js/dist/sql-wasm-browser.wasm?url"` and `locateFile: () => wasmUrl`.
sqljsTestModule.sql = await loadSqlJs({
  locateFile: (file) => new URL(`../../node_modules/sql.js/dist/${file}`, import.meta.url).href,
});

const registrar = {
  test: (name: string, fn: () => Promise<void>) => test(name, fn),
  skip: (name: string) => test.todo(name),
};
let n = 0;

const indexedDbTarget = sqljsPersistedTarget("sqljs+indexeddb", () => {
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

const opfsTarget = sqljsPersistedTarget("sqljs+opfs", async () => {
  const root = await navigator.storage.getDirectory();
  const name = `sqljs-${Date.now()}-${n++}`;
  const directory = await root.getDirectoryHandle(name, { create: true });
  return {
    persister: createOpfsPersister({ name: "tasks", directory }),
    again: () => createOpfsPersister({ name: "tasks", directory }),
    cleanup: () => root.removeEntry(name, { recursive: true }),
  };
});

registerSuites(registrar, [sqljsMemoryTarget, sqljsMemoryPersisterTarget, indexedDbTarget, opfsTarget]);
registerSqlJsSuites(registrar);
