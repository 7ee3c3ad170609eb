/**
 * The page side of `test/e2e/indexeddb-tabs.e2e.mjs`: one executor per tab on a shared
 * IndexedDB database, driven from Node through `globalThis.tabs`.
 *
 * The agent `work` does what the tab's configuration says: `random` sleeps a few random
 * milliseconds, `slow` waits 60 s unless its signal aborts, `quick` returns at once. Each
 * execution is reported before the agent does anything else: to Node through the exposed
 * function `__tcReport` (awaited, so Node has counted an execution before its task can
 * complete) and, on request, in a localStorage counter `exec:<key>` (synchronous, so it
 * survives a reload of this tab).
 *
 * The agent `stress` (the stress scenario) does what its input's plan says, as in
 * `test/chaos/stress.ts`: `ok` returns, `flaky` throws a retryable error on attempt 1,
 * `fatal` throws a `NonRetryableError`, `timeout` waits on attempt 1 until its signal
 * aborts. It reports its start and its end, each awaited, so Node sees who holds a task.
 */

import { openIndexedDbStorage } from "../../adapters/indexeddb.ts";
import type { Agent } from "../../src/agent.ts";
import type { RetryOptions } from "../../src/backoff.ts";
import { NonRetryableError } from "../../src/errors.ts";
import { Executor, type ExecutorStats } from "../../src/executor.ts";
import { AgentRegistry } from "../../src/registry.ts";
import type { Storage } from "../../src/storage.ts";
import { isFinal, isJobFinal } from "../../src/status.ts";
import type { Durability, JobSpec, JsonValue, Task } from "../../src/types.ts";

/** How a tab runs. */
export interface TabConfig {
  /** The IndexedDB database name (shared by the tabs of one scenario). */
  db: string;
  /** This tab's label in reports. */
  tab: string;
  /** What the agent `work` does here. */
  mode: "random" | "slow" | "quick";
  /** Random delay range of `random` (ms). */
  minDelayMs?: number;
  maxDelayMs?: number;
  /** Count executions in localStorage `exec:<key>` too. */
  countInLocalStorage?: boolean;
  /** Executor options. */
  maxWorkers?: number;
  queueCapacity?: number;
  leaseMs?: number;
  heartbeatMs?: number;
  recoveryIntervalMs?: number;
  pollIntervalMs?: number;
  retry?: Partial<RetryOptions>;
  /** Register `work` under these names too (the tab runs them as it runs `work`). */
  aliases?: string[];
  /** Executor option `claimAgents`. */
  claimAgents?: "all" | "registered" | string[];
  /** Leave out the agents `work` and `stress` (the tab then runs only its aliases). */
  onlyAliases?: boolean;
}

/** One task as Node sees it. */
export interface TaskView {
  key: string;
  status: string;
  attempts: number;
  output: JsonValue;
  error: string | null;
}

/** A job and its tasks as Node sees them. */
export interface JobView {
  id: string;
  status: string;
  tasks: TaskView[];
}

/** A task as the stress scenario checks it. */
export interface StressTaskView {
  id: string;
  jobId: string;
  key: string;
  status: string;
  /** Whether the status is final (`isFinal`). */
  final: boolean;
  durability: Durability;
  input: JsonValue;
  /** Ids of the tasks it depends on. */
  dependencies: string[];
}

/** What a report to Node says: an execution started, ended (`stress`) or saw its signal abort (`work`). */
export interface Report {
  event: "start" | "end" | "abort";
  tab: string;
  /** The task's id and key. */
  id: string;
  key: string;
  attempt: number;
}

type Reporter = (r: Report) => Promise<void>;

let storage: Storage | null = null;
let executor: Executor | null = null;
let config: TabConfig | null = null;
/** End events (`job:completed`, `job:failed`, `job:cancelled`) this tab's executor emitted, by job id. */
let jobEnds: Record<string, string[]> = {};
/** The slowest round trip of a `stress` start report to Node so far (ms). */
let slowestReportMs = 0;

