/**
 * The IndexedDB target of the reliability suites (fake-indexeddb, or the real thing in a
 * browser), with raw access to its object stores through a second plain connection.
 */

import { openIndexedDbStorage } from "../../adapters/indexeddb.ts";
import { deleteDatabase, testFactory, uniqueDbName } from "../targets-indexeddb.ts";
import type { Tamper } from "./kit.ts";
import type { ReliabilityTarget } from "./targets.ts";

function request<T>(r: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    r.onsuccess = () => resolve(r.result);
    r.onerror = () => reject(r.error);
  });
}

/** Read a record of `store`, change it with `edit`, and put it back, in one transaction of a plain connection. */
async function edit(
  factory: IDBFactory,
  name: string,
  store: string,
  id: string,
  change: (row: Record<string, unknown>) => unknown,
) {
  const db = await request(factory.open(name));
  try {
    const tx = db.transaction(store, "readwrite");
    const os = tx.objectStore(store);
    const row = await request(os.get(id));
    if (!row) throw new Error(`no ${store} record ${id}`);
    await request(os.put(change(row as Record<string, unknown>)));
    await new Promise<void>((resolve, reject) => {
      tx.oncomplete = () => resolve();
      tx.onerror = tx.onabort = () => reject(tx.error);
    });
  } finally {
    db.close();
  }
}

/** An IndexedDB target named `label`. */
export function indexedDbReliabilityTarget(label: string): ReliabilityTarget {
  return {
    name: label,
    durable: true,
    tamper: true,
    async open() {
      const name = uniqueDbName("task-core-reliability");
      const factory = testFactory();
      const storage = await openIndexedDbStorage({ name, idbFactory: factory });
      const tamper: Tamper = {
        task: (id, fields) => edit(factory, name, "tasks", id, (row) => ({ ...row, ...fields })),
        job: (id, fields) => edit(factory, name, "jobs", id, (row) => ({ ...row, ...fields })),
        // IndexedDB keeps structured clones, not JSON text: the nearest thing to text that is
        // not JSON is a value JSON has no form for.
        taskText: (id, field) => edit(factory, name, "tasks", id, (row) => ({ ...row, [field]: new Date(0) })),
      };
      return {
        storage,
        tamper,
        teardown: async () => {
          await storage.close();
          await deleteDatabase(factory, name);
        },
      };
    },
  };
}
