// `npm run test:e2e` (after demo.e2e.mjs): the browser demo in real Chromium at the edges a
// visitor meets — two tabs on one storage (the other tab follows the job and its end; two
// Start presses at once make one job, and so does one that lands as the tab takes up the
// other tab's job), a reload after another tab picked another storage, site
// data blocked (the page says so and runs on memory), a task run twice after a reload
// (shown as such), and site data cleared or the database deleted by another tab while a
// job runs (the page says its storage is gone and no longer shows the job running). Needs the built demo (`npm run build:demo`). Each scenario gets a fresh persistent
// Chromium profile; sync points are page states (polled), never elapsed time.
//
//   node test/e2e/demo-tabs.e2e.mjs [tabs|race|kind|blocked|hidden|cleared|deleted]
import assert from "node:assert/strict";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { chromiumArgs, chromiumPath, requireChromium } from "../../scripts/chromium.mjs";
import { serveDemo } from "./demo-server.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dist = process.env.DEMO_DIST ?? join(root, "demo/dist");
requireChromium("test:e2e (tabs)");
if (!existsSync(join(dist, "index.html"))) {
  console.error("demo-tabs FAILED: demo/dist/index.html is missing; run `npm run build:demo` first");
  process.exit(1);
}
const { chromium } = await import("playwright-core");

const { origin, close: closeServer } = await serveDemo(dist);

async function until(what, fn, timeoutMs = 30_000, everyMs = 100) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

