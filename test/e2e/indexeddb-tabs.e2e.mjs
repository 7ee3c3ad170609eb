// `npm run test:e2e:tabs`: the IndexedDB adapter shared by several tabs of one origin, in
// real Chromium (issues 6 and 9).
//
// Bundles test/e2e/indexeddb-tabs.page.ts with esbuild, serves it from 127.0.0.1 (a random
// port) and drives pages of one persistent profile (a fresh temporary directory, removed
// at the end: an incognito context keeps IndexedDB in memory). Each page runs its own
// Executor on the same database and reports every execution to this process through an
// exposed function, awaited before the agent goes on, so an execution is counted here
// before its task can complete. (Counters in localStorage would not do across tabs: each
// renderer caches localStorage and another tab's read-modify-write can miss an increment,
// which would hide a second execution. The reload scenario, one tab at a time, uses both.)
//
// Scenarios:
//   1. two tabs, 300 tasks submitted by one: every task runs exactly once, both tabs work;
//   2. a tab closed while its tasks run: the other tab recovers the expired leases and
//      completes the job (attempts 2);
//   3. a tab reloaded mid-run: the reloaded page reattaches to the unfinished job and
//      finishes it; no task is lost and no task completed before the reload runs again
//      (tasks running at reload time may run twice: at-least-once);
//   4. two tabs running different agents (claimAgents): a job spanning both completes, each
//      tab runs exactly its own agent's tasks, none fails as of an unknown agent;
//   5. multi-executor stress (issue 9), the workload of test/chaos/stress.ts across four
//      tabs: 5,000 tasks (TASK_CORE_TABS_STRESS_TASKS) in DAG jobs of 50 submitted round
//      robin by the tabs, with random retryable and permanent failures, timeouts and 20%
//      at-most-once tasks (test/e2e/tabs-stress.ts). Every task ends final with the runs
//      and status its plan asks for, none runs in two tabs at once, at-most-once tasks never
//      run twice, every job ends once across the tabs, the executors' stats agree with what
//      the tabs reported and stored, and every tab does some of the work.
//
// Without /usr/bin/chromium (or CHROMIUM_PATH) this fails when CI is set and skips otherwise.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { chromiumArgs, chromiumPath, requireChromium } from "../../scripts/chromium.mjs";
import { bundle, servePage } from "./page-server.mjs";

const STRESS_TASKS = Number(process.env.TASK_CORE_TABS_STRESS_TASKS ?? 5000);
if (!Number.isInteger(STRESS_TASKS) || STRESS_TASKS < 1) {
  console.error(
    `TASK_CORE_TABS_STRESS_TASKS must be a positive integer, got "${process.env.TASK_CORE_TABS_STRESS_TASKS}"`,
  );
  process.exit(1);
}

requireChromium("test:e2e:tabs");

const { chromium } = await import("playwright-core");

// The stress workload and its checks are TypeScript shared with test/chaos/stress.ts.
const { expectedStats, Ledger, outcomeProblems, stressJobs } = await import(
  `data:text/javascript;base64,${Buffer.from(await bundle("test/e2e/tabs-stress.ts", "neutral")).toString("base64")}`
);

// ---------------------------------------------------------------- page bundle and server

const server = await servePage("task-core IndexedDB tabs", {
  "/page.js": await bundle("test/e2e/indexeddb-tabs.page.ts"),
});
const { origin } = server;

// ---------------------------------------------------------------- browser

const profile = mkdtempSync(join(tmpdir(), "task-core-tabs-"));
// Playwright adds --disable-background-timer-throttling, --disable-renderer-backgrounding
// and --disable-backgrounding-occluded-windows itself: tabs that are not in front keep
// their timers (the stress scenario checks that every tab worked).
const context = await chromium.launchPersistentContext(profile, {
  executablePath: chromiumPath,
  headless: true,
  args: [...chromiumArgs],
});

/** Every execution reported by a page: { event, tab, key, attempt }. */
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
  await loaded(page);
  return page;
}
const loaded = (page) => page.waitForFunction(() => typeof globalThis.tabs?.open === "function", null);

