/**
 * IndexedDB storage targets: the real `indexedDB` in a browser, fake-indexeddb elsewhere
 * (the shim imports "fake-indexeddb/auto" before this file runs). Every open gets a
 * database of its own, deleted again by `teardown`.
 */

import { type IndexedDbStorageOptions, openIndexedDbStorage } from "../adapters/indexeddb.ts";
import type { Target } from "./targets.ts";

let counter = 0;

/** A database name no other test uses. */
export function uniqueDbName(prefix = "task-core-test"): string {
  counter++;
  return `${prefix}-${Date.now().toString(36)}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

/** The factory the tests use: the global one (real in a browser, fake elsewhere). */
export function testFactory(): IDBFactory {
  const f = (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  if (!f) throw new Error('No indexedDB: import "fake-indexeddb/auto" in the shim');
  return f;
}

/** Delete a database, resolving even when another connection blocks it for a while. */
export function deleteDatabase(factory: IDBFactory, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = factory.deleteDatabase(name);
    request.onsuccess = () => resolve();
    request.onerror = () => reject(request.error);
  });
}

/** An IndexedDB target; `options` are passed to every open. */
export function indexedDbTarget(
  label = "indexeddb",
  options: Omit<IndexedDbStorageOptions, "name"> = {},
): Target {
  return {
    name: label,
    durable: true,
    async open() {
      const name = uniqueDbName();
      const factory = options.idbFactory ?? testFactory();
      const opts = { ...options, name, idbFactory: factory };
      const storage = await openIndexedDbStorage(opts);
      return {
        storage,
        reopen: () => openIndexedDbStorage(opts),
        teardown: async () => {
          await storage.close();
          await deleteDatabase(factory, name);
        },
      };
    },
  };
}
