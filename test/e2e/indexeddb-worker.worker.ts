/**
 * The worker script of `test/e2e/indexeddb-worker.e2e.mjs`: an Executor inside a dedicated
 * Worker or a SharedWorker, on the IndexedDB storage or on sql.js kept in IndexedDB.
 *
 * The page talks to it through a port (the worker itself, or a SharedWorker's port):
 * `{ call, method, args }` is answered by `{ call, result }` or `{ call, error }`. The agent
 * `work` reports each start to the page (`{ report, r }`) and goes on once the page has
 * passed it to Node and answered `{ ack: report }`, so Node counts an execution before its
 * task can complete. `slow` waits until its signal aborts (or 60 s); `quick` returns;
 * `random` waits 5 to 40 ms.
 */

import { openIndexedDbStorage } from "../../adapters/indexeddb.ts";
import { createIndexedDbPersister, createOpfsPersister, loadSqlJs, openSqlJsStorage } from "../../adapters/sqljs.ts";
import { Executor, type ExecutorStats } from "../../src/executor.ts";
import { AgentRegistry } from "../../src/registry.ts";
import type { Storage } from "../../src/storage.ts";
import type { JsonValue, Task } from "../../src/types.ts";

/** How the worker runs. */
export interface WorkerConfig {
  /** `indexeddb`: the IndexedDB adapter; `sqljs` and `sqljs+opfs`: sql.js kept in IndexedDB or in OPFS. */
  kind: "indexeddb" | "sqljs" | "sqljs+opfs";
  /** The database name. */
  db: string;
  /** This worker's label in reports and outputs. */
  tab: string;
  /** What the agent `work` does: wait until aborted, return, or wait 5 to 40 ms. */
  mode: "slow" | "quick" | "random";
  /** Executor options. */
  id?: string;
  maxWorkers?: number;
  leaseMs?: number;
  heartbeatMs?: number;
  recoveryIntervalMs?: number;
  pollIntervalMs?: number;
}

/** What the worker's global scope offers, as the page checks it. */
export interface WorkerScope {
  /** The global scope's class (`DedicatedWorkerGlobalScope`, `SharedWorkerGlobalScope`). */
  scope: string;
  /** The page-only APIs the worker lacks, each `typeof` (all "undefined" in a worker). */
  document: string;
  window: string;
  localStorage: string;
  /** APIs a worker has and task-core may use. */
  indexedDB: string;
  BroadcastChannel: string;
  locks: string;
  /** A random id of this worker instance (a SharedWorker connected again must be a new one). */
  instance: string;
}

/** One task as the page sees it. */
export interface TaskView {
  key: string;
  status: string;
  attempts: number;
  output: JsonValue;
  leaseOwner: string | null;
}

interface Port {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
}

const instance = crypto.randomUUID();
/** The ports of the pages connected (a dedicated worker has one: itself). */
const ports: Port[] = [];
let storage: Storage | null = null;
let executor: Executor | null = null;
let reportSeq = 0;
const acks = new Map<number, () => void>();
let sqlModule: ReturnType<typeof loadSqlJs> | undefined;

