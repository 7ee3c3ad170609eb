/**
 * The storage contract on PostgreSQL: `createJob` and `commit` run the shared scheduling
 * rules in one SQL transaction each (see `rule-tx.ts`); `claimReady` is one `UPDATE`
 * whose subquery picks ready tasks with `FOR UPDATE SKIP LOCKED`; `renewLeases` is one
 * `UPDATE`; reads are single statements served by indexes.
 *
 * @module
 */

import {
  applyCommit,
  applyCreateJob,
  checkClaimOptions,
  checkIds,
  checkPruneOptions,
  checkQuery,
  checkRenewOptions,
  claimAgents,
  claimOrder,
  expiredArgs,
  isContractError,
  takeJob,
  takeOps,
  takeTasks,
} from "../../src/commit-rules.ts";
import { StorageClosedError, StorageError } from "../../src/errors.ts";
import { newId } from "../../src/ids.ts";
import {
  changeOf,
  type ClaimOptions,
  type CommitOp,
  type CommitResult,
  type JobQuery,
  type PruneOptions,
  type RenewOptions,
  type Storage,
  type StorageCapabilities,
  type StorageChange,
  type TaskQuery,
} from "../../src/storage.ts";
import type { Job, JsonValue, Task } from "../../src/types.ts";
import type { SqlClient, SqlParam, SqlQueryable, SqlRow } from "./client.ts";
import { isTransient, isUniqueViolation, markDriverError, toStorageError } from "./errors.ts";
import { PgRuleTx } from "./rule-tx.ts";
import { JOB_COLUMNS, jsonValue, rowJob, rowTask, selectList, TASK_COLUMNS, textArray } from "./schema.ts";
import { Statements } from "./statements.ts";
import { Wakeup } from "./wake.ts";
import { isLoneSurrogate } from "../../src/json.ts";

/**
 * Whether `v` can name a stored record: text without a lone surrogate. The driver sends a
 * lone surrogate as U+FFFD, which would find the record of another id or key; the storage
 * refuses such text in writes, so nothing stored holds it.
 */
function findable(v: unknown): v is string {
  return typeof v === "string" && !isLoneSurrogate(v);
}

/** A storage on PostgreSQL. */
export interface PostgresStorage extends Storage {
  /** The schema holding the tables. */
  readonly schema: string;
  /** The `LISTEN`/`NOTIFY` channel of the schema. */
  readonly channel: string;
  /** The schema version found at open (0: created by this open), or `null` when migrations were skipped. */
  readonly migratedFrom: number | null;
}

/** How often a transaction PostgreSQL rolled back for a deadlock is run again before the error is reported. */
const TRANSIENT_RETRIES = 8;

const wakes = (r: CommitResult): boolean => r.readied > 0 || r.jobs.length > 0;

/** The storage; made by `openPostgresStorage`. */
export class PgStorage implements PostgresStorage {
  readonly name: string = "postgres";
  readonly capabilities: StorageCapabilities;
  readonly schema: string;
  readonly channel: string;
  readonly migratedFrom: number | null;
  readonly #client: SqlClient;
  readonly #sql: Statements;
  readonly #wake: Wakeup;
  readonly #now: () => number;
  readonly #closeClient: boolean;
  readonly #inflight = new Set<Promise<unknown>>();
  #closed = false;
  #closing: Promise<void> | null = null;

  constructor(
    client: SqlClient,
    options: { schema: string; channel: string; listen: boolean; closeClient: boolean; now: () => number },
    migratedFrom: number | null,
  ) {
    this.#client = client;
    this.schema = options.schema;
    this.channel = options.channel;
    this.migratedFrom = migratedFrom;
    this.capabilities = { durable: client.durable ?? true, shared: client.shared ?? true };
    this.#sql = new Statements(options.schema);
    this.#wake = new Wakeup(client, options.channel, newId(), options.listen);
    this.#now = options.now;
    this.#closeClient = options.closeClient;
  }

  #check(): void {
    if (this.#closed) throw new StorageClosedError(`Storage is closed (PostgreSQL schema "${this.schema}")`);
  }

