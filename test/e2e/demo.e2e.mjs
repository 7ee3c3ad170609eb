// `npm run test:e2e`: the browser demo, built (`npm run build:demo`), in real Chromium.
//
// Serves demo/dist from 127.0.0.1 (a random port) with a tiny static server and drives the
// page in a persistent profile (a fresh temporary directory: an incognito context keeps
// IndexedDB in memory, which would make the reload check meaningless). Every request that
// does not go to that server is blocked and fails the run: the page must work offline.
//
// Checks: a job resumes after a reload and ends with every task completed exactly once
// (IndexedDB, then sql.js with its IndexedDB persister); pause stops new work and resume
// restarts it; cancel ends the job; an injected fatal failure fails the job (memory
// storage, picked in the page). Writes test-results/demo.png (a finished job),
// test-results/demo-running.png (just before the reload) and test-results/demo-mobile.png.
//
// Without /usr/bin/chromium (or CHROMIUM_PATH) this fails when CI is set and skips otherwise.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { chromiumArgs, chromiumPath, requireChromium } from "../../scripts/chromium.mjs";
import { serveDemo } from "./demo-server.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dist = join(root, "demo/dist");
const results = join(root, "test-results");

requireChromium("test:e2e");
if (!existsSync(join(dist, "index.html"))) {
  console.error("test:e2e FAILED: demo/dist/index.html is missing; run `npm run build:demo` first");
  process.exit(1);
}

const { chromium } = await import("playwright-core");

// ---------------------------------------------------------------- static server

const { origin, close: closeServer } = await serveDemo(dist);

// ---------------------------------------------------------------- browser

const profile = mkdtempSync(join(tmpdir(), "task-core-demo-e2e-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: chromiumPath,
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [...chromiumArgs],
});
const offsite = [];
await context.route("**/*", (route) => {
  const url = route.request().url();
  if (url.startsWith(`${origin}/`) || url.startsWith("data:")) return route.continue();
  offsite.push(url);
  return route.abort();
});
const page = context.pages()[0] ?? await context.newPage();
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e?.stack ?? e)));
page.on("console", (m) => {
  if (m.type() === "error") pageErrors.push(`console: ${m.text()}`);
});

// ---------------------------------------------------------------- helpers

const started = Date.now();
let failures = 0;

async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    console.log(`  ✓ ${name} (${((Date.now() - t0) / 1000).toFixed(1)} s)`);
  } catch (e) {
    failures++;
    console.error(`  ✗ ${name}\n    ${String(e?.stack ?? e).split("\n").join("\n    ")}`);
    await page.screenshot({ path: join(results, `demo-failure-${failures}.png`), fullPage: true }).catch(() => {});
  }
}

