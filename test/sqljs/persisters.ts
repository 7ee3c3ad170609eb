/**
 * Cases every sql.js persister must pass, whatever keeps its bytes: the in-memory one, the
 * file one (node:fs), IndexedDB (where the runtime has it: fake-indexeddb in Node, the
 * real one in a browser) and OPFS (on an in-memory directory handle, in every runtime).
 */

import {
  createIndexedDbPersister,
  createMemoryPersister,
  createOpfsPersister,
  type OpfsDirectoryHandle,
  type OpfsFileHandle,
  type SqlJsPersister,
} from "../../adapters/sqljs.ts";
import { concatBytes } from "../../adapters/sqljs/persister.ts";
import {
  isTransientStorageError,
  StorageBlockedError,
  StorageClosedError,
  StorageQuotaError,
  StorageSetupError,
  StorageVersionChangeError,
} from "../../src/errors.ts";
import { equal, ok, rejects } from "../conformance/assert.ts";
import { buildJob } from "../conformance/fixtures.ts";
import { type Case, register, type Registrar } from "../conformance/harness.ts";
import { openTestStorage } from "../targets-sqljs.ts";

interface PersisterCtx {
  /** A persister of the case's database (the memory persister: always the same one). */
  persister(): SqlJsPersister;
}

function notFound(name: string): Error {
  return Object.assign(new Error(`"${name}" not found`), { name: "NotFoundError" });
}

/** An OPFS directory handle that keeps its files in memory, for runtimes without OPFS. */
export function memoryDirectory(): OpfsDirectoryHandle {
  const files = new Map<string, Uint8Array>();
  const handle = (name: string): OpfsFileHandle => ({
    getFile: () => {
      const bytes = files.get(name);
      return bytes
        ? Promise.resolve({ arrayBuffer: () => Promise.resolve(bytes.slice().buffer) })
        : Promise.reject(notFound(name));
    },
    createWritable: () => {
      const parts: Uint8Array[] = [];
      return Promise.resolve({
        write: (data: Uint8Array) => {
          parts.push(data.slice());
          return Promise.resolve();
        },
        close: () => {
          files.set(name, concatBytes(parts));
          return Promise.resolve();
        },
      });
    },
  });
  return {
    name: "memory",
    getFileHandle(name, options) {
      if (!files.has(name)) {
        if (!options?.create) return Promise.reject(notFound(name));
        files.set(name, new Uint8Array());
      }
      return Promise.resolve(handle(name));
    },
    removeEntry(name) {
      return files.delete(name) ? Promise.resolve() : Promise.reject(notFound(name));
    },
  };
}

export const persisterCases: Case<PersisterCtx>[] = [
  {
    name: "a persister open for one storage refuses a second open with StorageBlockedError until that storage closes",
    async run({ persister }) {
      const p = persister();
      const first = await openTestStorage({ persister: p });
      const a = buildJob([{ key: "a" }]);
      await first.createJob(a.job, a.tasks);
      await rejects(() => openTestStorage({ persister: p }), StorageBlockedError, "already open");
      // The refused open took nothing from the first storage: it still persists, and compacts.
      const b = buildJob([{ key: "b" }]);
      await first.createJob(b.job, b.tasks);
      await first.compact();
      const c = buildJob([{ key: "c" }]);
      await first.createJob(c.job, c.tasks);
      await first.close();
      const again = await openTestStorage({ persister: p });
      equal((await again.listJobs()).length, 3, "every job the first storage confirmed is stored");
      await again.close();
      const fresh = await openTestStorage({ persister: persister() });
      equal((await fresh.listJobs()).length, 3);
      await fresh.close();
    },
  },
  {
    name:
      "a second persister on the same database is refused while the first storage is open, with Web Locks or without",
    async run({ persister }) {
      // Two persister objects on one database in one realm: with no Web Locks the second
      // opened too, and its compaction replaced the first storage's confirmed writes.
      const first = await openTestStorage({ persister: persister() });
      const a = buildJob([{ key: "a" }]);
      await first.createJob(a.job, a.tasks);
      await rejects(() => openTestStorage({ persister: persister() }), StorageBlockedError);
      await first.close();
      const again = await openTestStorage({ persister: persister() });
      equal((await again.listJobs()).length, 1, "the first storage's job is stored");
      await again.close();
    },
  },
];

