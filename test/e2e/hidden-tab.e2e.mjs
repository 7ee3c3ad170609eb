// `npm run test:e2e:hidden`: a task run by a hidden tab keeps its lease, in real Chromium
// with its background timer throttling on.
//
// Chromium wakes a page hidden for five minutes at most once a minute for timers chained
// five deep (a timer armed in a timer's task, whose own timer was too: "intensive wake-up
// throttling"). An executor idling in a hidden tab armed its lease renewals so: the first
// renewal of a task it claimed then came up to a minute late, after a lease of 30 s had
// lapsed, and an executor in another tab recovered the task (ran it again, or blocked it
// if at-most-once) while the first still ran it.
//
// Chromium is driven over the DevTools protocol directly (through a pipe), not through
// Playwright: every page Playwright drives stays visible (a tab in the background too,
// headless or not), and its launch flags turn background throttling off. Launched without those flags, with the grace period of
// intensive throttling cut from 5 minutes to 10 s (a field-trial parameter of the feature
// IntensiveWakeUpThrottling), a background tab is hidden (`document.visibilityState`) and
// its chained timers wake once a minute, which a probe in the page checks first.
//
// Scenario: tab H runs an executor with the agent; tab V, in front, runs one without it
// (it claims nothing but recovers expired leases, every second). H idles until its chained
// timers are throttled, then, right after one of those minute wake-ups, submits one
// at-most-once task that holds for 20 s, three times the 6 s lease. The task must complete
// in H on its first attempt: never recovered by V, never aborted, never lost.
//
// Without /usr/bin/chromium (or CHROMIUM_PATH) this fails when CI is set and skips otherwise.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { chromiumArgs, chromiumPath, requireChromium } from "../../scripts/chromium.mjs";
import { bundle, servePage } from "./page-server.mjs";

requireChromium("test:e2e:hidden");
const server = await servePage("task-core hidden tab", { "/page.js": await bundle("test/e2e/hidden-tab.page.ts") });
const { origin } = server;

// ---------------------------------------------------------------- Chromium over a pipe

const profile = mkdtempSync(join(tmpdir(), "task-core-hidden-"));
const chrome = spawn(chromiumPath, [
  ...chromiumArgs,
  "--headless",
  "--remote-debugging-pipe",
  `--user-data-dir=${profile}`,
  "--enable-features=IntensiveWakeUpThrottling:grace_period_seconds/10",
  "about:blank",
], { stdio: ["ignore", "ignore", "ignore", "pipe", "pipe"] });
const [, , , toChrome, fromChrome] = chrome.stdio;
let nextId = 0;
const pending = new Map();
let buffered = "";
fromChrome.on("data", (chunk) => {
  buffered += chunk.toString("utf8");
  let end;
  while ((end = buffered.indexOf("\0")) >= 0) {
    const message = JSON.parse(buffered.slice(0, end));
    buffered = buffered.slice(end + 1);
    const waiter = pending.get(message.id);
    if (!waiter) continue;
    pending.delete(message.id);
    if (message.error) waiter.reject(new Error(`${waiter.method}: ${message.error.message}`));
    else waiter.resolve(message.result);
  }
});
/** Send a DevTools protocol command (to a page when `sessionId` is given). */
function send(method, params = {}, sessionId) {
  const id = ++nextId;
  return new Promise((resolve, reject) => {
    pending.set(id, { resolve, reject, method });
    toChrome.write(JSON.stringify({ id, method, params, ...(sessionId ? { sessionId } : {}) }) + "\0");
  });
}

/** Open a tab in front (the others go to the background) with the page module loaded. */
async function openTab(label) {
  const { targetId } = await send("Target.createTarget", { url: `${origin}/?tab=${label}` });
  const { sessionId } = await send("Target.attachToTarget", { targetId, flatten: true });
  const tab = {
    async eval(expression) {
      const r = await send("Runtime.evaluate", { expression, awaitPromise: true, returnByValue: true }, sessionId);
      if (r.exceptionDetails) {
        throw new Error(`${label}: ${r.exceptionDetails.exception?.description ?? r.exceptionDetails.text}`);
      }
      return r.result.value;
    },
    /** `globalThis.hidden[fn](...args)` in the page. */
    call: (fn, ...args) => tab.eval(`globalThis.hidden.${fn}(...${JSON.stringify(args)})`),
  };
  for (;;) {
    if (await tab.eval("typeof globalThis.hidden === 'object'").catch(() => false)) return tab;
    await sleep(50);
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------- scenario

const options = { leaseMs: 6000, heartbeatMs: 2000, recoveryIntervalMs: 1000, pollIntervalMs: 1000 };
const HOLD_MS = 20_000;
const started = Date.now();
let failed = false;
try {
  await within(
    180_000,
    "the hidden-tab scenario",
    (async () => {
      const h = await openTab("H");
      await h.call("open", { db: "hidden", tab: "H", hold: true, ...options });
      const v = await openTab("V");
      await v.call("open", { db: "hidden", tab: "V", hold: false, ...options });
      assert.equal(await h.eval("document.visibilityState"), "hidden", "tab H is in the background");
      assert.equal(await v.eval("document.visibilityState"), "visible", "tab V is in front");

      // Wait for a wake-up of H's probe that ends a gap of 30 s or more (intensive throttling
      // is in force), and submit right after it: the next such wake-up is a minute away.
      for (;;) {
        const probe = await h.call("probe");
        const [before, last] = probe.slice(-2);
        if (last - before >= 30_000 && Date.now() - last < 1000) break;
        await sleep(100);
      }
      const id = await h.call("submit", "held", HOLD_MS, "at-most-once");
      const job = await v.call("wait", id, HOLD_MS + 30_000);

      const reports = await h.call("reports");
      const events = reports.map((r) => `${r.event} #${r.attempt} (${r.visibility})`);
      assert.deepEqual(job.tasks, [{ key: "held", status: "completed", attempts: 1, output: "hidden" }]);
      assert.equal(job.status, "completed", "the job completed");
      assert.deepEqual(events, ["start #1 (hidden)", "end #1 (hidden)"], "H ran the task once, hidden, to its end");
      assert.equal((await v.call("stats")).recovered, 0, "V recovered no lease");
      assert.equal((await h.call("stats")).lost, 0, "H lost no lease");
      await h.call("close");
      await v.call("close");
    })(),
  );
  console.log(`  ✓ a task run by a hidden tab keeps its lease under intensive wake-up throttling`);
} catch (e) {
  failed = true;
  console.error(
    `  ✗ a task run by a hidden tab keeps its lease\n    ${String(e?.stack ?? e).split("\n").join("\n    ")}`,
  );
} finally {
  const exited = new Promise((resolve) => chrome.once("exit", resolve));
  send("Browser.close").catch(() => {});
  await within(10_000, "Chromium exiting", exited).catch(() => chrome.kill());
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
console.log(`${failed ? 0 : 1} passed, ${failed ? 1 : 0} failed (${((Date.now() - started) / 1000).toFixed(1)} s)`);
process.exit(failed ? 1 : 0);
