/**
 * The demo's workflow, an offline "article digest": `plan` spawns, at run time, a
 * `fetch` → `parse` → `summarize` chain per article and a `report` that joins every
 * summary. Work is simulated (random delays, random transient failures, no network), and
 * a failure can be injected into the next fetch.
 *
 * Every agent counts its executions per task key in a {@link StartCounter} (the page keeps
 * it in `sessionStorage`, which survives a reload), and its successful completions in the
 * storage's shared state, written in the same commit as the completion: so the page can
 * show, and the end-to-end test can check, that no task ever completed twice.
 *
 * @module
 */

import {
  AgentRegistry,
  defineAgent,
  type JobSpec,
  type JsonValue,
  NonRetryableError,
  type ReadonlyStorage,
  type TaskContext,
} from "../../mod.ts";

/** The job name the page looks for when it resumes. */
export const JOB_NAME = "article-digest";

/** The shared-state scope holding completion counts (key `<jobId>/<taskKey>`). */
export const RUNS_SCOPE = "task-core-demo:completions";

/** What a digest job is made of; kept in the task inputs, so a resumed job keeps its settings. */
export interface DigestSettings {
  /** Articles to fetch, parse and summarize (1..40). */
  articles: number;
  /** Mean simulated work per task in milliseconds. */
  workMs: number;
  /** Chance that a fetch attempt fails with a transient error (parse and summarize: half of it). */
  failRate: number;
}

/** The defaults of the page. */
export const DEFAULT_SETTINGS: DigestSettings = Object.freeze({ articles: 8, workMs: 700, failRate: 0.15 });

/** Clamp settings read from a form or a URL into their ranges. */
export function normalizeSettings(input: Partial<Record<keyof DigestSettings, unknown>>): DigestSettings {
  const num = (v: unknown, fallback: number) => {
    const n = typeof v === "string" && v.trim() !== "" ? Number(v) : typeof v === "number" ? v : NaN;
    return Number.isFinite(n) ? n : fallback;
  };
  return {
    articles: Math.round(Math.min(40, Math.max(1, num(input.articles, DEFAULT_SETTINGS.articles)))),
    workMs: Math.round(Math.min(10_000, Math.max(1, num(input.workMs, DEFAULT_SETTINGS.workMs)))),
    failRate: Math.min(0.9, Math.max(0, num(input.failRate, DEFAULT_SETTINGS.failRate))),
  };
}

/** A failure to inject into the next fetch: retried (`transient`) or failing the task for good (`fatal`). */
export type Injection = "transient" | "fatal";

/** A queue of failures to inject; each fetch attempt takes at most one. */
export class FailureInjector {
  #armed: Injection[] = [];
  #listeners = new Set<() => void>();

  /** Make a coming fetch attempt fail. */
  arm(kind: Injection): void {
    if (kind !== "transient" && kind !== "fatal") throw new TypeError(`Unknown injection ${String(kind)}`);
    this.#armed.push(kind);
    this.#changed();
  }

  /** Take the next injection, if any. */
  take(): Injection | undefined {
    const kind = this.#armed.shift();
    if (kind) this.#changed();
    return kind;
  }

  /** The injections waiting for a fetch. */
  get armed(): readonly Injection[] {
    return this.#armed;
  }

