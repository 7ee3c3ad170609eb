/**
 * The storages the page offers.
 *
 * @module
 */

/** Which storage backs the page. */
export type StorageKind = "indexeddb" | "sqljs" | "memory";

/** Every kind, in the order of the picker. */
export const STORAGE_KINDS: readonly StorageKind[] = ["indexeddb", "sqljs", "memory"];

/** Labels for people. */
export const STORAGE_LABELS: Readonly<Record<StorageKind, string>> = Object.freeze({
  indexeddb: "IndexedDB",
  sqljs: "sql.js (SQLite WASM) + IndexedDB persister",
  memory: "Memory (lost on reload)",
});

/** Short labels for the status line. */
export const STORAGE_SHORT: Readonly<Record<StorageKind, string>> = Object.freeze({
  indexeddb: "IndexedDB",
  sqljs: "sql.js",
  memory: "memory",
});

/** Read a kind from a URL parameter or a saved choice; anything else is the default (IndexedDB). */
export function parseStorageKind(value: string | null | undefined): StorageKind {
  return STORAGE_KINDS.includes(value as StorageKind) ? value as StorageKind : "indexeddb";
}

/** Whether a kind keeps its data across a reload. */
export function isDurable(kind: StorageKind): boolean {
  return kind !== "memory";
}
