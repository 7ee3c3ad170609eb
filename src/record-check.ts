/**
 * Read-side checks of stored records: a durable adapter turns a row it read back into a
 * task or job through {@link checkTaskRecord} / {@link checkJobRecord}, so a record
 * damaged or tampered with in the database (a wrong type, an unknown status, a value
 * that is not JSON) is a `StorageCorruptError` at the read, never a record that looks
 * valid and misleads the executor.
 *
 * The checks are shallow on purpose (one `typeof` per field, no walk of `input` or
 * `output`): they run on every read, and JSON values come out of `JSON.parse` or a
 * structured clone, which only yields JSON-shaped data or plain objects.
 *
 * @module
 */

import { StorageCorruptError } from "./errors.ts";
import { JOB_STATUS_SET, TASK_STATUS_SET } from "./status.ts";
import type { Job, Task } from "./types.ts";

const DURABILITIES: ReadonlySet<string> = new Set(["at-least-once", "at-most-once"]);
const POLICIES: ReadonlySet<string> = new Set(["cancel", "block"]);

const TASK_STRINGS = ["id", "jobId", "key", "agent"] as const;
const TASK_OPTIONAL_STRINGS = [
  "statusReason",
  "parentId",
  "reviewFeedback",
  "leaseOwner",
  "description",
  "taskType",
  "summary",
  "acceptanceCriteria",
] as const;
const TASK_COUNTS = ["remainingDeps", "attempts"] as const;
const TASK_NUMBERS = ["priority", "runAt", "createdAt", "updatedAt"] as const;
const TASK_OPTIONAL_NUMBERS = ["timeoutMs", "leaseExpiresAt", "startedAt", "finishedAt"] as const;
const JOB_COUNTS = ["taskCount", "openCount", "failedCount"] as const;
const JOB_NUMBERS = ["createdAt", "updatedAt"] as const;

function show(value: unknown): string {
  if (typeof value === "string") return `"${value.length > 40 ? `${value.slice(0, 40)}...` : value}"`;
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  if (typeof value === "object") {
    const ctor = (value as { constructor?: { name?: unknown } }).constructor?.name;
    return typeof ctor === "string" && ctor !== "Object" ? `a ${ctor}` : "an object";
  }
  return `${typeof value} ${String(value)}`;
}

/** Whether `v` can be a stored JSON value: a primitive JSON value, an array or a plain object. */
function isJsonShaped(v: unknown): boolean {
  switch (typeof v) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(v);
    case "object": {
      if (v === null || Array.isArray(v)) return true;
      const proto = Object.getPrototypeOf(v);
      return proto === Object.prototype || proto === null;
    }
    default:
      return false;
  }
}

class Checker {
  constructor(readonly record: Record<string, unknown>, readonly what: string, readonly location: string) {}

  fail(field: string, want: string): never {
    throw new StorageCorruptError(
      this.location,
      `${this.what}: field "${field}" ${want}, found ${show(this.record[field])}`,
    );
  }

  string(field: string, nonEmpty: boolean): void {
    const v = this.record[field];
    if (typeof v !== "string" || (nonEmpty && v.length === 0)) {
      this.fail(field, nonEmpty ? "must be a non-empty string" : "must be a string");
    }
  }

  optString(field: string): void {
    const v = this.record[field];
    if (v !== null && typeof v !== "string") this.fail(field, "must be a string or null");
  }

  count(field: string, min: number): void {
    const v = this.record[field];
    if (typeof v !== "number" || !Number.isInteger(v) || v < min) this.fail(field, `must be an integer >= ${min}`);
  }

  number(field: string): void {
    const v = this.record[field];
    if (typeof v !== "number" || !Number.isFinite(v)) this.fail(field, "must be a finite number");
  }

  optNumber(field: string): void {
    const v = this.record[field];
    if (v !== null && (typeof v !== "number" || !Number.isFinite(v))) {
      this.fail(field, "must be a finite number or null");
    }
  }

  oneOf(field: string, allowed: ReadonlySet<string>): void {
    const v = this.record[field];
    if (typeof v !== "string" || !allowed.has(v)) this.fail(field, `must be one of ${[...allowed].join(", ")}`);
  }

  json(field: string): void {
    if (!isJsonShaped(this.record[field])) this.fail(field, "must be a JSON value");
  }
}

function objectOf(raw: unknown, kind: string, location: string): Record<string, unknown> {
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) {
    throw new StorageCorruptError(location, `a ${kind} record must be an object, found ${show(raw)}`);
  }
  return raw as Record<string, unknown>;
}

/**
 * Check that a record read back from storage has the shape of a {@link Task}, and return
 * it (the same object, typed). Throws a `StorageCorruptError` naming the task, the field
 * and what was found.
 *
 * @example
 * ```ts
 * import { checkTaskRecord, StorageCorruptError } from "@dagger/task-core";
 * try {
 *   checkTaskRecord({ id: "t1", status: "exploded" }, "tasks");
 * } catch (e) {
 *   console.assert(e instanceof StorageCorruptError);
 * }
 * ```
 */
export function checkTaskRecord(raw: unknown, location: string = "tasks"): Task {
  const record = objectOf(raw, "task", location);
  const id = typeof record["id"] === "string" ? record["id"] : "?";
  const c = new Checker(record, `task "${id}"`, location);
  for (const f of TASK_STRINGS) c.string(f, f !== "jobId");
  c.oneOf("status", TASK_STATUS_SET);
  for (const f of TASK_OPTIONAL_STRINGS) c.optString(f);
  for (const f of TASK_COUNTS) c.count(f, 0);
  c.count("maxAttempts", 1);
  c.count("version", 1);
  for (const f of TASK_NUMBERS) c.number(f);
  for (const f of TASK_OPTIONAL_NUMBERS) c.optNumber(f);
  c.oneOf("durability", DURABILITIES);
  c.oneOf("onDependencyFailure", POLICIES);
  if (typeof record["review"] !== "boolean") c.fail("review", "must be a boolean");
  c.json("input");
  c.json("output");
  const deps = record["dependencies"];
  if (!Array.isArray(deps) || !deps.every((d) => typeof d === "string")) {
    c.fail("dependencies", "must be an array of task ids");
  }
  const error = record["error"];
  if (error !== null) {
    const e = error as Record<string, unknown>;
    if (
      typeof error !== "object" || Array.isArray(error) || typeof e["name"] !== "string" ||
      typeof e["message"] !== "string" || typeof e["retryable"] !== "boolean" ||
      typeof e["at"] !== "number"
    ) {
      c.fail("error", "must be null or { name, message, retryable, at }");
    }
  }
  return record as unknown as Task;
}

/**
 * Check that a record read back from storage has the shape of a {@link Job}, and return
 * it (the same object, typed). Throws a `StorageCorruptError` naming the job, the field
 * and what was found.
 */
export function checkJobRecord(raw: unknown, location: string = "jobs"): Job {
  const record = objectOf(raw, "job", location);
  const id = typeof record["id"] === "string" ? record["id"] : "?";
  const c = new Checker(record, `job "${id}"`, location);
  c.string("id", true);
  c.string("name", false);
  c.oneOf("status", JOB_STATUS_SET);
  for (const f of JOB_COUNTS) c.count(f, 0);
  c.count("version", 1);
  for (const f of JOB_NUMBERS) c.number(f);
  c.optNumber("finishedAt");
  c.json("metadata");
  return record as unknown as Job;
}
