/**
 * The SQL statements of the PostgreSQL adapter for one schema, built once per storage.
 *
 * @module
 */

import { type Column, columnArray, JOB_COLUMNS, param, selectList, TASK_COLUMNS } from "./schema.ts";
import type { SqlParam } from "./client.ts";

const T = selectList(TASK_COLUMNS);
const J = selectList(JOB_COLUMNS);

/** The statements of one schema. */
/** Priorities a claim reads one range at a time before it reads the rest in one scan (see `Statements.claim`). */
const SKIPS = 16;

export class Statements {
  /** The quoted schema name. */
  readonly s: string;
  /** One task, locked for the transaction. */
  readonly lockTask: string;
  /** Tasks by id (`$1` a text array), locked in id order. */
  readonly lockTasks: string;
  /** Ids of the tasks that exist among `$1` (a text array). */
  readonly existingTasks: string;
  /** One job, locked. */
  readonly lockJob: string;
  /** Jobs by id (`$1` a text array) and the jobs of tasks `$2` (a text array), locked in id order. */
  readonly lockJobs: string;
  /** Tasks of jobs `$1` (text array) in statuses `$2` (text array), locked in id order. */
  readonly lockJobTasks: string;
  /** Dependents of tasks `$1` (text array): `dep_id` then the dependent's columns, locked. */
  readonly lockDependents: string;
  /** Insert edges: `$1` dependency ids, `$2` dependent ids (text arrays). */
  readonly insertDeps: string;
  /** The claim: `$1` owner, `$2` now, `$3` lease expiry, `$4` limit, `$5` how many of the first it starts. */
  readonly claim: string;
  /** The claim of some agents' tasks only: as {@link claim}, and `$6` the agents (a text array). */
  readonly claimAgents: string;
  /** Renew: `$1` ids (text array), `$2` owner, `$3` new expiry. */
  readonly renew: string;
  /** Expired leases: `$1` now, `$2` limit (null: all). */
  readonly expired: string;
  /** One task. */
  readonly task: string;
  /** Tasks by id (`$1` a text array). */
  readonly tasks: string;
  /** One job. */
  readonly job: string;
  readonly getCache: string;
  readonly setCache: string;
  readonly delCache: string;
  readonly getState: string;
  /** Locks one cache or state entry (present or not) until the transaction ends. */
  readonly lockEntry: string;
  /** Locks the entries `$1` names (each `JSON.stringify([kind, a, key])`), in the order of their lock keys. */
  readonly lockEntries: string;
  readonly setState: string;
  readonly delState: string;
  /** Ended jobs to prune, locked: `$1` finished before (or null), `$2` keep last (or null). */
  readonly doomedJobs: string;
  readonly dropDeps: string;
  readonly dropTasks: string;
  readonly dropCache: string;
  readonly dropJobs: string;
  readonly insertTasks: string;
  readonly insertJob: string;
  readonly #updates = new Map<string, string>();

