/**
 * The errors callers catch. Each sets `name` and keeps `cause`.
 *
 * @module
 */

import type { JobStatus, TaskStatus } from "./types.ts";

/**
 * The key of each error class's own name, shared by every copy of task-core in a program
 * (two installed versions, the npm build next to the sources): `instanceof` against a class
 * of this copy also knows an error made by another copy's class of the same name, or by a
 * subclass of it. A user's subclass, which has no such name, is told as usual.
 */
const CLASS_NAME: unique symbol = Symbol.for("@dagger/task-core:error-class");
/** The ordinary `instanceof`, taken at load: a page may replace `globalThis.Function` later (CSP shims). */
const ordinaryHasInstance: (this: unknown, value: unknown) => boolean = Function.prototype[Symbol.hasInstance];

/** Base class of every task-core error. */
export class TaskCoreError extends Error {
  /** Create the error. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "TaskCoreError";
  }
}

/**
 * An error that says, by its type, that another attempt will not help. An executor knows
 * it (and its subclasses) also when it comes from another copy of task-core.
 */
export class NonRetryableError extends TaskCoreError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "NonRetryableError";
}

/**
 * Whether `e` is a `NonRetryableError` of this copy of task-core or of any other (as
 * `e instanceof NonRetryableError` now tells).
 */
export function isNonRetryable(e: unknown): boolean {
  return e instanceof NonRetryableError;
}

/** One validation problem: where it is, which rule, and what is wrong. */
export interface ValidationIssue {
  /** JSON pointer to the offending value (`""` is the whole value). */
  path: string;
  /** The schema keyword that failed (for example `required`, `type`). */
  keyword: string;
  /** What is wrong, for a person. */
  message: string;
}

/** Input or output that fails an agent's schema. Never retried. */
export class ValidationError extends NonRetryableError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "ValidationError";
  /** Every problem found. */
  readonly issues: readonly ValidationIssue[];
  /** Create the error from its issues; the message lists them all. */
  constructor(subject: string, issues: readonly ValidationIssue[], options?: ErrorOptions) {
    super(
      `${subject} is invalid: ` +
        issues.map((i) => `${i.path === "" ? "(root)" : i.path} ${i.message}`).join("; "),
      options,
    );
    this.issues = issues;
  }
}

/** A value that cannot be stored as JSON (a function, a BigInt, a cycle, NaN ...). */
export class JsonValueError extends TaskCoreError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "JsonValueError";
  /** JSON pointer to the offending value. */
  readonly path: string;
  /** Create the error. */
  constructor(path: string, message: string) {
    super(`Value at "${path === "" ? "(root)" : path}" is not JSON-safe: ${message}`);
    this.path = path;
  }
}

/**
 * A cache or state write whose entry changed since the writer read it (another attempt
 * stored a value meanwhile). Nothing of the batch was applied.
 */
export class KeyConflictError extends TaskCoreError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "KeyConflictError";
  /** Index of the failing op in the batch. */
  readonly opIndex: number;
  /** Create the error; `where` names the entry (`cache "key"` or `state "scope" "key"`). */
  constructor(opIndex: number, where: string) {
    super(`Conflict in op ${opIndex}: ${where} changed since it was read`);
    this.opIndex = opIndex;
  }
}

/** What a compare-and-swap found instead of what it expected. */
export interface ConflictFound {
  /** The record's status, or `null` when it does not exist. */
  status: TaskStatus | JobStatus | null;
  /** The record's version, or `null` when it does not exist. */
  version: number | null;
  /** The task's lease expiry, told when the op expected one. */
  leaseExpiresAt?: number | null;
}

