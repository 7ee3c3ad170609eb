/**
 * `npm start`: a real workflow on the embedded default storage (SQLite in WASM, kept in
 * ./task_db/). Press Ctrl-C to stop it gracefully; run it again and it resumes the job
 * where it stopped, without redoing completed tasks.
 *
 * The workflow builds a digest of a small (simulated, offline) set of articles: a `plan`
 * task spawns one `fetch` → `summarize` pair per article at run time, and a `report`
 * task joins the summaries. Work takes a random few hundred milliseconds and fails now
 * and then, so retries with backoff show up too.
 */
import { mkdirSync } from "node:fs";
import { openSqlJsFileStorage } from "../adapters/sqljs-file.ts";
import { defineAgent } from "../src/agent.ts";
import { Executor } from "../src/executor.ts";
import { AgentRegistry } from "../src/registry.ts";
import type { JsonValue } from "../src/types.ts";

const dir = process.env.TASK_DB_DIR ?? "task_db";
const articles = Number(process.env.ARTICLES ?? 12);
const speed = Number(process.env.WORK_MS ?? 400);
mkdirSync(dir, { recursive: true });

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      reject(signal.reason);
    }, { once: true });
  });

const log = (line: string) => process.stdout.write(`${line}\n`);

const plan = defineAgent({
  name: "plan",
  description: "Decides which articles to fetch and spawns the work for each",
  execute: (input: { count: number }, ctx) => {
    const summaries: string[] = [];
    for (let i = 1; i <= input.count; i++) {
      // Transient failures are retried: with 8 attempts a fetch fails for good about once in 4 million.
      ctx.spawn({ key: `fetch-${i}`, agent: "fetch", input: { id: i }, maxAttempts: 8 });
      ctx.spawn({ key: `summarize-${i}`, agent: "summarize", input: { id: i }, dependsOn: [`fetch-${i}`] });
      summaries.push(`summarize-${i}`);
    }
    ctx.spawn({ key: "report", agent: "report", input: null, dependsOn: summaries });
    return { planned: input.count };
  },
});

const fetchAgent = defineAgent({
  name: "fetch",
  description: "Fetches one article (simulated: a delay and an occasional transient failure)",
  execute: async (input: { id: number }, ctx) => {
    await sleep(speed * (0.5 + Math.random()), ctx.signal);
    if (Math.random() < 0.15) throw new Error(`article ${input.id}: connection reset (simulated)`);
    log(`ran ${ctx.task.key}`);
    return { id: input.id, words: 300 + Math.floor(Math.random() * 1200) };
  },
});

const summarize = defineAgent({
  name: "summarize",
  description: "Summarizes one fetched article",
  execute: async (input: { id: number }, ctx) => {
    const deps = await ctx.dependencyOutputs();
    const article = Object.values(deps)[0] as { words: number };
    await sleep(speed * (0.5 + Math.random()), ctx.signal);
    log(`ran ${ctx.task.key}`);
    return `Article ${input.id}: ${Math.ceil(article.words / 100)} key points`;
  },
});

const report = defineAgent({
  name: "report",
  description: "Joins every summary into the digest",
  execute: async (_input: JsonValue, ctx) => {
    const deps = await ctx.dependencyOutputs();
    log(`ran ${ctx.task.key}`);
    return Object.keys(deps).sort((a, b) => Number(a.split("-")[1]) - Number(b.split("-")[1])).map((k) => deps[k]!);
  },
});

const registry = new AgentRegistry();
registry.register(plan).register(fetchAgent).register(summarize).register(report);

const storage = await openSqlJsFileStorage(`${dir}/tasks.sqlite`);
const executor = new Executor({
  storage,
  registry,
  // One process at a time holds the database (its lock file), so a fixed id is safe: a run
  // after a crash or a forced stop takes back the tasks the last one held at once, instead
  // of waiting for their leases to expire.
  id: "npm-start",
  maxWorkers: 4,
  retry: { delayMs: 200, factor: 2, maxDelayMs: 2000 },
  shutdownGraceMs: 5000,
});

// Resume the unfinished digest if a previous run was interrupted, else start a new one.
const unfinished = (await storage.listJobs({ status: "running" })).find((j) => j.name === "article-digest");
const job = unfinished ? await executor.job(unfinished.id) : await executor.submit({
  name: "article-digest",
  tasks: [{ key: "plan", agent: "plan", input: { count: articles } }],
});
log(unfinished ? `Resuming job ${job.id}` : `Started job ${job.id}`);

const tty = process.stderr.isTTY;
const started = Date.now();
async function drawProgress(): Promise<void> {
  const s = await job.status();
  const done = s.taskCount - s.openCount;
  const width = 30;
  const filled = s.taskCount ? Math.round((done / s.taskCount) * width) : 0;
  const bar = `[${"#".repeat(filled)}${".".repeat(width - filled)}] ${done}/${s.taskCount} tasks`;
  if (tty) process.stderr.write(`\r${bar}  ${((Date.now() - started) / 1000).toFixed(1)} s `);
}
const ticker = setInterval(() => void drawProgress().catch(() => {}), 200);
executor.on("task:retrying", (e) => log(`retrying ${e.task.key} in ${e.delayMs} ms: ${e.error.message}`));

let interrupted = false;
const stop = new AbortController();
process.on("SIGINT", () => {
  if (interrupted) {
    // A second Ctrl-C: stop now; running tasks are handed back and run again next time.
    log("\nStopping now");
    void executor.shutdown({ graceMs: 0 });
    return;
  }
  interrupted = true;
  log("\nInterrupted: finishing running tasks, then stopping (Ctrl-C again stops at once; `npm start` resumes)");
  stop.abort();
});
const running = executor.run(stop.signal);

try {
  const result = await Promise.race([job.wait(), running.then(() => null)]);
  if (result) {
    clearInterval(ticker);
    await drawProgress();
    if (tty) process.stderr.write("\n");
    log("Digest:");
    for (const line of result["plan/report"] as string[]) log(`  ${line}`);
    log(`Job ${job.id} completed: ${(await job.status()).taskCount} tasks`);
  }
} catch (e) {
  log(`Job failed: ${(e as Error).message}`);
  process.exitCode = 1;
} finally {
  clearInterval(ticker);
  if (!interrupted) await executor.shutdown();
  await running;
  await storage.close();
  if (interrupted) log("Stopped. State is saved in " + dir);
}
