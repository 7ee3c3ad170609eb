/**
 * Storage on sql.js (SQLite compiled to WASM): the embedded default for Node, Deno and
 * Bun, and a durable choice in the browser.
 *
 * The database lives in memory; a persister keeps it: a snapshot (a SQLite file image)
 * plus a journal of changed rows, appended and synced per flush with group commit, and
 * folded into a new snapshot now and then. Every `createJob`, `commit` and `claimReady`
 * resolves only after its changes are durable. A failed save fails the calls that waited
 * for it with a transient `StorageError` (`StorageQuotaError` when the disk or quota is
 * full); their changes stay in memory, and the next call saves the database whole before
 * it goes on, so they may still be stored. Persisters: `createFilePersister` in
 * `./sqljs-file.ts` (Node, Deno, Bun), `createIndexedDbPersister` and
 * `createOpfsPersister` (browsers), `createMemoryPersister` (tests), or none.
 *
 * One process (or tab) at a time may open a persisted database.
 *
 * In a Vite page, hand sql.js its WASM URL:
 * `import wasmUrl from "sql.js/dist/sql-wasm-browser.wasm?url"` and
 * `openSqlJsStorage({ locateFile: () => wasmUrl, persister: createIndexedDbPersister({ name: "tasks" }) })`.
 *
 * @example
 * ```ts
 * import { createMemoryPersister, openSqlJsStorage } from "@dagger/task-core/adapters/sqljs";
 * const persister = createMemoryPersister();
 * const storage = await openSqlJsStorage({ persister });
 * console.assert(storage.capabilities.durable);
 * await storage.close();
 * const again = await openSqlJsStorage({ persister });
 * await again.close();
 * ```
 *
 * @module
 */

export { openSqlJsStorage } from "./sqljs/open.ts";
export type { SqlJsOpenReport, SqlJsPersistStats, SqlJsStorage, SqlJsStorageOptions } from "./sqljs/storage.ts";
export type { CompactionOptions } from "./sqljs/group-commit.ts";
export { loadSqlJs } from "./sqljs/module.ts";
export type { SqlJsDatabase, SqlJsLoadOptions, SqlJsModule, SqlJsStatement, SqlValue } from "./sqljs/module.ts";
export { createMemoryPersister } from "./sqljs/persister.ts";
export type { MemoryPersister, SqlJsPersisted, SqlJsPersister } from "./sqljs/persister.ts";
export { createIndexedDbPersister } from "./sqljs/indexeddb-persister.ts";
export type { IndexedDbFactory, IndexedDbPersisterOptions } from "./sqljs/indexeddb-persister.ts";
export { createOpfsPersister } from "./sqljs/opfs-persister.ts";
export type { OpfsDirectoryHandle, OpfsFileHandle, OpfsPersisterOptions } from "./sqljs/opfs-persister.ts";
export { SCHEMA_VERSION } from "./sqljs/schema.ts";
export { JOURNAL_FORMAT } from "./sqljs/journal.ts";
