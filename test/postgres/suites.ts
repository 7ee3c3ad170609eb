/**
 * Cases only the PostgreSQL adapter has: migrations under an advisory lock, refusal of a
 * newer schema, ids that need quoting in array literals, the claim's index, wake-ups
 * through LISTEN/NOTIFY, and connection loss (a real server only: terminated backends
 * and a role locked out for longer than a lease).
 */

import { fromPostgresJs, openPostgresStorage, type PostgresStorage, SCHEMA_VERSION } from "../../adapters/postgres.ts";
import type { SqlClient } from "../../adapters/postgres/client.ts";
import { errorCode, toStorageError } from "../../adapters/postgres/errors.ts";
import { Statements } from "../../adapters/postgres/statements.ts";
import {
  isTransientStorageError,
  KeyConflictError,
  NonRetryableError,
  StorageError,
  StorageSetupError,
  StorageVersionError,
} from "../../src/errors.ts";
import { Executor } from "../../src/executor.ts";
import type { JobHandle } from "../../src/job-handle.ts";
import type { StorageChange } from "../../src/storage.ts";
import type { JsonValue, Task } from "../../src/types.ts";
import { deepEqual, equal, ok, rejects } from "../conformance/assert.ts";
import { agent, registryOf, until } from "../conformance/executor-kit.ts";
import { buildJob } from "../conformance/fixtures.ts";
import { type Case, register, type Registrar } from "../conformance/harness.ts";
import { openFresh, type TestDatabase, uniqueSchema } from "../targets-postgres.ts";

interface Ctx {
  db: TestDatabase;
  /** Schemas to drop after the case. */
  schemas: string[];
  /** Storages to close after the case. */
  storages: PostgresStorage[];
  /** More cleanup. */
  after: Array<() => Promise<void>>;
}

