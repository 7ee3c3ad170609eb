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

/** Whether `e` (or the error it wraps as `cause`) is IndexedDB's `QuotaExceededError`. */
export function isQuotaError(e: unknown): boolean {
  for (let cur = e, depth = 0; cur && depth < 4; depth++) {
    if (describe(cur).name === "QuotaExceededError") return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Translate an error thrown while `action` ran on the database `database`: the contract's
 * own errors pass through untouched, a full disk becomes `StorageQuotaError`, anything
 * else a `StorageError` that keeps the original as `cause`.
 */
export function toStorageError(e: unknown, database: string, action: string): Error {
  if (isContractError(e)) return e as Error;
  if (isQuotaError(e)) {
    return new StorageQuotaError(
      `IndexedDB database "${database}" is out of space (QuotaExceededError) while ${action}: ` +
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
