/**
 * The SQL schema (numbered migrations) and the mapping between records and rows.
 *
 * A row is the array of a record's column values in the order of `TASK_COLUMNS` /
 * `JOB_COLUMNS`, JSON fields as JSON text. The same arrays are bound to the prepared
 * statements and written to the journal (journal format 1 pins this layout: a later
 * schema keeps a reader for it).
 *
 * @module
 */

import { StorageCorruptError, StorageVersionError } from "../../src/errors.ts";
import { deepFreeze } from "../../src/json.ts";
import { checkJobRecord, checkTaskRecord } from "../../src/record-check.ts";
import type { Job, JobStatus, JsonValue, Task, TaskStatus } from "../../src/types.ts";
import type { SqlJsDatabase, SqlValue } from "./module.ts";

/** Task columns, in row order. */
export const TASK_COLUMNS: readonly string[] = [
  "id",
  "job_id",
  "key",
  "agent",
  "input",
  "output",
  "error",
  "status",
  "status_reason",
  "parent_id",
  "dependencies",
  "remaining_deps",
  "attempts",
  "max_attempts",
  "timeout_ms",
  "durability",
  "on_dependency_failure",
  "priority",
  "run_at",
  "review",
  "review_feedback",
  "lease_owner",
  "lease_expires_at",
  "version",
  "created_at",
  "updated_at",
  "started_at",
  "finished_at",
  "description",
  "task_type",
  "summary",
  "acceptance_criteria",
];

/** Job columns, in row order. */
export const JOB_COLUMNS: readonly string[] = [
  "id",
  "name",
  "status",
  "metadata",
  "task_count",
  "open_count",
  "failed_count",
  "version",
  "created_at",
  "updated_at",
  "finished_at",
];

/** Numbered migrations: `MIGRATIONS[i]` moves the schema from version `i` to `i + 1`. */
export const MIGRATIONS: readonly string[] = [
  `
  CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
  CREATE TABLE jobs (
    id TEXT PRIMARY KEY NOT NULL,
    name TEXT NOT NULL,
    status TEXT NOT NULL,
    metadata TEXT NOT NULL,
    task_count INTEGER NOT NULL,
    open_count INTEGER NOT NULL,
    failed_count INTEGER NOT NULL,
    version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    finished_at REAL
  );
  CREATE INDEX jobs_status ON jobs (status, id);
  CREATE TABLE tasks (
    id TEXT PRIMARY KEY NOT NULL,
    job_id TEXT NOT NULL,
    key TEXT NOT NULL,
    agent TEXT NOT NULL,
    input TEXT NOT NULL,
    output TEXT NOT NULL,
    error TEXT,
    status TEXT NOT NULL,
    status_reason TEXT,
    parent_id TEXT,
    dependencies TEXT NOT NULL,
    remaining_deps INTEGER NOT NULL,
    attempts INTEGER NOT NULL,
    max_attempts INTEGER NOT NULL,
    timeout_ms REAL,
    durability TEXT NOT NULL,
    on_dependency_failure TEXT NOT NULL,
    priority REAL NOT NULL,
    run_at REAL NOT NULL,
    review INTEGER NOT NULL,
    review_feedback TEXT,
    lease_owner TEXT,
    lease_expires_at REAL,
    version INTEGER NOT NULL,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    description TEXT,
    task_type TEXT,
    summary TEXT,
    acceptance_criteria TEXT
  );
  CREATE INDEX tasks_job ON tasks (job_id, id);
  CREATE INDEX tasks_agent ON tasks (agent, id);
  CREATE INDEX tasks_status ON tasks (status, id);
  CREATE INDEX tasks_parent ON tasks (parent_id, id) WHERE parent_id IS NOT NULL;
  CREATE INDEX tasks_claim ON tasks (priority, run_at, id) WHERE status = 'ready';
  CREATE INDEX tasks_lease ON tasks (lease_expires_at, id) WHERE status = 'running';
  CREATE TABLE task_deps (
    dep_id TEXT NOT NULL,
    task_id TEXT NOT NULL,
    PRIMARY KEY (dep_id, task_id)
  ) WITHOUT ROWID;
  CREATE TABLE cache (
    job_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (job_id, key)
  ) WITHOUT ROWID;
  CREATE TABLE state (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (scope, key)
  ) WITHOUT ROWID;
  INSERT INTO meta (key, value) VALUES ('app', 'task-core'), ('generation', '0');
  `,
  // 2: ended jobs by end time, for prune(): the same expression and condition as its
  // queries (an end time left null counts as 0, as on every adapter); `status` makes the
  // index cover them (no row is read to check it).
  `
  CREATE INDEX jobs_ended ON jobs (coalesce(finished_at, 0), id, status)
    WHERE status IN ('completed', 'failed', 'cancelled');
  `,
  // 3: ready tasks by agent, in claim order within each, for claims limited to some
  // agents (claimReady({ agents })): they read only those agents' due tasks.
  `
  CREATE INDEX tasks_claim_agent ON tasks (agent, priority, run_at, id) WHERE status = 'ready';
  `,
];

