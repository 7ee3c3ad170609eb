// Durable claim + commit throughput of the IndexedDB adapter in real Chromium.
//
//   node bench/indexeddb-browser.mjs [--tasks 2000] [--batches 50,200,500] [--durability strict,relaxed] [--rounds 3]
//
// Bundles bench/indexeddb-browser.page.ts with esbuild, serves it from 127.0.0.1, and runs
// it in a persistent Chromium profile (a fresh temporary directory: an incognito context
// would keep IndexedDB in memory). Prints a table and writes bench/results/indexeddb-browser.json.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { chromiumArgs, chromiumPath } from "../scripts/chromium.mjs";
import { build } from "esbuild";
import { chromium } from "playwright-core";

const root = fileURLToPath(new URL("..", import.meta.url));
const arg = (name, fallback) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
};
const config = {
  tasks: Number(arg("tasks", "2000")),
  naiveTasks: Number(arg("naive-tasks", arg("tasks", "2000"))),
  batches: arg("batches", "50,200,500").split(",").map(Number),
  durabilities: arg("durability", "strict,relaxed").split(","),
  rounds: Number(arg("rounds", "3")),
  floorBatch: 200,
};

const bundle = await build({
  entryPoints: [join(root, "bench/indexeddb-browser.page.ts")],
  bundle: true,
  format: "esm",
  platform: "browser",
  target: "es2022",
  write: false,
});
const script = bundle.outputFiles[0].text;
const html = `<!doctype html><meta charset="utf-8"><title>task-core IndexedDB bench</title>
<script type="module" src="/page.js"></script>`;

const server = createServer((req, res) => {
  if (req.url === "/page.js") {
    res.writeHead(200, { "content-type": "text/javascript" }).end(script);
  } else res.writeHead(200, { "content-type": "text/html" }).end(html);
});
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const url = `http://127.0.0.1:${server.address().port}/`;

const profile = mkdtempSync(join(tmpdir(), "task-core-bench-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: chromiumPath,
  headless: true,
  args: [...chromiumArgs],
});
let rows;
try {
  const page = context.pages()[0] ?? await context.newPage();
  page.on("pageerror", (e) => console.error("page error:", e));
  await page.goto(url);
  await page.waitForFunction(() => typeof globalThis.runIndexedDbBench === "function");
  const browser = await page.evaluate(() => navigator.userAgent);
  rows = await page.evaluate((c) => globalThis.runIndexedDbBench(c), config);
  rows.browser = browser;
} finally {
  await context.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}

const median = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const summary = [];
for (const durability of config.durabilities) {
  const runs = (mode, batch) => rows.filter((r) => r.durability === durability && r.mode === mode && r.batch === batch);
  const naive = median(runs("naive", 1).map((r) => r.tasksPerSec));
  const modes = [["naive", 1], ...config.batches.map((b) => ["batched", b]), ["floor", config.floorBatch]];
  for (const [mode, batch] of modes) {
    const rs = runs(mode, batch);
    const med = median(rs.map((r) => r.tasksPerSec));
    summary.push({
      durability,
      mode,
      batch,
      "transactions": rs[0].transactions,
      "tasks/s median": Math.round(med),
      "tasks/s best": Math.max(...rs.map((r) => r.tasksPerSec)),
      "vs naive (median)": `${(med / naive).toFixed(1)}x`,
      "submit ms median": Math.round(median(rs.map((r) => r.submitMs))),
    });
  }
}
console.log(
  `Chromium (${rows.browser}), persistent profile, ${config.tasks} no-op tasks, ${config.rounds} rounds`,
);
console.table(summary);

mkdirSync(join(root, "bench/results"), { recursive: true });
const out = join(root, "bench/results/indexeddb-browser.json");
writeFileSync(
  out,
  JSON.stringify({ date: new Date().toISOString(), browser: rows.browser, config, summary, runs: [...rows] }, null, 2) +
    "\n",
);
console.log(`wrote ${out}`);
