/**
 * The page of `test/e2e/indexeddb-worker.e2e.mjs`: starts workers running
 * `indexeddb-worker.worker.ts` (dedicated or shared), calls them, relays their reports to
 * Node (`__tcReport`, exposed by Playwright), and submits and waits for jobs through an
 * executor of its own that is never started: it runs nothing, the workers do.
 */

import { openIndexedDbStorage } from "../../adapters/indexeddb.ts";
import { createIndexedDbPersister, createOpfsPersister, loadSqlJs, openSqlJsStorage } from "../../adapters/sqljs.ts";
import { Executor } from "../../src/executor.ts";
import { AgentRegistry } from "../../src/registry.ts";
import type { Storage } from "../../src/storage.ts";
import type { JsonValue } from "../../src/types.ts";
import type { TaskView, WorkerConfig, WorkerScope } from "./indexeddb-worker.worker.ts";

type Reporter = (r: unknown) => Promise<void>;

interface Port {
  postMessage(message: unknown): void;
  onmessage: ((event: MessageEvent) => void) | null;
}

interface Handle {
  port: Port;
  /** `terminate()` of a dedicated worker. */
  terminate?: () => void;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>;
}

const handles = new Map<string, Handle>();
let calls = 0;
let storage: Storage | null = null;
let executor: Executor | null = null;

function connect(label: string, port: Port, terminate?: () => void): void {
  const handle: Handle = { port, pending: new Map(), ...(terminate && { terminate }) };
  port.onmessage = async (event: MessageEvent) => {
    const data = event.data as { report?: number; r?: unknown; call?: number; result?: unknown; error?: string };
    if (data.report !== undefined) {
      await (globalThis as { __tcReport?: Reporter }).__tcReport!(data.r);
      port.postMessage({ ack: data.report });
      return;
    }
    const waiting = handle.pending.get(data.call!);
    handle.pending.delete(data.call!);
    if (data.error !== undefined) waiting?.reject(new Error(`${label}: ${data.error}`));
    else waiting?.resolve(data.result);
  };
  handles.set(label, handle);
}

function need<T>(value: T | null | undefined, what: string): T {
  if (value === null || value === undefined) throw new Error(`${what} is not open`);
  return value;
}

const workers = {
  /** Start a dedicated worker labelled `label`. */
  dedicated(label: string): void {
    const worker = new Worker("/worker.js", { type: "module", name: label });
    worker.onerror = (e) => console.error(`worker ${label}: ${e.message}`);
    connect(label, worker as unknown as Port, () => worker.terminate());
  },

  /** Connect to the SharedWorker `name` (starting it if no page holds it), labelled `label` here. */
  shared(label: string, name: string): void {
    const worker = new SharedWorker("/worker.js", { type: "module", name });
    worker.onerror = (e) => console.error(`shared worker ${label}: ${(e as ErrorEvent).message ?? e.type}`);
    connect(label, worker.port as unknown as Port);
    worker.port.start();
  },

  /** Call `method` of worker `label`. */
  call(label: string, method: string, ...args: unknown[]): Promise<unknown> {
    const handle = need(handles.get(label), `worker ${label}`);
    const call = ++calls;
    return new Promise((resolve, reject) => {
      handle.pending.set(call, { resolve, reject });
      handle.port.postMessage({ call, method, args });
    });
  },

  /** What worker `label`'s global scope has. */
  scope(label: string): Promise<WorkerScope> {
    return workers.call(label, "scope") as Promise<WorkerScope>;
  },

  /** Open worker `label`'s storage and executor. */
  open(label: string, config: WorkerConfig): Promise<{ recreated: boolean }> {
    return workers.call(label, "open", config) as Promise<{ recreated: boolean }>;
  },

  /** Kill dedicated worker `label` at once (`Worker.terminate()`): no shutdown, no close. */
  terminate(label: string): void {
    const handle = need(handles.get(label), `worker ${label}`);
    need(handle.terminate, `terminate() of ${label} (a dedicated worker)`)();
    handles.delete(label);
  },

  /**
   * Open the database here, with an executor that is never started (it registers `work`
   * only so that `submit()` accepts the job): the workers run the tasks.
   */
  async openSubmitter(db: string, pollIntervalMs: number): Promise<void> {
    storage = await openIndexedDbStorage({ name: db });
    const registry = new AgentRegistry().register({
      name: "work",
      description: "Runs in a worker, never on the page",
      execute: (): JsonValue => {
        throw new Error("the page's executor ran a task");
      },
    });
    executor = new Executor({ storage, registry, id: "page", pollIntervalMs });
  },

  /** Submit a job of `count` `work` tasks keyed `<prefix><n>` from the page; returns its id. */
  async submit(name: string, prefix: string, count: number): Promise<string> {
    const tasks = Array.from({ length: count }, (_, i) => ({
      key: `${prefix}${String(i).padStart(3, "0")}`,
      agent: "work",
      input: i,
    }));
    return (await need(executor, "the page's executor").submit({ name, tasks })).id;
  },

  /** Wait on the page for a job to end; returns its outputs (or the error) and its tasks as stored. */
  async wait(id: string): Promise<{ outcome: Record<string, JsonValue> | string; tasks: TaskView[] }> {
    const e = need(executor, "the page's executor");
    const outcome = await (await e.job(id)).wait().catch((err) => String(err));
    const tasks = await need(storage, "the page's storage").listTasks({ jobId: id });
    return {
      outcome,
      tasks: tasks.map((t) => ({
        key: t.key,
        status: t.status,
        attempts: t.attempts,
        output: t.output,
        leaseOwner: t.leaseOwner,
      })),
    };
  },

  /**
   * Try to open the sql.js database `db` (kept in IndexedDB or OPFS) on the page without
   * waiting for its Web Lock; returns the error's name, or "opened".
   */
  async tryOpenSqlJs(kind: "sqljs" | "sqljs+opfs", db: string): Promise<string> {
    const sql = await loadSqlJs({ locateFile: (file) => new URL(`/sqljs/${file}`, location.href).href });
    const persister = kind === "sqljs"
      ? createIndexedDbPersister({ name: db, lockWaitMs: 0 })
      : createOpfsPersister({ name: db, lockWaitMs: 0 });
    try {
      const s = await openSqlJsStorage({ sql, persister });
      await s.close();
      return "opened";
    } catch (e) {
      return (e as Error).name;
    }
  },

  /** Close the page's executor and storage, and every worker still known here. */
  async close(): Promise<void> {
    await executor?.shutdown({ graceMs: 0 });
    await storage?.close();
    executor = null;
    storage = null;
    for (const [label, handle] of handles) {
      await Promise.race([
        workers.call(label, "close").catch(() => {}),
        new Promise((resolve) => setTimeout(resolve, 2000)),
      ]);
      handle.terminate?.();
    }
    handles.clear();
  },
};

(globalThis as { workers?: typeof workers }).workers = workers;
