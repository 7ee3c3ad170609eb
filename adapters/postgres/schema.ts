/**
 * The PostgreSQL schema: numbered migrations run once per schema under an advisory lock,
 * the column lists, and the mapping between records and rows.
 *
 * JSON fields are `json` columns (kept as written, so `\u0000` and key order survive,
 * which `jsonb` would refuse or change); they are sent as text and read back as text.
 * Ids sort with the "C" collation, so `ORDER BY id` and `id > $after` do not depend on
 * the database's locale: by UTF-8 bytes, which agrees with JavaScript's string order
 * except between characters past U+FFFF and those from U+E000 to U+FFFF (generated ids
 * are ASCII). Times are epoch
 * milliseconds in `float8`, as the contract's numbers are.
 *
 * @module
 */

import { StorageError, StorageSetupError, StorageVersionError } from "../../src/errors.ts";
import { deepFreeze } from "../../src/json.ts";
import type { Job, JobStatus, JsonValue, Task, TaskStatus } from "../../src/types.ts";
import type { SqlParam, SqlQueryable } from "./client.ts";

/** How a column is cast when it is bound (`$n::<cast>`) and read. */
export type ColumnType = "text" | "json" | "int4" | "float8" | "bool";

/** A task column: its SQL name, type and record field. */
export interface Column<R> {
  /** SQL name. */
  name: string;
  /** SQL type. */
  type: ColumnType;
  /** Record field. */
  field: keyof R & string;
}

const col = <R>(name: string, type: ColumnType, field: keyof R & string): Column<R> => ({ name, type, field });

/** Task columns, in row order. */
export const TASK_COLUMNS: readonly Column<Task>[] = [
  col("id", "text", "id"),
  col("job_id", "text", "jobId"),
  col("key", "text", "key"),
  col("agent", "text", "agent"),
  col("input", "json", "input"),
  col("output", "json", "output"),
  col("error", "json", "error"),
  col("status", "text", "status"),
  col("status_reason", "text", "statusReason"),
  col("parent_id", "text", "parentId"),
  col("dependencies", "json", "dependencies"),
  col("remaining_deps", "int4", "remainingDeps"),
  col("attempts", "int4", "attempts"),
  col("max_attempts", "int4", "maxAttempts"),
  col("timeout_ms", "float8", "timeoutMs"),
  col("durability", "text", "durability"),
  col("on_dependency_failure", "text", "onDependencyFailure"),
  col("priority", "float8", "priority"),
  col("run_at", "float8", "runAt"),
  col("review", "bool", "review"),
  col("review_feedback", "text", "reviewFeedback"),
  col("lease_owner", "text", "leaseOwner"),
  col("lease_expires_at", "float8", "leaseExpiresAt"),
  col("version", "int4", "version"),
  col("created_at", "float8", "createdAt"),
  col("updated_at", "float8", "updatedAt"),
  col("started_at", "float8", "startedAt"),
  col("finished_at", "float8", "finishedAt"),
  col("description", "text", "description"),
  col("task_type", "text", "taskType"),
  col("summary", "text", "summary"),
  col("acceptance_criteria", "text", "acceptanceCriteria"),
];

/** Job columns, in row order. */
export const JOB_COLUMNS: readonly Column<Job>[] = [
  col("id", "text", "id"),
  col("name", "text", "name"),
  col("status", "text", "status"),
  col("metadata", "json", "metadata"),
  col("task_count", "int4", "taskCount"),
  col("open_count", "int4", "openCount"),
  col("failed_count", "int4", "failedCount"),
  col("version", "int4", "version"),
  col("created_at", "float8", "createdAt"),
  col("updated_at", "float8", "updatedAt"),
  col("finished_at", "float8", "finishedAt"),
];

/** The select list of a table's columns (JSON read as text), optionally qualified by `alias`. */
export function selectList<R>(columns: readonly Column<R>[], alias = ""): string {
  const p = alias ? `${alias}.` : "";
  return columns.map((c) => (c.type === "json" ? `${p}${c.name}::text` : `${p}${c.name}`)).join(", ");
}

/** `$n` cast so that every client may send the value as text. */
export function param(n: number, type: ColumnType): string {
  return type === "json" ? `$${n}::text::json` : type === "text" ? `$${n}::text` : `$${n}::text::${type}`;
}

/** Whether `name` is a schema name the adapter accepts (lower-case identifier, at most 48 characters). */
export function isSchemaName(name: unknown): name is string {
  return typeof name === "string" && /^[a-z_][a-z0-9_]{0,47}$/.test(name);
}