/** `promise`, or an error naming `what` after `ms` (a hung page fails its scenario, not the run). */
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** Executions (`start` reports) per key, counted over `list`. */
function countByKey(list) {
  const out = new Map();
  for (const r of list) if (r.event === "start") out.set(r.key, (out.get(r.key) ?? 0) + 1);
  return out;
}

const keys = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(3, "0")}`);
const short = { leaseMs: 1500, heartbeatMs: 500, recoveryIntervalMs: 500, pollIntervalMs: 200 };

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Longest a scenario may take (each takes a few seconds), and the stress scenario (~50 s at 5,000 tasks). */
const SCENARIO_MS = 25_000;
const STRESS_MS = Math.max(60_000, STRESS_TASKS * 30);
let passed = 0;
let failed = 0;
const started = Date.now();

async function scenario(name, fn, ms = SCENARIO_MS) {
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
    const note = await within(ms, `scenario "${name}"`, fn(tab));
    assert.deepEqual(pageErrors, [], "no uncaught error in any page");
    passed++;
    console.log(`  ✓ ${name}${note ? `: ${note}` : ""} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failed++;
    console.error(`  ✗ ${name}\n    ${String(e?.stack ?? e).split("\n").join("\n    ")}`);
  } finally {
    for (const page of opened) {
      if (!page.isClosed()) {
        await within(5000, "closing the executor", page.evaluate(() => globalThis.tabs.close())).catch(() => {});
        await page.close().catch(() => {});
      }
    }
  }
}

// ---------------------------------------------------------------- scenarios

