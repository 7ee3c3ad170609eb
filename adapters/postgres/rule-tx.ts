/**
 * The `RuleTx` of the PostgreSQL adapter: the scheduling rules of `commit-rules.ts` read
 * and write through one SQL transaction.
 *
 * - Every read locks what it reads (`SELECT ... FOR UPDATE`): the rules decide from the
 *   rows they read, so no other transaction may change those rows before this one
 *   commits. Two completions of a join's dependencies thus decrement its `remainingDeps`
 *   one after the other, and a late completion from a lost lease meets the new version.
 * - Before the rules run, {@link PgRuleTx.prefetchCommit} reads in one pipelined round
 *   trip what a batch will need: the tasks its ops name (locked in id order), the jobs
 *   of tasks whose status changes other than by a claim (locked in id order, after the
 *   tasks: one lock order for every transaction, so completions do not deadlock), and the
 *   dependents of tasks that settle, through the edge table `task_deps` (O(1) per edge).
 *   The rules then run synchronously on cached rows; what they still need (a cascade's
 *   next level, the dependencies of a blocked task a person sends back to ready) is read
 *   on demand, after the job's lock: such a rare transaction may meet a completion in a
 *   deadlock, which PostgreSQL breaks and the adapter retries as an error that may pass.
 * - Writes are buffered and issued by {@link PgRuleTx.finish}, pipelined: new tasks in one
 *   multi-row insert, updates with only the columns that changed.
 *
 * @module
 */

import type { MaybePromise, RuleTx } from "../../src/commit-rules.ts";
import { isLoneSurrogate } from "../../src/json.ts";
import type { CommitOp } from "../../src/storage.ts";
import type { Job, JsonValue, Task, TaskStatus } from "../../src/types.ts";
import type { SqlParam, SqlQueryable, SqlRow } from "./client.ts";
import {
  type Column,
  columnArray,
  fieldChanged,
  JOB_COLUMNS,
  jsonValue,
  rowJob,
  rowTask,
  TASK_COLUMNS,
  textArray,
  toParam,
} from "./schema.ts";
import { Statements } from "./statements.ts";

/** Statuses whose arrival may change dependents (satisfy or fail them). */
const SETTLING: ReadonlySet<string> = new Set<TaskStatus>(["completed", "accepted", "failed", "cancelled", "rejected"]);
/** Statuses a job-control op moves tasks out of. */
const CONTROLLED: readonly TaskStatus[] = ["pending", "ready", "running", "paused", "blocked"];
/** What a cancel also ends: a `completed` task awaiting review. */
const CANCELLED: readonly TaskStatus[] = [...CONTROLLED, "completed"];
/** Whether `s` can be part of an entry's lock key (a jsonb text). */
function lockable(s: string): boolean {
  return !isLoneSurrogate(s) && !s.includes("\0");
}

/** Rows per multi-row insert. */
const INSERT_CHUNK = 2000;

/** A `RuleTx` over one SQL transaction. Call {@link PgRuleTx.finish} after the rules. */
export class PgRuleTx implements RuleTx {
  readonly #tx: SqlQueryable;
  readonly #sql: Statements;
  /** Stored (and locked) tasks by id; `undefined` for ids known not to exist. */
  readonly #tasks = new Map<string, Task | undefined>();
  readonly #jobs = new Map<string, Job | undefined>();
  readonly #dependents = new Map<string, string[]>();
  readonly #taskPuts = new Map<string, { task: Task; prev: Task | undefined }>();
  readonly #jobPuts = new Map<string, { job: Job; prev: Job | undefined }>();
  readonly #writes: Array<[string, SqlParam[]]> = [];
  /** Cache and state entries this transaction holds the lock of, by `JSON.stringify([kind, a, key])`. */
  readonly #locked = new Set<string>();
  /** Cache and state entries read under their lock, by the same key. */
  readonly #entries = new Map<string, JsonValue | undefined>();

  /** Wrap a transaction; `sql` holds the statements of the storage's schema. */
  constructor(tx: SqlQueryable, sql: Statements) {
    this.#tx = tx;
    this.#sql = sql;
  }

  #seedTask(row: SqlRow): Task {
    const task = rowTask(row);
    if (!this.#tasks.has(task.id)) this.#tasks.set(task.id, task);
    return this.#tasks.get(task.id) ?? task;
  }

  #seedJob(row: SqlRow): void {
    const job = rowJob(row);
    if (!this.#jobs.has(job.id)) this.#jobs.set(job.id, job);
  }