/** A compare-and-swap that found another state than expected. Nothing of the batch was applied. */
export class ConflictError extends TaskCoreError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "ConflictError";
  /** Index of the failing op in the batch. */
  readonly opIndex: number;
  /** Id of the record. */
  readonly id: string;
  /** What the op expected. */
  readonly expected: { status?: string; version: number; leaseExpiresAt?: number | null };
  /** What the storage found. */
  readonly found: ConflictFound;
  /** Create the error. */
  constructor(
    opIndex: number,
    id: string,
    expected: { status?: string; version: number; leaseExpiresAt?: number | null },
    found: ConflictFound,
  ) {
    const lease = expected.leaseExpiresAt !== undefined;
    const want = `${expected.status ? `status "${expected.status}", ` : ""}version ${expected.version}` +
      (lease ? `, lease until ${expected.leaseExpiresAt}` : "");
    const got = found.version === null
      ? "no such record"
      : `status "${found.status}", version ${found.version}` + (lease ? `, lease until ${found.leaseExpiresAt}` : "");
    super(`Conflict in op ${opIndex} on "${id}": expected ${want}, found ${got}`);
    this.opIndex = opIndex;
    this.id = id;
    this.expected = expected;
    this.found = found;
  }
}

/** A status change that the transition table forbids. Nothing of the batch was applied. */
export class InvalidTransitionError extends TaskCoreError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "InvalidTransitionError";
  /** Id of the record. */
  readonly id: string;
  /** Its status. */
  readonly from: string;
  /** The status asked for. */
  readonly to: string;
  /** Create the error; `why` says what the caller should know beyond the statuses. */
  constructor(id: string, from: string, to: string, why?: string) {
    super(`Illegal transition of "${id}" from "${from}" to "${to}"${why ? `: ${why}` : ""}`);
    this.id = id;
    this.from = from;
    this.to = to;
  }
}

/** A record that does not exist. */
export class NotFoundError extends TaskCoreError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "NotFoundError";
  /** What kind of record. */
  readonly kind: "task" | "job";
  /** Its id. */
  readonly id: string;
  /** Create the error. */
  constructor(kind: "task" | "job", id: string) {
    super(`No ${kind} with id "${id}"`);
    this.kind = kind;
    this.id = id;
  }
}

/** A storage that was closed, or failed in a way its caller should see. */
export class StorageError extends TaskCoreError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "StorageError";
}

/**
 * The storage is full; the commit was not applied (on sql.js, whose database lives in
 * memory, its change may still be saved with the next save that succeeds: its outcome is
 * unknown, as after any transient storage error).
 */
export class StorageQuotaError extends StorageError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "StorageQuotaError";
}

/**
 * Opening (or upgrading) a database waits on another connection that does not close,
 * such as a tab still running an older version of the app. Nothing was opened.
 */
export class StorageBlockedError extends StorageError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "StorageBlockedError";
}

/**
 * The storage was closed (by `close()`, or by the runtime): every later call throws this.
 * It does not pass by waiting: open the storage again.
 */
export class StorageClosedError extends StorageError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "StorageClosedError";
}

/**
 * Another connection upgraded or deleted the database under this storage, which closed
 * itself so as not to block it. Reopen (usually: reload the page) to continue. A closed
 * storage (`StorageClosedError`): an executor on it stops as on any closed storage.
 */
export class StorageVersionChangeError extends StorageClosedError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "StorageVersionChangeError";
  /** The version the database is moving to, or `null` when it is being deleted. */
  readonly newVersion: number | null;
  /** Create the error. */
  constructor(message: string, newVersion: number | null, options?: ErrorOptions) {
    super(message, options);
    this.newVersion = newVersion;
  }
}

/**
 * Stored data that cannot be read safely: a damaged or foreign file, a truncated
 * snapshot, a journal record that fails its checksum in the middle of the journal.
 * The storage refused to open and changed nothing on disk.
 */
export class StorageCorruptError extends StorageError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "StorageCorruptError";
  /** What was found damaged (for example the file path or `snapshot`, `journal`). */
  readonly location: string;
  /** Create the error. */
  constructor(location: string, message: string, options?: ErrorOptions) {
    super(`Stored data in "${location}" is unreadable: ${message}`, options);
    this.location = location;
  }
}

/**
 * Stored data written by a newer version of task-core (a schema or format version this
 * code does not know). The storage refused to open and changed nothing on disk.
 */
