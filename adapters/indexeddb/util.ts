/**
 * Small helpers shared by the IndexedDB modules.
 *
 * @module
 */

import { type IDBPObjectStore, type StoreNames, unwrap } from "idb";
import type { TaskRow } from "./rows.ts";
import type { TaskCoreSchema } from "./schema.ts";

const noop = (): void => {};

/** Mark a promise as handled (its error surfaces through the transaction) and return it. */
export function quiet<T>(p: Promise<T>): Promise<T> {
  p.catch(noop);
  return p;
}

/** Keys sort as number < string < array: `[...prefix, UPPER]` is above every `[...prefix, id]`. */
export const UPPER: never[] = [];

/** Order records by id. */
export function byId<T extends { id: string }>(a: T, b: T): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/**
 * A `getAll()` count: the API refuses one past 2^32 - 1 (a `TypeError`), and a count that
 * large reads the whole range anyway, so it is none (`undefined`).
 */
export function readCount(n: number): number | undefined {
  return n > 0xffffffff ? undefined : n;
}

/** Whether the sorted `ids` are better read as one key range than one `get` each (see `readRows`). */
export const RANGE_READ_MIN = 16;

/** The `tasks` store in a readwrite transaction. */
export type TaskStore = IDBPObjectStore<TaskCoreSchema, StoreNames<TaskCoreSchema>[], "tasks", "readwrite">;

/**
 * Issue `put`s of task rows on the plain store, without the promise and listeners `idb`
 * adds to each request (in the page they cost more than the rest of the write). A
 * failing `put` aborts the transaction, whose error the caller reports when it awaits `done`.
 */
export function putRows(store: TaskStore, rows: Iterable<TaskRow>): void {
  const raw = unwrap(store);
  for (const row of rows) raw.put(row);
}
