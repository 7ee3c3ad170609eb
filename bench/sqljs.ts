/**
 * Durable throughput of the sql.js storage with the file persister: 2,000 tasks claimed
 * and completed in batches (one `claimReady` and one `commit` per batch, each resolving
 * only once durable) when the database already holds 1k, 10k and 100k completed tasks.
 * Compared in the same run with a baseline that exports the whole database and writes it
 * atomically on every commit (the same adapter, compacting on every flush, with a
 * persister that writes only that file; it costs the same per commit throughout, so it
 * is timed over the first 500 tasks). Prints a table; writes JSON.
 *
 *   npm run bench:sqljs                 (batches of 50)
 *   npm run bench:sqljs -- 20           (batches of 20)
 */
import { copyFile, mkdtemp, open, readFile, rename, rm, stat } from "node:fs/promises";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import process from "node:process";
import { execFileSync } from "node:child_process";
import { openSqlJsFileStorage } from "../adapters/sqljs-file.ts";
import { openSqlJsStorage, type SqlJsPersister, type SqlJsStorage } from "../adapters/sqljs.ts";
import { newId } from "../src/ids.ts";
import { AgentRegistry } from "../src/registry.ts";
import { buildJob, type BuiltJob } from "../src/scheduler.ts";
import { writeResult } from "./report.ts";

const BATCH = Number(process.argv[2] ?? 50);
const TASKS = 2000;
const SIZES = [1_000, 10_000, 100_000];
const ROUNDS = 5;

/**
 * The baseline: `db.export()` and an atomic write of the whole file (temp, fsync, rename,
 * directory fsync) on every flush, nothing else. The storage runs it by compacting on
 * every flush; this persister writes only the snapshot.
 */
function exportEveryCommit(path: string): SqlJsPersister {
  return {
    name: "export-every-commit",
    load: async () => ({ snapshot: new Uint8Array(await readFile(path)), journal: null }),
    append: () => Promise.reject(new Error("the baseline never appends")),
    async replace(snapshot) {
      const fh = await open(`${path}.tmp`, "w");
      await fh.write(snapshot);
      await fh.sync();
      await fh.close();
      await rename(`${path}.tmp`, path);
      const d = await open(dirname(path), "r");
      await d.sync();
      await d.close();
    },
    close: () => Promise.resolve(),
  };
}

const agents = new AgentRegistry().register({ name: "work", description: "no-op", execute: () => null });

/** A job of `n` independent tasks with a small realistic input, built by the executor's own `buildJob`. */
function job(n: number, name: string): BuiltJob {
  const tasks = Array.from({ length: n }, (_, i) => ({
    key: `t${i}`,
    agent: "work",
    input: { i, url: `https://example.com/items/${i}`, note: "a small realistic input" },
  }));
  return buildJob({ name, tasks }, agents, { maxAttempts: 3 }, Date.now());
}

/** Claim and complete ready tasks in batches (at most `max`); returns the tasks done and the durable calls made. */
async function drain(s: SqlJsStorage, batch: number, max = Infinity): Promise<{ done: number; calls: number }> {
  let calls = 0;
  let done = 0;
  while (done < max) {
    const claimed = await s.claimReady({ limit: batch, now: Date.now(), owner: "bench", leaseMs: 60_000 });
    calls++;
    if (claimed.length === 0) break;
    await s.commit(claimed.map((t) => ({
      type: "updateTask" as const,
      id: t.id,
      expect: { version: t.version },
      set: { status: "completed" as const, output: { ok: true, bytes: 1234 } },
    })));
    calls++;
    done += claimed.length;
  }
  return { done, calls };
}

/** Flush the machine's dirty pages (ours and others') so one run's writes do not slow the next one's fsyncs. */
function settleDisk(): void {
  try {
    execFileSync("sync");
  } catch {
    // no `sync` command here: the runs just share the disk
  }
}

/** A database holding `size` completed tasks, in `dir/base-<size>.sqlite`. */
async function prefill(dir: string, size: number): Promise<string> {
  const path = join(dir, `base-${size}.sqlite`);
  const s = await openSqlJsFileStorage(path);
  for (let done = 0; done < size; done += 1000) {
    const b = job(Math.min(1000, size - done), "history");
    await s.createJob(b.job, b.tasks);
    await drain(s, 1000);
  }
  settleDisk();
  await s.compact();
  await s.close();
  return path;
}

interface Run {
  ms: number;
  calls: number;
  tasksPerSec: number;
  commitsPerSec: number;
  /** CPU time (user + system) of this process per task, in microseconds: less sensitive to other load. */
  cpuMicrosPerTask: number;
  createJobMs: number;
  appends: number;
  appendedBytes: number;
  compactions: number;
}