const ID = `text COLLATE "C"`;

/** Numbered migrations: `MIGRATIONS[i]` moves schema `s` from version `i` to `i + 1`, one statement each. */
export const MIGRATIONS: readonly { name: string; statements: (s: string) => string[] }[] = [
  {
    name: "tables, indexes and the dependency edge table",
    statements: (s) => [
      `CREATE TABLE ${s}.jobs (
        id ${ID} PRIMARY KEY,
        name text NOT NULL,
        status text NOT NULL,
        metadata json NOT NULL,
        task_count int4 NOT NULL,
        open_count int4 NOT NULL,
        failed_count int4 NOT NULL,
        version int4 NOT NULL,
        created_at float8 NOT NULL,
        updated_at float8 NOT NULL,
        finished_at float8
      )`,
      `CREATE INDEX jobs_status ON ${s}.jobs (status, id)`,
      `CREATE TABLE ${s}.tasks (
        id ${ID} PRIMARY KEY,
        job_id ${ID} NOT NULL,
        key text NOT NULL,
        agent text NOT NULL,
        input json NOT NULL,
        output json NOT NULL,
        error json,
        status text NOT NULL,
        status_reason text,
        parent_id ${ID},
        dependencies json NOT NULL,
        remaining_deps int4 NOT NULL,
        attempts int4 NOT NULL,
        max_attempts int4 NOT NULL,
        timeout_ms float8,
        durability text NOT NULL,
        on_dependency_failure text NOT NULL,
        priority float8 NOT NULL,
        run_at float8 NOT NULL,
        review bool NOT NULL,
        review_feedback text,
        lease_owner text,
        lease_expires_at float8,
        version int4 NOT NULL,
        created_at float8 NOT NULL,
        updated_at float8 NOT NULL,
        started_at float8,
        finished_at float8,
        description text,
        task_type text,
        summary text,
        acceptance_criteria text
      )`,
      `CREATE INDEX tasks_job ON ${s}.tasks (job_id, id)`,
      `CREATE INDEX tasks_agent ON ${s}.tasks (agent, id)`,
      `CREATE INDEX tasks_status ON ${s}.tasks (status, id)`,
      `CREATE INDEX tasks_parent ON ${s}.tasks (parent_id, id) WHERE parent_id IS NOT NULL`,
      // claimReady: the ready tasks in claim order, and nothing else.
      `CREATE INDEX tasks_ready ON ${s}.tasks (priority, run_at, id) WHERE status = 'ready'`,
      // expiredLeases: running tasks by lease expiry.
      `CREATE INDEX tasks_lease ON ${s}.tasks (lease_expires_at, id) WHERE status = 'running'`,
      // Dependents of a task (its primary key serves `WHERE dep_id = $1`).
      `CREATE TABLE ${s}.task_deps (
        dep_id ${ID} NOT NULL,
        task_id ${ID} NOT NULL,
        PRIMARY KEY (dep_id, task_id)
      )`,
      `CREATE TABLE ${s}.cache (
        job_id ${ID} NOT NULL,
        key text NOT NULL,
        value json NOT NULL,
        PRIMARY KEY (job_id, key)
      )`,
      `CREATE TABLE ${s}.state (
        scope text NOT NULL,
        key text NOT NULL,
        value json NOT NULL,
        PRIMARY KEY (scope, key)
      )`,
    ],
  },
  {
    name: "ended jobs by end time, for prune()",
    statements: (s) => [
      // The order and condition of prune()'s queries (an end time left null counts as 0, as
      // on every adapter): the jobs ended before a time are a range of it, the jobs past the
      // newest `keepLast` its tail, so prune() neither sorts nor reads a job it keeps beyond
      // its index entry. `finished_at` is included so that the index alone answers (an
      // index-only scan) on pages VACUUM has marked all-visible.
      `CREATE INDEX jobs_ended ON ${s}.jobs ((coalesce(finished_at, 0)) DESC, id DESC) INCLUDE (finished_at) ` +
      "WHERE status IN ('completed', 'failed', 'cancelled')",
      // The planner keeps no statistics of a partial index's expression: without these it
      // guesses that a third of the jobs ended before any time, and reads them all rather
      // than the index. Expression statistics need PostgreSQL 14; older servers do without.
      `DO $$ BEGIN IF current_setting('server_version_num')::int4 >= 140000 THEN ` +
      `EXECUTE 'CREATE STATISTICS ${s}.jobs_ended_at ON (coalesce(finished_at, 0)) FROM ${s}.jobs'; END IF; END $$`,
    ],
  },
  {
    name: "ready tasks by agent, for claims limited to some agents",
    statements: (s) => [
      // claimReady({ agents }): each agent's ready tasks in claim order, and nothing else.
      `CREATE INDEX tasks_ready_agent ON ${s}.tasks (agent, priority, run_at, id) WHERE status = 'ready'`,
    ],
  },
];