/** The schema version this code writes. */
export const SCHEMA_VERSION: number = MIGRATIONS.length;

function metaValue(db: SqlJsDatabase, key: string): string | undefined {
  const r = db.exec("SELECT value FROM meta WHERE key = ?", [key]);
  const v = r[0]?.values[0]?.[0];
  return typeof v === "string" ? v : undefined;
}

/**
 * Read the schema version of a database: 0 for an empty one. Throws
 * `StorageCorruptError` for a database that is not task-core's and
 * `StorageVersionError` for a newer schema.
 */
export function readSchemaVersion(db: SqlJsDatabase, location: string): number {
  const tables = db.exec("SELECT name FROM sqlite_master WHERE type = 'table'")[0]?.values.map((r) => r[0]) ?? [];
  if (tables.length === 0) return 0;
  if (!tables.includes("meta") || metaValue(db, "app") !== "task-core") {
    throw new StorageCorruptError(location, "the file is a SQLite database, but not one of task-core");
  }
  const version = Number(metaValue(db, "schema_version"));
  if (!Number.isInteger(version) || version < 1) {
    throw new StorageCorruptError(location, "the database has no valid schema version");
  }
  if (version > SCHEMA_VERSION) throw new StorageVersionError("schema", version, SCHEMA_VERSION);
  return version;
}

/** Apply the migrations after `from`, in one transaction. */
export function migrate(db: SqlJsDatabase, from: number): void {
  if (from >= SCHEMA_VERSION) return;
  db.exec("BEGIN");
  try {
    for (let v = from; v < SCHEMA_VERSION; v++) db.exec(MIGRATIONS[v]!);
    db.exec("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", [String(SCHEMA_VERSION)]);
    db.exec("COMMIT");
  } catch (e) {
    db.exec("ROLLBACK");
    throw e;
  }
}

/** The snapshot generation stored in the database. */
export function readGeneration(db: SqlJsDatabase): number {
  return Number(metaValue(db, "generation") ?? 0);
}

// Frozen JSON values remember their text, so a record read, changed and written again
// does not serialise its (possibly large) input and output a second time.
const texts = new WeakMap<object, string>();

/** The JSON text of a stored value. */
export function jsonText(value: JsonValue): string {
  if (value === null) return "null";
  if (typeof value !== "object") return JSON.stringify(value);
  let text = texts.get(value);
  if (text === undefined) {
    text = JSON.stringify(value);
    if (Object.isFrozen(value)) texts.set(value, text);
  }
  return text;
}

/** Parse JSON text into a frozen value that remembers its text. */
export function jsonValue(text: string): JsonValue {
  const value = deepFreeze(JSON.parse(text) as JsonValue);
  if (value !== null && typeof value === "object") texts.set(value, text);
  return value;
}

const str = (v: SqlValue): string | null => (v === null ? null : String(v));
// Numbers are taken as SQLite holds them: a column's REAL or INTEGER affinity turns every
// numeric text into a number, so text or a blob there was put there behind the adapter's
// back. Number() would read "", " ", "0x10" or a one-byte blob as a number (and the claim
// queries, comparing them as text, would disagree with it): they are left as found, for
// `checkTaskRecord` / `checkJobRecord` to report.
const n = (v: SqlValue): number => v as number;
const num = (v: SqlValue): number | null => v as number | null;

/** The row of a task. */
export function taskRow(t: Task): SqlValue[] {
  return [
    t.id,
    t.jobId,
    t.key,
    t.agent,
    jsonText(t.input),
    jsonText(t.output),
    t.error === null ? null : jsonText(t.error as unknown as JsonValue),
    t.status,
    t.statusReason,
    t.parentId,
    jsonText(t.dependencies),
    t.remainingDeps,
    t.attempts,
    t.maxAttempts,
    t.timeoutMs,
    t.durability,
    t.onDependencyFailure,
    t.priority,
    t.runAt,
    t.review ? 1 : 0,
    t.reviewFeedback,
    t.leaseOwner,
    t.leaseExpiresAt,
    t.version,
    t.createdAt,
    t.updatedAt,
    t.startedAt,
    t.finishedAt,
    t.description,
    t.taskType,
    t.summary,
    t.acceptanceCriteria,
  ];
}