  #seedDependents(rows: readonly SqlRow[], asked: readonly string[]): void {
    for (const id of asked) if (!this.#dependents.has(id)) this.#dependents.set(id, []);
    for (const row of rows) {
      const task = this.#seedTask(row.slice(1));
      this.#dependents.get(String(row[0]))?.push(task.id);
    }
  }

  /** {@inheritDoc RuleTx.getTask} */
  getTask(id: string): MaybePromise<Task | undefined> {
    if (typeof id !== "string") return undefined;
    if (this.#tasks.has(id)) return this.#tasks.get(id);
    return this.#tx.query(this.#sql.lockTask, [id]).then((rows) => {
      if (rows[0]) this.#seedTask(rows[0]);
      else if (!this.#tasks.has(id)) this.#tasks.set(id, undefined);
      return this.#tasks.get(id);
    });
  }

  /** {@inheritDoc RuleTx.getJob} */
  getJob(id: string): MaybePromise<Job | undefined> {
    if (typeof id !== "string") return undefined;
    if (this.#jobs.has(id)) return this.#jobs.get(id);
    return this.#tx.query(this.#sql.lockJob, [id]).then((rows) => {
      if (rows[0]) this.#seedJob(rows[0]);
      else if (!this.#jobs.has(id)) this.#jobs.set(id, undefined);
      return this.#jobs.get(id);
    });
  }

