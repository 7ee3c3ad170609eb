/**
 * The SQL side of the sql.js adapter: prepared statements, the `RuleTx` the scheduling
 * rules run on, queries, and the record of changed rows that becomes a journal frame.
 *
 * Journal records (JSON, one per changed row):
 * `["T", taskRow]` new task (with its dependency edges), `["t", id, [column, value, ...]]`
 * changed columns of a task (column = index in `TASK_COLUMNS`), `["J", jobRow]` new job,
 * `["j", id, [column, value, ...]]` changed columns of a job, `["c", jobId, key, json]` /
 * `["c-", jobId, key]` cache entry, `["s", scope, key, json]` / `["s-", scope, key]` shared
 * state, `["x", jobId]` pruned job.
 *
 * Updates write only the columns that changed, so an index is touched only when its key
 * changes (a completion moves `status`, not `job_id` or `agent`), and a journal record
 * holds only what changed.
 *
 * @module
 */

import { claimOrder, type RuleTx } from "../../src/commit-rules.ts";
import { StorageCorruptError } from "../../src/errors.ts";
import type { JobQuery, TaskQuery } from "../../src/storage.ts";
import type { Job, JsonValue, Task } from "../../src/types.ts";
import type { SqlJsDatabase, SqlJsStatement, SqlValue } from "./module.ts";
import {
  changed,
  checkDiff,
  checkRow,
  JOB_COLUMNS,
  jobRow,
  jsonText,
  jsonValue,
  rowJob,
  rowTask,
  TASK_COLUMNS,
  taskRow,
} from "./schema.ts";

const T_COLS = TASK_COLUMNS.join(", ");
const J_COLS = JOB_COLUMNS.join(", ");
const insert = (verb: string, table: string, cols: readonly string[]): string =>
  `${verb} INTO ${table} (${cols.join(", ")}) VALUES (${cols.map(() => "?").join(", ")})`;

const ENDED = "status IN ('completed', 'failed', 'cancelled')";

/**
 * The queries `prune()` finds its jobs with, on the partial index of ended jobs by end time
 * (`jobs_ended`, schema version 2), so that a call reads the jobs it deletes and, with
 * `keepLast`, the index entries of the jobs it keeps, never every ended job.
 */
export const PRUNE_SQL: { readonly endedBefore: string; readonly endedBeyond: string } = {
  /** Ended jobs that ended before `?`. */
  endedBefore: `SELECT id FROM jobs INDEXED BY jobs_ended WHERE ${ENDED} AND coalesce(finished_at, 0) < ?`,
  /** Ended jobs after the newest `?` (newest: latest end, then greatest id). */
  endedBeyond: `SELECT id FROM jobs INDEXED BY jobs_ended WHERE ${ENDED} ` +
    "ORDER BY coalesce(finished_at, 0) DESC, id DESC LIMIT -1 OFFSET ?",
};