interface IndexedDbCtx {
  /** The IndexedDB factory. */
  idb: IDBFactory;
  /** The database's name. */
  name: string;
  /** Close a connection as the browser does when the site's data is cleared (a `close` event follows). */
  forceClose: (db: IDBDatabase) => void;
}

/**
 * Close a connection as the browser does when it force-closes it: a real browser gives a
 * page no way to, so the connection is closed and then sent the `close` event it would get.
 */
export function closeLikeTheBrowser(db: IDBDatabase): void {
  db.close();
  db.dispatchEvent(new Event("close"));
}

/** `idb`, keeping every connection it opens in `connections`. */
function spiedFactory(idb: IDBFactory, connections: IDBDatabase[]): IDBFactory {
  return {
    open(name: string, version?: number) {
      const r = idb.open(name, version);
      r.addEventListener("success", () => connections.push(r.result));
      return r;
    },
    deleteDatabase: (name: string) => idb.deleteDatabase(name),
    cmp: (a: unknown, b: unknown) => idb.cmp(a, b),
    databases: () => idb.databases(),
  };
}

/** Delete an IndexedDB database, as another tab would (open connections get a versionchange). */
function deleteDatabase(idb: IDBFactory, name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const r = idb.deleteDatabase(name);
    r.onsuccess = () => resolve();
    r.onerror = () => reject(r.error);
  });
}

export const indexedDbPersisterCases: Case<IndexedDbCtx>[] = [
  {
    name: 'a full disk (QuotaExceededError, or Chromium\'s DataError "Failed to write blobs") fails a save with ' +
      "StorageQuotaError, which may pass, and the next save stores its bytes",
    async run({ idb, name }) {
      const persister = createIndexedDbPersister({ name, indexedDB: idb });
      await persister.load();
      const store = (globalThis as { IDBObjectStore?: { prototype: { put: (...a: unknown[]) => unknown } } })
        .IDBObjectStore!.prototype;
      const put = store.put;
      const fulls = [
        new DOMException("The quota has been exceeded.", "QuotaExceededError"),
        // How Chromium fails a large value's write when the disk filled after it last looked.
        new DOMException("Failed to write blobs (IOError)", "DataError"),
      ];
      try {
        for (const full of fulls) {
          store.put = () => {
            throw full;
          };
          const err = await rejects(() => persister.append(new Uint8Array([1, 2, 3])), StorageQuotaError, "full");
          ok(isTransientStorageError(err), "room may come back");
          await rejects(() => persister.replace(new Uint8Array([9]), new Uint8Array()), StorageQuotaError, "full");
        }
      } finally {
        store.put = put;
      }
      await persister.append(new Uint8Array([4, 5]));
      await persister.close();
      const again = createIndexedDbPersister({ name, indexedDB: idb });
      const loaded = await again.load();
      equal(loaded.snapshot, null, "no snapshot was stored");
      equal([...(loaded.journal ?? [])].join(","), "4,5", "only the save made with room");
      await again.close();
    },
  },
  {
    name: "a database deleted by another tab fails later saves with StorageVersionChangeError and is never " +
      "recreated empty",
    async run({ idb, name }) {
      const s = await openTestStorage({ persister: createIndexedDbPersister({ name, indexedDB: idb }) });
      const a = buildJob([{ key: "a" }]);
      await s.createJob(a.job, a.tasks);
      await deleteDatabase(idb, name);
      const b = buildJob([{ key: "b" }]);
      const err = await rejects<StorageVersionChangeError>(
        () => s.createJob(b.job, b.tasks),
        StorageVersionChangeError,
        "deleted by another tab",
      );
      equal(err.newVersion, null);
      equal(isTransientStorageError(err), false, "retrying cannot bring the database back");
      await rejects(() => s.getJob(a.job.id), StorageVersionChangeError);
      await s.close();
      // Nothing recreated the database with a journal and no snapshot: it opens, empty.
      const again = await openTestStorage({ persister: createIndexedDbPersister({ name, indexedDB: idb }) });
      equal((await again.listJobs()).length, 0);
      await again.close();
    },
  },
  {
    name: "a database the browser closed (its site data cleared) fails later saves with StorageClosedError, " +
      "which retrying does not cure, and opens again once the storage is reopened",
    async run({ idb, name, forceClose }) {
      const connections: IDBDatabase[] = [];
      const indexedDB = spiedFactory(idb, connections);
      const s = await openTestStorage({ persister: createIndexedDbPersister({ name, indexedDB }) });
      const a = buildJob([{ key: "a" }]);
      await s.createJob(a.job, a.tasks);
      equal(connections.length, 1);
      forceClose(connections[0]!);
      const b = buildJob([{ key: "b" }]);
      const err = await rejects(() => s.createJob(b.job, b.tasks), StorageClosedError, "closed by the browser");
      equal(isTransientStorageError(err), false, "retrying cannot bring the connection back");
      await rejects(() => s.getJob(a.job.id), StorageClosedError, "closed by the browser");
      await rejects(() => s.createJob(b.job, b.tasks), StorageClosedError);
      equal(connections.length, 1, "the persister did not open the database again on its own");
      await s.close();
      const again = await openTestStorage({ persister: createIndexedDbPersister({ name, indexedDB: idb }) });
      equal((await again.listJobs()).length, 1, "what was saved before the close is there");
      ok(await again.getJob(a.job.id));
      await again.close();
    },
  },
];