  /** {@inheritDoc RuleTx.dependents} */
  dependents(id: string): MaybePromise<readonly string[]> {
    if (typeof id !== "string") return [];
    const known = this.#dependents.get(id);
    if (known) return known;
    return this.#tx.query(this.#sql.lockDependents, [textArray([id])]).then((rows) => {
      this.#seedDependents(rows, [id]);
      return this.#dependents.get(id)!;
    });
  }

  /** {@inheritDoc RuleTx.jobTasks} */
  async jobTasks(jobId: string, statuses: readonly TaskStatus[]): Promise<readonly Task[]> {
    const rows = await this.#tx.query(this.#sql.lockJobTasks, [textArray([jobId]), textArray(statuses)]);
    return rows.map((r) => this.#seedTask(r));
  }

  /** {@inheritDoc RuleTx.putTask} */
  putTask(task: Task, prev: Task | undefined): void {
    const had = this.#taskPuts.get(task.id);
    this.#taskPuts.set(task.id, { task, prev: had ? had.prev : prev });
  }

  /** {@inheritDoc RuleTx.putJob} */
  putJob(job: Job, prev: Job | undefined): void {
    const had = this.#jobPuts.get(job.id);
    this.#jobPuts.set(job.id, { job, prev: had ? had.prev : prev });
  }

  /** {@inheritDoc RuleTx.setCache} */
  setCache(jobId: string, key: string, value: JsonValue | undefined): void {
    if (value === undefined) this.#writes.push([this.#sql.delCache, [jobId, key]]);
    else this.#writes.push([this.#sql.setCache, [jobId, key, JSON.stringify(value)]]);
  }

  /** {@inheritDoc RuleTx.getCache} */
  getCache(jobId: string, key: string): MaybePromise<JsonValue | undefined> {
    return this.#entry("c", jobId, key, this.#sql.getCache);
  }

  /** {@inheritDoc RuleTx.getState} */
  getState(scope: string, key: string): MaybePromise<JsonValue | undefined> {
    return this.#entry("s", scope, key, this.#sql.getState);
  }

  /** An entry as read (under its lock) by `prefetchCommit`, or read now, locked first. */
  #entry(kind: "c" | "s", a: string, key: string, read: string): MaybePromise<JsonValue | undefined> {
    const slot = JSON.stringify([kind, a, key]);
    if (this.#entries.has(slot)) return this.#entries.get(slot);
    return (async () => {
      if (!this.#locked.has(slot)) await this.#tx.query(this.#sql.lockEntry, [kind, a, key]);
      this.#locked.add(slot);
      const rows = await this.#tx.query(read, [a, key]);
      const value = rows[0] ? jsonValue(rows[0][0]) : undefined;
      this.#entries.set(slot, value);
      return value;
    })();
  }

  /** {@inheritDoc RuleTx.setState} */
  setState(scope: string, key: string, value: JsonValue | undefined): void {
    if (value === undefined) this.#writes.push([this.#sql.delState, [scope, key]]);
    else this.#writes.push([this.#sql.setState, [scope, key, JSON.stringify(value)]]);
  }

  /**
   * Read (and lock) in one pipelined round trip what a commit will need: the tasks its ops
   * name, the tasks of jobs it pauses, resumes or cancels, the jobs of tasks that change
   * status, and the dependents of tasks that settle. Never throws for a malformed op: the
   * rules report it.
   */
  async prefetchCommit(ops: readonly CommitOp[]): Promise<void> {
    if (!Array.isArray(ops)) return;
    const taskIds = new Set<string>();
    const jobIds = new Set<string>();
    const controlled = new Set<string>();
    let cancels = false;
    const jobsOf = new Set<string>();
    const settling = new Set<string>();
    // Every cache and state entry the batch writes, and whether an op expects its value.
    // A blind write (last writer wins) locks its entry too: a write that expects the entry
    // must not read it, pass, and then overwrite a blind write committed meanwhile.
    const entries = new Map<string, { kind: "c" | "s"; a: string; key: string; read: boolean }>();
    const entry = (kind: "c" | "s", a: unknown, key: unknown, read: boolean): void => {
      // Text the rules refuse (a lone surrogate) or no text column holds (NUL) is left to them.
      if (typeof a !== "string" || typeof key !== "string" || !lockable(a) || !lockable(key)) return;
      const slot = JSON.stringify([kind, a, key]);
      const had = entries.get(slot);
      if (had) had.read ||= read;
      else entries.set(slot, { kind, a, key, read });
    };
    for (const op of ops) {
      switch (op?.type) {
        case "insertTask": {
          const t = op.task;
          if (typeof t?.id === "string") taskIds.add(t.id);
          if (Array.isArray(t?.dependencies)) {
            for (const d of t.dependencies) if (typeof d === "string") taskIds.add(d);
          }
          if (typeof t?.jobId === "string") jobIds.add(t.jobId);
          break;
        }
        case "updateTask": {
          if (typeof op.id !== "string") break;
          taskIds.add(op.id);
          const to = op.set?.status;
          // Every status change but a claim may read the job (its counters; a paused job
          // keeps a task sent back to ready paused).
          if (typeof to === "string" && to !== "running") jobsOf.add(op.id);
          if (typeof to === "string" && SETTLING.has(to)) settling.add(op.id);
          break;
        }
        case "updateJob":
          if (typeof op.id !== "string") break;
          jobIds.add(op.id);
          if (op.set?.status !== undefined) controlled.add(op.id);
          if (op.set?.status === "cancelled") cancels = true;
          break;
        case "setCache":
          if (typeof op.jobId === "string") jobIds.add(op.jobId);
          entry("c", op.jobId, op.key, op.expect !== undefined);
          break;
        case "setState":
          entry("s", op.scope, op.key, op.expect !== undefined);
          break;
      }
    }
    const reads: Promise<void>[] = [];
    // Tasks first (in id order), then jobs (in id order), then dependents: the same lock
    // order in every transaction.
    if (taskIds.size > 0) {
      const asked = [...taskIds];
      reads.push(
        this.#tx.query(this.#sql.lockTasks, [textArray(asked)]).then((rows) => {
          for (const r of rows) this.#seedTask(r);
          for (const id of asked) if (!this.#tasks.has(id)) this.#tasks.set(id, undefined);
        }),
      );
    }
    if (controlled.size > 0) {
      reads.push(
        this.#tx.query(this.#sql.lockJobTasks, [
          textArray([...controlled]),
          textArray(cancels ? CANCELLED : CONTROLLED),
        ]).then((rows) => {
          for (const r of rows) this.#seedTask(r);
        }),
      );
    }
    if (jobIds.size > 0 || jobsOf.size > 0) {
      reads.push(
        this.#tx.query(this.#sql.lockJobs, [textArray([...jobIds]), textArray([...jobsOf])]).then((rows) => {
          for (const r of rows) this.#seedJob(r);
        }),
      );
    }
    if (settling.size > 0) {
      const asked = [...settling];
      reads.push(
        this.#tx.query(this.#sql.lockDependents, [textArray(asked)]).then((rows) => {
          this.#seedDependents(rows, asked);
        }),
      );
    }
    if (entries.size > 0) {
      // After the rows (one lock order for every transaction), in one statement, in the
      // order of their lock keys: two batches writing the same entries do not deadlock.
      const slots = [...entries.keys()];
      reads.push(
        this.#tx.query(this.#sql.lockEntries, [textArray(slots)]).then(() => {
          for (const slot of slots) this.#locked.add(slot);
        }),
      );
      // The entries the rules compare, read in the same round trip (after the locks).
      for (const [slot, { kind, a, key, read }] of entries) {
        if (!read) continue;
        reads.push(
          this.#tx.query(kind === "c" ? this.#sql.getCache : this.#sql.getState, [a, key]).then((rows) => {
            this.#entries.set(slot, rows[0] ? jsonValue(rows[0][0]) : undefined);
          }),
        );
      }
    }
    await Promise.all(reads);
  }

  /** Read what creating a job needs: whether its id and its tasks' ids exist already. */
  async prefetchCreate(jobId: unknown, tasks: readonly Task[]): Promise<void> {
    const ids = Array.isArray(tasks)
      ? tasks.map((t) => t?.id).filter((id): id is string => typeof id === "string")
      : [];
    const reads: Promise<void>[] = [];
    if (typeof jobId === "string") {
      reads.push(
        this.#tx.query(this.#sql.job, [jobId]).then((rows) => {
          if (rows[0]) this.#seedJob(rows[0]);
          else this.#jobs.set(jobId, undefined);
        }),
      );
    }
    if (ids.length > 0) {
      reads.push(
        this.#tx.query(this.#sql.existingTasks, [textArray(ids)]).then((rows) => {
          // Ids found are left to `getTask` (the rules refuse them); the others are new and
          // have no dependents yet.
          const found = new Set(rows.map((r) => String(r[0])));
          for (const id of ids) {
            if (found.has(id)) continue;
            if (!this.#tasks.has(id)) this.#tasks.set(id, undefined);
            if (!this.#dependents.has(id)) this.#dependents.set(id, []);
          }
        }),
      );
    }
    await Promise.all(reads);
  }

  /** Issue every buffered write, pipelined, plus a `NOTIFY` when `notify` names a channel and payload. */
  async finish(notify?: readonly [string, string]): Promise<void> {
    const s = this.#sql;
    const pending: Promise<unknown>[] = [];
    const run = (sql: string, params: SqlParam[]): void => {
      pending.push(this.#tx.query(sql, params));
    };
    for (const { job, prev } of this.#jobPuts.values()) {
      if (!prev) run(s.insertJob, JOB_COLUMNS.map((c) => toParam(c, job)));
      else this.#update("jobs", JOB_COLUMNS, job, prev, run);
    }
    const inserts: SqlParam[][] = [];
    const depIds: string[] = [];
    const dependentIds: string[] = [];
    // Updates grouped by the set of columns they change: one statement per group.
    const groups = new Map<string, { columns: Column<Task>[]; rows: Task[] }>();
    for (const { task, prev } of this.#taskPuts.values()) {
      if (!prev) {
        inserts.push(TASK_COLUMNS.map((c) => toParam(c, task)));
        for (const d of task.dependencies) {
          depIds.push(d);
          dependentIds.push(task.id);
        }
        continue;
      }
      const columns = changedColumns(TASK_COLUMNS, task, prev);
      if (columns.length === 0) continue;
      const key = columns.map((c) => c.name).join(",");
      const group = groups.get(key);
      if (group) group.rows.push(task);
      else groups.set(key, { columns, rows: [task] });
    }
    for (const { columns, rows } of groups.values()) {
      if (rows.length === 1) {
        run(s.update("tasks", columns), [...columns.map((c) => toParam(c, rows[0]!)), rows[0]!.id]);
      } else {
        run(s.updateMany("tasks", columns), [
          textArray(rows.map((r) => r.id)),
          ...columns.map((c) => columnArray(c.type, rows.map((r) => toParam(c, r)))),
        ]);
      }
    }
    for (let i = 0; i < inserts.length; i += INSERT_CHUNK) {
      run(s.insertTasks, Statements.insertTaskParams(inserts.slice(i, i + INSERT_CHUNK)));
    }
    if (depIds.length > 0) run(s.insertDeps, [textArray(depIds), textArray(dependentIds)]);
    for (const [sql, params] of this.#writes) run(sql, params);
    if (notify) run("SELECT pg_notify($1::text, $2::text)", [notify[0], notify[1]]);
    await Promise.all(pending);
  }

  #update<R extends { id: string }>(
    table: "tasks" | "jobs",
    columns: readonly Column<R>[],
    next: R,
    prev: R,
    run: (sql: string, params: SqlParam[]) => void,
  ): void {
    const changed = changedColumns(columns, next, prev);
    if (changed.length === 0) return;
    run(this.#sql.update(table, changed), [...changed.map((c) => toParam(c, next)), next.id]);
  }
}

/** The columns (never the id) whose field differs between a record and its stored version. */
function changedColumns<R>(columns: readonly Column<R>[], next: R, prev: R): Column<R>[] {
  const changed: Column<R>[] = [];
  for (let i = 1; i < columns.length; i++) if (fieldChanged(columns[i]!, next, prev)) changed.push(columns[i]!);
  return changed;
}
