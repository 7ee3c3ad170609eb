// `npm run test:e2e:worker`: task-core off the main thread, in real Chromium. An Executor in
// a dedicated Worker or a SharedWorker, on the IndexedDB adapter (its database shared with
// the page) or on sql.js kept in IndexedDB or OPFS.
//
// Bundles test/e2e/indexeddb-worker.page.ts and indexeddb-worker.worker.ts with esbuild,
// serves them (and sql.js's WASM) from 127.0.0.1 (a random port) and drives pages of one
// persistent profile (a fresh temporary directory, removed at the end). A worker reports
// each execution to its page, which passes it to this process through an exposed function
// and then answers, so an execution is counted here before its task can complete. The
// page submits and waits through an executor it never starts: only workers run tasks.
// In the IndexedDB scenarios both sides poll once a minute, longer than a scenario may
// take: a job submitted by the page reaches the worker, and its end reaches the page,
// through the adapter's BroadcastChannel, or the scenario times out.
//
// Scenarios:
//   1. a dedicated worker runs the jobs the page submits (and one it submits itself), each
//      task once; the page's `wait()` sees the outcome. The worker has no document, window
//      or localStorage, and the adapter runs without them;
//   2. a dedicated worker terminated mid-task (`terminate()`, as a killed process): a new
//      worker recovers the tasks once their leases expire and completes the job;
//   3. a SharedWorker serves two tabs: one submits, the other waits, the one executor runs
//      every task; every tab closed mid-task ends it, and a SharedWorker started again by a
//      new tab recovers the tasks after their leases;
//   4. sql.js kept in IndexedDB, then in OPFS, in a dedicated worker: its Web Lock keeps the
//      page from opening the database while the worker has it; the worker terminated
//      mid-task lets go of it, and a new worker opens the database and recovers the tasks;
//   5. on each of those storages, a worker terminated in the middle of 150 short tasks: a
//      new worker finishes the job, no task is lost, and none stored completed before the
//      termination runs again.
//
// Without /usr/bin/chromium (or CHROMIUM_PATH) this fails when CI is set and skips otherwise.
import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { chromiumArgs, chromiumPath, requireChromium } from "../../scripts/chromium.mjs";
import { bundle, servePage } from "./page-server.mjs";

requireChromium("test:e2e:worker");

const { chromium } = await import("playwright-core");

// ---------------------------------------------------------------- bundles and server

const server = await servePage("task-core in workers", {
  "/page.js": await bundle("test/e2e/indexeddb-worker.page.ts"),
  "/worker.js": await bundle("test/e2e/indexeddb-worker.worker.ts"),
});
const { origin } = server;

// ---------------------------------------------------------------- browser

const profile = mkdtempSync(join(tmpdir(), "task-core-worker-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: chromiumPath,
  headless: true,
  args: [...chromiumArgs],
});

/** Every execution reported by a worker: { event, tab, key, attempt }. */
let reports = [];
/** Called after each report (a scenario waits on it). */
let onReport = () => {};
await context.exposeFunction("__tcReport", (r) => {
  reports.push(r);
  onReport(r);
});

const pageErrors = [];
/** Open a tab of the test origin, with the page module loaded. */
async function openTab(label) {
  const page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(`${label}: ${e?.stack ?? e}`));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(`${label} console: ${m.text()}`);
  });
  await page.goto(`${origin}/?tab=${label}`);
  await page.waitForFunction(() => typeof globalThis.workers?.call === "function", null);
  return page;
}

/** `promise`, or an error naming `what` after `ms` (a hung page fails its scenario, not the run). */
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Resolves once `count(reports)` is true (checked after each report). */
function until(check) {
  return new Promise((resolve) => {
    onReport = () => {
      if (check(reports)) resolve();
    };
    onReport();
  });
}

const starts = (list = reports) =>
  list.filter((r) => r.event === "start").map((r) => `${r.tab}:${r.key}#${r.attempt}`).sort();
const keys = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, "0")}`);
/** Both sides poll once a minute: wake-ups go through the BroadcastChannel. */
const slowPoll = 60_000;
/** Leases short enough to expire within a scenario. */
const short = { leaseMs: 1500, heartbeatMs: 500, recoveryIntervalMs: 500 };
const workerScope = {
  document: "undefined",
  window: "undefined",
  localStorage: "undefined",
  indexedDB: "object",
  BroadcastChannel: "function",
  locks: "object",
};

const SCENARIO_MS = 20_000;
let passed = 0;
let failed = 0;
const started = Date.now();

async function scenario(name, fn) {
  const t0 = Date.now();
  reports = [];
  onReport = () => {};
  pageErrors.length = 0;
  const opened = [];
  const tab = async (label) => {
    const page = await openTab(label);
    opened.push(page);
    return page;
  };
  try {
    const note = await within(SCENARIO_MS, `scenario "${name}"`, fn(tab));
    assert.deepEqual(pageErrors, [], "no uncaught error in any page or worker");
    passed++;
    console.log(`  ✓ ${name}${note ? `: ${note}` : ""} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++;
    console.error(`  ✗ ${name}\n    ${String(e?.stack ?? e).split("\n").join("\n    ")}`);
  } finally {
    for (const page of opened) {
      if (!page.isClosed()) {
        await within(5000, "closing", page.evaluate(() => globalThis.workers.close())).catch(() => {});
        await page.close().catch(() => {});
      }
    }
  }
}