/** Tell Node (through the page that connected last) that an execution started; resolves once it counted it. */
function report(r: { event: "start" | "abort"; tab: string; key: string; attempt: number }): Promise<void> {
  const port = ports.at(-1);
  if (!port) return Promise.reject(new Error("no page is connected to report to"));
  const seq = ++reportSeq;
  return new Promise((resolve) => {
    acks.set(seq, resolve);
    port.postMessage({ report: seq, r });
  });
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

function registry(c: WorkerConfig): AgentRegistry {
  return new AgentRegistry().register({
    name: "work",
    description: "Reports its start, then waits until aborted (slow) or returns (quick)",
    async execute(input: JsonValue, ctx): Promise<JsonValue> {
      const { key, attempt } = ctx.task;
      await report({ event: "start", tab: c.tab, key, attempt });
      if (c.mode !== "quick") {
        try {
          await sleep(c.mode === "slow" ? 60_000 : 5 + Math.random() * 35, ctx.signal);
        } catch (e) {
          void report({ event: "abort", tab: c.tab, key, attempt }).catch(() => {});
          throw e;
        }
      }
      return { by: c.tab, input };
    },
  });
}

function need<T>(value: T | null, what: string): T {
  if (value === null) throw new Error(`${what} is not open: call open() first`);
  return value;
}

function view(t: Task): TaskView {
  return { key: t.key, status: t.status, attempts: t.attempts, output: t.output, leaseOwner: t.leaseOwner };
}

async function openStorage(c: WorkerConfig): Promise<{ storage: Storage; recreated: boolean }> {
  if (c.kind === "indexeddb") {
    const s = await openIndexedDbStorage({ name: c.db });
    return { storage: s, recreated: s.openReport.recreated };
  }
  sqlModule ??= loadSqlJs({ locateFile: (file) => new URL(`/sqljs/${file}`, location.href).href });
  const persister = c.kind === "sqljs" ? createIndexedDbPersister({ name: c.db }) : createOpfsPersister({ name: c.db });
  return { storage: await openSqlJsStorage({ sql: await sqlModule, persister }), recreated: false };
}

const methods = {
  /** What this global scope has. */
  scope(): WorkerScope {
    const g = globalThis as Record<string, unknown>;
    return {
      scope: Object.getPrototypeOf(globalThis)?.constructor?.name ?? "?",
      document: typeof g.document,
      window: typeof g.window,
      localStorage: typeof g.localStorage,
      indexedDB: typeof g.indexedDB,
      BroadcastChannel: typeof g.BroadcastChannel,
      locks: typeof (g.navigator as { locks?: unknown } | undefined)?.locks,
      instance,
    };
  },

  /** Open the storage and start an executor on it; returns whether the open created the database. */
  async open(c: WorkerConfig): Promise<{ recreated: boolean }> {
    if (executor) throw new Error("this worker already runs an executor");
    const opened = await openStorage(c);
    storage = opened.storage;
    executor = new Executor({
      storage,
      registry: registry(c),
      ...(c.id !== undefined && { id: c.id }),
      ...(c.maxWorkers !== undefined && { maxWorkers: c.maxWorkers }),
      ...(c.leaseMs !== undefined && { leaseMs: c.leaseMs }),
      ...(c.heartbeatMs !== undefined && { heartbeatMs: c.heartbeatMs }),
      ...(c.recoveryIntervalMs !== undefined && { recoveryIntervalMs: c.recoveryIntervalMs }),
      ...(c.pollIntervalMs !== undefined && { pollIntervalMs: c.pollIntervalMs }),
    });
    executor.start();
    return { recreated: opened.recreated };
  },

  /** Open the storage, read job `id` as stored, and close it (no executor runs here). */
  async peek(c: WorkerConfig, id: string): Promise<{ status: string; tasks: TaskView[] }> {
    if (storage) throw new Error("this worker has its storage open");
    storage = (await openStorage(c)).storage;
    try {
      return await methods.job(id);
    } finally {
      await storage.close();
      storage = null;
    }
  },

  /** Submit a job of `count` `work` tasks keyed `<prefix><n>`; returns its id. */
  async submit(name: string, prefix: string, count: number): Promise<string> {
    const tasks = Array.from({ length: count }, (_, i) => ({
      key: `${prefix}${String(i).padStart(3, "0")}`,
      agent: "work",
      input: i,
    }));
    return (await need(executor, "executor").submit({ name, tasks })).id;
  },

  /** Wait for a job to end; returns its status and tasks. */
  async wait(id: string): Promise<{ status: string; tasks: TaskView[] }> {
    const e = need(executor, "executor");
    await (await e.job(id)).wait().catch(() => {}); // a failed job is reported by its status
    return await methods.job(id);
  },

  /** The job as stored now. */
  async job(id: string): Promise<{ status: string; tasks: TaskView[] }> {
    const s = need(storage, "storage");
    const job = await s.getJob(id);
    if (!job) throw new Error(`job ${id} not found`);
    return { status: job.status, tasks: (await s.listTasks({ jobId: id })).map(view) };
  },

  /** This worker's executor counters. */
  stats(): ExecutorStats {
    return need(executor, "executor").stats();
  },

  /** Shut the executor down and close the storage. */
  async close(): Promise<void> {
    await executor?.shutdown({ graceMs: 0 });
    await storage?.close();
    executor = null;
    storage = null;
  },
};

type Method = keyof typeof methods;

function serve(port: Port): void {
  ports.push(port);
  port.onmessage = async (event: MessageEvent) => {
    const data = event.data as { ack?: number; call?: number; method?: Method; args?: unknown[] };
    if (data.ack !== undefined) {
      acks.get(data.ack)?.();
      acks.delete(data.ack);
      return;
    }
    try {
      const fn = methods[data.method!] as (...args: unknown[]) => unknown;
      port.postMessage({ call: data.call, result: await fn(...(data.args ?? [])) });
    } catch (e) {
      port.postMessage({ call: data.call, error: String((e as Error)?.stack ?? e) });
    }
  };
}

const g = globalThis as unknown as { onconnect?: unknown; postMessage?: unknown };
if ("onconnect" in globalThis) {
  // A SharedWorker: one port per page that connects.
  g.onconnect = (event: MessageEvent) => {
    const port = event.ports[0]!;
    serve(port as unknown as Port);
    port.start();
  };
} else serve(globalThis as unknown as Port);