  /** Drop every waiting injection. */
  clear(): void {
    if (this.#armed.length === 0) return;
    this.#armed = [];
    this.#changed();
  }

  /** Be told when the queue changes. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #changed(): void {
    for (const l of this.#listeners) l();
  }
}

/** The part of the Web Storage API the counter needs (`sessionStorage` in the page). */
export interface KeyValueStore {
  /** Read an item. */
  getItem(key: string): string | null;
  /** Write an item. */
  setItem(key: string, value: string): void;
}

/** Executions (attempts started) per task key, per job. */
export interface StartCounter {
  /** Count one execution of `key` in `jobId`. */
  count(jobId: string, key: string): void;
  /** The counts of one job. */
  get(jobId: string): Record<string, number>;
}

/** A counter kept in `store` (one JSON item per job), or in memory without one. */
export function createStartCounter(store: KeyValueStore | null, prefix = "task-core-demo:starts:"): StartCounter {
  const memory = new Map<string, string>();
  const read = (k: string) => (store ? store.getItem(k) : memory.get(k) ?? null);
  const write = (k: string, v: string) => (store ? store.setItem(k, v) : memory.set(k, v));
  const get = (jobId: string): Record<string, number> => {
    try {
      const parsed: unknown = JSON.parse(read(prefix + jobId) ?? "{}");
      return parsed && typeof parsed === "object" ? { ...(parsed as Record<string, number>) } : {};
    } catch {
      return {};
    }
  };
  return {
    count(jobId, key) {
      const counts = get(jobId);
      counts[key] = (counts[key] ?? 0) + 1;
      write(prefix + jobId, JSON.stringify(counts));
    },
    get,
  };
}

/** What the agents need from the page. */
export interface WorkflowOptions {
  /** Failures to inject into fetches. */
  injector: FailureInjector;
  /** Where executions are counted. */
  starts: StartCounter;
  /** Random source (default `Math.random`). */
  random?: () => number;
}

const TITLES = [
  "Durable queues in the browser",
  "Why leases beat locks",
  "IndexedDB transactions, explained",
  "SQLite everywhere with WASM",
  "Backoff with full jitter",
  "Designing idempotent tasks",
  "The case for group commit",
  "DAGs for everyday workflows",
  "Surviving a tab reload",
  "At-least-once, honestly",
  "Scheduling without a server",
  "Sorting ids by time",
];

/** Wait `ms`, or reject with the signal's reason when it aborts. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/** Simulate `ms` of work in `steps`, reporting progress after each step. */
async function work<I>(ctx: TaskContext<I>, ms: number, steps: number, label: string): Promise<void> {
  for (let i = 1; i <= steps; i++) {
    await sleep(ms / steps, ctx.signal);
    ctx.progress(i / steps, `${label} ${i}/${steps}`);
  }
}

/** Input of the per-article agents. */
export interface ArticleInput {
  /** Article number, from 1. */
  id: number;
  /** Its title. */
  title: string;
  /** Mean simulated work. */
  workMs: number;
  /** Transient failure chance of one attempt. */
  failRate: number;
}

/** Count a completion in shared state; stored with the task's completion, atomically. */
async function countCompletion<I>(ctx: TaskContext<I>): Promise<void> {
  const kv = ctx.state(RUNS_SCOPE);
  const key = `${ctx.task.jobId}/${ctx.task.key}`;
  const before = await kv.get(key);
  kv.set(key, (typeof before === "number" ? before : 0) + 1);
}

/** The agents of the workflow. */
export function createAgents(options: WorkflowOptions) {
  const random = options.random ?? Math.random;
  const { injector, starts } = options;
  const duration = (mean: number) => mean * (0.5 + random());
  const flaky = (rate: number, message: string) => {
    if (random() < rate) throw new Error(`${message} (simulated)`);
  };
  const started = <I>(ctx: TaskContext<I>) => starts.count(ctx.task.jobId, ctx.task.key);

  const plan = defineAgent({
    name: "plan",
    description: "Reads the (simulated) feed and spawns a fetch → parse → summarize chain per article, then the report",
    execute: async (input: DigestSettings, ctx) => {
      started(ctx);
      await work(ctx, duration(input.workMs / 2), 2, "reading feed");
      const summaries: string[] = [];
      for (let id = 1; id <= input.articles; id++) {
        const article: ArticleInput = {
          id,
          title: TITLES[(id - 1) % TITLES.length]! +
            (id > TITLES.length ? ` (part ${Math.ceil(id / TITLES.length)})` : ""),
          workMs: input.workMs,
          failRate: input.failRate,
        };
        const a = article as unknown as JsonValue;
        ctx.spawn({ key: `fetch-${id}`, agent: "fetch", input: a, taskType: "io" });
        ctx.spawn({ key: `parse-${id}`, agent: "parse", input: a, dependsOn: [`fetch-${id}`] });
        ctx.spawn({ key: `summarize-${id}`, agent: "summarize", input: a, dependsOn: [`parse-${id}`] });
        summaries.push(`summarize-${id}`);
      }
      ctx.spawn({ key: "report", agent: "report", input: { articles: input.articles }, dependsOn: summaries });
      await countCompletion(ctx);
      return { planned: input.articles };
    },
  });

  const fetchAgent = defineAgent({
    name: "fetch",
    description: "Downloads one article (simulated: a delay, sometimes a connection reset)",
    execute: async (input: ArticleInput, ctx) => {
      started(ctx);
      const injected = injector.take();
      await work(ctx, duration(input.workMs), 4, "downloading");
      if (injected === "fatal") {
        throw new NonRetryableError(`Injected failure: article ${input.id} is gone (HTTP 410)`);
      }
      if (injected === "transient") throw new Error(`Injected failure: connection reset on article ${input.id}`);
      flaky(input.failRate, `Connection reset on article ${input.id}`);
      await countCompletion(ctx);
      return { id: input.id, title: input.title, bytes: 2000 + Math.floor(random() * 30_000) };
    },
  });

  const parse = defineAgent({
    name: "parse",
    description: "Extracts the text of a fetched article",
    execute: async (input: ArticleInput, ctx) => {
      started(ctx);
      const deps = await ctx.dependencyOutputs();
      const page = Object.values(deps)[0] as { bytes?: number } | undefined;
      await work(ctx, duration(input.workMs * 0.6), 2, "parsing");
      flaky(input.failRate / 2, `Malformed markup in article ${input.id}`);
      await countCompletion(ctx);
      const words = Math.round((page?.bytes ?? 6000) / 6);
      return { id: input.id, title: input.title, words, paragraphs: Math.max(1, Math.round(words / 90)) };
    },
  });

  const summarize = defineAgent({
    name: "summarize",
    description: "Summarizes one parsed article",
    execute: async (input: ArticleInput, ctx) => {
      started(ctx);
      const deps = await ctx.dependencyOutputs();
      const text = Object.values(deps)[0] as { words?: number } | undefined;
      await work(ctx, duration(input.workMs * 1.2), 4, "summarizing");
      flaky(input.failRate / 2, `Summarizer overloaded on article ${input.id}`);
      await countCompletion(ctx);
      const words = text?.words ?? 0;
      const summary = `${words} words in ${3 + (words % 5)} key points`;
      return { id: input.id, title: input.title, words, summary };
    },
  });

  const report = defineAgent({
    name: "report",
    description: "Joins every summary into the digest",
    execute: async (input: { articles: number }, ctx) => {
      started(ctx);
      const deps = await ctx.dependencyOutputs();
      await work(ctx, 200, 1, "writing");
      const items = Object.values(deps) as { id: number; title: string; words: number; summary: string }[];
      items.sort((a, b) => a.id - b.id);
      await countCompletion(ctx);
      return {
        articles: input.articles,
        words: items.reduce((n, i) => n + i.words, 0),
        digest: items.map((i) => `${i.id}. ${i.title}: ${i.summary}`),
      };
    },
  });

  return { plan, fetch: fetchAgent, parse, summarize, report };
}

/** A registry with the workflow's agents. */
export function createRegistry(options: WorkflowOptions): AgentRegistry {
  const a = createAgents(options);
  const meta = { version: "1.0.0", tags: ["demo"] };
  return new AgentRegistry()
    .register(a.plan, meta)
    .register(a.fetch, meta)
    .register(a.parse, meta)
    .register(a.summarize, meta)
    .register(a.report, meta);
}

/** The job the Start button submits: one `plan` task; the rest is spawned at run time. */
export function digestJob(settings: DigestSettings): JobSpec {
  return {
    name: JOB_NAME,
    metadata: { ...settings },
    tasks: [{
      key: "plan",
      agent: "plan",
      input: { ...settings },
      description: `Plan a digest of ${settings.articles} articles`,
    }],
  };
}

/** How many tasks a digest of `articles` articles ends with. */
export function expectedTaskCount(articles: number): number {
  return 2 + 3 * articles;
}

/** Completions per task key, read from shared state. */
export async function readCompletions(
  storage: Pick<ReadonlyStorage, "getState">,
  jobId: string,
  keys: readonly string[],
): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  await Promise.all(keys.map(async (key) => {
    const v = await storage.getState(RUNS_SCOPE, `${jobId}/${key}`);
    out[key] = typeof v === "number" ? v : 0;
  }));
  return out;
}