const SQL = {
  begin: "BEGIN",
  commit: "COMMIT",
  rollback: "ROLLBACK",
  task: `SELECT ${T_COLS} FROM tasks WHERE id = ?`,
  insertTask: insert("INSERT", "tasks", TASK_COLUMNS),
  replayTask: insert("INSERT OR REPLACE", "tasks", TASK_COLUMNS),
  addDep: "INSERT OR IGNORE INTO task_deps (dep_id, task_id) VALUES (?, ?)",
  dependents: "SELECT task_id FROM task_deps WHERE dep_id = ? ORDER BY task_id",
  jobTasks: `SELECT ${T_COLS} FROM tasks WHERE job_id = ? ORDER BY id`,
  job: `SELECT ${J_COLS} FROM jobs WHERE id = ?`,
  insertJob: insert("INSERT", "jobs", JOB_COLUMNS),
  replayJob: insert("INSERT OR REPLACE", "jobs", JOB_COLUMNS),
  // INDEXED BY: without statistics the planner would pick tasks_status and sort every
  // ready (running) task per call; the partial indexes give the order directly.
  // A claim reads the due tasks of one priority at a time (a skip-scan over the priorities of
  // ready tasks): one range of (priority, run_at, id) per priority. A single scan ordered by
  // (priority, run_at, id) and filtered on run_at would read past every ready task not yet
  // due (scheduled, or waiting out a retry's backoff) whenever fewer than the limit are due.
  // Each step is a statement run from JS, though: with many priorities among the ready tasks
  // (a REAL, free to differ per task) a claim would run two per priority. Past the first
  // `SKIPS` priorities it reads the rest in one scan (`claimFrom`), as before the skip-scan:
  // it reads the index entries of later priorities, not-yet-due ones included, in SQLite.
  firstPriority: "SELECT priority, id FROM tasks INDEXED BY tasks_claim WHERE status = 'ready' " +
    "ORDER BY priority LIMIT 1",
  nextPriority: "SELECT priority, id FROM tasks INDEXED BY tasks_claim WHERE status = 'ready' AND priority > ? " +
    "ORDER BY priority LIMIT 1",
  claim: `SELECT ${T_COLS} FROM tasks INDEXED BY tasks_claim WHERE status = 'ready' AND priority = ? ` +
    "AND run_at <= ? ORDER BY run_at, id LIMIT ?",
  claimFrom: `SELECT ${T_COLS} FROM tasks INDEXED BY tasks_claim WHERE status = 'ready' AND priority >= ? ` +
    "AND run_at <= ? ORDER BY priority, run_at, id LIMIT ?",
  // The same, per agent, for a claim limited to some agents.
  firstAgentPriority: "SELECT priority, id FROM tasks INDEXED BY tasks_claim_agent WHERE status = 'ready' " +
    "AND agent = ? ORDER BY priority LIMIT 1",
  nextAgentPriority: "SELECT priority, id FROM tasks INDEXED BY tasks_claim_agent WHERE status = 'ready' " +
    "AND agent = ? AND priority > ? ORDER BY priority LIMIT 1",
  claimAgent: `SELECT ${T_COLS} FROM tasks INDEXED BY tasks_claim_agent WHERE status = 'ready' AND agent = ? ` +
    "AND priority = ? AND run_at <= ? ORDER BY run_at, id LIMIT ?",
  claimAgentFrom: `SELECT ${T_COLS} FROM tasks INDEXED BY tasks_claim_agent WHERE status = 'ready' AND agent = ? ` +
    "AND priority >= ? AND run_at <= ? ORDER BY priority, run_at, id LIMIT ?",
  expired: `SELECT ${T_COLS} FROM tasks INDEXED BY tasks_lease WHERE status = 'running' AND lease_expires_at <= ? ` +
    "ORDER BY lease_expires_at, id LIMIT ?",
  getCache: "SELECT value FROM cache WHERE job_id = ? AND key = ?",
  setCache: "INSERT OR REPLACE INTO cache (job_id, key, value) VALUES (?, ?, ?)",
  delCache: "DELETE FROM cache WHERE job_id = ? AND key = ?",
  getState: "SELECT value FROM state WHERE scope = ? AND key = ?",
  setState: "INSERT OR REPLACE INTO state (scope, key, value) VALUES (?, ?, ?)",
  delState: "DELETE FROM state WHERE scope = ? AND key = ?",
  endedBefore: PRUNE_SQL.endedBefore,
  endedBeyond: PRUNE_SQL.endedBeyond,
  dropDeps: "DELETE FROM task_deps WHERE dep_id IN (SELECT id FROM tasks WHERE job_id = ?)",
  dropTasks: "DELETE FROM tasks WHERE job_id = ?",
  dropCache: "DELETE FROM cache WHERE job_id = ?",
  dropJob: "DELETE FROM jobs WHERE id = ?",
  setGeneration: "UPDATE meta SET value = ? WHERE key = 'generation'",
} as const;

/** The statements of one skip-scan over the priorities of ready tasks (see `SQL.firstPriority`). */
interface ClaimQueries {
  readonly first: string;
  readonly next: string;
  readonly claim: string;
  readonly from: string;
}

