// `npm run test:e2e:disk`: the IndexedDB adapter on a full disk, in real Chromium.
//
// Chromium's profile lives on a 128 MB tmpfs mounted here (root only: skipped, with the
// reason, elsewhere), where a filler file leaves it 48 MB. Chromium then fails IndexedDB
// writes as it does on a user's full disk, which the fake IndexedDB of the other suites
// cannot show: large values are written to files of their own, and such a write fails with
// a DataError "Failed to write blobs (IOError)" (the adapter's StorageQuotaError). One
// scenario, in order:
//
//   1. four tasks are called (their starts are stored) and held; two more wait in the queue;
//   2. jobs of 1 MB inputs are submitted until the disk is full: the first refused
//      `submit()` fails with `StorageQuotaError` and stores nothing of its job;
//   3. the held agents answer 300 KB each: their results cannot be stored, and the
//      executor keeps them and retries (storage:error events name StorageQuotaError) instead
//      of losing or rerunning them; nothing ends while the disk is full;
//   4. the filler is deleted: the results are stored, the queued tasks start, and the job
//      completes with every output intact, each agent called once;
//   5. the page is reloaded: every acknowledged job, input and output reads back intact.
//
// Without /usr/bin/chromium (or CHROMIUM_PATH) this fails when CI is set and skips otherwise.
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { execFileSync } from "node:child_process";
import { closeSync, mkdirSync, openSync, rmSync, statfsSync, writeSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { chromiumArgs, chromiumPath, requireChromium } from "../../scripts/chromium.mjs";

const root = fileURLToPath(new URL("../..", import.meta.url));
requireChromium("test:e2e:disk");

if (process.getuid?.() !== 0) {
  console.log("test:e2e:disk SKIPPED: mounting the small disk (a tmpfs) needs root");
  process.exit(0);
}
const mnt = `/tmp/task-core-idb-disk-${process.pid}`;
mkdirSync(mnt, { recursive: true });
try {
  execFileSync("mount", ["-t", "tmpfs", "-o", "size=128m", "tmpfs", mnt], { stdio: "ignore" });
} catch {
  rmSync(mnt, { recursive: true, force: true });
  console.log(
    "test:e2e:disk SKIPPED: this machine does not let root mount a tmpfs (a container without the capability)",
  );
  process.exit(0);
}

const { build } = await import("esbuild");
const { chromium } = await import("playwright-core");

const bundle = (platform) =>
  build({
    entryPoints: [join(root, "test/e2e/indexeddb-disk.page.ts")],
    bundle: true,
    format: "esm",
    platform,
    target: "es2022",
    write: false,
    logLevel: "error",
  }).then((r) => r.outputFiles[0].text);
const script = await bundle("browser");
// The same module here, for the values the page makes from a seed.
const { digest, seededText } = await import(
  `data:text/javascript;base64,${Buffer.from(await bundle("neutral")).toString("base64")}`
);

const html = `<!doctype html><meta charset="utf-8"><title>task-core IndexedDB on a full disk</title>
<script type="module" src="/page.js"></script>`;
const server = createServer((req, res) => {
  if (req.url === "/page.js") res.writeHead(200, { "content-type": "text/javascript" }).end(script);
  else if (req.url === "/" || req.url?.startsWith("/?")) res.writeHead(200, { "content-type": "text/html" }).end(html);
  else if (req.url === "/favicon.ico") res.writeHead(204).end();
  else res.writeHead(404).end();
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const origin = `http://127.0.0.1:${server.address().port}`;

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const freeBytes = () => {
  const s = statfsSync(mnt);
  return s.bavail * s.bsize;
};
/** Poll `check` (which answers a truthy value when done) every 100 ms for up to `ms`. */
async function until(what, ms, check) {
  const end = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > end) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await sleep(100);
  }
}

const filler = join(mnt, "filler");
/** Write a file of `bytes` (random: tmpfs stores what it is given) to leave the disk little room. */
function fill(bytes) {
  const fd = openSync(filler, "w");
  try {
    const chunk = Buffer.alloc(1 << 20);
    for (let left = bytes; left > 0; left -= chunk.length) {
      for (let i = 0; i < chunk.length; i += 4) chunk.writeUInt32LE((Math.random() * 2 ** 32) >>> 0, i);
      writeSync(fd, chunk, 0, Math.min(chunk.length, left));
    }
  } finally {
    closeSync(fd);
  }
}

const started = Date.now();
const pageErrors = [];
let context;
let ok = false;
try {
  // The filler is written before Chromium starts, as when a user's disk is nearly full.
  fill(Math.max(0, freeBytes() - 48 * 2 ** 20));
  context = await chromium.launchPersistentContext(join(mnt, "profile"), {
    executablePath: chromiumPath,
    headless: true,
    args: [...chromiumArgs],
  });
  const page = await context.newPage();
  page.on("pageerror", (e) => pageErrors.push(String(e?.stack ?? e)));
  const loaded = () => page.waitForFunction(() => typeof globalThis.disk?.open === "function", null);
  await page.goto(`${origin}/`);
  await loaded();
  const db = "task-core-disk";
  await page.evaluate((name) => globalThis.disk.open(name), db);

  // 1. Four agents called and held, two tasks queued behind them.
  const OUTPUTS = 6;
  const OUTPUT_BYTES = 300_000;
  const SEED0 = 7000;
  await page.evaluate(() => globalThis.disk.hold());
  const outputsJob = await page.evaluate(
    ([n, bytes, seed0]) => globalThis.disk.submitOutputs(n, bytes, seed0),
    [OUTPUTS, OUTPUT_BYTES, SEED0],
  );
  await page.evaluate(() => globalThis.disk.start());
  await until("four agents called", 20_000, async () => {
    const { calls } = await page.evaluate(() => globalThis.disk.report());
    return Object.keys(calls).length === 4;
  });

  // 2. Fill the disk with jobs of 1 MB inputs until one is refused.
  const BLOB = 1_000_000;
  const acknowledged = [];
  let refused = null;
  for (let seed = 1; seed <= 150 && refused === null; seed++) {
    const r = await page.evaluate(([s, bytes]) => globalThis.disk.submitBlob(s, bytes), [seed, BLOB]);
    if (r.ok) acknowledged.push({ seed, id: r.id });
    else refused = { seed, error: r.error };
  }
  assert.ok(refused, `a submit was refused once the disk filled (${acknowledged.length} were stored)`);
  assert.equal(
    refused.error.name,
    "StorageQuotaError",
    `the refused submit failed with StorageQuotaError: ${refused.error.message}`,
  );
  const whileFull = await page.evaluate(() => globalThis.disk.jobs());
  const blobs = whileFull.filter((j) => j.name.startsWith("blob-"));
  assert.deepEqual(
    blobs.map((j) => j.name).sort(),
    acknowledged.map((a) => `blob-${a.seed}`).sort(),
    "every acknowledged job is stored, and nothing of the refused one",
  );

  // 3. The held agents answer: their results cannot be stored yet.
  await page.evaluate(() => globalThis.disk.release());
  await until("two refused commits of the results", 30_000, async () => {
    const { storageErrors } = await page.evaluate(() => globalThis.disk.report());
    return (storageErrors.StorageQuotaError ?? 0) >= 2;
  });
  const full = await page.evaluate(() => globalThis.disk.report());
  assert.equal(full.stats.completed, 0, "no result was reported stored while the disk was full");
  assert.equal(full.stats.lost, 0, "no result was given up while the disk was full");
  const names = Object.keys(full.storageErrors).filter((n) => n !== "StorageQuotaError");
  assert.deepEqual(names, [], "every storage error was a StorageQuotaError");
  const outputsWhileFull = (await page.evaluate(() => globalThis.disk.jobs())).find((j) => j.id === outputsJob);
  assert.equal(outputsWhileFull.status, "running", "the job did not end while the disk was full");

  // 4. Room again: the results are stored and the queued tasks run.
  rmSync(filler);
  const waited = await page.evaluate((id) => globalThis.disk.wait(id), outputsJob);
  assert.ok(waited.ok, `the job completed once the disk had room: ${JSON.stringify(waited.error ?? null)}`);
  const want = Object.fromEntries(
    Array.from({ length: OUTPUTS }, (_, i) => [`t${i}`, digest(seededText(SEED0 + i, OUTPUT_BYTES))]),
  );
  assert.deepEqual(waited.outputs, want, "every output is stored intact");
  const after = await page.evaluate(() => globalThis.disk.report());
  assert.deepEqual(
    after.calls,
    Object.fromEntries(Object.keys(want).map((k) => [k, 1])),
    "each agent was called once: no result was lost or run again",
  );
  const more = await page.evaluate(([s, bytes]) => globalThis.disk.submitBlob(s, bytes), [refused.seed, BLOB]);
  assert.ok(more.ok, `a submit works again once the disk has room: ${JSON.stringify(more.error ?? null)}`);
  acknowledged.push({ seed: refused.seed, id: more.id });
  await page.evaluate(() => globalThis.disk.close());

  // 5. After a reload, everything acknowledged reads back intact.
  await page.reload();
  await loaded();
  await page.evaluate((name) => globalThis.disk.open(name), db);
  const stored = await page.evaluate(() => globalThis.disk.jobs());
  for (const { seed, id } of acknowledged) {
    const job = stored.find((j) => j.id === id);
    assert.ok(job, `job blob-${seed} is stored after the reload`);
    assert.equal(job.tasks[0].blob, digest(seededText(seed, BLOB)), `job blob-${seed} keeps its input intact`);
  }
  const done = stored.find((j) => j.id === outputsJob);
  assert.equal(done.status, "completed");
  assert.deepEqual(
    Object.fromEntries(done.tasks.map((t) => [t.key, t.output])),
    want,
    "the outputs read back intact after the reload",
  );
  assert.deepEqual(done.tasks.map((t) => t.attempts), Array(OUTPUTS).fill(1), "every task took one attempt");
  await page.evaluate(() => globalThis.disk.close());
  assert.deepEqual(pageErrors, [], "no uncaught error in the page");

  ok = true;
  console.log(
    `  ✓ a full disk in Chromium: ${acknowledged.length - 1} jobs of 1 MB stored before a submit was refused with ` +
      `StorageQuotaError; results kept through ${full.storageErrors.StorageQuotaError} refused commits, then stored ` +
      `once the disk had room (${OUTPUTS} tasks, each called once); intact after a reload ` +
      `(${((Date.now() - started) / 1000).toFixed(1)} s)`,
  );
} catch (e) {
  console.error(`  ✗ a full disk in Chromium\n    ${String(e?.stack ?? e).split("\n").join("\n    ")}`);
} finally {
  await context?.close().catch(() => {});
  server.close();
  try {
    execFileSync("umount", [mnt], { stdio: "ignore" });
  } catch {
    execFileSync("umount", ["-l", mnt], { stdio: "ignore" });
  }
  rmSync(mnt, { recursive: true, force: true });
}
console.log(ok ? "1 passed, 0 failed" : "0 passed, 1 failed");
process.exit(ok ? 0 : 1);