try {
  await scenario("two tabs share one database: 300 tasks, each runs exactly once, both tabs work", async (tab) => {
    const N = 300;
    const db = "tabs-exactly-once";
    const common = { db, mode: "random", minDelayMs: 2, maxDelayMs: 25, maxWorkers: 4, queueCapacity: 4 };
    const a = await tab("A");
    const b = await tab("B");
    // B runs an executor on the database and nothing else: it learns of A's job through
    // the adapter's BroadcastChannel (or its poll).
    await b.evaluate((c) => globalThis.tabs.open(c), { ...common, tab: "B" });
    await a.evaluate((c) => globalThis.tabs.open(c), { ...common, tab: "A" });
    const id = await a.evaluate(() => globalThis.tabs.submit("two-tabs", "k", 300));
    const job = await a.evaluate((id) => globalThis.tabs.wait(id), id);

    assert.equal(job.status, "completed", "the job completed");
    assert.equal(job.tasks.length, N);
    const notDone = job.tasks.filter((t) => t.status !== "completed" || t.attempts !== 1);
    assert.deepEqual(notDone, [], "every task completed on its first attempt");

    const counts = countByKey(reports);
    const wrong = keys("k", N).filter((k) => counts.get(k) !== 1).map((k) => `${k}: ${counts.get(k) ?? 0}`);
    assert.deepEqual(wrong, [], "every task ran exactly once");
    assert.equal(counts.size, N, "no execution of an unknown key");
    const byTab = { A: 0, B: 0 };
    for (const r of reports) if (r.event === "start") byTab[r.tab]++;
    assert.ok(byTab.A > 0 && byTab.B > 0, `both tabs did some of the work (A ${byTab.A}, B ${byTab.B})`);
    // Who ran a task is also who stored its output.
    const byOutput = { A: 0, B: 0 };
    for (const t of job.tasks) byOutput[t.output.by]++;
    assert.deepEqual(byOutput, byTab, "each tab stored the outputs of the tasks it ran");
    return `A ran ${byTab.A}, B ran ${byTab.B}`;
  });

  await scenario(
    "a tab closed mid-task: the other tab recovers the expired leases and completes the job",
    async (tab) => {
      const N = 4;
      const db = "tabs-closed";
      const a = await tab("A");
      await a.evaluate((c) => globalThis.tabs.open(c), { ...short, db, tab: "A", mode: "slow", maxWorkers: N });
      let allStarted = () => {};
      const allRunning = new Promise((resolve) => (allStarted = resolve));
      onReport = () => {
        if (reports.filter((r) => r.event === "start" && r.tab === "A").length === N) allStarted();
      };
      const id = await a.evaluate((n) => globalThis.tabs.submit("closed-tab", "s", n), N);
      await allRunning; // A runs every task (each waits 60 s unless aborted)

      const b = await tab("B");
      const held = await b.evaluate(([db, id]) => globalThis.tabs.peek(db, id), [db, id]);
      assert.deepEqual(
        held.tasks.map((t) => [t.status, t.attempts]),
        Array(N).fill(["running", 1]),
        "A holds every task",
      );
      await b.evaluate((c) => globalThis.tabs.open(c), { ...short, db, tab: "B", mode: "quick" });
      await a.close(); // no shutdown: the tab is gone, its leases stay until they expire

      const job = await b.evaluate((id) => globalThis.tabs.wait(id), id);
      const stats = await b.evaluate(() => globalThis.tabs.stats());
      assert.equal(job.status, "completed", "the job completed");
      assert.deepEqual(
        job.tasks.map((t) => [t.key, t.status, t.attempts, t.output?.by]),
        keys("s", N).map((k) => [k, "completed", 2, "B"]),
        "B completed every task on attempt 2",
      );
      assert.equal(stats.recovered, N, "B recovered every expired lease");
      const starts = reports.filter((r) => r.event === "start").map((r) => `${r.tab}:${r.key}#${r.attempt}`).sort();
      assert.deepEqual(
        starts,
        [...keys("s", N).map((k) => `A:${k}#1`), ...keys("s", N).map((k) => `B:${k}#2`)].sort(),
        "each task started once in A (attempt 1) and once in B (attempt 2)",
      );
      assert.deepEqual(reports.filter((r) => r.event === "abort"), [], "A lost no lease while it was open");
      return `B recovered ${stats.recovered} leases`;
    },
  );

  await scenario(
    "a tab reloaded mid-run: the reloaded page finishes the job, nothing lost, nothing rerun",
    async (tab) => {
      const N = 200;
      const db = "tabs-reload";
      const config = {
        ...short,
        db,
        tab: "P",
        mode: "random",
        minDelayMs: 5,
        maxDelayMs: 40,
        maxWorkers: 4,
        queueCapacity: 8,
        countInLocalStorage: true,
      };
      const page = await tab("P");
      await page.evaluate(() => localStorage.clear());
      await page.evaluate((c) => globalThis.tabs.open(c), config);
      let midRun = () => {};
      const reached = new Promise((resolve) => (midRun = resolve));
      onReport = () => {
        if (reports.length >= 60) midRun();
      };
      const id = await page.evaluate((n) => globalThis.tabs.submit("reload", "r", n), N);
      await reached;
      await page.reload();
      await loaded(page);
      const reportsBefore = reports.length;

      const { before, after } = await page.evaluate((c) => globalThis.tabs.resume(c), config);
      const counters = await page.evaluate(() => globalThis.tabs.counters());
      const done = new Set(before.tasks.filter((t) => t.status === "completed").map((t) => t.key));
      const open = before.tasks.filter((t) => t.status !== "completed");
      assert.equal(before.id, id, "the reloaded page found the unfinished job");
      assert.ok(done.size > 0 && open.length > 0, `reloaded mid-run (${done.size} of ${N} completed)`);

      assert.equal(after.status, "completed", "the job completed");
      assert.deepEqual(after.tasks.filter((t) => t.status !== "completed"), [], "no task lost: all completed");
      assert.equal(after.tasks.length, N);
      // At-least-once: every task ran; one running at reload time may have run twice.
      const counts = countByKey(reports);
      const never = keys("r", N).filter((k) => !(counters[k] >= 1) || !(counts.get(k) >= 1));
      assert.deepEqual(never, [], "every task ran at least once (localStorage and reports)");
      // A task completed before the reload never runs again.
      const rerun = [...done].filter((k) => counters[k] !== 1 || counts.get(k) !== 1)
        .map((k) => `${k}: localStorage ${counters[k]}, reports ${counts.get(k)}`);
      assert.deepEqual(rerun, [], "no task completed before the reload ran again");
      const after2 = reports.slice(reportsBefore).filter((r) => r.event === "start" && done.has(r.key));
      assert.deepEqual(after2, [], "the reloaded page ran no completed task");
      const twice = keys("r", N).filter((k) => counters[k] > 1).length;
      const recovered = after.tasks.filter((t) => t.attempts > 1).length;
      return `${done.size} completed before the reload; ${open.length} open, ${recovered} of them recovered, ` +
        `${twice} ran twice (at-least-once)`;
    },
  );

  await scenario(
    "two tabs running different agents (claimAgents): each runs exactly its own agent's tasks of a job spanning both",
    async (tab) => {
      const N = 40;
      const db = "tabs-agents";
      const common = { db, mode: "random", minDelayMs: 1, maxDelayMs: 10, maxWorkers: 4, pollIntervalMs: 200 };
      // The page knows both agents (it submits the job) but claims only "page"; the other
      // tab (a worker, say) registers only "heavy" and claims what it registers.
      const a = await tab("A");
      const b = await tab("B");
      await b.evaluate((c) => globalThis.tabs.open(c), {
        ...common,
        tab: "B",
        aliases: ["heavy"],
        onlyAliases: true,
        claimAgents: "registered",
      });
      await a.evaluate((c) => globalThis.tabs.open(c), {
        ...common,
        tab: "A",
        aliases: ["page", "heavy"],
        claimAgents: ["page"],
      });
      // page-k, then heavy-k after it: the job goes back and forth between the tabs.
      const tasks = [];
      for (let i = 0; i < N / 2; i++) {
        const k = String(i).padStart(3, "0");
        tasks.push({ key: `p${k}`, agent: "page", input: i });
        tasks.push({ key: `h${k}`, agent: "heavy", input: i, dependsOn: [`p${k}`] });
      }
      const [id] = await a.evaluate((spec) => globalThis.tabs.submitJobs([spec]), { name: "agents", tasks });
      const job = await a.evaluate((id) => globalThis.tabs.wait(id), id);
      assert.equal(job.status, "completed", "the job completed");
      const wrong = job.tasks.filter((t) => t.status !== "completed" || t.attempts !== 1);
      assert.deepEqual(wrong, [], "every task completed on its first attempt (none failed as of an unknown agent)");
      const ranBy = job.tasks.map((t) => `${t.key[0]}:${t.output.by}`);
      assert.deepEqual(
        [...new Set(ranBy)].sort(),
        ["h:B", "p:A"],
        "the page ran every page task, the other tab every heavy task",
      );
      const counts = countByKey(reports);
      assert.equal(counts.size, N, "every task ran");
      assert.ok([...counts.values()].every((n) => n === 1), "each exactly once");
      return `A ran ${N / 2} page tasks, B ${N / 2} heavy ones`;
    },
  );

  await scenario(
    `four tabs on one database, ${STRESS_TASKS} tasks with random failures and timeouts: every task ends final ` +
      "as planned, none runs in two tabs at once, at-most-once tasks never run twice, every job ends once",
    async (tab) => {
      const giveUpAt = Date.now() + STRESS_MS - 15_000;
      const labels = ["A", "B", "C", "D"];
      const config = {
        db: "tabs-stress",
        mode: "quick",
        maxWorkers: 8,
        queueCapacity: 16,
        leaseMs: 30_000,
        pollIntervalMs: 20,
        retry: { delayMs: 1, factor: 2, maxDelayMs: 10 },
      };
      const pages = [];
      for (const label of labels) {
        const page = await tab(label);
        await page.evaluate((c) => globalThis.tabs.open(c), { ...config, tab: label });
        pages.push(page);
      }
      const ledger = new Ledger();
      onReport = (r) => ledger.report(r);
      // A report is a round trip through the browser to this process: 30-90 ms typically on
      // a busy 2-core machine, up to ~0.7 s. Tasks planned to time out get 2 s (their attempt
      // 2 must finish its two reports within it); the others never time out.
      const jobs = stressJobs({
        tasks: STRESS_TASKS,
        perJob: 50,
        seed: 7,
        agent: "stress",
        timeoutMs: 2000,
        otherTimeoutMs: 60_000,
      });
      // Round robin: tab i submits jobs i, i + 4, i + 8 ... (each tab in order, the tabs at once).
      const ids = (await Promise.all(pages.map((page, i) => {
        const mine = jobs.filter((_, j) => j % pages.length === i);
        return page.evaluate((specs) => globalThis.tabs.submitJobs(specs), mine);
      }))).flat();
      // Wait until every job has ended, as stored (or name what is stuck); then stop the
      // executors, which store whatever they still hold, and read what each counted.
      let open = ids;
      while (open.length > 0 && Date.now() < giveUpAt) {
        await sleep(250);
        open = await pages[0].evaluate((ids) => globalThis.tabs.openJobs(ids), open);
      }
      if (open.length > 0) {
        const stuck = await pages[0].evaluate((ids) => globalThis.tabs.stressTasks(ids), open);
        const names = stuck.filter((t) => !t.final).map((t) => `${t.key} of ${t.jobId} (${t.input.plan}): ${t.status}`);
        assert.fail(`${open.length} jobs never ended; tasks not final: ${names.slice(0, 8).join("; ")}`);
      }
      const finished = await Promise.all(pages.map((page) => page.evaluate(() => globalThis.tabs.finish())));
      const tasks = await pages[0].evaluate((ids) => globalThis.tabs.stressTasks(ids), ids);

      assert.deepEqual(ledger.violations.slice(0, 5), [], "no task ran in two tabs (or twice in one) at once");
      assert.equal(ids.length, jobs.length, "every job was submitted");
      assert.equal(tasks.length, STRESS_TASKS, "every task was stored");
      const problems = outcomeProblems(tasks, ledger);
      assert.deepEqual(problems.slice(0, 8), [], `${problems.length} tasks ended otherwise than planned`);
      const stored = new Set(tasks.map((t) => t.id));
      const unknown = [...ledger.runs.keys()].filter((id) => !stored.has(id));
      assert.deepEqual(unknown, [], "no execution of a task not in these jobs");
      const ends = ids.map((id) => [id, finished.flatMap((f) => f.jobEnds[id] ?? [])]);
      assert.deepEqual(ends.filter(([, e]) => e.length !== 1), [], "every job ended once across the tabs");

      const sum = (k) => finished.reduce((n, f) => n + f.stats[k], 0);
      const count = (status) => tasks.filter((t) => t.status === status).length;
      const runs = [...ledger.runs.values()].reduce((a, b) => a + b, 0);
      assert.equal(sum("started"), runs, "the executors' stats count every attempt the tabs reported");
      assert.equal(sum("completed"), count("completed"), "the executors' stats count every task stored completed");
      assert.equal(sum("failed"), count("failed"), "the executors' stats count every task stored failed");
      const want = expectedStats(tasks);
      assert.equal(sum("timedOut"), want.timedOut, "the executors' stats count a timeout per task planned to time out");
      assert.equal(sum("retried"), want.retried, "the executors' stats count a retry per flaky or timed-out task");
      if (STRESS_TASKS >= 1000) { // a small run may draw none of some plan
        assert.ok(sum("timedOut") > 0 && sum("retried") > 0 && sum("failed") > 0, "timeouts, retries, failures");
      }
      const claimed = finished.map((f, i) => `${labels[i]} ${f.stats.claimed}`).join(", ");
      const workers = finished.filter((f) => f.stats.claimed > 0).length;
      assert.ok(workers >= Math.min(labels.length, jobs.length), `every tab that submitted a job worked (${claimed})`);
      return `${tasks.length} tasks in ${jobs.length} jobs, ${runs} runs, ${sum("retried")} retries, ` +
        `${sum("timedOut")} timeouts, ${count("failed")} failed, ${count("cancelled")} cancelled; ` +
        `claimed ${claimed}; runs ${labels.map((l) => `${l} ${ledger.byTab[l] ?? 0}`).join(", ")}; ` +
        `slowest report ${Math.round(Math.max(...finished.map((f) => f.slowestReportMs)))} ms; ` +
        `tabs ${[...new Set(finished.map((f) => f.visibility))].join(", ")}`;
    },
    STRESS_MS,
  );
} finally {
  await context.close().catch(() => {});
  server.close();
  rmSync(profile, { recursive: true, force: true });
}

const took = ((Date.now() - started) / 1000).toFixed(1);
console.log(`${passed} passed, ${failed} failed (${took} s)`);
process.exit(failed === 0 ? 0 : 1);