const ANY_AGENT: ClaimQueries = {
  first: SQL.firstPriority,
  next: SQL.nextPriority,
  claim: SQL.claim,
  from: SQL.claimFrom,
};
const ONE_AGENT: ClaimQueries = {
  first: SQL.firstAgentPriority,
  next: SQL.nextAgentPriority,
  claim: SQL.claimAgent,
  from: SQL.claimAgentFrom,
};

/**
 * Priorities a claim reads one range at a time before it reads the rest in one scan: a few
 * statements each, so that a claim past many priorities of tasks not yet due stays within
 * a few hundred statements, and one past many of them reads no more than a single scan.
 */
const SKIPS = 16;

/**
 * Statuses of work in flight: how many tasks hold one is bounded by the work under way,
 * while an ended status gathers nearly every task the database ever held.
 */
const LIVE_STATUSES: ReadonlySet<string> = new Set(["pending", "ready", "running", "paused", "blocked"]);

/**
 * The index a `listTasks()` query walks, in id order: the one of its most selective filter.
 * A parent's children are tasks of one job, so the parent's index comes first, then the
 * job's. No index covers an agent and a status together (another index that every status
 * change updates): a status of work in flight is the smaller set, else the agent's tasks
 * are (an ended status holds nearly every task).
 */
function taskIndex(q: TaskQuery): string | null {
  if (q.parentId !== undefined) return "tasks_parent";
  if (q.jobId !== undefined) return "tasks_job";
  if (q.status !== undefined && q.agent !== undefined) {
    return LIVE_STATUSES.has(q.status) ? "tasks_status" : "tasks_agent";
  }
  if (q.status !== undefined) return "tasks_status";
  if (q.agent !== undefined) return "tasks_agent";
  return null;
}

/**
 * The SQL of a `listTasks()` query (a checked one) and its parameters. `INDEXED BY` keeps
 * the planner, which has no statistics, on the index of the most selective filter (see
 * `taskIndex`): left to itself it walked every task of a status to find one job's.
 */
export function taskListQuery(q: TaskQuery): { sql: string; params: SqlValue[] } {
  const where: string[] = [];
  const params: SqlValue[] = [];
  const add = (cond: string, value: string | undefined): void => {
    if (value === undefined) return;
    where.push(cond);
    params.push(value);
  };
  add("job_id = ?", q.jobId);
  add("agent = ?", q.agent);
  add("status = ?", q.status);
  add("parent_id = ?", q.parentId);
  add("id > ?", q.after);
  params.push(q.limit === undefined || q.limit === Infinity ? -1 : Math.max(0, q.limit));
  const index = taskIndex(q);
  const sql = `SELECT ${T_COLS} FROM tasks${index ? ` INDEXED BY ${index}` : ""}` +
    `${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT ?`;
  return { sql, params };
}

/**
 * PRAGMAs for a database that lives in WASM memory: durability comes from the journal
 * and snapshots, so SQLite keeps its rollback journal in memory and never syncs.
 */
const PRAGMAS = "PRAGMA journal_mode = MEMORY; PRAGMA synchronous = OFF; PRAGMA temp_store = MEMORY;";

/** One sql.js database with its prepared statements. */
export class SqlDb {
  readonly db: SqlJsDatabase;
  readonly #stmts = new Map<string, SqlJsStatement>();
  readonly #updates = new Map<string, string>();
  /** Records of the open transaction, or `null` when changes are not journaled. */
  #changes: string[] | null = null;
  #journaling: boolean;

  constructor(db: SqlJsDatabase, journaling: boolean) {
    this.db = db;
    this.#journaling = journaling;
    db.exec(PRAGMAS);
  }