/** Node, Deno or Bun (not a browser page, where a global `isSecureContext` is the browser's own). */
const serverRuntime = (() => {
  const g = globalThis as { process?: { versions?: { node?: unknown } }; Deno?: unknown; Bun?: unknown };
  return typeof g.process?.versions?.node === "string" || g.Deno !== undefined || g.Bun !== undefined;
})();

export const opfsPersisterCases: Case<{ directory: OpfsDirectoryHandle }>[] = [
  {
    name: "in Node, Deno or Bun a global isSecureContext (a DOM emulation such as jsdom, a polyfill) does not " +
      "make opening refuse for want of Web Locks: no other tab shares the database",
    ...(serverRuntime ? {} : { skip: "a browser page: its isSecureContext is its own" }),
    async run({ directory }) {
      const had = Object.getOwnPropertyDescriptor(globalThis, "isSecureContext");
      Object.defineProperty(globalThis, "isSecureContext", { value: true, configurable: true });
      try {
        const s = await openTestStorage({ persister: createOpfsPersister({ name: "tasks", directory }) });
        const b = buildJob([{ key: "a" }]);
        await s.createJob(b.job, b.tasks);
        await s.close();
        // The lock of this realm still refuses a second open of one database.
        const first = await openTestStorage({ persister: createOpfsPersister({ name: "tasks", directory }) });
        await rejects(
          () => openTestStorage({ persister: createOpfsPersister({ name: "tasks", directory, lockWaitMs: 0 }) }),
          StorageBlockedError,
        );
        equal((await first.listJobs()).length, 1);
        await first.close();
      } finally {
        if (had) Object.defineProperty(globalThis, "isSecureContext", had);
        else delete (globalThis as { isSecureContext?: boolean }).isSecureContext;
      }
    },
  },
  {
    name: "files without createWritable() (Safari before 17.4) fail the open with StorageSetupError, which " +
      "retrying does not cure, instead of a transient error",
    async run({ directory }) {
      const bare: OpfsDirectoryHandle = {
        getFileHandle: async (name, options) => {
          const { getFile } = await directory.getFileHandle(name, options);
          return { getFile } as OpfsFileHandle; // no createWritable, as Safari's handles on the main thread
        },
        removeEntry: (name) => directory.removeEntry(name),
      };
      const err = await rejects(
        () => openTestStorage({ persister: createOpfsPersister({ name: "tasks", directory: bare }) }),
        StorageSetupError,
        "createWritable",
      );
      equal(isTransientStorageError(err), false);
      // It held nothing: the same database opens where files can be written.
      const s = await openTestStorage({ persister: createOpfsPersister({ name: "tasks", directory }) });
      await s.close();
    },
  },
];

