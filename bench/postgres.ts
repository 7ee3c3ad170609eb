/**
 * PostgreSQL throughput, side by side on one local server: task-core's PostgreSQL
 * adapter (postgres.js) against graphile-worker, each running 20,000 no-op jobs at
 * concurrency 10 and 24. Enqueueing is not timed (task-core: one job of 20,000 tasks in
 * one transaction; graphile-worker: `addJobs` in batches of 1,000); the timed part runs
 * from starting the worker to the last completion. Runs alternate between the two, each
 * on a fresh schema; the table shows the median of the rounds (best in brackets). Prints
 * a table; writes JSON to bench/results/postgres.json.
 *
 *   npm run bench:postgres               (starts a throwaway server, fsync on)
 *   TASK_CORE_PG_URL=postgres://... node scripts/run-ts.mjs bench/postgres.ts [tasks] [rounds]
 */
import process from "node:process";
import { cpus, loadavg } from "node:os";
import postgres from "postgres";
import pg from "pg";
import { Logger, makeWorkerUtils, run as runGraphile, runMigrations } from "graphile-worker";
import { fromPostgresJs, openPostgresStorage } from "../adapters/postgres.ts";
import { Executor } from "../src/executor.ts";
import { AgentRegistry } from "../src/registry.ts";
import { writeResult } from "./report.ts";

const url = process.env.TASK_CORE_PG_URL;
if (!url) {
  console.error("TASK_CORE_PG_URL is not set: run `npm run bench:postgres` (it starts a throwaway server)");
  process.exit(1);
}
const TASKS = Number(process.argv[2] ?? 20_000);
const ROUNDS = Number(process.argv[3] ?? 3);
const CONCURRENCY = [10, 24];
const quiet = new Logger(() => () => {});

const admin = postgres(url, { max: 1, fetch_types: false, onnotice: () => {} });

async function taskCore(concurrency: number, round: number): Promise<number> {
  const schema = `bench_tc_${concurrency}_${round}`;
  await admin.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  const sql = postgres(url!, { max: 10, fetch_types: false, onnotice: () => {} });
  const storage = await openPostgresStorage({ client: fromPostgresJs(sql), schema });
  const registry = new AgentRegistry();
  registry.register({ name: "noop", description: "does nothing", execute: () => null });
  const executor = new Executor({ storage, registry, maxWorkers: concurrency });
  const job = await executor.submit({
    name: "bench",
    tasks: Array.from({ length: TASKS }, (_, i) => ({ key: `t${i}`, agent: "noop", input: i })),
  });
  const t0 = performance.now();
  executor.start();
  await job.wait();
  const ms = performance.now() - t0;
  await executor.shutdown();
  const done = (await storage.getJob(job.id))!;
  if (done.status !== "completed" || done.openCount !== 0) throw new Error(`task-core job ended ${done.status}`);
  await storage.close();
  await sql.end({ timeout: 5 });
  await admin.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  return TASKS / (ms / 1000);
}

/**
 * graphile-worker with its defaults, or `tuned` with the batching its performance guide
 * suggests for many short jobs: a local queue (500 jobs fetched and locked at a time) and
 * completions written in batches.
 */