// ---------------------------------------------------------------- scenarios

try {
  await scenario(
    "a dedicated worker runs the jobs the page submits, and the page's wait() sees them end",
    async (tab) => {
      const N = 20;
      const db = "worker-runs";
      const page = await tab("P");
      await page.evaluate(() => globalThis.workers.dedicated("W"));
      const scope = await page.evaluate(() => globalThis.workers.scope("W"));
      const { scope: kind, instance: _, ...apis } = scope;
      assert.equal(kind, "DedicatedWorkerGlobalScope");
      assert.deepEqual(apis, workerScope, "a worker has IndexedDB, BroadcastChannel and Web Locks, and no page APIs");

      const config = { kind: "indexeddb", db, tab: "W", mode: "quick", maxWorkers: 4, pollIntervalMs: slowPoll };
      const opened = await page.evaluate((c) => globalThis.workers.open("W", c), config);
      assert.deepEqual(opened, { recreated: false }, "a worker notes nothing, so reports no deletion");
      await page.evaluate(([db, ms]) => globalThis.workers.openSubmitter(db, ms), [db, slowPoll]);

      // The worker's executor is idle (it claimed nothing at its start): the page's submit wakes it.
      const id = await page.evaluate((n) => globalThis.workers.submit("from-page", "p", n), N);
      const { outcome, tasks } = await page.evaluate((id) => globalThis.workers.wait(id), id);
      assert.deepEqual(
        outcome,
        Object.fromEntries(keys("p", N).map((k, i) => [k, { by: "W", input: i }])),
        "the page's wait() resolved with every output, each stored by the worker",
      );
      assert.deepEqual(
        tasks.filter((t) => t.status !== "completed" || t.attempts !== 1),
        [],
        "each on its first attempt",
      );

      // A job the worker submits and waits for itself.
      const own = await page.evaluate(() => globalThis.workers.call("W", "submit", "from-worker", "w", 5));
      const job = await page.evaluate((id) => globalThis.workers.call("W", "wait", id), own);
      assert.equal(job.status, "completed");
      const stats = await page.evaluate(() => globalThis.workers.call("W", "stats"));
      assert.equal(stats.completed, N + 5, "the worker completed every task");
      assert.deepEqual(starts(), [...keys("p", N), ...keys("w", 5)].map((k) => `W:${k}#1`).sort(), "each ran once");
      return `${N + 5} tasks in the worker`;
    },
  );

  await scenario(
    "a dedicated worker terminated mid-task: a new worker recovers the tasks after their leases",
    async (tab) => {
      const N = 4;
      const db = "worker-terminated";
      const page = await tab("P");
      await page.evaluate(([db, ms]) => globalThis.workers.openSubmitter(db, ms), [db, slowPoll]);
      await page.evaluate(() => globalThis.workers.dedicated("W1"));
      const base = { ...short, kind: "indexeddb", db, maxWorkers: N, pollIntervalMs: slowPoll };
      await page.evaluate((c) => globalThis.workers.open("W1", c), { ...base, tab: "W1", id: "w1", mode: "slow" });
      const running = until((list) => list.filter((r) => r.event === "start").length === N);
      const id = await page.evaluate((n) => globalThis.workers.submit("terminated", "s", n), N);
      await running; // W1 runs every task (each waits 60 s unless aborted)

      await page.evaluate(() => globalThis.workers.terminate("W1")); // no shutdown: its leases stay
      await page.evaluate(() => globalThis.workers.dedicated("W2"));
      await page.evaluate((c) => globalThis.workers.open("W2", c), { ...base, tab: "W2", id: "w2", mode: "quick" });
      const { outcome, tasks } = await page.evaluate((id) => globalThis.workers.wait(id), id);
      assert.deepEqual(
        outcome,
        Object.fromEntries(keys("s", N).map((k, i) => [k, { by: "W2", input: i }])),
        "the job completed with W2's outputs",
      );
      assert.deepEqual(tasks.map((t) => t.attempts), Array(N).fill(2), "each on attempt 2");
      const stats = await page.evaluate(() => globalThis.workers.call("W2", "stats"));
      assert.equal(stats.recovered, N, "W2 recovered every expired lease");
      assert.deepEqual(
        starts(),
        [...keys("s", N).map((k) => `W1:${k}#1`), ...keys("s", N).map((k) => `W2:${k}#2`)].sort(),
        "each task started once in W1 (attempt 1) and once in W2 (attempt 2)",
      );
      return `W2 recovered ${stats.recovered} leases`;
    },
  );

  await scenario(
    "a SharedWorker serves every tab; every tab closed mid-task, a new one's SharedWorker recovers the tasks",
    async (tab) => {
      const N = 4;
      const db = "worker-shared";
      const name = "task-core-executor";
      const a = await tab("A");
      const b = await tab("B");
      await a.evaluate((name) => globalThis.workers.shared("S", name), name);
      await b.evaluate((name) => globalThis.workers.shared("S", name), name);
      const sa = await a.evaluate(() => globalThis.workers.scope("S"));
      const sb = await b.evaluate(() => globalThis.workers.scope("S"));
      const { scope: kind, instance: _, ...apis } = sa;
      assert.equal(kind, "SharedWorkerGlobalScope");
      assert.deepEqual(apis, workerScope, "a SharedWorker has IndexedDB, BroadcastChannel and Web Locks");
      assert.equal(sb.instance, sa.instance, "both tabs reach one SharedWorker");

      const base = { ...short, kind: "indexeddb", db, maxWorkers: N, pollIntervalMs: slowPoll };
      await a.evaluate((c) => globalThis.workers.open("S", c), { ...base, tab: "S1", id: "s1", mode: "quick" });
      // A submits, B waits; the SharedWorker runs the job.
      await a.evaluate(([db, ms]) => globalThis.workers.openSubmitter(db, ms), [db, slowPoll]);
      await b.evaluate(([db, ms]) => globalThis.workers.openSubmitter(db, ms), [db, slowPoll]);
      const first = await a.evaluate(() => globalThis.workers.submit("shared", "q", 6));
      const seen = await b.evaluate((id) => globalThis.workers.wait(id), first);
      assert.deepEqual(
        seen.outcome,
        Object.fromEntries(keys("q", 6).map((k, i) => [k, { by: "S1", input: i }])),
        "tab B saw the job tab A submitted end, run by the SharedWorker",
      );
      // The SharedWorker's executor, restarted from tab B (same id), now runs tasks that
      // wait until aborted.
      await b.evaluate(() => globalThis.workers.call("S", "close"));
      await b.evaluate((c) => globalThis.workers.open("S", c), { ...base, tab: "S1", id: "s1", mode: "slow" });
      const running = until((list) => list.filter((r) => r.event === "start" && r.key.startsWith("s")).length === N);
      const id = await a.evaluate((n) => globalThis.workers.submit("shared-killed", "s", n), N);
      await running;

      // Every tab closed without a shutdown: the SharedWorker ends with the last of them.
      await a.close();
      await b.close();
      const c = await tab("C");
      await c.evaluate((name) => globalThis.workers.shared("S", name), name);
      const sc = await c.evaluate(() => globalThis.workers.scope("S"));
      assert.notEqual(sc.instance, sa.instance, "tab C started a new SharedWorker");
      await c.evaluate((c) => globalThis.workers.open("S", c), { ...base, tab: "S2", id: "s2", mode: "quick" });
      const job = await c.evaluate((id) => globalThis.workers.call("S", "wait", id), id);
      assert.equal(job.status, "completed");
      assert.deepEqual(
        job.tasks.map((t) => [t.key, t.attempts, t.output.by]),
        keys("s", N).map((k) => [k, 2, "S2"]),
        "the new SharedWorker completed every task on attempt 2",
      );
      const stats = await c.evaluate(() => globalThis.workers.call("S", "stats"));
      assert.equal(stats.recovered, N, "the new SharedWorker recovered every expired lease");
      assert.deepEqual(
        starts().filter((s) => s.includes(":s")),
        [...keys("s", N).map((k) => `S1:${k}#1`), ...keys("s", N).map((k) => `S2:${k}#2`)].sort(),
        "each task started once in each SharedWorker",
      );
      return `one SharedWorker for two tabs; the next recovered ${stats.recovered} leases`;
    },
  );
  for (const [kind, where] of [["sqljs", "IndexedDB"], ["sqljs+opfs", "OPFS"]]) {
    await scenario(
      `sql.js kept in ${where} in a dedicated worker: its Web Lock keeps the page out; terminated mid-task, a new worker recovers`,
      async (tab) => {
        const N = 3;
        const db = `worker-${kind.replace("+", "-")}`;
        const page = await tab("P");
        await page.evaluate(() => globalThis.workers.dedicated("W1"));
        const base = { ...short, kind, db, maxWorkers: N };
        await page.evaluate((c) => globalThis.workers.open("W1", c), { ...base, tab: "W1", id: "w1", mode: "slow" });
        assert.equal(
          await page.evaluate(([kind, db]) => globalThis.workers.tryOpenSqlJs(kind, db), [kind, db]),
          "StorageBlockedError",
          "the page cannot open the database the worker has open",
        );
        const running = until((list) => list.filter((r) => r.event === "start").length === N);
        const id = await page.evaluate((n) => globalThis.workers.call("W1", "submit", "sqljs", "s", n), N);
        await running;

        await page.evaluate(() => globalThis.workers.terminate("W1"));
        await page.evaluate(() => globalThis.workers.dedicated("W2"));
        await page.evaluate((c) => globalThis.workers.open("W2", c), { ...base, tab: "W2", id: "w2", mode: "quick" });
        const job = await page.evaluate((id) => globalThis.workers.call("W2", "wait", id), id);
        assert.equal(job.status, "completed");
        assert.deepEqual(
          job.tasks.map((t) => [t.key, t.attempts, t.output.by]),
          keys("s", N).map((k) => [k, 2, "W2"]),
          "W2 completed every task on attempt 2",
        );
        const stats = await page.evaluate(() => globalThis.workers.call("W2", "stats"));
        assert.equal(stats.recovered, N, "W2 recovered every expired lease");
        assert.deepEqual(
          starts(),
          [...keys("s", N).map((k) => `W1:${k}#1`), ...keys("s", N).map((k) => `W2:${k}#2`)].sort(),
          "each task started once in W1 and once in W2",
        );
        return `W2 recovered ${stats.recovered} leases`;
      },
    );
  }

  for (
    const [kind, where] of [["indexeddb", "IndexedDB"], ["sqljs", "sql.js in IndexedDB"], [
      "sqljs+opfs",
      "sql.js in OPFS",
    ]]
  ) {
    await scenario(
      `${where}: a dedicated worker terminated mid-run, a new one finishes the job; nothing lost, no completed task rerun`,
      async (tab) => {
        const N = 150;
        const db = `worker-midrun-${kind.replace("+", "-")}`;
        const page = await tab("P");
        await page.evaluate(() => globalThis.workers.dedicated("W1"));
        const base = { ...short, kind, db, maxWorkers: 4 };
        await page.evaluate((c) => globalThis.workers.open("W1", c), { ...base, tab: "W1", id: "w1", mode: "random" });
        const midRun = until((list) => list.length >= 50);
        const id = await page.evaluate((n) => globalThis.workers.call("W1", "submit", "midrun", "r", n), N);
        await midRun;
        await page.evaluate(() => globalThis.workers.terminate("W1"));
        const reportsBefore = reports.length;

        await page.evaluate(() => globalThis.workers.dedicated("W2"));
        const config = { ...base, tab: "W2", id: "w2", mode: "random" };
        const before = await page.evaluate(([c, id]) => globalThis.workers.call("W2", "peek", c, id), [config, id]);
        const done = new Set(before.tasks.filter((t) => t.status === "completed").map((t) => t.key));
        const open = before.tasks.filter((t) => t.status !== "completed");
        assert.ok(done.size > 0 && open.length > 0, `terminated mid-run (${done.size} of ${N} completed)`);
        await page.evaluate((c) => globalThis.workers.open("W2", c), config);
        const after = await page.evaluate((id) => globalThis.workers.call("W2", "wait", id), id);

        assert.equal(after.status, "completed", "the job completed");
        assert.equal(after.tasks.length, N);
        assert.deepEqual(after.tasks.filter((t) => t.status !== "completed"), [], "no task lost: all completed");
        const counts = new Map();
        for (const r of reports) if (r.event === "start") counts.set(r.key, (counts.get(r.key) ?? 0) + 1);
        assert.deepEqual(keys("r", N).filter((k) => !(counts.get(k) >= 1)), [], "every task ran");
        const rerun = [...done].filter((k) => counts.get(k) !== 1);
        assert.deepEqual(rerun, [], "no task completed before the termination ran again");
        const late = reports.slice(reportsBefore).filter((r) => r.event === "start" && r.tab === "W1");
        assert.deepEqual(late, [], "W1 ran nothing once terminated");
        const recovered = after.tasks.filter((t) => t.attempts > 1).length;
        return `${done.size} completed before, ${open.length} open, ${recovered} of them recovered`;
      },
    );
  }
} finally {
  await context.close().catch(() => {});
  server.close();
  rmSync(profile, { recursive: true, force: true });
}

const took = ((Date.now() - started) / 1000).toFixed(1);
console.log(`${passed} passed, ${failed} failed (${took} s)`);
process.exit(failed === 0 ? 0 : 1);