  constructor(schema: string) {
    const s = `"${schema}"`;
    this.s = s;
    // Lists of ids are bound as one array literal and joined through `unnest`: `= ANY($1)`
    // compares every row with every element when the planner picks a sequential scan.
    const ids = "SELECT unnest($1::text::text[])";
    this.lockTask = `SELECT ${T} FROM ${s}.tasks WHERE id = $1::text FOR UPDATE`;
    this.lockTasks = `SELECT ${T} FROM ${s}.tasks WHERE id IN (${ids}) ORDER BY id FOR UPDATE`;
    this.existingTasks = `SELECT id FROM ${s}.tasks WHERE id IN (${ids})`;
    this.lockJob = `SELECT ${J} FROM ${s}.jobs WHERE id = $1::text FOR UPDATE`;
    this.lockJobs = `SELECT ${J} FROM ${s}.jobs WHERE id IN (${ids} UNION ` +
      `SELECT job_id FROM ${s}.tasks WHERE id IN (SELECT unnest($2::text::text[]))) ORDER BY id FOR UPDATE`;
    this.lockJobTasks = `SELECT ${T} FROM ${s}.tasks WHERE job_id IN (${ids}) ` +
      "AND status = ANY($2::text::text[]) ORDER BY id FOR UPDATE";
    this.lockDependents = `SELECT d.dep_id, ${selectList(TASK_COLUMNS, "t")} FROM ${s}.task_deps d ` +
      `JOIN ${s}.tasks t ON t.id = d.task_id WHERE d.dep_id IN (${ids}) ORDER BY t.id, d.dep_id FOR UPDATE OF t`;
    this.insertDeps = `INSERT INTO ${s}.task_deps (dep_id, task_id) ` +
      "SELECT * FROM unnest($1::text::text[], $2::text::text[]) ON CONFLICT DO NOTHING";
    // One statement: the materialized CTE picks and locks up to `limit` rows once (skipping
    // rows other claimers hold), the update moves exactly those to running; the partial
    // index tasks_ready serves the pick. (As `WHERE id IN (subquery)` the planner may choose
    // a semi-join that runs the subquery again per row, each run taking the next ready
    // tasks: a claim of 1 then took every ready task.)
    // A task whose attempts are at the column's limit is left ready: counting one more
    // fails the whole statement, which would stop every claim of the schema for good.
    // The first `$5` in claim order are started (numbered apart: a locking SELECT cannot
    // hold a window function).
    // The pick reads the due tasks of one priority at a time, lowest first: `prios` walks
    // the priorities of ready tasks one index seek each (a skip-scan), and the lateral pick
    // takes a range of (priority, run_at, id) per priority. Both are pulled only until the
    // limit is met, so a claim reads neither the priorities after it nor the ready tasks not
    // yet due (scheduled, or waiting out a retry's backoff), which one scan ordered by
    // (priority, run_at, id) and filtered on run_at read every time fewer than the limit
    // were due. Priorities are free to differ per task, though, and a seek per priority
    // costs more than reading the index past them: after the first SKIPS priorities, `rest`
    // reads the others in that one scan (only if the claim gets that far: the union is
    // pulled in order and stops at the limit). The rows come out in claim order (priorities
    // in the order the recursion finds them, each range in index order, then the rest in
    // index order); `picked` numbers them by that order. `agent` limits it to one agent's
    // tasks (on tasks_ready_agent).
    const due = "run_at <= $2::text::float8 AND attempts < 2147483647";
    const stream = (agent: string, limit: string, lock: string) => {
      const of = agent === "" ? "" : ` AND agent = ${agent}`;
      return `(WITH RECURSIVE prios (priority, n) AS (` +
        `(SELECT priority, 1 FROM ${s}.tasks WHERE status = 'ready'${of} ORDER BY priority LIMIT 1) UNION ALL ` +
        `SELECT (SELECT priority FROM ${s}.tasks WHERE status = 'ready'${of} AND priority > p.priority ` +
        `ORDER BY priority LIMIT 1), p.n + 1 FROM prios p WHERE p.priority IS NOT NULL AND p.n < ${SKIPS}), ` +
        `rest AS MATERIALIZED (SELECT id, priority, run_at FROM ${s}.tasks WHERE status = 'ready'${of} ` +
        `AND priority > (SELECT max(priority) FROM prios) AND ${due} ORDER BY priority, run_at, id ` +
        `LIMIT ${limit}${lock}) ` +
        "SELECT u.id, u.priority, u.run_at FROM (SELECT d.id, d.priority, d.run_at FROM prios p CROSS JOIN LATERAL " +
        `(SELECT id, priority, run_at FROM ${s}.tasks WHERE status = 'ready'${of} AND priority = p.priority ` +
        `AND ${due} ORDER BY run_at, id LIMIT ${limit}${lock}) d ` +
        `UNION ALL SELECT id, priority, run_at FROM rest) u LIMIT ${limit})`;
    };
    const lock = " FOR UPDATE SKIP LOCKED";
    const anyAgent = "WITH locked AS MATERIALIZED (SELECT c.id, c.priority, c.run_at FROM " +
      `${stream("", "$4::text::int8", lock)} c), `;
    // The same per agent for a claim limited to some agents, on tasks_ready_agent. Merging
    // the agents' streams in claim order needs a sort, which pulls up to the limit from each
    // agent: locking there would hold rows the claim does not pick (until its transaction
    // ends), and a concurrent claim would skip them and find too few. So `first` reads (no
    // lock) each agent's first due tasks up to the limit and merges them: how many of the
    // first `$4` each agent has is its quota; `locked` then reads and locks each agent's
    // stream up to its quota (SKIP LOCKED going past what other claims hold): every row it
    // locks is picked. Both read only the agents' due tasks, at most the limit per agent.
    const someAgents = "WITH first AS MATERIALIZED (SELECT a.agent FROM unnest($6::text::text[]) a (agent) " +
      `CROSS JOIN LATERAL ${stream("a.agent", "$4::text::int8", "")} c ` +
      "ORDER BY c.priority, c.run_at, c.id LIMIT $4::text::int8), " +
      "quota AS MATERIALIZED (SELECT agent, count(*) AS n FROM first GROUP BY agent), " +
      "locked AS MATERIALIZED (SELECT c.id, c.priority, c.run_at FROM quota a " +
      // (The quotas add up to at most the limit: `LIMIT` tells the planner so, which then
      // updates the picked rows through their key instead of hashing the whole table.)
      `CROSS JOIN LATERAL ${stream("a.agent", "a.n", lock)} c LIMIT $4::text::int8), `;
    const update =
      "picked AS MATERIALIZED (SELECT id, row_number() OVER (ORDER BY priority, run_at, id) AS n FROM locked) " +
      `UPDATE ${s}.tasks t SET status = 'running', attempts = t.attempts + 1, lease_owner = $1::text, ` +
      "lease_expires_at = $3::text::float8, " +
      "started_at = CASE WHEN picked.n <= $5::text::int8 AND t.durability <> 'at-most-once' " +
      "THEN $2::text::float8 ELSE NULL END, " +
      "version = t.version + 1, updated_at = $2::text::float8 " +
      `FROM picked WHERE t.id = picked.id RETURNING ${selectList(TASK_COLUMNS, "t")}`;
    this.claim = anyAgent + update;
    this.claimAgents = someAgents + update;
    this.renew = `UPDATE ${s}.tasks SET lease_expires_at = $3::text::float8 WHERE id IN (${ids}) ` +
      "AND status = 'running' AND lease_owner = $2::text RETURNING id";
    this.expired = `SELECT ${T} FROM ${s}.tasks WHERE status = 'running' AND lease_expires_at <= $1::text::float8 ` +
      "ORDER BY lease_expires_at, id LIMIT $2::text::int8";
    this.task = `SELECT ${T} FROM ${s}.tasks WHERE id = $1::text`;
    this.tasks = `SELECT ${T} FROM ${s}.tasks WHERE id IN (${ids})`;
    this.job = `SELECT ${J} FROM ${s}.jobs WHERE id = $1::text`;
    this.getCache = `SELECT value::text FROM ${s}.cache WHERE job_id = $1::text AND key = $2::text`;
    this.setCache = `INSERT INTO ${s}.cache (job_id, key, value) VALUES ($1::text, $2::text, $3::text::json) ` +
      "ON CONFLICT (job_id, key) DO UPDATE SET value = excluded.value";
    this.delCache = `DELETE FROM ${s}.cache WHERE job_id = $1::text AND key = $2::text`;
    this.getState = `SELECT value::text FROM ${s}.state WHERE scope = $1::text AND key = $2::text`;
    this.setState = `INSERT INTO ${s}.state (scope, key, value) VALUES ($1::text, $2::text, $3::text::json) ` +
      "ON CONFLICT (scope, key) DO UPDATE SET value = excluded.value";
    this.delState = `DELETE FROM ${s}.state WHERE scope = $1::text AND key = $2::text`;
    // An advisory lock, not FOR UPDATE: it also holds an entry that does not exist yet.
    this.lockEntry = "SELECT pg_advisory_xact_lock(hashtextextended(" +
      "jsonb_build_array($1::text, $2::text, $3::text)::text, 0))";
    // The same lock key as `lockEntry` (the slot is the same JSON array, as jsonb text).
    this.lockEntries = "SELECT pg_advisory_xact_lock(h) FROM (SELECT DISTINCT " +
      "hashtextextended(e::jsonb::text, 0) AS h FROM unnest($1::text::text[]) AS e ORDER BY h) AS l";
    // Locked before anything is deleted: a commit holding one of them (a cache write on an
    // ended job) finishes first, and its rows are deleted with the job's. Both parts are
    // served by the index jobs_ended: the jobs ended before `$1` are a range of it; those
    // past the newest `$2` are its tail, after skipping the jobs kept (a null bound reads
    // nothing: `< NULL` matches no entry, and the tail is not read when `$2` is null). The
    // ids found are one array (an id in both parts is locked once), looked up and locked
    // through the primary key in id order: as `id IN (subquery)`, the planner joined them
    // with every job.
    const ended = `FROM ${s}.jobs WHERE status IN ('completed', 'failed', 'cancelled')`;
    this.doomedJobs = `SELECT id FROM ${s}.jobs WHERE id = ANY(ARRAY(` +
      `SELECT id ${ended} AND coalesce(finished_at, 0) < $1::text::float8 UNION ALL ` +
      `(SELECT id ${ended} AND $2::text::int8 IS NOT NULL ` +
      "ORDER BY coalesce(finished_at, 0) DESC, id DESC OFFSET $2::text::int8))) ORDER BY id FOR UPDATE";
    this.dropDeps = `DELETE FROM ${s}.task_deps WHERE dep_id IN (SELECT id FROM ${s}.tasks WHERE job_id IN (${ids}))`;
    this.dropTasks = `DELETE FROM ${s}.tasks WHERE job_id IN (${ids})`;
    this.dropCache = `DELETE FROM ${s}.cache WHERE job_id IN (${ids})`;
    this.dropJobs = `DELETE FROM ${s}.jobs WHERE id IN (${ids})`;
    // Many rows in one statement: one array literal per column, unnested together.
    this.insertTasks = `INSERT INTO ${s}.tasks (${TASK_COLUMNS.map((c) => c.name).join(", ")}) SELECT ` +
      TASK_COLUMNS.map((c) => (c.type === "json" ? `${c.name}::json` : c.name)).join(", ") +
      ` FROM unnest(${TASK_COLUMNS.map((c, i) => `$${i + 1}::text::${arrayType(c)}[]`).join(", ")}) AS u(` +
      `${TASK_COLUMNS.map((c) => c.name).join(", ")})`;
    this.insertJob = `INSERT INTO ${s}.jobs (${JOB_COLUMNS.map((c) => c.name).join(", ")}) VALUES (` +
      `${JOB_COLUMNS.map((c, i) => param(i + 1, c.type)).join(", ")})`;
  }