async function measure(base: string, dir: string, baseline: boolean): Promise<Run> {
  const path = join(dir, `run-${newId()}.sqlite`);
  await copyFile(base, path);
  await copyFile(`${base}.tclog`, `${path}.tclog`);
  const s = baseline
    ? await openSqlJsStorage({
      persister: exportEveryCommit(path),
      compaction: { minJournalBytes: 0, journalRatio: 0 },
    })
    : await openSqlJsFileStorage(path);
  const b = job(TASKS, "bench");
  const c0 = performance.now();
  await s.createJob(b.job, b.tasks);
  const createJobMs = performance.now() - c0;
  const before = s.persistStats;
  settleDisk();
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  // The baseline costs the same per commit at any point: a quarter of the tasks measure it.
  const want = baseline ? TASKS / 4 : TASKS;
  const { done, calls } = await drain(s, BATCH, want);
  const ms = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const after = s.persistStats;
  // A rate over fewer tasks than asked for would flatter the run: check the work was done.
  if (done < want) throw new Error(`${baseline ? "baseline" : "journal"}: ${done} of ${want} tasks completed`);
  const completed = (await s.listTasks({ jobId: b.job.id, status: "completed" })).length;
  if (completed !== done) throw new Error(`${completed} tasks stored completed, expected ${done}`);
  if (!baseline && (await s.getJob(b.job.id))?.status !== "completed") throw new Error("the job did not complete");
  await s.close();
  await rm(path, { force: true });
  await rm(`${path}.tclog`, { force: true });
  return {
    ms,
    calls,
    tasksPerSec: done / (ms / 1000),
    commitsPerSec: calls / (ms / 1000),
    cpuMicrosPerTask: (cpu.user + cpu.system) / done,
    createJobMs,
    appends: after.appends - before.appends,
    appendedBytes: after.appendedBytes - before.appendedBytes,
    compactions: after.compactions - before.compactions,
  };
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
const fmt = (n: number): string => Math.round(n).toLocaleString("en-US");
const load = (): string => loadavg().map((x) => x.toFixed(1)).join(" ");

const dir = await mkdtemp(join(tmpdir(), "task-core-bench-sqljs-"));
try {
  console.log(
    `sql.js + file persister (fdatasync per flush): ${TASKS} tasks claimed+completed in batches of ${BATCH}, ` +
      `journal: median of ${ROUNDS} runs per size, sizes interleaved; load average ${load()} (${cpus().length} cpus)`,
  );
  const bases = new Map<number, { path: string; dbBytes: number }>();
  for (const size of SIZES) {
    const path = await prefill(dir, size);
    bases.set(size, { path, dbBytes: (await stat(path)).size });
  }
  // Interleave the sizes so that load from other processes spreads over all of them.
  const journal = new Map<number, Run[]>(SIZES.map((size) => [size, []]));
  for (let r = 0; r < ROUNDS; r++) {
    for (const size of SIZES) journal.get(size)!.push(await measure(bases.get(size)!.path, dir, false));
  }
  // The baseline last (it writes the whole file per commit: gigabytes at 100k), one run per size.
  const baseline = new Map<number, Run>();
  for (const size of SIZES) baseline.set(size, await measure(bases.get(size)!.path, dir, true));
  console.log(
    "stored tasks | db size | journal: tasks/s (best)  commits/s  CPU µs/task | export every commit: tasks/s  commits/s | speed-up",
  );
  const results = SIZES.map((size) => {
    const runs = journal.get(size)!;
    const x = baseline.get(size)!;
    const row = {
      storedTasks: size,
      dbBytes: bases.get(size)!.dbBytes,
      tasksPerSec: median(runs.map((r) => r.tasksPerSec)),
      bestTasksPerSec: Math.max(...runs.map((r) => r.tasksPerSec)),
      commitsPerSec: median(runs.map((r) => r.commitsPerSec)),
      cpuMicrosPerTask: median(runs.map((r) => r.cpuMicrosPerTask)),
      journalBytesPerTask: median(runs.map((r) => r.appendedBytes / TASKS)),
      exportEveryCommit: x,
      runs,
    };
    console.log(
      `${fmt(size).padStart(12)} | ${(row.dbBytes / 1e6).toFixed(1).padStart(5)} MB | ` +
        `${fmt(row.tasksPerSec).padStart(15)} (${fmt(row.bestTasksPerSec)}) ${fmt(row.commitsPerSec).padStart(10)} ` +
        `${row.cpuMicrosPerTask.toFixed(0).padStart(12)} | ` +
        `${fmt(x.tasksPerSec).padStart(27)} ${fmt(x.commitsPerSec).padStart(10)} | ` +
        `${(row.tasksPerSec / x.tasksPerSec).toFixed(1)}x`,
    );
    return row;
  });
  const first = results[0]!;
  const last = results[results.length - 1]!;
  console.log(
    `journal at ${fmt(first.storedTasks)} vs ${fmt(last.storedTasks)} stored tasks: ` +
      `${(first.tasksPerSec / last.tasksPerSec).toFixed(2)}x in throughput, ` +
      `${(last.cpuMicrosPerTask / first.cpuMicrosPerTask).toFixed(2)}x in CPU per task (target <= 1.5x); ` +
      `slowest median ${fmt(Math.min(...results.map((r) => r.tasksPerSec)))} tasks/s (target >= 5,000); ` +
      `load average now ${load()}`,
  );
  await writeResult("sqljs", { batch: BATCH, tasks: TASKS, rounds: ROUNDS, loadAverage: loadavg(), results });
} finally {
  await rm(dir, { recursive: true, force: true });
}
