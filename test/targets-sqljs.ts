/**
 * Storage targets for the sql.js adapter: no persister, the in-memory persister, the file
 * persister (Node, Deno, Bun) and any other persister factory (IndexedDB in a browser or
 * with fake-indexeddb). The durable ones reopen the same data.
 */

import {
  createIndexedDbPersister,
  createMemoryPersister,
  loadSqlJs,
  openSqlJsStorage,
  type SqlJsModule,
  type SqlJsPersister,
  type SqlJsStorage,
  type SqlJsStorageOptions,
} from "../adapters/sqljs.ts";
import type { Storage } from "../src/storage.ts";
import type { Target } from "./targets.ts";

/**
 * The sql.js module every sql.js target and case uses. Unset, the default loader finds the
 * WASM (Node, Deno, Bun); a browser shim sets a module loaded with `locateFile`.
 */
export const sqljsTestModule: { sql?: SqlJsModule } = {};

/** `openSqlJsStorage` with the test module. */
export function openTestStorage(options: SqlJsStorageOptions = {}): Promise<SqlJsStorage> {
  return openSqlJsStorage({ ...(sqljsTestModule.sql ? { sql: sqljsTestModule.sql } : {}), ...options });
}

/** The test module, loaded. */
export function testSqlJs(): Promise<SqlJsModule> {
  return sqljsTestModule.sql ? Promise.resolve(sqljsTestModule.sql) : loadSqlJs();
}

export const sqljsMemoryTarget: Target = {
  name: "sqljs",
  durable: false,
  async open() {
    const storage = await openTestStorage();
    return { storage, teardown: () => storage.close() };
  },
};

/**
 * A durable target on persisters made by `make` (one per opened database). `reopen` closes
 * the storage and opens the same data with a fresh persister from `again`.
 */
export function sqljsPersistedTarget(
  name: string,
  make: () => Promise<{ persister: SqlJsPersister; again: () => SqlJsPersister; cleanup?: () => Promise<void> }>,
): Target {
  return {
    name,
    durable: true,
    async open() {
      const { persister, again, cleanup } = await make();
      const storage = await openTestStorage({ persister });
      return {
        storage,
        reopen: async (): Promise<Storage> => {
          await storage.close();
          return await openTestStorage({ persister: again() });
        },
        teardown: async () => {
          await storage.close();
          await cleanup?.();
        },
      };
    },
  };
}

export const sqljsMemoryPersisterTarget: Target = sqljsPersistedTarget("sqljs+memory-persister", () => {
  const persister = createMemoryPersister();
  return Promise.resolve({ persister, again: () => persister });
});

let idbCounter = 0;

/**
 * The IndexedDB persister on the global `indexedDB` (a browser's, or fake-indexeddb's once a
 * shim imported "fake-indexeddb/auto"), one fresh database per case.
 */
export function sqljsIndexedDbTarget(name: string): Target {
  return sqljsPersistedTarget(name, () => {
    const db = `sqljs-${Date.now()}-${idbCounter++}`;
    return Promise.resolve({
      persister: createIndexedDbPersister({ name: db }),
      again: () => createIndexedDbPersister({ name: db }),
      cleanup: () =>
        new Promise<void>((resolve) => {
          const r = indexedDB.deleteDatabase(db);
          r.onsuccess = r.onerror = r.onblocked = () => resolve();
        }),
    });
  });
}

/** The file persister, one fresh directory under `tmpdir` per case (node:fs: Node, Deno, Bun). */
export function sqljsFileTarget(tmpdir: string): Target {
  return sqljsPersistedTarget("sqljs+file", async () => {
    const fs = await import("node:fs/promises");
    const { createFilePersister } = await import("../adapters/sqljs-file.ts");
    const dir = await fs.mkdtemp(`${tmpdir}/task-core-sqljs-`);
    const path = `${dir}/tasks.sqlite`;
    return {
      persister: createFilePersister(path),
      again: () => createFilePersister(path),
      cleanup: () => fs.rm(dir, { recursive: true, force: true }),
    };
  });
}
