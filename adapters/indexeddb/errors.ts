/**
 * Turns IndexedDB's `DOMException`s into task-core's typed errors.
 *
 * @module
 */

import { isContractError } from "../../src/commit-rules.ts";
import { StorageError, StorageQuotaError } from "../../src/errors.ts";

function describe(e: unknown): { name: string; message: string } {
  if (typeof e === "object" && e !== null) {
    const { name, message } = e as { name?: unknown; message?: unknown };
    return { name: typeof name === "string" ? name : "Error", message: typeof message === "string" ? message : "" };
  }
  return { name: "Error", message: String(e) };
}

/**
 * How a full disk shows in `e` (or the error it wraps as `cause`), else `null`: IndexedDB's
 * `QuotaExceededError` when the browser sees the disk filling up; and Chromium's
 * `DataError` "Failed to write blobs" when it does not (the disk filled after it last
 * looked): Chromium writes large values to files of their own, and such a write then
 * fails with an I/O error. Either way the transaction was aborted: nothing of it applied.
 */
export function diskFull(e: unknown): string | null {
  for (let cur = e, depth = 0; cur && depth < 4; depth++) {
    const { name, message } = describe(cur);
    if (name === "QuotaExceededError") return name;
    if (name === "DataError" && message.startsWith("Failed to write blobs")) return `${name}: ${message}`;
    cur = (cur as { cause?: unknown }).cause;
  }
  return null;
}

/**
 * Translate an error thrown while `action` ran on the database `database`: the contract's
 * own errors pass through untouched, a full disk becomes `StorageQuotaError`, anything
 * else a `StorageError` that keeps the original as `cause`.
 */
export function toStorageError(e: unknown, database: string, action: string): Error {
  if (isContractError(e)) return e as Error;
  const full = diskFull(e);
  if (full !== null) {
    return new StorageQuotaError(
      `IndexedDB database "${database}" is out of space (${full}) while ${action}: ` +
        `nothing of it was applied; free some space or prune ended jobs`,
      { cause: e },
    );
  }
  const { name, message } = describe(e);
  return new StorageError(
    `IndexedDB failed while ${action} on "${database}": ${name}${message ? `: ${message}` : ""}`,
    { cause: e },
  );
}