let n = 0;

/** How the persister cases reach into this runtime. */
export interface PersisterSuiteOptions {
  /**
   * Force-close an IndexedDB connection, as the browser does when the site's data is
   * cleared (default {@link closeLikeTheBrowser}; fake-indexeddb has `forceCloseDatabase`).
   */
  forceCloseIndexedDb?: (db: IDBDatabase) => void;
}

/** Register the persister cases on every persister this runtime has (`tmpdir`: the file one too). */
export function registerPersisterSuites(
  registrar: Registrar,
  tmpdir?: string,
  options: PersisterSuiteOptions = {},
): void {
  const kinds: [string, () => Promise<{ ctx: PersisterCtx; teardown?: () => Promise<void> }>][] = [
    ["memory", () => {
      const p = createMemoryPersister();
      return Promise.resolve({ ctx: { persister: () => p } });
    }],
    ["opfs(memory directory)", () => {
      const directory = memoryDirectory();
      return Promise.resolve({ ctx: { persister: () => createOpfsPersister({ name: "tasks", directory }) } });
    }],
  ];
  if (tmpdir !== undefined) {
    kinds.push(["file", async () => {
      const fs = await import("node:fs/promises");
      const { createFilePersister } = await import("../../adapters/sqljs-file.ts");
      const dir = await fs.mkdtemp(`${tmpdir}/task-core-sqljs-persister-`);
      return {
        ctx: { persister: () => createFilePersister(`${dir}/tasks.sqlite`) },
        teardown: () => fs.rm(dir, { recursive: true, force: true }),
      };
    }]);
  }
  const idb = (globalThis as { indexedDB?: IDBFactory }).indexedDB;
  if (idb) {
    kinds.push(["indexeddb", () => {
      const name = `sqljs-persister-${Date.now()}-${n++}`;
      return Promise.resolve({
        ctx: { persister: () => createIndexedDbPersister({ name }) },
        teardown: () =>
          new Promise<void>((resolve) => {
            const r = idb.deleteDatabase(name);
            r.onsuccess = r.onerror = r.onblocked = () => resolve();
          }),
      });
    }]);
  }
  for (const [kind, setup] of kinds) register(registrar, `sqljs[${kind} persister]`, persisterCases, setup);
  register(
    registrar,
    "sqljs[opfs(memory directory) persister]",
    opfsPersisterCases,
    () => Promise.resolve({ ctx: { directory: memoryDirectory() } }),
  );
  if (!idb) {
    // Never silent: a runtime without one lists these cases as skipped, with the reason.
    const skip = 'this runtime has no indexedDB (a shim can import "fake-indexeddb/auto")';
    const none = () => Promise.reject(new Error("skipped"));
    register(registrar, "sqljs[indexeddb persister]", persisterCases.map((c) => ({ ...c, skip })), none);
    register(registrar, "sqljs[indexeddb persister]", indexedDbPersisterCases.map((c) => ({ ...c, skip })), none);
  } else {
    register(registrar, "sqljs[indexeddb persister]", indexedDbPersisterCases, () => {
      const name = `sqljs-persister-${Date.now()}-${n++}`;
      const forceClose = options.forceCloseIndexedDb ?? closeLikeTheBrowser;
      return Promise.resolve({
        ctx: { idb, name, forceClose },
        teardown: () => deleteDatabase(idb, name).catch(() => {}),
      });
    });
  }
}