  /** `UPDATE table SET <columns> WHERE id = $n`, one text per set of columns. */
  update<R>(table: "tasks" | "jobs", columns: readonly Column<R>[]): string {
    const key = `${table}:${columns.map((c) => c.name).join(",")}`;
    let sql = this.#updates.get(key);
    if (sql === undefined) {
      const sets = columns.map((c, i) => `${c.name} = ${param(i + 1, c.type)}`).join(", ");
      sql = `UPDATE ${this.s}.${table} SET ${sets} WHERE id = $${columns.length + 1}::text`;
      this.#updates.set(key, sql);
    }
    return sql;
  }

  /**
   * The same columns of many rows in one statement: `$1` the ids, then one array literal
   * per column, unnested together and joined on the primary key.
   */
  updateMany<R>(table: "tasks" | "jobs", columns: readonly Column<R>[]): string {
    const key = `${table}*:${columns.map((c) => c.name).join(",")}`;
    let sql = this.#updates.get(key);
    if (sql === undefined) {
      const sets = columns.map((c) => `${c.name} = u.${c.name}${c.type === "json" ? "::json" : ""}`).join(", ");
      const arrays = columns.map((c, i) => `$${i + 2}::text::${arrayType(c)}[]`).join(", ");
      sql = `UPDATE ${this.s}.${table} AS t SET ${sets} FROM unnest($1::text::text[], ${arrays}) ` +
        `AS u(id, ${columns.map((c) => c.name).join(", ")}) WHERE t.id = u.id`;
      this.#updates.set(key, sql);
    }
    return sql;
  }

  /** The parameters of {@link Statements.insertTasks}: one array literal per column. */
  static insertTaskParams(rows: readonly SqlParam[][]): string[] {
    return TASK_COLUMNS.map((c, i) => columnArray(c.type, rows.map((r) => r[i]!)));
  }
}

function arrayType(c: { type: Column<unknown>["type"] }): string {
  return c.type === "json" ? "text" : c.type;
}