export class StorageVersionError extends StorageError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "StorageVersionError";
  /** What carries the version (for example `schema`, `journal format`). */
  readonly subject: string;
  /** The version found. */
  readonly found: number;
  /** The newest version this code reads. */
  readonly supported: number;
  /** Create the error. */
  constructor(subject: string, found: number, supported: number) {
    super(
      `Stored ${subject} version ${found} is newer than this code supports (${supported}): upgrade task-core to open it`,
    );
    this.subject = subject;
    this.found = found;
    this.supported = supported;
  }
}

/**
 * The database refuses the storage's statements for a reason that waiting does not
 * change: its tables are missing or older than this code needs, the role lacks a
 * privilege (or, when the storage opens, cannot log in), the server lacks a feature the
 * storage uses. Fix the database or the storage's options, then open the storage again.
 */
export class StorageSetupError extends StorageError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "StorageSetupError";
}

/** An attempt that ran past its timeout. Retryable. */
export class TaskTimeoutError extends TaskCoreError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "TaskTimeoutError";
  /** The timeout in milliseconds. */
  readonly timeoutMs: number;
  /** Create the error. */
  constructor(timeoutMs: number) {
    super(`Task timed out after ${timeoutMs} ms`);
    this.timeoutMs = timeoutMs;
  }
}

/** A task aborted because its job was cancelled or the executor shut down. */
export class TaskAbortedError extends TaskCoreError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "TaskAbortedError";
}

/**
 * A task input, output or other stored value whose JSON text is larger than the
 * executor's `maxPayloadBytes`. Never retried: the same value would be too large again.
 */
export class PayloadTooLargeError extends NonRetryableError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "PayloadTooLargeError";
  /** What was too large (for example `output of task "a"`). */
  readonly subject: string;
  /** The limit in bytes. */
  readonly limit: number;
  /** Bytes measured before giving up (measuring stops once past the limit): at least this many. */
  readonly size: number;
  /** Create the error. */
  constructor(subject: string, size: number, limit: number) {
    super(`The ${subject} is too large: at least ${size} bytes of JSON, over maxPayloadBytes (${limit})`);
    this.subject = subject;
    this.size = size;
    this.limit = limit;
  }
}

/** The agent a task names is not registered. Never retried. */
export class UnknownAgentError extends NonRetryableError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "UnknownAgentError";
  /** The agent name. */
  readonly agent: string;
  /** Create the error. */
  constructor(agent: string) {
    super(`No agent named "${agent}" is registered`);
    this.agent = agent;
  }
}

/** One problem with a submitted job. */
export interface JobProblem {
  /** The task key concerned, if one is. */
  key?: string;
  /**
   * A short code: `duplicate-key`, `invalid-key`, `unknown-agent`, `unknown-dependency`, `cycle`, `invalid-input`,
   * `empty-job`, `too-many-tasks`, `invalid-job`, `invalid-task`, `invalid-option`, `payload-too-large`.
   */
  code: string;
  /** What is wrong, for a person. */
  message: string;
}

/**
 * What a thrown value says, for a message: an error's `message`, anything else as text (a
 * value whose conversion throws too is named as such).
 */
export function thrownMessage(e: unknown): string {
  try {
    return e instanceof Error ? e.message : String(e);
  } catch {
    return "a thrown value that cannot be read";
  }
}

/** Problems a `JobValidationError`'s message lists; the rest are counted. */
const MESSAGE_PROBLEMS = 100;

/** A job spec that cannot be submitted. Nothing was written. */
export class JobValidationError extends TaskCoreError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "JobValidationError";
  /** Every problem found. */
  readonly problems: readonly JobProblem[];
  /**
   * Create the error from its problems. The message lists the first 100 (a job of 200,000
   * tasks naming a misspelt agent would make a message of megabytes); `problems` holds all.
   */
  constructor(problems: readonly JobProblem[]) {
    const shown = problems.length > MESSAGE_PROBLEMS ? problems.slice(0, MESSAGE_PROBLEMS) : problems;
    const more = problems.length - shown.length;
    super(
      `Job is invalid: ${shown.map((p) => p.message).join("; ")}` +
        (more > 0 ? `; and ${more} more problem${more === 1 ? "" : "s"} (see the error's problems)` : ""),
    );
    this.problems = problems;
  }
}