async function graphileWorker(concurrency: number, round: number, tuned: boolean): Promise<number> {
  const schema = `bench_gw_${tuned ? "t" : "d"}_${concurrency}_${round}`;
  await admin.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  const pool = new pg.Pool({ connectionString: url, max: concurrency + 2 });
  pool.on("error", () => {});
  pool.on("connect", (client) => client.on("error", () => {}));
  const options = { pgPool: pool, schema, logger: quiet };
  await runMigrations(options);
  const utils = await makeWorkerUtils(options);
  for (let i = 0; i < TASKS; i += 1000) {
    const n = Math.min(1000, TASKS - i);
    await utils.addJobs(Array.from({ length: n }, (_, k) => ({ identifier: "noop", payload: { i: i + k } })));
  }
  await utils.release();
  let completed = 0;
  let onDone!: () => void;
  let onFailed!: (e: Error) => void;
  const allDone = new Promise<void>((resolve, reject) => {
    onDone = resolve;
    onFailed = reject;
  });
  const t0 = performance.now();
  const runner = await runGraphile({
    ...options,
    concurrency,
    noHandleSignals: true,
    pollInterval: 1000,
    taskList: { noop: async () => {} },
    ...(tuned ? { preset: { worker: { localQueue: { size: 500 }, completeJobBatchDelay: 0 } } } : {}),
  });
  runner.events.on("job:complete", ({ error }) => {
    // Reject the run (a throw here would land in graphile-worker's emitter and leave it waiting).
    if (error) return onFailed(new Error(`a graphile-worker job failed: ${String(error)}`));
    if (++completed === TASKS) onDone();
  });
  await allDone;
  // `job:complete` fires before the completion is written back: done when the table is
  // empty, as task-core's `wait()` resolves once every result is stored.
  const left = async (): Promise<number> =>
    Number((await admin.unsafe(`SELECT count(*)::int AS n FROM ${schema}._private_jobs`))[0]?.n);
  while (await left() > 0) await new Promise((r) => setTimeout(r, 2));
  const ms = performance.now() - t0;
  await runner.stop();
  await pool.end();
  await admin.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  return TASKS / (ms / 1000);
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
};

const [settings] = await admin.unsafe(
  "SELECT current_setting('server_version') AS version, current_setting('fsync') AS fsync, " +
    "current_setting('synchronous_commit') AS synchronous_commit",
);
console.log(
  `PostgreSQL ${settings!.version} (fsync ${settings!.fsync}, synchronous_commit ${settings!.synchronous_commit}), ` +
    `Node ${process.version}, ${cpus().length} cores, load ${loadavg()[0]!.toFixed(1)}; ` +
    `${TASKS.toLocaleString("en")} no-op jobs, ${ROUNDS} rounds`,
);
type Row = { concurrency: number; taskCore: number[]; graphileWorker: number[]; graphileWorkerTuned: number[] };
const results: Row[] = [];
for (const concurrency of CONCURRENCY) {
  const row: Row = { concurrency, taskCore: [], graphileWorker: [], graphileWorkerTuned: [] };
  const runs: Array<() => Promise<void>> = [
    async () => void row.taskCore.push(await taskCore(concurrency, row.taskCore.length)),
    async () => void row.graphileWorker.push(await graphileWorker(concurrency, row.graphileWorker.length, false)),
    async () =>
      void row.graphileWorkerTuned.push(await graphileWorker(concurrency, row.graphileWorkerTuned.length, true)),
  ];
  for (let round = 0; round < ROUNDS; round++) {
    // Rotate which one goes first, so drift in the machine's load spreads over all of them.
    for (let i = 0; i < runs.length; i++) await runs[(round + i) % runs.length]!();
  }
  results.push(row);
}

const f = (n: number): string => Math.round(n).toLocaleString("en");
const cell = (xs: number[]): string => `${f(median(xs))} (${f(Math.max(...xs))})`;
const table = [
  ["concurrency", "task-core", "graphile-worker", "graphile-worker batched", "vs default", "vs batched"],
  ...results.map((r) => {
    const tc = median(r.taskCore);
    return [
      String(r.concurrency),
      cell(r.taskCore),
      cell(r.graphileWorker),
      cell(r.graphileWorkerTuned),
      `${(tc / median(r.graphileWorker)).toFixed(2)}x`,
      `${(tc / median(r.graphileWorkerTuned)).toFixed(2)}x`,
    ];
  }),
];
const widths = table[0]!.map((_, i) => Math.max(...table.map((row) => row[i]!.length)));
console.log("\njobs/s, median of the rounds (best):");
for (const row of table) console.log(row.map((c, i) => c.padStart(widths[i]!)).join(" | "));
await writeResult("postgres", { tasks: TASKS, rounds: ROUNDS, server: settings, results });
await admin.end({ timeout: 5 });