/** Poll `fn` until it returns a truthy value; fail with `what` after `timeoutMs`. */
async function until(what, fn, timeoutMs = 30_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    last = await fn();
    if (last) return last;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const snapshot = () => page.evaluate(() => globalThis.__demo.snapshot());
const ready = () => page.waitForFunction(() => globalThis.__demo?.ready === true, null, { timeout: 30_000 });
const count = (snap, status) => snap.tasks.filter((t) => t.status === status).length;

async function open(query) {
  await page.goto(`${origin}/?${query}`);
  await ready();
}

async function startJob() {
  const before = await page.evaluate(() => globalThis.__demo.jobId);
  await page.click("#start");
  await until("the new job", async () => {
    const id = await page.evaluate(() => globalThis.__demo.jobId);
    return id && id !== before;
  });
  return await page.evaluate(() => globalThis.__demo.jobId);
}

async function waitForStatus(status, timeoutMs = 60_000) {
  await until(`job status "${status}"`, async () => (await snapshot())?.status === status, timeoutMs, 200);
}

/**
 * Start a digest, reload while it runs, and check it ends with every task completed
 * exactly once: durable completions (shared state, written with each completion) are 1
 * per key, and no task completed before the reload ran again after it.
 */
async function reloadMidRun(query, articles, screenshot, runningScreenshot) {
  await open(query);
  const jobId = await startJob();
  const before = await until(
    "some tasks done and some open",
    async () => {
      const s = await snapshot();
      return s && count(s, "completed") >= 4 && s.status === "running" ? s : null;
    },
    30_000,
    50,
  );
  if (runningScreenshot) await page.screenshot({ path: join(results, runningScreenshot), fullPage: true });
  await page.reload();
  await ready();
  const resumed = await page.evaluate(() => globalThis.__demo.resumed);
  const released = await page.evaluate(() => globalThis.__demo.released);
  assert.ok(resumed, "the page reports a resumed job");
  assert.equal(resumed.jobId, jobId);
  const banner = await page.textContent("#banner");
  assert.match(banner, /Resumed job \S+ after reload: \d+ tasks? already done/);
  await waitForStatus("completed");
  const after = await snapshot();
  assert.equal(after.jobId, jobId);
  assert.equal(after.taskCount, 2 + 3 * articles, "plan + 3 tasks per article + report");
  for (const t of after.tasks) {
    assert.equal(t.status, "completed", `${t.key} is completed`);
    assert.equal(after.completions[t.key], 1, `${t.key} completed exactly once (durable count)`);
    assert.ok(after.starts[t.key] >= 1, `${t.key} was executed`);
    // No random failures here: a second execution only comes from the reload interrupting it.
    assert.ok(after.starts[t.key] <= 2, `${t.key} executed ${after.starts[t.key]} times`);
  }
  for (const t of before.tasks.filter((x) => x.status === "completed")) {
    assert.equal(after.starts[t.key], before.starts[t.key], `${t.key}, completed before the reload, never ran again`);
  }
  if (screenshot) await page.screenshot({ path: join(results, screenshot), fullPage: true });
  console.log(
    `    reloaded with ${count(before, "completed")} of ${before.taskCount} tasks done, ` +
      `${released} interrupted task(s) released at once; ${after.taskCount} completed in the end`,
  );
  return { before, after };
}

// ---------------------------------------------------------------- scenarios

mkdirSync(results, { recursive: true });
console.log(`test:e2e: demo/dist served at ${origin}, Chromium ${chromiumPath}, profile ${profile}`);
try {
  await check("IndexedDB: a job resumes after a reload and every task completes exactly once", async () => {
    await reloadMidRun(
      "storage=indexeddb&articles=6&workMs=400&failRate=0",
      6,
      "demo.png",
      "demo-running.png",
    );
    // The finished page shows the digest.
    assert.equal(await page.locator("#report li").count(), 6);
  });

  await check("pause stops new work, resume restarts it, cancel ends the job", async () => {
    await open("storage=indexeddb&articles=6&workMs=400&failRate=0");
    await startJob();
    await until("two completed tasks", async () => count(await snapshot(), "completed") >= 2, 30_000, 50);
    // The storage cannot be switched under an open job (a memory job would be dropped).
    await page.waitForSelector("#storage:disabled");
    await page.click("#pause");
    await waitForStatus("paused", 10_000);
    await page.waitForFunction(() => document.getElementById("pause")?.textContent === "Resume");
    await until("running tasks to finish", async () => count(await snapshot(), "running") === 0, 15_000);
    const paused = await snapshot();
    assert.ok(count(paused, "paused") > 0, "open tasks are paused");
    const executions = Object.values(paused.starts).reduce((a, b) => a + b, 0);
    await new Promise((r) => setTimeout(r, 1500));
    const still = await snapshot();
    assert.equal(Object.values(still.starts).reduce((a, b) => a + b, 0), executions, "nothing starts while paused");
    assert.equal(still.status, "paused");
    // Opened again without settings in the URL, the page shows the open job's, not the defaults.
    await open("storage=indexeddb");
    assert.equal(await page.inputValue("#articles"), "6", "the resumed job's article count");
    assert.equal(await page.inputValue("#speed"), "400", "the resumed job's speed");
    assert.equal(await page.inputValue("#failrate"), "0", "the resumed job's failure rate");
    await page.waitForFunction(() => document.getElementById("pause")?.textContent === "Resume");

    await page.click("#pause"); // Resume
    await waitForStatus("running", 10_000);
    await until("work to start again", async () => {
      const s = await snapshot();
      return Object.values(s.starts).reduce((a, b) => a + b, 0) > executions;
    }, 15_000);

    await page.click("#cancel");
    await waitForStatus("cancelled", 10_000);
    const cancelled = await snapshot();
    const unfinished = cancelled.tasks.filter((t) => !["completed", "cancelled"].includes(t.status));
    assert.deepEqual(unfinished, [], "every task is completed or cancelled");
    assert.ok(count(cancelled, "cancelled") > 0, "some tasks were cancelled");
    await page.waitForSelector("#banner.level-warning");
    // The controls follow the job: no cancelling an ended job, and a new one may start.
    await page.waitForSelector("#cancel:disabled");
    await page.waitForSelector("#start:enabled");
    await page.waitForSelector("#storage:enabled");
  });

  await check("memory storage (picked in the page): an injected fatal fetch failure fails the job", async () => {
    await page.selectOption("#storage", "memory");
    await until("the memory storage", () => page.evaluate(() => globalThis.__demo.storage === "memory"));
    await ready();
    await page.fill("#articles", "3");
    await page.selectOption("#failrate", "0");
    await page.click("#inject-fatal");
    await page.waitForFunction(() => /fatal/.test(document.getElementById("armed")?.textContent ?? ""));
    await startJob();
    await waitForStatus("failed", 30_000);
    const s = await snapshot();
    const failed = s.tasks.filter((t) => t.status === "failed");
    assert.equal(failed.length, 1, "one task failed");
    assert.match(failed[0].key, /fetch-/);
    assert.equal(failed[0].attempts, 1, "a non-retryable error is not retried");
    assert.equal(s.tasks.find((t) => t.key === "plan/report")?.status, "cancelled", "the report was cancelled");
    const row = page.locator(`#table tr[data-key="${failed[0].key}"] .col-error`);
    assert.match(await row.textContent(), /NonRetryableError: Injected failure/);
  });

  await check("sql.js + IndexedDB persister: a job resumes after a reload and completes exactly once", async () => {
    await reloadMidRun("storage=sqljs&articles=5&workMs=400&failRate=0", 5, null);
  });

  await check("phone viewport (390x844): no horizontal overflow; screenshot", async () => {
    await page.setViewportSize({ width: 390, height: 844 });
    await page.waitForTimeout(300);
    const overflow = await page.evaluate(() => document.documentElement.scrollWidth - innerWidth);
    assert.ok(overflow <= 0, `the page is ${overflow}px wider than the screen`);
    await page.screenshot({ path: join(results, "demo-mobile.png"), fullPage: true });
  });

  await check("the page made no request off 127.0.0.1 and raised no error", () => {
    assert.deepEqual(offsite, [], "requests off the local server");
    assert.deepEqual(pageErrors, [], "page errors");
  });
} finally {
  await context.close();
  closeServer();
  rmSync(profile, { recursive: true, force: true });
}

const took = ((Date.now() - started) / 1000).toFixed(1);
if (failures > 0) {
  console.error(`test:e2e FAILED: ${failures} check(s) failed in ${took} s (screenshots in test-results/)`);
  process.exit(1);
}
console.log(`test:e2e passed in ${took} s; screenshots: test-results/demo{,-running,-mobile}.png`);