  #stmt(sql: string): SqlJsStatement {
    let s = this.#stmts.get(sql);
    if (!s) this.#stmts.set(sql, s = this.db.prepare(sql));
    return s;
  }

  #run(sql: string, params: SqlValue[]): void {
    this.#stmt(sql).run(params);
  }

  #one(sql: string, params: SqlValue[]): SqlValue[] | undefined {
    const s = this.#stmt(sql);
    try {
      s.bind(params);
      return s.step() ? s.get() : undefined;
    } finally {
      s.reset();
    }
  }

  #all(sql: string, params: SqlValue[]): SqlValue[][] {
    const s = this.#stmt(sql);
    const out: SqlValue[][] = [];
    try {
      s.bind(params);
      while (s.step()) out.push(s.get());
    } finally {
      s.reset();
    }
    return out;
  }

  #record(record: unknown[]): void {
    this.#changes?.push(JSON.stringify(record));
  }

  /**
   * Run `fn` in one SQL transaction. Returns its value and the journal records of the rows
   * it changed (empty when nothing changed or journaling is off). Rolls back when it throws.
   * `beforeCommit` gets the records before `COMMIT`: when it throws, the transaction rolls
   * back too (the storage encodes the journal's bytes there, so that no change is applied
   * that the journal cannot hold).
   */
  async transaction<T>(
    fn: () => T | Promise<T>,
    beforeCommit?: (records: readonly string[]) => void,
  ): Promise<{ value: T; records: string[] }> {
    this.#run(SQL.begin, []);
    const records: string[] = [];
    this.#changes = this.#journaling ? records : null;
    try {
      const value = await fn();
      this.#changes = null;
      beforeCommit?.(records);
      this.#run(SQL.commit, []);
      return { value, records };
    } catch (e) {
      try {
        this.#run(SQL.rollback, []);
      } catch {
        // SQLite may have rolled back already (for example after running out of memory)
      }
      throw e;
    } finally {
      this.#changes = null;
    }
  }

  /** The primitives the scheduling rules use, on this database. */
  ruleTx(): RuleTx {
    return {
      getTask: (id) => this.getTask(id),
      getJob: (id) => this.getJob(id),
      dependents: (id) => this.#all(SQL.dependents, [id]).map((r) => r[0] as string),
      jobTasks: (jobId, statuses) =>
        this.#all(SQL.jobTasks, [jobId]).map(rowTask).filter((t) => statuses.includes(t.status)),
      putTask: (task, prev) => this.putTask(task, prev),
      putJob: (job, prev) => this.putJob(job, prev),
      setCache: (jobId, key, value) => this.setCache(jobId, key, value),
      setState: (scope, key, value) => this.setState(scope, key, value),
      getCache: (jobId, key) => this.getCache(jobId, key),
      getState: (scope, key) => this.getState(scope, key),
    };
  }

  /** A task as stored (a fresh record). */
  getTask(id: string): Task | undefined {
    const r = this.#one(SQL.task, [id]);
    return r && rowTask(r);
  }

  /** A job as stored (a fresh record). */
  getJob(id: string): Job | undefined {
    const r = this.#one(SQL.job, [id]);
    return r && rowJob(r);
  }

  /** Write a task: insert it, or update the columns that differ from `prev` (the stored record). */
  putTask(task: Task, prev: Task | undefined): void {
    const row = taskRow(task);
    if (!prev) {
      this.#run(SQL.insertTask, row);
      for (const dep of task.dependencies) this.#run(SQL.addDep, [dep, task.id]);
      this.#record(["T", row]);
      return;
    }
    const diff = changed(row, taskRow(prev));
    if (diff.length === 0) return;
    this.#update("tasks", TASK_COLUMNS, task.id, diff);
    this.#record(["t", task.id, diff]);
  }

  /** Write a job: insert it, or update the columns that differ from `prev`. */
  putJob(job: Job, prev: Job | undefined): void {
    const row = jobRow(job);
    if (!prev) {
      this.#run(SQL.insertJob, row);
      this.#record(["J", row]);
      return;
    }
    const diff = changed(row, jobRow(prev));
    if (diff.length === 0) return;
    this.#update("jobs", JOB_COLUMNS, job.id, diff);
    this.#record(["j", job.id, diff]);
  }

  /** `UPDATE table SET <changed columns> WHERE id = ?`, one prepared statement per set of columns. */
  #update(table: string, columns: readonly string[], id: string, diff: SqlValue[]): void {
    const params: SqlValue[] = [];
    let key = table;
    for (let i = 0; i < diff.length; i += 2) {
      key += `,${diff[i]}`;
      params.push(diff[i + 1]!);
    }
    params.push(id);
    let sql = this.#updates.get(key);
    if (sql === undefined) {
      const sets: string[] = [];
      for (let i = 0; i < diff.length; i += 2) sets.push(`${columns[diff[i] as number]} = ?`);
      this.#updates.set(key, sql = `UPDATE ${table} SET ${sets.join(", ")} WHERE id = ?`);
    }
    this.#run(sql, params);
  }

  setCache(jobId: string, key: string, value: JsonValue | undefined): void {
    if (value === undefined) {
      this.#run(SQL.delCache, [jobId, key]);
      this.#record(["c-", jobId, key]);
    } else {
      const text = jsonText(value);
      this.#run(SQL.setCache, [jobId, key, text]);
      this.#record(["c", jobId, key, text]);
    }
  }

  setState(scope: string, key: string, value: JsonValue | undefined): void {
    if (value === undefined) {
      this.#run(SQL.delState, [scope, key]);
      this.#record(["s-", scope, key]);
    } else {
      const text = jsonText(value);
      this.#run(SQL.setState, [scope, key, text]);
      this.#record(["s", scope, key, text]);
    }
  }

  getCache(jobId: string, key: string): JsonValue | undefined {
    const r = this.#one(SQL.getCache, [jobId, key]);
    return r && jsonValue(r[0] as string);
  }

  getState(scope: string, key: string): JsonValue | undefined {
    const r = this.#one(SQL.getState, [scope, key]);
    return r && jsonValue(r[0] as string);
  }

  /**
   * Ready tasks with `runAt <= now`, in claim order (collected before any update): at most
   * `limit` (-1: no limit), of the given `agents` only (`null`: any agent). Reads the due
   * ones of each priority in turn, lowest first (per agent, when limited to agents), and
   * the tasks not yet due not at all.
   */
  claimable(now: number, limit: number, agents: readonly string[] | null): Task[] {
    if (agents === null) return this.#due(now, limit, ANY_AGENT, []);
    if (agents.length === 1) return this.#due(now, limit, ONE_AGENT, [agents[0]!]);
    // Each agent's first `limit`, merged in claim order.
    const all: Task[] = [];
    for (const agent of agents) all.push(...this.#due(now, limit, ONE_AGENT, [agent]));
    all.sort(claimOrder);
    return limit < 0 || all.length <= limit ? all : all.slice(0, limit);
  }

  /**
   * The due tasks of one skip-scan over priorities (`first`/`next`), `claim` reading each
   * one's range; past `SKIPS` priorities, `from` reads the rest in one scan.
   */
  #due(now: number, limit: number, q: ClaimQueries, scope: SqlValue[]): Task[] {
    const out: Task[] = [];
    let p = this.#one(q.first, scope);
    for (let seen = 0; p !== undefined && (limit < 0 || out.length < limit); seen++) {
      const priority = p[0]!;
      // A number, as the column's affinity makes every value it was given through SQL: a
      // text that does not read back as stored (not UTF-8) would be found again and again
      // by `next`, and any other would be left unclaimed, never reported.
      if (typeof priority !== "number") this.#corrupt(p[1]!, "priority");
      const left = limit < 0 ? -1 : limit - out.length;
      if (seen === SKIPS) {
        for (const row of this.#all(q.from, [...scope, priority, now, left])) out.push(rowTask(row));
        break;
      }
      for (const row of this.#all(q.claim, [...scope, priority, now, left])) out.push(rowTask(row));
      p = this.#one(q.next, [...scope, priority]);
    }
    return out;
  }

  /** Report the task `id` as corrupt: by reading it whole when it reads as corrupt, else naming `field`. */
  #corrupt(id: SqlValue, field: string): never {
    if (typeof id === "string") this.getTask(id);
    throw new StorageCorruptError("sqljs tasks", `task "${String(id)}": field "${field}" must be a finite number`);
  }

  /** Running tasks whose lease expired at or before `now`, oldest expiry first: at most `limit` (null: no limit). */
  expired(now: number, limit: number | null): Task[] {
    return this.#all(SQL.expired, [now, limit ?? -1]).map(rowTask);
  }

  listTasks(q: TaskQuery): Task[] {
    const { sql, params } = taskListQuery(q);
    return this.#all(sql, params).map(rowTask);
  }

  listJobs(q: JobQuery): Job[] {
    const where: string[] = [];
    const params: SqlValue[] = [];
    if (q.status !== undefined) {
      where.push("status = ?");
      params.push(q.status);
    }
    if (q.after !== undefined) {
      where.push("id > ?");
      params.push(q.after);
    }
    params.push(q.limit === undefined || q.limit === Infinity ? -1 : Math.max(0, q.limit));
    const sql = `SELECT ${J_COLS} FROM jobs${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT ?`;
    return this.#all(sql, params).map(rowJob);
  }

  /**
   * Ids of the ended jobs `prune()` deletes: those that ended before `finishedBefore`, and
   * those after the newest `keepLast` (an option left out selects none).
   */
  prunable(finishedBefore: number | undefined, keepLast: number | undefined): Set<string> {
    const ids = new Set<string>();
    if (finishedBefore !== undefined) {
      for (const r of this.#all(SQL.endedBefore, [finishedBefore])) ids.add(r[0] as string);
    }
    if (keepLast !== undefined) { for (const r of this.#all(SQL.endedBeyond, [keepLast])) ids.add(r[0] as string); }
    return ids;
  }

  /** Delete a job with its tasks, edges and cache. */
  dropJob(id: string): void {
    this.#run(SQL.dropDeps, [id]);
    this.#run(SQL.dropTasks, [id]);
    this.#run(SQL.dropCache, [id]);
    this.#run(SQL.dropJob, [id]);
    this.#record(["x", id]);
  }

  /** Apply the records of one journal frame (inside a transaction). */
  replay(records: unknown[], location: string): void {
    for (const rec of records) {
      const r = rec as unknown[];
      const bad = (): never => {
        throw new StorageCorruptError(location, "a journal record is not understood");
      };
      if (!Array.isArray(r)) bad();
      const s = (i: number): string => (typeof r[i] === "string" ? r[i] as string : bad());
      switch (r[0]) {
        case "T": {
          const row = checkRow(r[1], TASK_COLUMNS, location);
          this.#run(SQL.replayTask, row);
          for (const dep of jsonValue(row[10] as string) as string[]) this.#run(SQL.addDep, [dep, row[0]!]);
          break;
        }
        case "J":
          this.#run(SQL.replayJob, checkRow(r[1], JOB_COLUMNS, location));
          break;
        case "t":
          this.#update("tasks", TASK_COLUMNS, s(1), checkDiff(r[2], TASK_COLUMNS, location));
          break;
        case "j":
          this.#update("jobs", JOB_COLUMNS, s(1), checkDiff(r[2], JOB_COLUMNS, location));
          break;
        case "c":
          this.#run(SQL.setCache, [s(1), s(2), s(3)]);
          break;
        case "c-":
          this.#run(SQL.delCache, [s(1), s(2)]);
          break;
        case "s":
          this.#run(SQL.setState, [s(1), s(2), s(3)]);
          break;
        case "s-":
          this.#run(SQL.delState, [s(1), s(2)]);
          break;
        case "x":
          this.dropJob(s(1));
          break;
        default:
          bad();
      }
    }
  }

  /**
   * Export the database as a snapshot of `generation`. sql.js versions before 1.13 close
   * and reopen the connection in `export()`, which frees prepared statements and resets
   * PRAGMAs: both are redone so every version works.
   */
  snapshot(generation: number): Uint8Array {
    this.#run(SQL.setGeneration, [String(generation)]);
    for (const s of this.#stmts.values()) s.free();
    this.#stmts.clear();
    const bytes = this.db.export();
    this.db.exec(PRAGMAS);
    return bytes;
  }

  close(): void {
    for (const s of this.#stmts.values()) s.free();
    this.#stmts.clear();
    this.db.close();
  }
}
