// The sql.js adapter in real Chromium: the shared suites on the IndexedDB and OPFS
// persisters (durable, reopened), and the adapter's own cases on the in-memory persister.
import { expect, test } from "vitest";
import { createIndexedDbPersister, createOpfsPersister, loadSqlJs } from "../../adapters/sqljs.ts";
import { StorageBlockedError } from "../../src/errors.ts";
import { registerSqlJsSuites } from "../sqljs/suites.ts";
import { registerSuites } from "../suites.ts";
import {
  openTestStorage,
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

// One tab (or worker) of an origin opens a persisted sql.js database at a time: a Web Lock
// per database, held from open to close.
for (
  const [kind, make] of [
    ["indexeddb", (name: string, lockWaitMs: number) => createIndexedDbPersister({ name, lockWaitMs })],
    [
      "opfs",
      async (name: string, lockWaitMs: number) => {
        const root = await navigator.storage.getDirectory();
        const directory = await root.getDirectoryHandle(name, { create: true });
        return createOpfsPersister({ name: "tasks", directory, lockWaitMs });
      },
    ],
  ] as const
) {
  test(`sqljs+${kind}: a database open in this page is refused to a second open, which waits for a close`, async () => {
    const name = `sqljs-lock-${Date.now()}-${n++}`;
    const first = await openTestStorage({ persister: await make(name, 0) });
    const refused = await openTestStorage({ persister: await make(name, 50) }).then(() => null, (e: unknown) => e);
    expect(refused).toBeInstanceOf(StorageBlockedError);
    expect(String((refused as Error).message)).toContain("one at a time");
    // A second open that waits long enough gets the database once the first closes (a reload).
    const waiting = openTestStorage({ persister: await make(name, 5000) });
    setTimeout(() => void first.close(), 50);
    const second = await waiting;
    expect((await second.listJobs()).length).toBe(0);
    await second.close();
    // Closed: a new open is granted at once.
    const third = await openTestStorage({ persister: await make(name, 0) });
    await third.close();
  });
}

test("sqljs+opfs: databases of one name in two directories of one name are separate databases, open at once", async () => {
  const root = await navigator.storage.getDirectory();
  const base = `sqljs-lock-dirs-${Date.now()}-${n++}`;
  const [a, b] = await Promise.all(["a", "b"].map(async (parent) => {
    const p = await (await root.getDirectoryHandle(base, { create: true })).getDirectoryHandle(parent, {
      create: true,
    });
    return await p.getDirectoryHandle("same", { create: true });
  }));
  const first = await openTestStorage({
    persister: createOpfsPersister({ name: "tasks", directory: a!, lockWaitMs: 0 }),
  });
  const second = await openTestStorage({
    persister: createOpfsPersister({ name: "tasks", directory: b!, lockWaitMs: 0 }),
  });
  // The same directory reached again is the same database: refused while open.
  const again = await (await (await root.getDirectoryHandle(base)).getDirectoryHandle("a")).getDirectoryHandle("same");
  const refused = await openTestStorage({
    persister: createOpfsPersister({ name: "tasks", directory: again, lockWaitMs: 0 }),
  })
    .then(() => null, (e: unknown) => e);
  expect(refused).toBeInstanceOf(StorageBlockedError);
  await first.close();
  await second.close();
  await root.removeEntry(base, { recursive: true });
});