async function fresh(ctx: Ctx): Promise<PostgresStorage> {
  const { storage, schema } = await openFresh(ctx.db);
  ctx.schemas.push(schema);
  ctx.storages.push(storage);
  return storage;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * `JobHandle.wait()` retries up to five failed reads in a row; terminated connections may
 * fail more than that: wait again until the job ends.
 */
async function waitThrough(handle: JobHandle): Promise<Record<string, JsonValue>> {
  for (let i = 0;; i++) {
    try {
      return await handle.wait();
    } catch (e) {
      if (!(e instanceof StorageError) || i > 50) throw e;
      await sleep(50);
    }
  }
}

// deno-lint-ignore no-explicit-any
type PostgresJs = any;

/** A postgres.js pool of its own, with an application name to find (and terminate) its connections. */
async function ownPool(ctx: Ctx, options: Record<string, unknown> = {}): Promise<{ sql: PostgresJs; app: string }> {
  const url = ctx.db.url!;
  const { default: postgres } = await import("postgres");
  const app = `task-core-${uniqueSchema("app")}`;
  const sql = postgres(url, {
    max: 4,
    fetch_types: false,
    onnotice: () => {},
    connection: { application_name: app },
    ...options,
  });
  ctx.after.push(() => sql.end({ timeout: 5 }));
  return { sql, app };
}

/** Wait until a backend of this database waits on a lock (a commit held behind another). */
async function untilWaitingOnLock(ctx: Ctx, what: string): Promise<void> {
  const admin = await ctx.db.client();
  await until(async () =>
    Number(
      (await admin.query(
        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = current_database()",
      ))[0]![0],
    ) > 0, what);
}

const realServerOnly = (db: TestDatabase): { skip?: string } =>
  db.url ? {} : { skip: "needs a real server (several connections; terminated backends)" };

function cases(db: TestDatabase): Case<Ctx>[] {
  return [
    {
      name: "two storages opening a new schema at once migrate it once",
      async run(ctx) {
        const schema = uniqueSchema();
        ctx.schemas.push(schema);
        const other = ctx.db.otherClient ? await ctx.db.otherClient() : await ctx.db.client();
        const [a, b] = await Promise.all([
          openPostgresStorage({ client: await ctx.db.client(), schema }),
          openPostgresStorage({ client: other, schema }),
        ]);
        ctx.storages.push(a, b);
        deepEqual([a.migratedFrom, b.migratedFrom].sort(), [0, SCHEMA_VERSION]);
        const c = await ctx.db.client();
        const rows = await c.query(`SELECT version FROM "${schema}".migrations ORDER BY version`);
        deepEqual(rows.map((r) => Number(r[0])), Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
        const again = await openPostgresStorage({ client: c, schema });
        ctx.storages.push(again);
        equal(again.migratedFrom, SCHEMA_VERSION);
      },
    },
    {
      name: "opening a current schema again sends the client no notice (postgres.js prints notices by default)",
      ...realServerOnly(db),
      async run(ctx) {
        const schema = (await fresh(ctx)).schema;
        const notices: string[] = [];
        const { sql } = await ownPool(ctx, { onnotice: (n: { message: string }) => notices.push(n.message) });
        const again = await openPostgresStorage({ client: fromPostgresJs(sql), schema });
        ctx.storages.push(again);
        equal(again.migratedFrom, SCHEMA_VERSION);
        deepEqual(notices, []);
      },
    },
    {
      name: "a schema migrated by a newer task-core is refused with StorageVersionError",
      async run(ctx) {
        const s = await fresh(ctx);
        const c = await ctx.db.client();
        await c.query(`INSERT INTO "${s.schema}".migrations (version, name) VALUES (99, 'from the future')`);
        const e = await rejects<StorageVersionError>(
          () => openPostgresStorage({ client: c, schema: s.schema }),
          StorageVersionError,
        );
        equal(e.found, 99);
        equal(e.supported, SCHEMA_VERSION);
      },
    },
    {
      name: "with migrate: false a current schema opens, a missing or older one is refused with StorageSetupError " +
        "and left as it was, a newer one with StorageVersionError",
      async run(ctx) {
        const c = await ctx.db.client();
        const noSchema = uniqueSchema();
        const empty = uniqueSchema();
        ctx.schemas.push(noSchema, empty);
        await c.query(`CREATE SCHEMA "${empty}"`);
        for (const schema of [noSchema, empty]) {
          const e = await rejects<StorageSetupError>(
            () => openPostgresStorage({ client: c, schema, migrate: false }),
            StorageSetupError,
            `"${schema}" is missing`,
          );
          equal(isTransientStorageError(e), false, "not an error that may pass");
        }
        const made = await c.query("SELECT nspname::text FROM pg_namespace WHERE nspname IN ($1::text, $2::text)", [
          noSchema,
          empty,
        ]);
        deepEqual(made.map((r) => r[0]), [empty], "no schema was created");
        equal(await c.query(`SELECT 1 FROM pg_tables WHERE schemaname = $1::text`, [empty]).then((r) => r.length), 0);

        const s = await fresh(ctx);
        const current = await openPostgresStorage({ client: c, schema: s.schema, migrate: false });
        ctx.storages.push(current);
        equal(current.migratedFrom, null);
        await c.query(`DELETE FROM "${s.schema}".migrations WHERE version = $1::text::int4`, [SCHEMA_VERSION]);
        await rejects(
          () => openPostgresStorage({ client: c, schema: s.schema, migrate: false }),
          StorageSetupError,
          `this code needs version ${SCHEMA_VERSION}`,
        );
        const versions = await c.query(`SELECT version FROM "${s.schema}".migrations ORDER BY version`);
        deepEqual(versions.map((r) => Number(r[0])), Array.from({ length: SCHEMA_VERSION - 1 }, (_, i) => i + 1));
        await c.query(
          `INSERT INTO "${s.schema}".migrations (version, name) VALUES ($1::text::int4, 'again'), ` +
            "(99, 'from the future')",
          [SCHEMA_VERSION],
        );
        const newer = await rejects<StorageVersionError>(
          () => openPostgresStorage({ client: c, schema: s.schema, migrate: false }),
          StorageVersionError,
        );
        equal(newer.found, 99);
        equal(newer.supported, SCHEMA_VERSION);
      },
    },
    {
      name: "SQLSTATE classes 0A, 3F and 42 (and 28 at open) are StorageSetupErrors, which are not retried; lost " +
        "connections, serialization failures, deadlocks, a busy or restarting server, a login refused once open are " +
        "errors that may pass",
      run() {
        const driverError = (code: string) => Object.assign(new Error(`server said ${code}`), { code });
        for (const code of ["28000", "28P01", "3D000"]) {
          const e = toStorageError(driverError(code), "s", "connecting", true);
          ok(e instanceof StorageSetupError, `${code} at open is a StorageSetupError, got ${e.name}`);
        }
        for (const code of ["0A000", "3F000", "42P01", "42703", "42501", "42601", "42883"]) {
          const e = toStorageError(driverError(code), "s", "testing");
          ok(e instanceof StorageSetupError, `${code} is a StorageSetupError, got ${e.name}`);
          ok(e.message.includes(code), e.message);
          equal(isTransientStorageError(e), false, `${code} is not an error that may pass`);
        }
        for (
          const code of [
            "08006",
            "40001",
            "40P01",
            "53300",
            "53200",
            "57P01",
            "57P03",
            "55P03",
            "CONNECTION_CLOSED",
            "28000",
            "28P01",
            "3D000",
          ]
        ) {
          const e = toStorageError(driverError(code), "s", "testing");
          equal(e.name, "StorageError", `${code} stays a plain StorageError`);
          equal(isTransientStorageError(e), true, `${code} may pass`);
        }
      },
    },
    {
      name: "submit() on a schema missing a table fails at once with a StorageSetupError instead of retrying",
      async run(ctx) {
        const s = await fresh(ctx);
        const c = await ctx.db.client();
        await c.query(`DROP TABLE "${s.schema}".task_deps`);
        const executor = new Executor({ storage: s, registry: registryOf(agent("work", (n) => n)) });
        let storageErrors = 0;
        executor.on("storage:error", () => storageErrors++);
        await rejects(
          () =>
            executor.submit({
              name: "no deps table",
              tasks: [{ key: "a", agent: "work", input: 1 }, { key: "b", agent: "work", input: 2, dependsOn: ["a"] }],
            }),
          StorageSetupError,
          "task_deps",
        );
        equal(storageErrors, 0, "no retry was attempted");
      },
    },
    {
      name: "a role without privileges on the schema, and one that may not log in, are refused at open with " +
        "StorageSetupError",
      ...realServerOnly(db),
      async run(ctx) {
        const s = await fresh(ctx);
        const admin = await ctx.db.client();
        const role = uniqueSchema("role");
        await admin.query(`CREATE ROLE ${role} LOGIN`);
        ctx.after.push(async () => {
          await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1::text", [role]);
          await admin.query(`DROP ROLE IF EXISTS ${role}`);
        });
        const { sql } = await ownPool(ctx, { user: role, connect_timeout: 5 });
        for (const migrate of [true, false]) {
          const e = await rejects<StorageSetupError>(
            () => openPostgresStorage({ client: fromPostgresJs(sql), schema: s.schema, migrate }),
            StorageSetupError,
            "42501",
          );
          equal(isTransientStorageError(e), false);
        }
        await admin.query(`ALTER ROLE ${role} NOLOGIN`);
        await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1::text", [role]);
        const { sql: locked } = await ownPool(ctx, { user: role, connect_timeout: 5 });
        await rejects(
          () => openPostgresStorage({ client: fromPostgresJs(locked), schema: s.schema, migrate: false }),
          StorageSetupError,
          "28000",
        );
      },
    },
    {
      name: "a schema of version 1 is migrated at open, keeps its jobs, and prunes and claims by agent on the " +
        "indexes the migrations add",
      async run(ctx) {
        const s = await fresh(ctx);
        const early = buildJob([{ key: "a" }]);
        const late = buildJob([{ key: "a" }]);
        const live = buildJob([{ key: "a" }]);
        for (const b of [early, late, live]) await s.createJob(b.job, b.tasks);
        await s.commit(
          [{ type: "updateJob", id: early.job.id, expect: { version: 1 }, set: { status: "cancelled" } }],
          500,
        );
        await s.commit(
          [{ type: "updateJob", id: late.job.id, expect: { version: 1 }, set: { status: "cancelled" } }],
          2000,
        );
        // Version 1: the same schema without what later migrations add.
        const c = await ctx.db.client();
        await c.query(`DROP INDEX "${s.schema}".jobs_ended`);
        await c.query(`DROP INDEX "${s.schema}".tasks_ready_agent`);
        await c.query(`DROP STATISTICS IF EXISTS "${s.schema}".jobs_ended_at`);
        await c.query(`DELETE FROM "${s.schema}".migrations WHERE version > 1`);
        const again = await openPostgresStorage({ client: c, schema: s.schema });
        ctx.storages.push(again);
        equal(again.migratedFrom, 1);
        const versions = await c.query(`SELECT version FROM "${s.schema}".migrations ORDER BY version`);
        deepEqual(versions.map((r) => Number(r[0])), Array.from({ length: SCHEMA_VERSION }, (_, i) => i + 1));
        const index = await c.query(
          "SELECT 1 FROM pg_indexes WHERE schemaname = $1::text AND indexname = 'jobs_ended'",
          [
            s.schema,
          ],
        );
        equal(index.length, 1, "the migration created jobs_ended");
        const byAgent = await c.query(
          "SELECT 1 FROM pg_indexes WHERE schemaname = $1::text AND indexname = 'tasks_ready_agent'",
          [s.schema],
        );
        equal(byAgent.length, 1, "and tasks_ready_agent");
        deepEqual(
          (await again.claimReady({ limit: 5, now: 10_000, owner: "o", leaseMs: 1000, agents: ["noop"] })).map((t) =>
            t.id
          ),
          [live.id("a")],
        );
        const stats = await c.query(
          "SELECT 1 FROM pg_statistic_ext WHERE stxname = 'jobs_ended_at' AND " +
            "stxnamespace = $1::text::regnamespace",
          [`"${s.schema}"`],
        );
        equal(stats.length, 1, "and the statistics of its expression");
        equal((await again.listJobs()).length, 3, "every job was kept");
        equal(await again.prune({ finishedBefore: 1000 }), 1);
        equal(await again.getJob(early.job.id), undefined);
        equal(await again.prune({ keepLast: 0 }), 1);
        deepEqual((await again.listJobs()).map((j) => j.id), [live.job.id]);
      },
    },
    {
      name:
        "prune() reads the ended jobs it deletes or skips on the index jobs_ended, without reading or sorting them all",
      async run(ctx) {
        const s = await fresh(ctx);
        const c = await ctx.db.client();
        // 5000 ended jobs, stored in the order they ended, whose ids run unlike their end
        // times (some end times left null), and 500 running ones.
        await c.query(
          `INSERT INTO "${s.schema}".jobs SELECT 'job-' || lpad(((i * 7919) % 5000)::text, 6, '0'), 'j', ` +
            "(ARRAY['completed', 'failed', 'cancelled'])[1 + i % 3], '{}', 1, 0, 0, 2, i, i, " +
            "CASE WHEN i % 97 = 0 THEN NULL ELSE i END FROM generate_series(1, 5000) i",
        );
        await c.query(
          `INSERT INTO "${s.schema}".jobs SELECT 'live-' || lpad(i::text, 6, '0'), 'j', 'running', '{}', 1, 1, 0, 1, ` +
            "i, i, NULL FROM generate_series(1, 500) i",
        );
        await c.query(`ANALYZE "${s.schema}".jobs`);
        const doomed = new Statements(s.schema).doomedJobs;
        for (const params of [[null, 4950], [50, null], [50, 4950]]) {
          const plan = await c.query(`EXPLAIN ${doomed}`, params);
          const text = plan.map((r) => String(r[0])).join("\n");
          ok(text.includes("jobs_ended"), `${JSON.stringify(params)}: the ended jobs are read on jobs_ended:\n${text}`);
          ok(!/Seq Scan|WindowAgg/.test(text), `${JSON.stringify(params)}: no job is read beyond the index:\n${text}`);
        }
        // Newest first by end time (a null end time counts as 0), then by id: the same jobs as
        // the contract's order picks.
        const rows = await c.query(
          `SELECT id FROM "${s.schema}".jobs WHERE status <> 'running' ` +
            "ORDER BY coalesce(finished_at, 0) DESC, id DESC OFFSET 4950",
        );
        const expected = rows.map((r) => String(r[0])).sort();
        const found = await c.transaction((tx) => tx.query(doomed, [null, 4950]));
        deepEqual(found.map((r) => String(r[0])), expected);
        equal(await s.prune({ keepLast: 4950 }), 50);
        // Left: one job whose end time is null (it counts as 0) and those that ended at 1 to 49.
        equal(await s.prune({ finishedBefore: 50 }), 50);
        equal((await s.listJobs({ status: "running" })).length, 500);
      },
    },
    {
      name: "bad options are TypeErrors naming the option",
      async run(ctx) {
        const client = await ctx.db.client();
        await rejects(() => openPostgresStorage({ client, schema: "Bad-Name" }), TypeError, '"schema"');
        await rejects(() => openPostgresStorage({ client, schema: "x".repeat(49) }), TypeError, '"schema"');
        await rejects(() => openPostgresStorage({ client: {} as never }), TypeError, '"client"');
        await rejects(() => openPostgresStorage({ client, channel: "no way" }), TypeError, '"channel"');
      },
    },
    {
      name: "ids that need quoting in array literals survive every statement",
      async run(ctx) {
        const s = await fresh(ctx);
        const b = buildJob([{ key: "a" }, { key: "b" }, { key: "c", deps: ["a", "b"] }]);
        const weird = ['a"q', "b\\s, {x}", "c NULL 日本"];
        const ids = new Map(b.tasks.map((t, i) => [t.id, `${weird[i]}-${t.id}`]));
        for (const t of b.tasks) {
          t.id = ids.get(t.id)!;
          t.dependencies = t.dependencies.map((d) => ids.get(d)!);
        }
        await s.createJob(b.job, b.tasks);
        const [a, bb, c] = b.tasks.map((t) => t.id);
        deepEqual((await s.getTasks([c!, a!, bb!])).map((t) => t.key), ["c", "a", "b"]);
        const claimed = await s.claimReady({ limit: 5, now: 1, owner: "o", leaseMs: 100 });
        deepEqual(claimed.map((t) => t.key).sort(), ["a", "b"]);
        deepEqual(await s.renewLeases({ ids: [a!, bb!], owner: "o", now: 2, leaseMs: 100 }), [a!, bb!]);
        const r = await s.commit(claimed.map((t) => ({
          type: "updateTask" as const,
          id: t.id,
          expect: { version: t.version },
          set: { status: "completed" as const, output: t.key },
        })));
        equal(r.readied, 1);
        equal((await s.getTask(c!))!.status, "ready");
        equal((await s.getTask(c!))!.remainingDeps, 0);
      },
    },
    {
      name: "claimReady() is one statement served by the partial index on ready tasks",
      async run(ctx) {
        const s = await fresh(ctx);
        const b = buildJob(Array.from({ length: 3000 }, (_, i) => ({ key: `t${i}`, priority: i % 3 })));
        await s.createJob(b.job, b.tasks);
        const claimed = await s.claimReady({ limit: 2000, now: 1, owner: "o", leaseMs: 100_000 });
        equal(claimed.length, 2000);
        // Claim order: priority, then runAt, then id.
        ok(claimed.every((t, i) => i === 0 || claimed[i - 1]!.priority <= t.priority));
        const c = await ctx.db.client();
        await c.query(`ANALYZE "${s.schema}".tasks`);
        const plan = await c.query(`EXPLAIN ${new Statements(s.schema).claim}`, ["o", 1, 100, 10, 2]);
        const text = plan.map((r) => String(r[0])).join("\n");
        ok(text.includes("tasks_ready"), `the claim uses tasks_ready:\n${text}`);
        ok(text.includes("LockRows"), `the claim locks rows:\n${text}`);
      },
    },
    {
      name: "claimReady() takes at most limit tasks whatever plan the server picks (stale statistics)",
      async run(ctx) {
        // Statistics taken with one task make the planner expect one row; as `id IN
        // (subquery)` the claim then ran its locking subquery again per row and a claim of
        // 1 took all 16 ready tasks.
        const s = await fresh(ctx);
        const first = buildJob([{ key: "a" }]);
        await s.createJob(first.job, first.tasks);
        const c = await ctx.db.client();
        await c.query(`ANALYZE "${s.schema}".tasks`);
        const more = buildJob(Array.from({ length: 15 }, (_, i) => ({ key: `b${i}`, priority: 1 })));
        await s.createJob(more.job, more.tasks);
        const one = await s.claimReady({ limit: 1, now: 1, owner: "o", leaseMs: 100_000 });
        deepEqual(one.map((t) => t.key), ["a"]);
        equal((await s.listTasks({ status: "running" })).length, 1, "one task running in the database");
        equal((await s.claimReady({ limit: 5, now: 1, owner: "o", leaseMs: 100_000 })).length, 5);
        equal((await s.listTasks({ status: "running" })).length, 6);
      },
    },
    {
      name: "another storage on the same schema is woken through LISTEN/NOTIFY",
      async run(ctx) {
        const a = await fresh(ctx);
        const other = ctx.db.otherClient ? await ctx.db.otherClient() : await ctx.db.client();
        const b = await openPostgresStorage({ client: other, schema: a.schema });
        ctx.storages.push(b);
        let woken = 0;
        b.watch(() => woken++);
        let own = 0;
        a.watch(() => own++);
        await sleep(200); // LISTEN is issued when the first listener is added
        const job = buildJob([{ key: "x" }]);
        await a.createJob(job.job, job.tasks);
        await until(() => woken > 0, "a notification in the other storage");
        await sleep(100);
        equal(own, 1, "the committing storage wakes its own listeners once (its NOTIFY echo is ignored)");
        // A claim makes nothing ready: no notification.
        const before = woken;
        const [x] = await a.claimReady({ limit: 1, now: 1, owner: "o", leaseMs: 100 });
        await sleep(150);
        equal(woken, before);
        // The notification names the jobs whose status changed (the job this completion ends).
        const changes: (StorageChange | undefined)[] = [];
        b.watch((change) => changes.push(change));
        await a.commit([{
          type: "updateTask",
          id: x!.id,
          expect: { version: x!.version },
          set: { status: "completed" },
        }]);
        await until(() => changes.length > 0, "the completion's notification");
        deepEqual(changes, [{ jobs: [job.job.id] }]);
      },
    },
    {
      name: "a commit ending jobs with non-ASCII ids whose list is too long in bytes notifies without the list",
      async run(ctx) {
        const a = await fresh(ctx);
        const other = ctx.db.otherClient ? await ctx.db.otherClient() : await ctx.db.client();
        const b = await openPostgresStorage({ client: other, schema: a.schema });
        ctx.storages.push(b);
        const changes: (StorageChange | undefined)[] = [];
        b.watch((change) => changes.push(change));
        await sleep(200); // LISTEN is issued when the first listener is added
        // 100 ids of 45 three-byte characters: ~4,900 characters of job list, ~14,000 bytes
        // (a notification holds 8,000).
        const ids: string[] = [];
        for (let i = 0; i < 100; i++) {
          const built = buildJob([{ key: "a" }]);
          const id = `${"ジョブ".repeat(15)}${String(i).padStart(3, "0")}`;
          ids.push(id);
          await a.createJob({ ...built.job, id }, built.tasks.map((t) => ({ ...t, jobId: id })));
        }
        await until(() => changes.length === 100, "the creations' notifications");
        changes.length = 0;
        const r = await a.commit(
          ids.map((id) => ({
            type: "updateJob" as const,
            id,
            expect: { version: 1 },
            set: { status: "cancelled" as const },
          })),
        );
        equal(r.jobs.length, 100, "the commit ended every job");
        await until(() => changes.length > 0, "the commit's notification");
        deepEqual(changes, [undefined], "anything may have changed");
      },
    },
    {
      name:
        "a storage that listens again after its LISTEN connection was lost tells its watchers anything may have changed",
      ...realServerOnly(db),
      async run(ctx) {
        const schema = (await fresh(ctx)).schema;
        const { sql, app } = await ownPool(ctx);
        const storage = await openPostgresStorage({ client: fromPostgresJs(sql), schema });
        ctx.storages.push(storage);
        const changes: (StorageChange | undefined)[] = [];
        storage.watch((change) => changes.push(change));
        const admin = await ctx.db.client();
        const listening = async (): Promise<boolean> =>
          (await admin.query(
            "SELECT count(*)::int4 FROM pg_stat_activity WHERE application_name = $1::text AND query ILIKE 'listen%'",
            [app],
          ))[0]![0] === 1;
        await until(listening, "the LISTEN connection");
        await sleep(100);
        deepEqual(changes, [], "listening the first time tells nothing");
        await admin.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1::text AND pid <> pg_backend_pid()",
          [app],
        );
        await until(() => changes.length > 0, "a notice after listening again");
        deepEqual(changes, [undefined]);
      },
    },
    {
      name: "a LISTEN stopped after its connection was lost and listened again stops: no more notices reach it",
      ...realServerOnly(db),
      async run(ctx) {
        const schema = (await fresh(ctx)).schema;
        const { sql, app } = await ownPool(ctx);
        const client = fromPostgresJs(sql);
        const channel = `${schema}_ready`;
        const heard: string[] = [];
        let listens = 0;
        const stop = await client.listen!(channel, (p) => heard.push(p), () => listens++);
        const admin = await ctx.db.client();
        await admin.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1::text AND query ILIKE 'listen%'",
          [app],
        );
        await until(() => listens === 2, "listening again after the lost connection");
        await admin.query("SELECT pg_notify($1::text, 'before')", [channel]);
        await until(() => heard.length === 1, "the notice sent while listening");
        await stop();
        // A second listener on the pool's one LISTEN connection: what reaches it has been
        // dispatched to every callback postgres.js keeps for the channel.
        const witness: string[] = [];
        let witnessListens = 0;
        const stopWitness = await client.listen!(channel, (p) => witness.push(p), () => witnessListens++);
        await admin.query("SELECT pg_notify($1::text, 'after')", [channel]);
        await until(() => witness.includes("after"), "the witness heard the notice sent after stop()");
        // Nor a wake-up for listening again after the next lost connection.
        const listened = witnessListens;
        await admin.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1::text AND query ILIKE 'listen%'",
          [app],
        );
        await until(() => witnessListens > listened, "the witness listening again");
        await stopWitness();
        deepEqual(heard, ["before"], "no notice after stop()");
        equal(listens, 2, "no onListen after stop()");
      },
    },
    {
      name:
        "a storage whose first LISTEN was refused tells its watchers, once it listens, that notices may have been missed",
      async run(ctx) {
        const schema = (await fresh(ctx)).schema;
        const base = await ctx.db.client();
        let refuse = true;
        // As postgres.js does: the callbacks of a refused LISTEN are kept, and subscribed
        // with the next one that succeeds.
        const kept: [(payload: string) => void, (() => void) | undefined][] = [];
        const flaky: SqlClient = {
          ...base,
          listen: async (channel, onNotify, onListen) => {
            kept.push([onNotify, onListen]);
            if (refuse) throw new Error("connection refused");
            const stops = await Promise.all(kept.splice(0).map(([n, l]) => base.listen!(channel, n, l)));
            return async () => {
              for (const stop of stops) await stop();
            };
          },
        };
        const here = await openPostgresStorage({ client: flaky, schema });
        ctx.storages.push(here);
        const heard: (StorageChange | undefined)[] = [];
        here.watch((change) => heard.push(change));
        await sleep(50);
        deepEqual(heard, [], "the refused LISTEN tells nothing by itself");
        // Calls during the outage try to listen again, and are refused too.
        for (let i = 0; i < 3; i++) await here.claimReady({ limit: 1, now: 1, owner: "o", leaseMs: 100 });
        refuse = false;
        // A call listens again; notices sent before it are unknown.
        await here.claimReady({ limit: 1, now: 1, owner: "o", leaseMs: 100 });
        await until(() => heard.length > 0, "a notice once listening");
        deepEqual(heard, [undefined]);
        // One commit elsewhere wakes the watcher once, not once per refused attempt.
        const other = await openPostgresStorage({ client: await ctx.db.client(), schema, listen: false });
        ctx.storages.push(other);
        const b = buildJob([{ key: "a" }]);
        await other.createJob(b.job, b.tasks);
        await until(() => heard.length > 1, "the commit's notice");
        await sleep(200);
        equal(heard.length, 2, `${heard.length - 1} wake-ups for one commit`);
      },
    },
    {
      name: "an executor whose LISTEN takes effect late still runs work another process submitted meanwhile, " +
        "without waiting out its poll interval",
      async run(ctx) {
        const schema = (await fresh(ctx)).schema;
        const base = await ctx.db.client();
        // A LISTEN that takes effect late (postgres.js opens a connection of its own for it:
        // TCP, TLS, authentication), while the pool's connections answer claims at once.
        let listenNow!: () => void;
        const late = new Promise<void>((r) => (listenNow = r));
        const slow: SqlClient = {
          ...base,
          listen: async (channel, onNotify, onListen) => {
            await late;
            return await base.listen!(channel, onNotify, onListen);
          },
        };
        const here = await openPostgresStorage({ client: slow, schema });
        ctx.storages.push(here);
        const ran: string[] = [];
        const executor = new Executor({
          storage: here,
          registry: registryOf(agent("work", (n) => void ran.push(String(n)))),
          pollIntervalMs: 60_000,
        });
        executor.start();
        await sleep(200); // started: its first claims found nothing
        // Another process submits work before this one's LISTEN took effect.
        const other = await openPostgresStorage({ client: await ctx.db.client(), schema, listen: false });
        ctx.storages.push(other);
        const b = buildJob([{ key: "a", agent: "work", input: 1 }]);
        await other.createJob(b.job, b.tasks);
        listenNow();
        const t0 = Date.now();
        while (ran.length === 0 && Date.now() - t0 < 5_000) await sleep(20);
        await executor.shutdown();
        deepEqual(ran, ["1"], "the task ran within 5 s (the poll interval is 60 s)");
      },
    },
    {
      name: "close() resolves when stopping the LISTEN fails, while a call is still in flight",
      async run(ctx) {
        const schema = (await fresh(ctx)).schema;
        const base = await ctx.db.client();
        let slow: (() => void) | null = null;
        const client: SqlClient = {
          ...base,
          // A hand-written client whose stop throws at once (not a rejected promise).
          listen: async (channel, onNotify, onListen) => {
            await base.listen!(channel, onNotify, onListen);
            return () => {
              throw new Error("stop failed");
            };
          },
          query: async (text, params) => {
            if (slow === null && /FROM\s/i.test(text)) await new Promise<void>((r) => (slow = r));
            return await base.query(text, params);
          },
        };
        const storage = await openPostgresStorage({ client, schema });
        storage.watch(() => {});
        await sleep(50); // LISTEN is issued when the first listener is added
        const reading = storage.listJobs();
        await until(() => slow !== null, "a call in flight");
        const closing = storage.close();
        await sleep(20);
        (slow as unknown as () => void)();
        deepEqual(await reading, []);
        await closing;
      },
    },
    {
      name: "the executor survives its connections being terminated mid-run and completes every task once",
      ...realServerOnly(db),
      async run(ctx) {
        const schema = (await fresh(ctx)).schema;
        const { sql, app } = await ownPool(ctx);
        const storage = await openPostgresStorage({ client: fromPostgresJs(sql), schema });
        ctx.storages.push(storage);
        const admin = await ctx.db.client();
        const completed = new Map<string, number>();
        const executor = new Executor({
          storage,
          registry: registryOf(agent("work", async (n) => {
            await sleep(2 + ((n as number) % 5));
            return (n as number) * 2;
          })),
          maxWorkers: 8,
          leaseMs: 10_000,
          pollIntervalMs: 200,
        });
        executor.on("task:completed", ({ task }) => completed.set(task.id, (completed.get(task.id) ?? 0) + 1));
        let storageErrors = 0;
        executor.on("storage:error", () => storageErrors++);
        executor.start();
        const n = 400;
        const job = await executor.submit({
          name: "drops",
          tasks: Array.from({ length: n }, (_, i) => ({ key: `t${i}`, agent: "work", input: i })),
        });
        let terminated = 0;
        for (const at of [60, 160, 260]) {
          await until(() => completed.size >= at || executor.stats().completed >= at, `${at} completions`);
          const rows = await admin.query(
            "SELECT count(*)::int4 FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity " +
              "WHERE application_name = $1::text AND pid <> pg_backend_pid()) t",
            [app],
          );
          terminated += Number(rows[0]![0]);
        }
        const out = await waitThrough(job);
        await executor.shutdown();
        ok(terminated >= 3, `connections were terminated (${terminated})`);
        ok(storageErrors >= 1, "the executor met the lost connections");
        equal(Object.keys(out).length, n);
        for (let i = 0; i < n; i++) equal(out[`t${i}`], i * 2);
        const tasks = await storage.listTasks({ jobId: job.id });
        ok(tasks.every((t) => t.status === "completed"));
        ok([...completed.values()].every((c) => c === 1), "no task reported completed twice");
      },
    },
    {
      name: "a statement that fails after sending rows leaves the next statement on its connection its own rows only",
      ...realServerOnly(db),
      async run(ctx) {
        const s = await fresh(ctx);
        const b = buildJob([{ key: "a" }]);
        await s.createJob(b.job, b.tasks);
        // One connection, so that every statement follows the failed one on it.
        const { sql } = await ownPool(ctx, { max: 1 });
        const client = fromPostgresJs(sql);
        const storage = await openPostgresStorage({ client, schema: s.schema, listen: false });
        ctx.storages.push(storage);
        for (let round = 0; round < 3; round++) {
          // Three rows reach the client before the fourth fails (division by zero).
          const failed = await client.query("SELECT g, 1 / (4 - g) FROM generate_series(1, 10) g").then(
            () => undefined,
            (e) => e,
          );
          equal(errorCode(failed), "22012", "the statement failed on a row");
          equal((await storage.getJob(b.job.id))?.id, b.job.id, `round ${round}: the job is read back`);
        }
        deepEqual(await client.query("SELECT g FROM generate_series(1, 3) g", []), [[1], [2], [3]]);
      },
    },
    {
      name: "a read after its connection was terminated while rows streamed answers the record, not nothing",
      ...realServerOnly(db),
      async run(ctx) {
        const s = await fresh(ctx);
        const b = buildJob([{ key: "a" }]);
        await s.createJob(b.job, b.tasks);
        const { sql, app } = await ownPool(ctx, { max: 1 });
        const client = fromPostgresJs(sql);
        const storage = await openPostgresStorage({ client, schema: s.schema, listen: false });
        ctx.storages.push(storage);
        const admin = await ctx.db.client();
        // Rows of 10 kB, each sent as made: five at once, then one every 10 ms.
        const streaming = client.query(
          "SELECT g, repeat('x', 10000), pg_sleep(CASE WHEN g > 5 THEN 0.01 ELSE 0 END) " +
            "FROM generate_series(1, 1000) g",
        ).then(() => undefined, (e) => e);
        // Sleeping past the first rows: they were sent before the termination below.
        await until(async () => {
          const rows = await admin.query(
            "SELECT count(*)::int4 FROM pg_stat_activity WHERE application_name = $1::text AND wait_event = 'PgSleep'",
            [app],
          );
          return Number(rows[0]![0]) > 0;
        }, "the stream to pass its first rows");
        await admin.query(
          "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1::text",
          [app],
        );
        ok((await streaming) !== undefined, "the streaming statement failed");
        // The first statement on the new connection may still be told of the termination.
        for (let i = 0; i < 3; i++) {
          const job = await storage.getJob(b.job.id).catch((e) => {
            if (!(e instanceof StorageError)) throw e;
            return e;
          });
          if (job instanceof StorageError) continue;
          equal(job?.id, b.job.id, `read ${i}: the job is read back`);
        }
        equal((await storage.listTasks({ jobId: b.job.id })).length, 1);
      },
    },
    {
      name: "a task whose lease expired while its executor was cut off is run again elsewhere and completed once",
      ...realServerOnly(db),
      async run(ctx) {
        const schema = (await fresh(ctx)).schema;
        const admin = await ctx.db.client();
        const role = uniqueSchema("role");
        await admin.query(`CREATE ROLE ${role} LOGIN SUPERUSER`);
        ctx.after.push(async () => {
          await admin.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1::text",
            [role],
          );
          await admin.query(`DROP ROLE IF EXISTS ${role}`);
        });
        const cut = await ownPool(ctx, { user: role, connect_timeout: 2 });
        const fine = await ownPool(ctx);
        const a = await openPostgresStorage({ client: fromPostgresJs(cut.sql), schema });
        const b = await openPostgresStorage({ client: fromPostgresJs(fine.sql), schema });
        ctx.storages.push(a, b);
        const completions = new Map<string, string[]>();
        const runs = new Map<string, number>();
        const work = (who: string) =>
          agent("work", async (n, c) => {
            runs.set(c.task.key, (runs.get(c.task.key) ?? 0) + 1);
            await sleep(who === "a" ? 150 : 5);
            return n;
          });
        const options = { maxWorkers: 4, leaseMs: 600, heartbeatMs: 150, recoveryIntervalMs: 200, pollIntervalMs: 100 };
        const ea = new Executor({ storage: a, registry: registryOf(work("a")), id: "cut", ...options });
        const eb = new Executor({ storage: b, registry: registryOf(work("b")), id: "fine", ...options });
        for (const [name, e] of [["a", ea], ["b", eb]] as const) {
          e.on("task:completed", ({ task }) => completions.set(task.key, [...(completions.get(task.key) ?? []), name]));
        }
        ea.start();
        const n = 60;
        const job = await ea.submit({
          name: "cut",
          tasks: Array.from({ length: n }, (_, i) => ({ key: `t${i}`, agent: "work", input: i })),
        });
        await until(() => ea.stats().running >= 4, "executor a running tasks");
        // Cut executor a off for longer than a lease: no new connection, existing ones gone.
        await admin.query(`ALTER ROLE ${role} NOLOGIN`);
        await admin.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1::text", [role]);
        eb.start();
        await sleep(1500);
        await admin.query(`ALTER ROLE ${role} LOGIN`);
        const out = await waitThrough(await eb.job(job.id));
        await Promise.all([ea.shutdown(), eb.shutdown()]);
        equal(Object.keys(out).length, n);
        for (let i = 0; i < n; i++) equal(out[`t${i}`], i);
        ok(eb.stats().recovered >= 1, "executor b recovered a's expired leases");
        ok([...runs.values()].some((r) => r > 1), "some task ran again after its lease was lost");
        for (const [key, who] of completions) ok(who.length === 1, `${key} reported completed once, got ${who}`);
        const tasks: Task[] = await b.listTasks({ jobId: job.id });
        ok(tasks.every((t) => t.status === "completed" && t.leaseOwner === null));
      },
    },
    {
      name: "a statement that fails for a reason of the server is a StorageError with the cause",
      async run(ctx) {
        const s = await fresh(ctx);
        const c = await ctx.db.client();
        await c.query(`DROP TABLE "${s.schema}".task_deps`);
        const b = buildJob([{ key: "a" }, { key: "b", deps: ["a"] }]);
        const e = await rejects<StorageError>(() => s.createJob(b.job, b.tasks), StorageError, "task_deps");
        ok(e.cause !== undefined);
        equal(await s.getJob(b.job.id), undefined, "nothing of the failed transaction was written");
      },
    },
    {
      name: "a value the columns cannot hold is a RangeError (sending it again fails again), and nothing is written",
      async run(ctx) {
        const s = await fresh(ctx);
        // (A maxAttempts past 2^31 - 1 is refused on every adapter before it reaches a column.)
        for (const draft of [{ key: "a", attempts: 2 ** 31 }, { key: "nul\u0000key" }]) {
          const b = buildJob([{ key: draft.key }]);
          if (draft.attempts !== undefined) (b.tasks[0] as { attempts: number }).attempts = draft.attempts;
          const e = await rejects<RangeError>(() => s.createJob(b.job, b.tasks), RangeError, "PostgreSQL failed");
          ok(e.cause !== undefined);
          equal(e.message.split("PostgreSQL failed").length, 2, `the message says it once: ${e.message}`);
          equal(await s.getJob(b.job.id), undefined);
        }
        // A claim's limit is no column: past 2^31 it claims like any other (storage suite).
      },
    },
    {
      name: "a failure cascades through dependents inside the completing transaction",
      async run(ctx) {
        const s = await fresh(ctx);
        const b = buildJob([
          { key: "root" },
          { key: "mid", deps: ["root"] },
          { key: "leaf", deps: ["mid"] },
          { key: "side", deps: ["root"], onDependencyFailure: "block" },
        ]);
        await s.createJob(b.job, b.tasks);
        const [root] = await s.claimReady({ limit: 1, now: 1, owner: "o", leaseMs: 100 });
        const err = new NonRetryableError("boom");
        const r = await s.commit([{
          type: "updateTask",
          id: root!.id,
          expect: { version: root!.version },
          set: { status: "failed", error: { name: err.name, message: err.message, retryable: false, at: 1 } },
        }]);
        const byKey = Object.fromEntries(r.tasks.map((t) => [t.key, t.status]));
        deepEqual(byKey, { root: "failed", mid: "cancelled", leaf: "cancelled", side: "blocked" });
        equal((await s.getJob(b.job.id))!.openCount, 1);
      },
    },
    {
      name: "prune() waits for a cache write on the job it deletes and leaves no cache row behind",
      ...realServerOnly(db),
      async run(ctx) {
        const s = await fresh(ctx);
        const b = buildJob([{ key: "a" }]);
        await s.createJob(b.job, b.tasks);
        const [a] = await s.claimReady({ limit: 1, now: 1, owner: "o", leaseMs: 100 });
        await s.commit([{
          type: "updateTask",
          id: a!.id,
          expect: { version: a!.version },
          set: { status: "completed" },
        }]);
        equal((await s.getJob(b.job.id))!.status, "completed");
        // A commit with a cache write locks the job, writes the row, and has not committed yet
        // (the order the rules take: read the job for update, then write).
        const { sql } = await ownPool(ctx);
        let finish!: () => void;
        const held = new Promise<void>((r) => (finish = r));
        let inserted!: (pid: number) => void;
        const writerPid = new Promise<number>((r) => (inserted = r));
        const writer = sql.begin(async (tx: PostgresJs) => {
          await tx.unsafe(`SELECT id FROM "${s.schema}".jobs WHERE id = $1 FOR UPDATE`, [b.job.id]);
          await tx.unsafe(`INSERT INTO "${s.schema}".cache (job_id, key, value) VALUES ($1, 'k', '1')`, [b.job.id]);
          const [row] = await tx.unsafe("SELECT pg_backend_pid() AS pid");
          inserted(Number(row.pid));
          await held;
        });
        const pid = await writerPid;
        const pruned = s.prune({ finishedBefore: Number.MAX_SAFE_INTEGER });
        const admin = await ctx.db.client();
        // The prune waits on the writer's lock (the old prune deleted the cache first and waited
        // only to delete the job, so the writer's row outlived its job).
        await until(async () =>
          Number(
            (await admin.query(
              "SELECT count(*) FROM pg_stat_activity WHERE $1::int4 = ANY(pg_blocking_pids(pid))",
              [pid],
            ))[0]![0],
          ) > 0, "the prune waiting on the job's lock");
        finish();
        await writer;
        equal(await pruned, 1);
        const orphans = await admin.query(`SELECT count(*) FROM "${s.schema}".cache`);
        equal(Number(orphans[0]![0]), 0);
        equal(await s.getJob(b.job.id), undefined);
      },
    },
    {
      name: "a claim limited to several agents locks only the tasks it picks: a concurrent claim gets the others",
      ...realServerOnly(db),
      async run(ctx) {
        const s = await fresh(ctx);
        const b = buildJob([
          { key: "a0", agent: "a", priority: 0 },
          { key: "b1", agent: "b", priority: 1 },
          { key: "b2", agent: "b", priority: 1 },
        ]);
        await s.createJob(b.job, b.tasks);
        // Another claimer's claim of one task of "a" or "b", held open after its statement
        // (as a slow commit would be): it picks a0 and must hold no lock on b's tasks.
        const other = ctx.db.otherClient ? await ctx.db.otherClient() : await ctx.db.client();
        const sql = new Statements(s.schema);
        let finish!: () => void;
        const held = new Promise<void>((r) => (finish = r));
        let claimed!: (n: number) => void;
        const first = new Promise<number>((r) => (claimed = r));
        const holder = other.transaction(async (tx) => {
          const rows = await tx.query(sql.claimAgents, ["other", 100, 1100, 1, 0, "{a,b}"]);
          claimed(rows.length);
          await held;
        });
        try {
          equal(await first, 1, "the held claim took one task (a0, first in claim order)");
          const got = await s.claimReady({ limit: 5, now: 100, owner: "o", leaseMs: 1000, agents: ["b"] });
          deepEqual(
            got.map((t) => t.key),
            ["b1", "b2"],
            `b's tasks, which the other claim did not pick: got ${JSON.stringify(got.map((t) => t.key))}`,
          );
        } finally {
          finish();
          await holder;
        }
      },
    },
    {
      name: "a state write expecting the key absent is refused when a blind write of it commits meanwhile",
      ...realServerOnly(db),
      async run(ctx) {
        const s = await fresh(ctx);
        // A second storage on the schema whose commit is held just after its state write
        // (a last-writer-wins write of a key its task did not read), before it commits.
        const base = ctx.db.otherClient ? await ctx.db.otherClient() : await ctx.db.client();
        let finish!: () => void;
        const held = new Promise<void>((r) => (finish = r));
        let written!: () => void;
        const wrote = new Promise<void>((r) => (written = r));
        const gated: SqlClient = {
          query: (q, p) => base.query(q, p),
          transaction: (fn) =>
            base.transaction((tx) =>
              fn({
                query: async (q, p) => {
                  const rows = await tx.query(q, p);
                  if (/^INSERT INTO \S+\.state /.test(q)) {
                    written();
                    await held;
                  }
                  return rows;
                },
              })
            ),
        };
        const blind = await openPostgresStorage({ client: gated, schema: s.schema, migrate: false });
        ctx.storages.push(blind);
        const blindCommit = blind.commit([{ type: "setState", scope: "sc", key: "k", value: "blind" }]);
        await wrote;
        // A read-modify-write that read "k" as absent commits now.
        const rmw = s.commit([{ type: "setState", scope: "sc", key: "k", value: "rmw", expect: { value: undefined } }])
          .then(() => "stored", (e) => (e instanceof KeyConflictError ? "conflict" : String(e)));
        await untilWaitingOnLock(ctx, "the conditional write waiting on a lock");
        finish();
        await blindCommit;
        const outcome = await rmw;
        const stored = await s.getState("sc", "k");
        ok(
          outcome === "conflict" && stored === "blind",
          `the write expecting "k" absent was ${outcome} over a value committed before it: "k" is ${
            JSON.stringify(stored)
          }`,
        );
      },
    },
    {
      name: "two commits expecting the same two state entries, written in opposite orders, do not deadlock",
      ...realServerOnly(db),
      async run(ctx) {
        const s = await fresh(ctx);
        const deadlocks: string[] = [];
        let finish!: () => void;
        const held = new Promise<void>((r) => (finish = r));
        let locked!: () => void;
        const lockedOne = new Promise<void>((r) => (locked = r));
        // `armed.hold`: the next advisory lock statement (of the commit below, not of the
        // migration check at open) waits for `held`.
        const armed = { hold: false };
        const wrap = (base: SqlClient, gate: boolean): SqlClient => ({
          query: (q, p) => base.query(q, p),
          transaction: (fn) =>
            base.transaction((tx) =>
              fn({
                query: async (q, p) => {
                  let rows;
                  try {
                    rows = await tx.query(q, p);
                  } catch (e) {
                    if (errorCode(e) === "40P01") deadlocks.push(q);
                    throw e;
                  }
                  if (gate && armed.hold && q.includes("pg_advisory_xact_lock")) {
                    armed.hold = false;
                    locked();
                    await held;
                  }
                  return rows;
                },
              })
            ),
        });
        const one = await openPostgresStorage({ client: wrap(await ctx.db.client(), true), schema: s.schema });
        const other = ctx.db.otherClient ? await ctx.db.otherClient() : await ctx.db.client();
        const two = await openPostgresStorage({ client: wrap(other, false), schema: s.schema });
        ctx.storages.push(one, two);
        const absent = { value: undefined };
        armed.hold = true;
        const settle = (p: Promise<unknown>) =>
          p.then(() => "stored", (e) => (e instanceof KeyConflictError ? "conflict" : String(e)));
        const first = settle(one.commit([
          { type: "setState", scope: "sc", key: "k1", value: 1, expect: absent },
          { type: "setState", scope: "sc", key: "k2", value: 1, expect: absent },
        ]));
        await lockedOne;
        const second = settle(two.commit([
          { type: "setState", scope: "sc", key: "k2", value: 2, expect: absent },
          { type: "setState", scope: "sc", key: "k1", value: 2, expect: absent },
        ]));
        await untilWaitingOnLock(ctx, "the second commit waiting on a lock");
        finish();
        deepEqual([await first, await second].sort(), ["conflict", "stored"]);
        equal(deadlocks.length, 0, `deadlocks broken by PostgreSQL: ${deadlocks.join(" | ")}`);
      },
    },
  ];
}

/** Register the PostgreSQL cases on `db`. */
export function registerPostgresSuites(registrar: Registrar, db: TestDatabase): void {
  register(registrar, `postgres adapter[${db.label}]`, cases(db), () => {
    const ctx: Ctx = { db, schemas: [], storages: [], after: [] };
    return Promise.resolve({
      ctx,
      teardown: async () => {
        for (const s of ctx.storages) await s.close();
        for (const f of ctx.after.reverse()) await f();
        for (const schema of ctx.schemas) await db.drop(schema);
      },
    });
  });
}