function report(r: Report): Promise<void> {
  const fn = (globalThis as { __tcReport?: Reporter }).__tcReport;
  if (typeof fn !== "function") throw new Error("__tcReport is not exposed to this page");
  return fn(r);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Resolve never; reject with the signal's reason once it aborts (at once if it has). */
function untilAborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    else signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

function view(t: Task): TaskView {
  return { key: t.key, status: t.status, attempts: t.attempts, output: t.output, error: t.error?.message ?? null };
}

async function jobView(id: string, s: Storage = need(storage, "storage")): Promise<JobView> {
  const job = await s.getJob(id);
  if (!job) throw new Error(`job ${id} not found`);
  const tasks = await s.listTasks({ jobId: id });
  return { id, status: job.status, tasks: tasks.map(view) };
}

function need<T>(value: T | null, what: string): T {
  if (value === null) throw new Error(`${what} is not open: call tabs.open() first`);
  return value;
}

function registry(c: TabConfig): AgentRegistry {
  const registry = new AgentRegistry();
  const work: Agent<JsonValue, JsonValue> = {
    name: "work",
    description: "Reports its execution, then sleeps (random), waits 60 s (slow) or returns (quick)",
    async execute(input: JsonValue, ctx): Promise<JsonValue> {
      const { id, key, attempt } = ctx.task;
      if (c.countInLocalStorage) {
        const name = `exec:${key}`;
        localStorage.setItem(name, String(Number(localStorage.getItem(name) ?? "0") + 1));
      }
      await report({ event: "start", tab: c.tab, id, key, attempt });
      try {
        if (c.mode === "slow") await sleep(60_000, ctx.signal);
        else if (c.mode === "random") {
          const lo = c.minDelayMs ?? 1;
          const hi = c.maxDelayMs ?? 20;
          await sleep(lo + Math.random() * (hi - lo), ctx.signal);
        }
      } catch (e) {
        void report({ event: "abort", tab: c.tab, id, key, attempt }).catch(() => {});
        throw e;
      }
      return { by: c.tab, input };
    },
  };
  for (const name of c.aliases ?? []) registry.register({ ...work, name });
  if (c.onlyAliases) return registry;
  registry.register(work);
  registry.register({
    name: "stress",
    description: "Reports its start and end; returns, fails or times out as its input's plan says",
    async execute(input: JsonValue, ctx): Promise<JsonValue> {
      const { plan } = input as { plan: "ok" | "flaky" | "fatal" | "timeout" };
      const { id, key, attempt } = ctx.task;
      const t0 = performance.now();
      await report({ event: "start", tab: c.tab, id, key, attempt });
      slowestReportMs = Math.max(slowestReportMs, performance.now() - t0);
      try {
        if (plan === "fatal") throw new NonRetryableError("planned permanent failure");
        if (attempt === 1 && plan === "flaky") throw new Error("planned retryable failure");
        if (attempt === 1 && plan === "timeout") await untilAborted(ctx.signal); // ends at its timeout
        return attempt;
      } finally {
        await report({ event: "end", tab: c.tab, id, key, attempt });
      }
    },
  });
  return registry;
}

const tabs = {
  /** Open the database and start an executor on it. */
  async open(c: TabConfig): Promise<void> {
    if (executor) throw new Error("this tab already runs an executor");
    config = c;
    storage = await openIndexedDbStorage({ name: c.db });
    const options = {
      storage,
      registry: registry(c),
      id: `executor-${c.tab}`,
      ...(c.maxWorkers !== undefined && { maxWorkers: c.maxWorkers }),
      ...(c.queueCapacity !== undefined && { queueCapacity: c.queueCapacity }),
      ...(c.leaseMs !== undefined && { leaseMs: c.leaseMs }),
      ...(c.heartbeatMs !== undefined && { heartbeatMs: c.heartbeatMs }),
      ...(c.recoveryIntervalMs !== undefined && { recoveryIntervalMs: c.recoveryIntervalMs }),
      ...(c.pollIntervalMs !== undefined && { pollIntervalMs: c.pollIntervalMs }),
      ...(c.retry !== undefined && { retry: c.retry }),
      ...(c.claimAgents !== undefined && { claimAgents: c.claimAgents }),
    };
    executor = new Executor(options);
    jobEnds = {};
    for (const event of ["job:completed", "job:failed", "job:cancelled"] as const) {
      executor.on(event, ({ job }) => (jobEnds[job.id] ??= []).push(event));
    }
    executor.start();
  },

  /** Submit a job of `count` independent `work` tasks keyed `<prefix><n>`; returns its id. */
  async submit(name: string, prefix: string, count: number): Promise<string> {
    const e = need(executor, "executor");
    const tasks = Array.from({ length: count }, (_, i) => ({
      key: `${prefix}${String(i).padStart(3, "0")}`,
      agent: "work",
      input: i,
    }));
    return (await e.submit({ name, tasks })).id;
  },

  /** Submit jobs one after the other; returns their ids. */
  async submitJobs(specs: JobSpec[]): Promise<string[]> {
    const e = need(executor, "executor");
    const ids = [];
    for (const spec of specs) ids.push((await e.submit(spec)).id);
    return ids;
  },

  /** Of the jobs `ids`, those not ended yet (as stored now). */
  async openJobs(ids: string[]): Promise<string[]> {
    const s = need(storage, "storage");
    const open = [];
    for (const id of ids) {
      const job = await s.getJob(id);
      if (!job || !isJobFinal(job.status)) open.push(id);
    }
    return open;
  },

  /** Every stored task of the jobs `ids`. */
  async stressTasks(ids: string[]): Promise<StressTaskView[]> {
    const s = need(storage, "storage");
    const out: StressTaskView[] = [];
    for (const jobId of ids) {
      for (const t of await s.listTasks({ jobId })) {
        const { id, key, status, durability, input, dependencies } = t;
        out.push({ id, jobId, key, status, final: isFinal(t), durability, input, dependencies: [...dependencies] });
      }
    }
    return out;
  },

  /** Wait for a job to end (through this tab's executor) and return it. */
  async wait(id: string): Promise<JobView> {
    const e = need(executor, "executor");
    const handle = await e.job(id);
    await handle.wait().catch(() => {}); // a failed job is reported by its view
    return await jobView(id);
  },

  /** The job as stored now. */
  job(id: string): Promise<JobView> {
    return jobView(id);
  },

  /** The job as stored now, read through a connection of its own (no executor needed in this tab). */
  async peek(db: string, id: string): Promise<JobView> {
    const s = await openIndexedDbStorage({ name: db, broadcast: false });
    try {
      return await jobView(id, s);
    } finally {
      await s.close();
    }
  },

  /** The ids of the stored jobs still running. */
  async runningJobs(): Promise<string[]> {
    return (await need(storage, "storage").listJobs({ status: "running" })).map((j) => j.id);
  },

  /**
   * After a reload: open the database, read what is stored (no executor of this tab runs
   * yet, so this is the state the reload left), then start an executor, find the
   * unfinished job with `listJobs({ status: "running" })`, reattach with `executor.job(id)`
   * and wait for it.
   */
  async resume(c: TabConfig): Promise<{ before: JobView; after: JobView }> {
    if (executor) throw new Error("this tab already runs an executor");
    config = c;
    storage = await openIndexedDbStorage({ name: c.db });
    const running = await storage.listJobs({ status: "running" });
    if (running.length !== 1) throw new Error(`expected one running job after the reload, found ${running.length}`);
    const id = running[0]!.id;
    const before = await jobView(id);
    await storage.close();
    storage = null;
    await tabs.open(c);
    return { before, after: await tabs.wait(id) };
  },

  /**
   * Shut the executor down (every result it holds is stored first) and return what it
   * counted: its stats, the job end events it emitted, the slowest start report, and
   * whether the tab is visible. The storage stays open.
   */
  async finish(): Promise<
    { stats: ExecutorStats; jobEnds: Record<string, string[]>; slowestReportMs: number; visibility: string }
  > {
    const e = need(executor, "executor");
    await e.shutdown();
    return { stats: e.stats(), jobEnds, slowestReportMs, visibility: document.visibilityState };
  },

  /** This tab's executor counters. */
  stats(): ExecutorStats {
    return need(executor, "executor").stats();
  },

  /** The localStorage execution counters `exec:<key>`, by key. */
  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    for (let i = 0; i < localStorage.length; i++) {
      const name = localStorage.key(i);
      if (name?.startsWith("exec:")) out[name.slice(5)] = Number(localStorage.getItem(name));
    }
    return out;
  },

  /** Shut the executor down and close the storage. */
  async close(): Promise<void> {
    await executor?.shutdown({ graceMs: 0 });
    await storage?.close();
    executor = null;
    storage = null;
    config = null;
    jobEnds = {};
    slowestReportMs = 0;
  },

  /** The tab's configuration (for debugging). */
  config(): TabConfig | null {
    return config;
  },
};

(globalThis as { tabs?: typeof tabs }).tabs = tabs;