/** A job that ended as `failed` or `cancelled`, thrown by `JobHandle.wait()`. */
export class JobFailedError extends TaskCoreError {
  /** The error's name (kept explicit so minified bundles report it). */
  override name: string = "JobFailedError";
  /** The job id. */
  readonly jobId: string;
  /** How it ended. */
  readonly status: "failed" | "cancelled";
  /** Keys of the tasks that failed, with their error messages. */
  readonly failedTasks: readonly { key: string; error: string | null }[];
  /** Create the error. */
  constructor(
    jobId: string,
    status: "failed" | "cancelled",
    failedTasks: readonly { key: string; error: string | null }[],
  ) {
    super(
      status === "cancelled" ? `Job "${jobId}" was cancelled` : `Job "${jobId}" failed: ` +
        failedTasks.map((t) => `"${t.key}" (${t.error ?? "no error"})`).join(", "),
    );
    this.jobId = jobId;
    this.status = status;
    this.failedTasks = failedTasks;
  }
}

/**
 * Whether a storage error may pass (a dropped connection, a failed transaction), so the
 * call is worth retrying: a `StorageError` that does not say the storage cannot be used
 * as it is (corrupt, written by a newer version, blocked, upgraded away, closed, or set up
 * wrongly).
 *
 * @example
 * ```ts
 * import { isTransientStorageError, StorageCorruptError, StorageError } from "@dagger/task-core";
 * console.assert(isTransientStorageError(new StorageError("connection lost")));
 * console.assert(!isTransientStorageError(new StorageCorruptError("tasks", "bad row")));
 * ```
 */
export function isTransientStorageError(e: unknown): boolean {
  return e instanceof StorageError && !(
    e instanceof StorageCorruptError || e instanceof StorageVersionError || e instanceof StorageBlockedError ||
    e instanceof StorageVersionChangeError || e instanceof StorageClosedError || e instanceof StorageSetupError
  );
}

/**
 * `instanceof` against a task-core error class (inherited by every subclass): an instance of
 * this copy's class, or of the class of the same name in another copy (an adapter or agent
 * built on another installed version). Defined here rather than as a static method in the
 * class, whose emitted declarations name it twice.
 */
Object.defineProperty(TaskCoreError, Symbol.hasInstance, {
  value: function hasInstance(this: unknown, value: unknown): boolean {
    if (ordinaryHasInstance.call(this, value)) return true;
    if (value === null || typeof value !== "object" || typeof this !== "function" || !Object.hasOwn(this, CLASS_NAME)) {
      return false;
    }
    const name = (this as { [CLASS_NAME]?: unknown })[CLASS_NAME];
    for (let p = Object.getPrototypeOf(value); p !== null; p = Object.getPrototypeOf(p)) {
      const c: unknown = Object.hasOwn(p, "constructor") ? p.constructor : undefined;
      if (
        typeof c === "function" && Object.hasOwn(c, CLASS_NAME) &&
        (c as { [CLASS_NAME]?: unknown })[CLASS_NAME] === name
      ) {
        return true;
      }
    }
    return false;
  },
});

// Each class under its own name, for `instanceof` across copies (see `CLASS_NAME`).
for (
  const [name, c] of Object.entries({
    TaskCoreError,
    NonRetryableError,
    ValidationError,
    JsonValueError,
    KeyConflictError,
    ConflictError,
    InvalidTransitionError,
    NotFoundError,
    StorageError,
    StorageQuotaError,
    StorageBlockedError,
    StorageClosedError,
    StorageVersionChangeError,
    StorageCorruptError,
    StorageVersionError,
    StorageSetupError,
    TaskTimeoutError,
    TaskAbortedError,
    PayloadTooLargeError,
    UnknownAgentError,
    JobValidationError,
    JobFailedError,
  })
) Object.defineProperty(c, CLASS_NAME, { value: name });