/** The schema version this code writes. */
export const SCHEMA_VERSION: number = MIGRATIONS.length;

/**
 * Bring schema `schema` to {@link SCHEMA_VERSION} in one transaction, under an advisory
 * lock, so that processes starting together migrate once. Returns the version found
 * (0 for a new schema). Throws `StorageVersionError` for a newer schema.
 */
export async function migrate(
  run: <T>(fn: (tx: SqlQueryable) => Promise<T>) => Promise<T>,
  schema: string,
): Promise<number> {
  const s = `"${schema}"`;
  return await run(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock(hashtext($1::text))", [`task-core:${schema}`]);
    const exists = await tx.query("SELECT 1 FROM pg_namespace WHERE nspname = $1::text", [schema]);
    if (exists.length === 0) await tx.query(`CREATE SCHEMA ${s}`);
    // Looked up, not `CREATE TABLE IF NOT EXISTS`: that sends the client a NOTICE on every
    // open of an existing schema, which postgres.js prints by default.
    const [table] = await tx.query("SELECT to_regclass($1::text)::text", [`${s}.migrations`]);
    if (table?.[0] === null || table?.[0] === undefined) {
      await tx.query(
        `CREATE TABLE ${s}.migrations (
          version int4 PRIMARY KEY,
          name text NOT NULL,
          applied_at timestamptz NOT NULL DEFAULT now()
        )`,
      );
    }
    const [row] = await tx.query(`SELECT coalesce(max(version), 0)::int4 FROM ${s}.migrations`);
    const found = Number(row?.[0] ?? 0);
    if (found > SCHEMA_VERSION) throw new StorageVersionError("PostgreSQL schema", found, SCHEMA_VERSION);
    for (let v = found; v < SCHEMA_VERSION; v++) {
      const m = MIGRATIONS[v]!;
      for (const statement of m.statements(s)) await tx.query(statement);
      await tx.query(`INSERT INTO ${s}.migrations (version, name) VALUES ($1::text::int4, $2::text)`, [v + 1, m.name]);
    }
    return found;
  });
}

/**
 * Check, without changing anything, that schema `schema` is at {@link SCHEMA_VERSION}
 * (for `migrate: false`). A migration under way elsewhere is waited for (a shared hold
 * of its advisory lock). Returns the version found. Throws `StorageSetupError` for a
 * missing or older schema and `StorageVersionError` for a newer one.
 */
export async function checkVersion(
  run: <T>(fn: (tx: SqlQueryable) => Promise<T>) => Promise<T>,
  schema: string,
): Promise<number> {
  const s = `"${schema}"`;
  return await run(async (tx) => {
    await tx.query("SELECT pg_advisory_xact_lock_shared(hashtext($1::text))", [`task-core:${schema}`]);
    const [table] = await tx.query("SELECT to_regclass($1::text)::text", [`${s}.migrations`]);
    const found = table?.[0] !== null && table?.[0] !== undefined
      ? Number((await tx.query(`SELECT coalesce(max(version), 0)::int4 FROM ${s}.migrations`))[0]?.[0] ?? 0)
      : 0;
    if (found > SCHEMA_VERSION) throw new StorageVersionError("PostgreSQL schema", found, SCHEMA_VERSION);
    if (found < SCHEMA_VERSION) {
      throw new StorageSetupError(
        `PostgreSQL schema "${schema}" is ${
          found === 0 ? "missing" : `at version ${found}`
        }, and this code needs version ${SCHEMA_VERSION}: open it once with migrate: true (the default)`,
      );
    }
    return found;
  });
}

// ---------------------------------------------------------------- rows

// Frozen JSON values remember their text, so a record read, changed and written again
// does not serialise its (possibly large) input and output a second time.
const texts = new WeakMap<object, string>();

/** The JSON text of a stored value. */
export function jsonText(value: JsonValue): string {
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  let text = texts.get(value);
  if (text === undefined) {
    text = JSON.stringify(value);
    if (Object.isFrozen(value)) texts.set(value, text);
  }
  return text;
}