async function withBrowser(prefs, fn) {
  const profile = mkdtempSync(join(tmpdir(), "task-core-demo-tabs-"));
  if (prefs) {
    mkdirSync(join(profile, "Default"), { recursive: true });
    writeFileSync(join(profile, "Default", "Preferences"), JSON.stringify(prefs));
  }
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: chromiumPath,
    headless: true,
    viewport: { width: 1280, height: 900 },
    args: [...chromiumArgs],
  });
  const errors = [];
  const track = (p, name) => {
    p.on("pageerror", (e) => errors.push(`${name}: ${e.message}`));
    p.on("console", (m) => m.type() === "error" && errors.push(`${name} console: ${m.text()}`));
  };
  const newPage = async (name) => {
    const p = context.pages().find((x) => x.url() === "about:blank" && !x.__used) ?? await context.newPage();
    p.__used = true;
    track(p, name);
    return p;
  };
  try {
    await fn({ newPage, errors });
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

const demo = (p, expr) => p.evaluate(expr);
const ready = (p) => p.waitForFunction(() => globalThis.__demo?.ready === true, null, { timeout: 30_000 });
const state = (p) =>
  p.evaluate(() => ({
    jobId: globalThis.__demo?.jobId ?? null,
    jobStatus: globalThis.__demo?.jobStatus ?? null,
    storage: globalThis.__demo?.storage ?? null,
    resumed: globalThis.__demo?.resumed ?? null,
    banner: document.getElementById("banner").hidden ? "(hidden)" : document.getElementById("banner").textContent,
    pill: document.getElementById("job-status").textContent,
    startEnabled: !document.getElementById("start").disabled,
    startedLines: document.querySelectorAll('#log li[data-event="task:started"]').length,
  }));

/** The jobs stored in the demo's IndexedDB (`{ id, status }`), read in page `p`. */
const storedJobs = (p) =>
  p.evaluate(async () => {
    const req = indexedDB.open("task-core-demo");
    const db = await new Promise((r) => (req.onsuccess = () => r(req.result)));
    const jobs = await new Promise((r) => {
      const q = db.transaction("jobs").objectStore("jobs").getAll();
      q.onsuccess = () => r(q.result);
    });
    db.close();
    return jobs.map((j) => ({ id: j.id, status: j.status }));
  });
/** Ids of the jobs stored open (not completed, failed or cancelled). */
const openJobs = async (p) =>
  (await storedJobs(p)).filter((j) => !["completed", "failed", "cancelled"].includes(j.status)).map((j) => j.id);

/** Tabs A and B on the demo, with a job started in A: `{ a, b, jobA }`. */
async function twoTabsWithJobInA(newPage) {
  const a = await newPage("A");
  const b = await newPage("B");
  await openDemo(a);
  await openDemo(b);
  await a.click("#start");
  const jobA = await until("A's job", () => demo(a, () => globalThis.__demo.jobId));
  return { a, b, jobA };
}

/** Tab A on the demo, with a job started and one of its tasks completed. */
async function tabWithJobUnderWay(newPage) {
  const a = await newPage("A");
  await openDemo(a);
  await a.click("#start");
  await until("a task completed", async () => {
    const s = await demo(a, () => globalThis.__demo.snapshot());
    return s?.tasks.some((t) => t.status === "completed");
  });
  return a;
}

/**
 * The page whose storage closed under it: it no longer shows the job running nor offers
 * to pause or cancel it (those calls can only fail), and lets the visitor pick another storage.
 */
async function expectStorageLost(p) {
  const s = await until("the page to draw the lost storage", async () => {
    const x = await state(p);
    return x.pill !== "running" ? x : null;
  }, 5_000).catch(async () => await state(p));
  const controls = await p.evaluate(() =>
    Object.fromEntries(["pause", "cancel", "start", "storage"].map((id) => [id, document.getElementById(id).disabled]))
  );
  console.log("  page with its storage closed:", JSON.stringify({ pill: s.pill, controls }));
  assert.notEqual(s.pill, "running", "the job is not shown running on a storage that closed");
  assert.equal(controls.pause, true, "Pause is disabled");
  assert.equal(controls.cancel, true, "Cancel is disabled");
  assert.equal(controls.start, true, "Start is disabled");
  assert.equal(controls.storage, false, "another storage may be picked");
}

let failures = 0;
async function scenario(name, fn) {
  console.log(`\n### ${name}`);
  try {
    await fn();
    console.log("  -> PASS");
  } catch (e) {
    failures++;
    console.log(`  -> FAIL: ${String(e?.message ?? e).split("\n").slice(0, 6).join("\n     ")}`);
  }
}

/** Load the demo on IndexedDB (the scenarios' settings) in page `p` and wait until it is ready. */
async function openDemo(p) {
  await p.goto(`${origin}/?storage=indexeddb&${Q}`);
  await ready(p);
}

const only = process.argv[2];
const Q = "articles=4&workMs=700&failRate=0";

if (!only || only === "tabs") {
  await scenario(
    "two tabs: the other tab follows the job started here (no second job)",
    () =>
      withBrowser(null, async ({ newPage }) => {
        const { a, b, jobA } = await twoTabsWithJobInA(newPage);
        // Sync point: B's own executor has started a task of A's job.
        await until("B's executor working on A's job", async () => (await state(b)).startedLines > 0);
        // And B has had a refresh after that (its status poll runs every second): wait for A's job to move on.
        await until("a task done in A's job", async () => {
          const s = await demo(a, () => globalThis.__demo.snapshot());
          return s.tasks.filter((t) => t.status === "completed").length >= 2;
        });
        const sb = await state(b);
        console.log("  tab B while A's job runs:", JSON.stringify(sb));
        const aStatus = (await demo(a, () => globalThis.__demo.snapshot())).status;
        assert.equal(aStatus, "running");
        if (sb.startEnabled) {
          // The visitor of tab B presses the enabled Start button.
          await b.click("#start");
          const sb2 = await until("B's answer", async () => {
            const s = await state(b);
            return s.jobId ? s : null;
          });
          const open = await openJobs(b);
          console.log(`  B pressed Start: B shows job ${sb2.jobId}; A's job ${jobA}; open jobs in IndexedDB: ${open}`);
          console.log(`  B's banner: ${sb2.banner}`);
        }
        assert.equal(sb.jobId, jobA, "tab B shows the job its own executor is running");
        assert.equal(sb.startEnabled, false, "tab B must not offer Start while a job is open");
      }),
  );

  await scenario(
    "two tabs: a job cancelled in tab A is reported as cancelled in tab B's banner",
    () =>
      withBrowser(null, async ({ newPage }) => {
        const a = await newPage("A");
        const b = await newPage("B");
        await openDemo(a);
        await a.click("#start");
        await until("A's job", () => demo(a, () => globalThis.__demo.jobId));
        await openDemo(b);
        await a.click("#cancel");
        await until("B to see the cancel", async () => (await state(b)).jobStatus === "cancelled");
        await until("B's pill", async () => (await state(b)).pill === "cancelled");
        const sb = await state(b);
        console.log("  tab B after A cancelled:", JSON.stringify({ pill: sb.pill, banner: sb.banner }));
        assert.match(sb.banner, /cancelled/, "B's banner tells the job was cancelled");
      }),
  );
}

if (!only || only === "race") {
  await scenario("two tabs pressing Start together start one job", () =>
    withBrowser(null, async ({ newPage }) => {
      const a = await newPage("A");
      const b = await newPage("B");
      for (const p of [a, b]) {
        await openDemo(p);
        // Ready is not drawn yet: the page redraws its buttons a moment after it gets ready.
        await p.waitForSelector("#start:enabled");
      }
      // Both presses at once, each dispatched in its page. Not page.click(): its actionability
      // checks let one press go first, the other tab then follows that job (its Start drawn
      // disabled) and its click waits until the job has ended, then starts a second job.
      const pressed = await Promise.all([a, b].map((p) =>
        p.evaluate(() => {
          const start = document.getElementById("start");
          if (start.disabled) return false;
          start.click();
          return true;
        })
      ));
      assert.deepEqual(pressed, [true, true], "both Start buttons were enabled when pressed");
      // Sync point: both presses handled (a page is busy until its press is) and a job shown.
      const [sa, sb] = await Promise.all([a, b].map(async (p) => {
        await ready(p);
        return await until("a job shown", async () => {
          const s = await state(p);
          return s.jobId ? s : null;
        });
      }));
      const jobs = await storedJobs(a);
      console.log(`  A shows ${sa.jobId}, B shows ${sb.jobId}; jobs in IndexedDB: ${jobs.map((j) => j.id)}`);
      assert.equal(jobs.length, 1, "one job was started");
      assert.equal(sa.jobId, jobs[0].id, "A shows the job");
      assert.equal(sb.jobId, jobs[0].id, "B shows the job");
    }));

  await scenario(
    "a Start press that lands as the tab takes up another tab's job starts no second job",
    () =>
      withBrowser(null, async ({ newPage }) => {
        const { b, jobA } = await twoTabsWithJobInA(newPage);
        // Sync point: B has taken up A's job (its refresh set it; the Start button is drawn
        // disabled a storage read later).
        await until("B showing A's job", async () => {
          const s = await state(b);
          return s.jobId === jobA && s.jobStatus === "running";
        });
        // A press that reached B in between: the button was still enabled. Made here
        // deterministic by enabling it; the race itself is a few milliseconds wide (and the
        // same answer covers a press waiting for the start lock while B's refresh takes up
        // the job).
        await b.evaluate(() => {
          const start = document.getElementById("start");
          start.disabled = false;
          start.click();
        });
        await ready(b); // the press was handled (the page is busy until it is)
        const sb = await state(b);
        const open = await openJobs(b);
        console.log(`  B after the press: shows ${sb.jobId}; open jobs in IndexedDB: ${open}`);
        assert.deepEqual(open, [jobA], "no second job was started");
        assert.equal(sb.jobId, jobA, "B still shows A's job");
      }),
  );
}

if (!only || only === "kind") {
  await scenario(
    "a second tab opened with ?storage=memory does not change what this tab resumes on reload",
    () =>
      withBrowser(null, async ({ newPage }) => {
        const a = await newPage("A");
        await a.goto(`${origin}/?${Q}`); // the plain URL: IndexedDB by default
        await ready(a);
        await a.click("#start");
        const jobA = await until("A's job", () => demo(a, () => globalThis.__demo.jobId));
        const b = await newPage("B");
        await b.goto(`${origin}/?storage=memory`);
        await ready(b);
        await a.reload();
        await ready(a);
        const sa = await state(a);
        console.log(
          "  tab A after its reload:",
          JSON.stringify({ storage: sa.storage, resumed: sa.resumed, banner: sa.banner }),
        );
        assert.equal(sa.storage, "indexeddb", "A reopens the storage its job is in");
        assert.equal(sa.resumed?.jobId, jobA, "A resumes its job after the reload");
      }),
  );
}

if (!only || only === "blocked") {
  await scenario(
    "site data blocked (Block all cookies): the page says so and still runs on memory",
    () =>
      withBrowser({ profile: { default_content_setting_values: { cookies: 2 } } }, async ({ newPage, errors }) => {
        const a = await newPage("A");
        await a.goto(`${origin}/?${Q}&workMs=250`);
        await a.waitForLoadState("load");
        await until("page to react", async () => {
          const s = await state(a);
          return s.banner !== "(hidden)" || errors.length > 0;
        }, 15_000);
        const s = await state(a);
        console.log("  page:", JSON.stringify(s));
        console.log("  errors:", JSON.stringify(errors));
        assert.notEqual(s.banner, "(hidden)", "the page shows a message");
        assert.match(s.banner, /stor|cookie|site data/i, "the message is about storage");
        // The memory storage still works.
        if (s.storage !== "memory") {
          await a.selectOption("#storage", "memory");
          await until("memory storage", async () => (await state(a)).storage === "memory");
        }
        await ready(a);
        await a.fill("#articles", "1");
        await a.click("#start");
        try {
          await until("the memory job completed", async () => (await state(a)).jobStatus === "completed", 60_000);
        } finally {
          console.log("  after Start:", JSON.stringify(await state(a)));
          console.log(
            "  log:",
            await a.evaluate(() =>
              [...document.querySelectorAll("#log li")].slice(0, 6).map((l) => l.textContent).join(" | ")
            ),
          );
          console.log("  errors:", JSON.stringify(errors));
        }
      }),
  );
}

if (!only || only === "hidden") {
  await scenario(
    "a task run twice because of a reload shows it ran twice",
    () =>
      withBrowser(null, async ({ newPage }) => {
        const a = await newPage("A");
        await a.goto(`${origin}/?storage=indexeddb&articles=4&workMs=1500&failRate=0`);
        await ready(a);
        await a.click("#start");
        await until(
          "a fetch running",
          async () => {
            const s = await demo(a, () => globalThis.__demo.snapshot());
            return s?.tasks.some((t) => t.key.includes("fetch") && t.status === "running" && s.starts[t.key] === 1);
          },
          30_000,
          50,
        );
        await a.reload();
        await ready(a);
        await until("the job completed", async () => (await state(a)).jobStatus === "completed", 90_000, 250);
        const snap = await demo(a, () => globalThis.__demo.snapshot());
        const twice = snap.tasks.filter((t) => snap.starts[t.key] >= 2);
        assert.ok(twice.length > 0, "some task was executed twice (interrupted by the reload)");
        await until(
          "table shows the final rows",
          () => a.evaluate(() => !document.querySelector('#table tr[data-status="running"]')),
        );
        const rows = [];
        for (const t of twice) {
          const text = await a.locator(`#table tr[data-key="${t.key}"]`).innerText();
          rows.push({
            key: t.key,
            executions: snap.starts[t.key],
            completions: snap.completions[t.key],
            row: text.replace(/\s+/g, " "),
          });
        }
        console.log("  executed twice:", JSON.stringify(rows));
        for (const r of rows) {
          assert.match(r.row, /2 runs|ran 2|×2|2 executions/, `${r.key}'s row tells it ran twice`);
        }
      }),
  );
}

if (!only || only === "cleared") {
  await scenario(
    "site data cleared while a job runs: the page says its storage is gone",
    () =>
      withBrowser(null, async ({ newPage }) => {
        const a = await tabWithJobUnderWay(newPage);
        const cdp = await a.context().newCDPSession(a);
        await cdp.send("Storage.clearDataForOrigin", { origin, storageTypes: "indexeddb" });
        // Sync point: the page has met the closed storage, through its executor (a commit, a
        // claim, a lease renewal) or its own reads (the status poll), whichever came first:
        // it logs the error and tells it once.
        await until(
          "a storage error in the log",
          () =>
            a.evaluate(() =>
              [...document.querySelectorAll("#log li.level-error")].some((l) => /closed/i.test(l.textContent))
            ),
        );
        const s = await state(a);
        console.log(
          "  page after the clear:",
          JSON.stringify({ pill: s.pill, banner: s.banner, start: s.startEnabled }),
        );
        const firstLog = await a.evaluate(() => document.querySelector("#log li.level-error")?.textContent);
        console.log("  log:", firstLog);
        await until(
          "a banner about the closed storage",
          async () => /closed/i.test((await state(a)).banner),
          10_000,
        );
        await expectStorageLost(a);
      }),
  );
}

if (!only || only === "deleted") {
  await scenario(
    "the database deleted by another tab while a job runs: the page stops showing it running, and a reload says the jobs are gone",
    () =>
      withBrowser(null, async ({ newPage }) => {
        const a = await tabWithJobUnderWay(newPage);
        // Another tab of the origin (any page of it) deletes the database: A's connection
        // closes itself (versionchange) so as not to block the delete.
        const other = await newPage("other");
        await other.goto(`${origin}/favicon.ico`);
        const deleted = await other.evaluate(() =>
          new Promise((resolve) => {
            const req = indexedDB.deleteDatabase("task-core-demo");
            req.onsuccess = () => resolve("deleted");
            req.onerror = () => resolve(`failed: ${req.error}`);
            req.onblocked = () => resolve("blocked");
          })
        );
        assert.equal(deleted, "deleted");
        await until("a banner about the deleted database", async () => /deleted/i.test((await state(a)).banner));
        await expectStorageLost(a);
        // Reloaded, the page opens a new, empty database: it says the old one's jobs are gone
        // (the storage's openReport.recreated), not merely that there is no job yet.
        await a.reload();
        await ready(a);
        const s = await state(a);
        console.log("  page after the reload:", JSON.stringify({ banner: s.banner, job: s.jobId }));
        assert.equal(s.jobId, null, "no job left to show");
        assert.match(s.banner, /deleted/i, "the banner tells the database was deleted");
        assert.match(s.banner, /gone/i, "the banner tells the stored jobs are gone");
      }),
  );
}

closeServer();
console.log(failures ? `\n${failures} scenario(s) FAILED` : "\nall scenarios passed");
process.exit(failures ? 1 : 0);