/** Read a row's field values, turning a failure (unparsable JSON text) into a `StorageCorruptError`. */
function readRow<T>(what: string, location: string, r: SqlValue[], read: () => T): T {
  try {
    return read();
  } catch (e) {
    throw new StorageCorruptError(location, `${what} "${String(r[0])}": ${(e as Error)?.message ?? e}`, { cause: e });
  }
}

/** `review` stored as 0 or 1; anything else is kept as found, for `checkTaskRecord` to report. */
const bool = (v: SqlValue): boolean => (v === 1 ? true : v === 0 ? false : (v as unknown as boolean));

/** The task of a row; a damaged or tampered row is a `StorageCorruptError`. */
export function rowTask(r: SqlValue[]): Task {
  return checkTaskRecord(
    readRow("task", "sqljs tasks", r, (): Task => ({
      id: r[0] as string,
      jobId: r[1] as string,
      key: r[2] as string,
      agent: r[3] as string,
      input: jsonValue(r[4] as string),
      output: jsonValue(r[5] as string),
      error: r[6] === null ? null : (jsonValue(r[6] as string) as unknown as Task["error"]),
      status: r[7] as TaskStatus,
      statusReason: str(r[8]!),
      parentId: str(r[9]!),
      dependencies: jsonValue(r[10] as string) as string[],
      remainingDeps: n(r[11]!),
      attempts: n(r[12]!),
      maxAttempts: n(r[13]!),
      timeoutMs: num(r[14]!),
      durability: r[15] as Task["durability"],
      onDependencyFailure: r[16] as Task["onDependencyFailure"],
      priority: n(r[17]!),
      runAt: n(r[18]!),
      review: bool(r[19]!),
      reviewFeedback: str(r[20]!),
      leaseOwner: str(r[21]!),
      leaseExpiresAt: num(r[22]!),
      version: n(r[23]!),
      createdAt: n(r[24]!),
      updatedAt: n(r[25]!),
      startedAt: num(r[26]!),
      finishedAt: num(r[27]!),
      description: str(r[28]!),
      taskType: str(r[29]!),
      summary: str(r[30]!),
      acceptanceCriteria: str(r[31]!),
    })),
    "sqljs tasks",
  );
}

/** The row of a job. */
export function jobRow(j: Job): SqlValue[] {
  return [
    j.id,
    j.name,
    j.status,
    jsonText(j.metadata),
    j.taskCount,
    j.openCount,
    j.failedCount,
    j.version,
    j.createdAt,
    j.updatedAt,
    j.finishedAt,
  ];
}

/** The job of a row; a damaged or tampered row is a `StorageCorruptError`. */
export function rowJob(r: SqlValue[]): Job {
  return checkJobRecord(
    readRow("job", "sqljs jobs", r, (): Job => ({
      id: r[0] as string,
      name: r[1] as string,
      status: r[2] as JobStatus,
      metadata: jsonValue(r[3] as string),
      taskCount: n(r[4]!),
      openCount: n(r[5]!),
      failedCount: n(r[6]!),
      version: n(r[7]!),
      createdAt: n(r[8]!),
      updatedAt: n(r[9]!),
      finishedAt: num(r[10]!),
    })),
    "sqljs jobs",
  );
}

/** The changed columns of `row` against `before`, as `[column, value, ...]` (the id never changes). */
export function changed(row: SqlValue[], before: SqlValue[]): SqlValue[] {
  const diff: SqlValue[] = [];
  for (let i = 1; i < row.length; i++) if (row[i] !== before[i]) diff.push(i, row[i]!);
  return diff;
}

/** Check that a journal update has the shape `[column, value, ...]` of format 1. */
export function checkDiff(diff: unknown, columns: readonly string[], location: string): SqlValue[] {
  const ok = Array.isArray(diff) && diff.length % 2 === 0 &&
    diff.every((v, i) =>
      i % 2 === 0
        ? Number.isInteger(v) && v >= 1 && v < columns.length
        : v === null || typeof v === "string" || typeof v === "number"
    );
  if (!ok) throw new StorageCorruptError(location, "a journal record has the wrong shape");
  return diff as SqlValue[];
}

/** Check that a journal row has the shape of format 1 before binding it. */
export function checkRow(row: unknown, columns: readonly string[], location: string): SqlValue[] {
  if (
    !Array.isArray(row) || row.length !== columns.length ||
    !row.every((v) => v === null || typeof v === "string" || typeof v === "number")
  ) {
    throw new StorageCorruptError(location, "a journal record has the wrong shape");
  }
  return row as SqlValue[];
}
