// The sql.js adapter in real Chromium: the shared suites on the IndexedDB and OPFS
// persisters (durable, reopened), and the adapter's own cases on the in-memory persister.
import { expect, test } from "vitest";
import { createIndexedDbPersister, createOpfsPersister, loadSqlJs } from "../../adapters/sqljs.ts";
import { isTransientStorageError, StorageBlockedError, StorageSetupError } from "../../src/errors.ts";
import { buildJob } from "../conformance/fixtures.ts";
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

/**
 * Make this page look like one that is not a secure context (http from a LAN address):
 * browsers give such a page no `navigator.locks` and no `navigator.storage` (OPFS), but
 * IndexedDB. Returns the function that undoes it.
 */
function insecurePage(hide: ("locks" | "storage")[]): () => void {
  const secure = Object.getOwnPropertyDescriptor(globalThis, "isSecureContext");
  Object.defineProperty(globalThis, "isSecureContext", { value: false, configurable: true });
  for (const key of hide) Object.defineProperty(navigator, key, { value: undefined, configurable: true });
  return () => {
    for (const key of hide) delete (navigator as unknown as Record<string, unknown>)[key];
    if (secure) Object.defineProperty(globalThis, "isSecureContext", secure);
    else delete (globalThis as { isSecureContext?: boolean }).isSecureContext;
  };
}

// Without Web Locks the persisters fell back on a lock of this realm only: two tabs of a
// page served over http from a LAN address both opened one IndexedDB database, and the
// snapshot one wrote erased the jobs the other had confirmed (reproduced across two real
// pages of an insecure origin). Such a page is refused, for a reason retrying does not change.
for (
  const [kind, make] of [
    ["indexeddb", (name: string) => Promise.resolve(createIndexedDbPersister({ name, lockWaitMs: 0 }))],
    [
      "opfs",
      async (name: string) => {
        const root = await navigator.storage.getDirectory();
        const directory = await root.getDirectoryHandle(name, { create: true });
        return createOpfsPersister({ name: "tasks", directory, lockWaitMs: 0 });
      },
    ],
  ] as const
) {
  test(`sqljs+${kind}: a page without Web Locks (not a secure context) is refused with StorageSetupError`, async () => {
    const name = `sqljs-nolocks-${Date.now()}-${n++}`;
    const persister = await make(name);
    const restore = insecurePage(["locks"]);
    let refused: unknown;
    try {
      refused = await openTestStorage({ persister }).then(async (s) => {
        await s.close();
        return null;
      }, (e: unknown) => e);
    } finally {
      restore();
    }
    expect(refused).toBeInstanceOf(StorageSetupError);
    expect(isTransientStorageError(refused)).toBe(false);
    expect(String((refused as Error).message)).toContain("secure context");
    // With Web Locks back, the same persister opens: the refusal held nothing.
    const s = await openTestStorage({ persister });
    await s.close();
  });
}

test("sqljs+opfs: a page without OPFS (not a secure context) is refused with an error retrying does not cure", async () => {
  const restore = insecurePage(["storage", "locks"]);
  let refused: unknown;
  try {
    refused = await openTestStorage({ persister: createOpfsPersister({ name: "tasks" }) }).then(() => null, (e) => e);
  } finally {
    restore();
  }
  expect(refused).toBeInstanceOf(StorageSetupError);
  expect(isTransientStorageError(refused)).toBe(false);
  expect(String((refused as Error).message)).toContain("secure context");
});

// One chunk file per flush: a run of small flushes (a commit at a time) below the default
// compaction size (8 MiB) made thousands of files, each read one after the other at open
// and deleted one by one at the next snapshot: 10,000 flushes took 17 s to open and stalled
// every call for 9 s at the snapshot. A snapshot is now written every 1,000 appends.
test("sqljs+opfs: a run of small flushes keeps the journal to a bounded number of chunk files", async () => {
  const root = await navigator.storage.getDirectory();
  const base = `sqljs-chunks-${Date.now()}-${n++}`;
  const directory = await root.getDirectoryHandle(base, { create: true });
  const storage = await openTestStorage({ persister: createOpfsPersister({ name: "tasks", directory }) });
  const flushes = 1100;
  for (let i = 0; i < flushes; i++) {
    const b = buildJob([{ key: "a", input: i }]);
    await storage.createJob(b.job, b.tasks); // one at a time: one append each
  }
  expect(storage.persistStats.appends).toBeGreaterThan(1000);
  let chunkFiles = 0;
  for await (const key of (directory as unknown as { keys(): AsyncIterable<string> }).keys()) {
    if (/^tasks\.tclog\.\d+$/.test(key)) chunkFiles++;
  }
  expect(chunkFiles).toBeLessThanOrEqual(1000);
  await storage.close();
  const again = await openTestStorage({ persister: createOpfsPersister({ name: "tasks", directory }) });
  expect(again.openReport.replayedFrames).toBeLessThanOrEqual(1000);
  expect((await again.listJobs()).length).toBe(flushes);
  await again.close();
  await root.removeEntry(base, { recursive: true });
});
