/**
 * Turns driver errors into task-core's typed errors. Anything the driver throws (a lost
 * connection, a server shutting down, a transaction rolled back for a deadlock, a server
 * out of resources) becomes a `StorageError` that keeps the original as `cause`, so the
 * executor retries the call with backoff; a value the columns cannot hold (SQLSTATE class
 * 22) becomes a `RangeError`; a database set up wrongly for the storage (classes 0A, 3F,
 * 42; at open, 28 too) becomes a `StorageSetupError`, which is not retried; the contract's
 * own errors pass through untouched.
 *
 * @module
 */

import { isContractError } from "../../src/commit-rules.ts";
import { StorageError, StorageSetupError } from "../../src/errors.ts";

/** The SQLSTATE (or driver error code, such as `CONNECTION_CLOSED`) of an error, if it has one. */
export function errorCode(e: unknown): string | undefined {
  for (let cur = e, depth = 0; cur && depth < 4; depth++) {
    const code = (cur as { code?: unknown }).code;
    if (typeof code === "string") return code;
    cur = (cur as { cause?: unknown }).cause;
  }
  return undefined;
}

/** A transaction that PostgreSQL rolled back to break a deadlock or a serialization conflict: safe to run again. */
export function isTransient(e: unknown): boolean {
  const code = errorCode(e);
  return code === "40P01" || code === "40001";
}

/** A unique-key violation. */
export function isUniqueViolation(e: unknown): boolean {
  return errorCode(e) === "23505";
}

/**
 * Translate an error of the driver met while `action` ran on schema `schema`: the
 * contract's errors pass through, anything else becomes a `StorageError` with the cause.
 */
export function toStorageError(e: unknown, schema: string, action: string, opening = false): Error {
  if (e instanceof StorageError || (isContractError(e) && !isDriverError(e))) return e as Error;
  const err = e as { name?: unknown; message?: unknown } | null;
  const name = typeof err?.name === "string" ? err.name : "Error";
  const message = typeof err?.message === "string" ? err.message : String(e);
  const code = errorCode(e);
  const text = `PostgreSQL failed while ${action} (schema "${schema}"): ${name}${code ? ` ${code}` : ""}: ${message}`;
  // Class 22, data exception: a value the columns cannot hold (an integer past int4, a NUL
  // character in text); class 54, program limit exceeded: a value past a limit of the
  // server (a key too long for its index, 54000). Sending it again fails again: a
  // RangeError, not an error that may pass (the executor then drops only that result).
  if (code !== undefined && (code.startsWith("22") || code.startsWith("54"))) return new RangeError(text, { cause: e });
  // At open, a wrong password or role (28) and a missing database (3D) are setup mistakes
  // too; once open they may pass (a password being rotated, a database being restored).
  if (isSetupError(code) || (opening && (code?.startsWith("28") || code?.startsWith("3D")))) {
    return new StorageSetupError(text, { cause: e });
  }
  return new StorageError(text, { cause: e });
}

/**
 * SQLSTATE classes that say the database is not set up for the storage, so that running
 * the statement again fails again until a person changes something: 0A feature not
 * supported (a server too old), 3F invalid schema name, 42 syntax error or access rule
 * violation (a missing table or column, a missing privilege such as 42501). Everything
 * else may pass: a lost connection (08), a transaction rolled back for a serialization
 * failure (40001) or a deadlock (40P01), a server out of resources (53), shutting down or
 * restarting (57), and, once the storage is open, class 28 invalid authorization: a
 * password being rotated or a role locked out for a while must not make executors give
 * up their results (at open, a wrong password or a role that may not log in is a setup
 * error: see `toStorageError`'s `opening`).
 */
const SETUP_CLASSES: ReadonlySet<string> = new Set(["0A", "3F", "42"]);

/** Whether `code` is a SQLSTATE of a database set up wrongly for the storage (see {@link SETUP_CLASSES}). */
export function isSetupError(code: string | undefined): boolean {
  return code !== undefined && /^[0-9A-Z]{5}$/.test(code) && SETUP_CLASSES.has(code.slice(0, 2));
}

/** Errors marked as coming from the driver (see `markDriverError`). */
const driverErrors = new WeakSet<object>();

/** Mark an error as thrown by the driver, so that even a `TypeError` from it becomes a `StorageError`. */
export function markDriverError(e: unknown): unknown {
  if (typeof e === "object" && e !== null) driverErrors.add(e);
  return e;
}

function isDriverError(e: unknown): boolean {
  return typeof e === "object" && e !== null && driverErrors.has(e);
}