  /** Track a call so that `close()` waits for it. */
  #track<T>(p: Promise<T>): Promise<T> {
    this.#inflight.add(p);
    const done = (): void => {
      this.#inflight.delete(p);
    };
    p.then(done, done);
    return p;
  }

  /** One statement outside a transaction. */
  #query(action: string, sql: string, params: SqlParam[]): Promise<SqlRow[]> {
    try {
      this.#check();
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#track(
      this.#client.query(sql, params).catch((e) => {
        throw toStorageError(markDriverError(e), this.schema, action);
      }),
    );
  }

  /**
   * Run `body` in one transaction. Errors of the statements become `StorageError`s; the
   * contract's errors thrown by the rules pass through; a transaction rolled back by a
   * deadlock runs again (it changed nothing).
   */
  #transaction<T>(action: string, body: (tx: SqlQueryable) => Promise<T>): Promise<T> {
    try {
      this.#check();
    } catch (e) {
      return Promise.reject(e);
    }
    return this.#track((async () => {
      for (let attempt = 1;; attempt++) {
        let ruleError: { error: unknown } | undefined;
        const statementErrors = new Set<unknown>();
        try {
          return await this.#client.transaction(async (raw) => {
            const tx: SqlQueryable = {
              query: (sql, params) =>
                raw.query(sql, params).catch((e) => {
                  const error = toStorageError(markDriverError(e), this.schema, action);
                  statementErrors.add(error);
                  throw error;
                }),
            };
            try {
              return await body(tx);
            } catch (e) {
              if (isContractError(e) && !statementErrors.has(e)) ruleError = { error: e };
              throw e;
            }
          });
        } catch (e) {
          // The rules refused the batch: the transaction was rolled back (or its connection
          // is gone), so nothing of it was applied either way.
          if (ruleError) throw ruleError.error;
          if (isTransient(e) && attempt < TRANSIENT_RETRIES) {
            await new Promise((r) => setTimeout(r, Math.random() * 5 * attempt));
            continue;
          }
          if (isUniqueViolation(e)) {
            throw new StorageError(`A task or job with one of these ids already exists: ${(e as Error).message}`, {
              cause: e,
            });
          }
          // A statement's error is already translated (translating it again would repeat its text).
          if (statementErrors.has(e)) throw e;
          throw toStorageError(markDriverError(e), this.schema, action);
        }
      }
    })());
  }

  createJob(given: Job, list: readonly Task[]): Promise<CommitResult> {
    const job = takeJob(given);
    const tasks = takeTasks(list);
    return this.#transaction("creating a job", async (tx) => {
      const rtx = new PgRuleTx(tx, this.#sql);
      await rtx.prefetchCreate(job?.id, tasks);
      const result = await applyCreateJob(rtx, job, tasks, this.#now());
      await rtx.finish(wakes(result) ? [this.channel, this.#wake.payload(changeOf(result))] : undefined);
      return result;
    }).then((r) => this.#woke(r));
  }

  commit(given: readonly CommitOp[], now?: number): Promise<CommitResult> {
    const ops = takeOps(given);
    return this.#transaction("committing", async (tx) => {
      const rtx = new PgRuleTx(tx, this.#sql);
      await rtx.prefetchCommit(ops);
      const result = await applyCommit(rtx, ops, now ?? this.#now());
      await rtx.finish(wakes(result) ? [this.channel, this.#wake.payload(changeOf(result))] : undefined);
      return result;
    }).then((r) => this.#woke(r));
  }

  #woke(r: CommitResult): CommitResult {
    if (wakes(r)) this.#wake.notify(changeOf(r));
    return r;
  }

  async claimReady(options: ClaimOptions): Promise<Task[]> {
    this.#check();
    const limit = checkClaimOptions(options);
    const { now, owner, leaseMs } = options;
    const agents = claimAgents(options.agents);
    if (limit === 0 || agents?.length === 0) return [];
    // A claim that finds nothing sleeps until a notice: claiming before this storage's
    // LISTEN took effect would miss the notices of work made ready in between.
    const listening = this.#wake.settled();
    if (listening) await listening;
    // LIMIT NULL is none.
    const params = [
      owner,
      now,
      now + leaseMs,
      limit === Infinity ? null : limit,
      // Past the largest safe integer no claim holds that many tasks: start them all (a
      // bound that large is not an integer SQL's int8 takes).
      Math.min(options.start ?? 0, Number.MAX_SAFE_INTEGER),
    ];
    const rows = agents === null
      ? await this.#query("claiming tasks", this.#sql.claim, params)
      : await this.#query("claiming tasks", this.#sql.claimAgents, [...params, textArray(agents)]);
    // The database answers: if LISTEN failed earlier (it was down), try again.
    this.#wake.ensure();
    return rows.map(rowTask).sort(claimOrder);
  }

  async renewLeases(options: RenewOptions): Promise<string[]> {
    this.#check();
    checkRenewOptions(options);
    // An id with a lone surrogate names no task (the driver would send U+FFFD in its place,
    // renewing the lease of the task whose id has U+FFFD there).
    const ids = Array.isArray(options?.ids) ? options.ids.filter(findable) : [];
    if (ids.length === 0) return [];
    const rows = await this.#query("renewing leases", this.#sql.renew, [
      textArray(ids),
      options.owner,
      options.now + options.leaseMs,
    ]);
    const renewed = new Set(rows.map((r) => String(r[0])));
    return ids.filter((id) => renewed.has(id));
  }

  async expiredLeases(now: number, limit: number = Infinity): Promise<Task[]> {
    const a = expiredArgs(now, limit);
    if (a.now === null) {
      this.#check();
      return [];
    }
    const rows = await this.#query("reading expired leases", this.#sql.expired, [a.now, a.limit]);
    return rows.map(rowTask);
  }

  async getJob(id: string): Promise<Job | undefined> {
    this.#check();
    if (!findable(id)) return undefined;
    const rows = await this.#query("reading a job", this.#sql.job, [id]);
    return rows[0] && rowJob(rows[0]);
  }

  async listJobs(raw: JobQuery = {}): Promise<Job[]> {
    this.#check();
    const query = checkQuery(raw, "listJobs");
    const where: string[] = [];
    const params: SqlParam[] = [];
    if (query.status !== undefined) {
      params.push(query.status);
      where.push(`status = $${params.length}::text`);
    }
    if (query.after !== undefined) {
      params.push(query.after);
      where.push(`id > $${params.length}::text`);
    }
    params.push(query.limit === undefined || query.limit === Infinity ? null : query.limit);
    const sql = `SELECT ${selectList(JOB_COLUMNS)} FROM ${this.#sql.s}.jobs` +
      `${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT $${params.length}::text::int8`;
    const rows = await this.#query("listing jobs", sql, params);
    return rows.map(rowJob);
  }

  async getTask(id: string): Promise<Task | undefined> {
    this.#check();
    if (!findable(id)) return undefined;
    const rows = await this.#query("reading a task", this.#sql.task, [id]);
    return rows[0] && rowTask(rows[0]);
  }

  async getTasks(ids: readonly string[]): Promise<Task[]> {
    this.#check();
    checkIds(ids, "getTasks()");
    const wanted = ids.filter(findable);
    if (wanted.length === 0) return [];
    const rows = await this.#query("reading tasks", this.#sql.tasks, [textArray(wanted)]);
    const byId = new Map<string, Task>();
    for (const r of rows) {
      const t = rowTask(r);
      byId.set(t.id, t);
    }
    const out: Task[] = [];
    for (const id of wanted) {
      const t = byId.get(id);
      if (t) out.push(t);
    }
    return out;
  }

  async listTasks(query: TaskQuery): Promise<Task[]> {
    this.#check();
    const q = checkQuery(query, "listTasks");
    for (const v of [q.jobId, q.agent, q.parentId]) if (v !== undefined && !findable(v)) return [];
    const where: string[] = [];
    const params: SqlParam[] = [];
    const add = (column: string, op: string, value: string | undefined): void => {
      if (value === undefined) return;
      params.push(value);
      where.push(`${column} ${op} $${params.length}::text`);
    };
    add("job_id", "=", q.jobId);
    add("agent", "=", q.agent);
    add("status", "=", q.status);
    add("parent_id", "=", q.parentId);
    add("id", ">", q.after);
    params.push(q.limit === undefined || q.limit === Infinity ? null : q.limit);
    const sql = `SELECT ${selectList(TASK_COLUMNS)} FROM ${this.#sql.s}.tasks` +
      `${where.length ? ` WHERE ${where.join(" AND ")}` : ""} ORDER BY id LIMIT $${params.length}::text::int8`;
    const rows = await this.#query("listing tasks", sql, params);
    return rows.map(rowTask);
  }

  async getCache(jobId: string, key: string): Promise<JsonValue | undefined> {
    this.#check();
    if (!findable(jobId) || !findable(key)) return undefined;
    const rows = await this.#query("reading the cache", this.#sql.getCache, [jobId, key]);
    return rows[0] ? jsonValue(rows[0][0]) : undefined;
  }

  async getState(scope: string, key: string): Promise<JsonValue | undefined> {
    this.#check();
    if (!findable(scope) || !findable(key)) return undefined;
    const rows = await this.#query("reading shared state", this.#sql.getState, [scope, key]);
    return rows[0] ? jsonValue(rows[0][0]) : undefined;
  }

  prune(options: PruneOptions): Promise<number> {
    let checked: PruneOptions;
    try {
      this.#check(); // closed says so whatever the arguments, as on every adapter
      checked = checkPruneOptions(options);
    } catch (e) {
      return Promise.reject(e);
    }
    const { finishedBefore, keepLast } = checked;
    return this.#transaction("pruning jobs", async (tx) => {
      if (finishedBefore === undefined && keepLast === undefined) return 0;
      const rows = await tx.query(this.#sql.doomedJobs, [
        finishedBefore ?? null,
        keepLast === undefined ? null : Math.max(0, Math.floor(keepLast)),
      ]);
      if (rows.length === 0) return 0;
      const ids = [textArray(rows.map((r) => String(r[0])))];
      await tx.query(this.#sql.dropDeps, ids);
      await Promise.all([
        tx.query(this.#sql.dropTasks, ids),
        tx.query(this.#sql.dropCache, ids),
        tx.query(this.#sql.dropJobs, ids),
      ]);
      return rows.length;
    });
  }

  watch(listener: (change?: StorageChange) => void): () => void {
    return this.#wake.add(listener);
  }

  close(): Promise<void> {
    if (!this.#closing) {
      this.#closed = true;
      // Told once more: whoever waits on a watcher calls again and learns of the close.
      const unwatched = this.#wake.close();
      this.#closing = (async () => {
        await Promise.allSettled([...this.#inflight]);
        await unwatched;
        if (this.#closeClient) await this.#client.end?.();
      })();
    }
    return this.#closing;
  }
}