/** Parse JSON text into a frozen value that remembers its text. */
export function jsonValue(text: unknown): JsonValue {
  if (typeof text !== "string") throw new StorageError(`Expected JSON text from PostgreSQL, got ${typeof text}`);
  const value = deepFreeze(JSON.parse(text) as JsonValue);
  if (value !== null && typeof value === "object") texts.set(value, text);
  return value;
}

/** A record field as a parameter of its column. */
export function toParam<R>(c: Column<R>, record: R): SqlParam {
  const v = record[c.field] as unknown;
  // A JSON null is the text "null", except for `error`, where no error is SQL NULL.
  if (c.type === "json") {
    return (v === null || v === undefined) && c.name === "error" ? null : jsonText((v ?? null) as JsonValue);
  }
  if (v === null || v === undefined) return null;
  return v as SqlParam;
}

const str = (v: unknown): string | null => (v === null || v === undefined ? null : String(v));
const num = (v: unknown): number | null => (v === null || v === undefined ? null : Number(v));
const bool = (v: unknown): boolean => v === true || v === "t" || v === "true";

/** The task of a row selected with `selectList(TASK_COLUMNS)`, frozen. */
export function rowTask(r: readonly unknown[]): Task {
  return Object.freeze({
    id: String(r[0]),
    jobId: String(r[1]),
    key: String(r[2]),
    agent: String(r[3]),
    input: jsonValue(r[4]),
    output: jsonValue(r[5]),
    error: r[6] === null ? null : (jsonValue(r[6]) as unknown as Task["error"]),
    status: r[7] as TaskStatus,
    statusReason: str(r[8]),
    parentId: str(r[9]),
    dependencies: jsonValue(r[10]) as string[],
    remainingDeps: Number(r[11]),
    attempts: Number(r[12]),
    maxAttempts: Number(r[13]),
    timeoutMs: num(r[14]),
    durability: r[15] as Task["durability"],
    onDependencyFailure: r[16] as Task["onDependencyFailure"],
    priority: Number(r[17]),
    runAt: Number(r[18]),
    review: bool(r[19]),
    reviewFeedback: str(r[20]),
    leaseOwner: str(r[21]),
    leaseExpiresAt: num(r[22]),
    version: Number(r[23]),
    createdAt: Number(r[24]),
    updatedAt: Number(r[25]),
    startedAt: num(r[26]),
    finishedAt: num(r[27]),
    description: str(r[28]),
    taskType: str(r[29]),
    summary: str(r[30]),
    acceptanceCriteria: str(r[31]),
  });
}

/** The job of a row selected with `selectList(JOB_COLUMNS)`, frozen. */
export function rowJob(r: readonly unknown[]): Job {
  return Object.freeze({
    id: String(r[0]),
    name: String(r[1]),
    status: r[2] as JobStatus,
    metadata: jsonValue(r[3]),
    taskCount: Number(r[4]),
    openCount: Number(r[5]),
    failedCount: Number(r[6]),
    version: Number(r[7]),
    createdAt: Number(r[8]),
    updatedAt: Number(r[9]),
    finishedAt: num(r[10]),
  });
}

/** Whether a record field differs from the stored one (JSON values by identity: the rules keep unchanged ones). */
export function fieldChanged<R>(c: Column<R>, next: R, prev: R): boolean {
  const a = next[c.field] as unknown;
  const b = prev[c.field] as unknown;
  if (a === b) return false;
  if (c.type === "json" && a !== null && b !== null && typeof a === "object" && typeof b === "object") {
    return jsonText(a as JsonValue) !== jsonText(b as JsonValue);
  }
  return true;
}

// ---------------------------------------------------------------- array literals

function quoteElement(v: string): string {
  return `"${v.replace(/[\\"]/g, "\\$&")}"`;
}

/** A PostgreSQL array literal of texts (bound as text, cast with `::text[]`). */
export function textArray(values: readonly (string | null)[]): string {
  return `{${values.map((v) => (v === null ? "NULL" : quoteElement(v))).join(",")}}`;
}

/** A PostgreSQL array literal of the values of one column. */
export function columnArray(type: ColumnType, values: readonly SqlParam[]): string {
  if (type === "text" || type === "json") return textArray(values.map((v) => (v === null ? null : String(v))));
  return `{${values.map((v) => (v === null ? "NULL" : type === "bool" ? (v ? "t" : "f") : String(v))).join(",")}}`;
}
