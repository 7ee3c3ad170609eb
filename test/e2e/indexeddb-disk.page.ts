/**
 * The page side of `test/e2e/indexeddb-disk.e2e.mjs`: an executor on IndexedDB, or on
 * sql.js kept in IndexedDB or in OPFS, in a Chromium profile that lives on a small disk,
 * driven from Node through `globalThis.disk`.
 *
 * Values are random text made from seeds (`disk-values.ts`), which Node checks by digest.
 */

import { openIndexedDbStorage } from "../../adapters/indexeddb.ts";
import { createIndexedDbPersister, createOpfsPersister, loadSqlJs, openSqlJsStorage } from "../../adapters/sqljs.ts";
import { isTransientStorageError } from "../../src/errors.ts";
import { Executor, type ExecutorStats } from "../../src/executor.ts";
import { AgentRegistry } from "../../src/registry.ts";
import type { Storage } from "../../src/storage.ts";
import type { JsonValue } from "../../src/types.ts";
import { digest, seededText } from "./disk-values.ts";

/** An error as Node sees it. */
interface ErrorView {
  name: string;
  message: string;
}

const view = (e: unknown): ErrorView => ({
  name: (e as Error)?.name ?? typeof e,
  message: (e as Error)?.message ?? String(e),
});

/**
 * A read retried as the executor retries its own: on a full disk Chromium may abort a
 * read-only transaction too ("Backend aborted error"), an error that passes.
 */
async function retried<T>(read: () => Promise<T>): Promise<T> {
  for (let failures = 0;; failures++) {
    try {
      return await read();
    } catch (e) {
      if (!isTransientStorageError(e) || failures >= 5) throw e;
      await new Promise((resolve) => setTimeout(resolve, 50 * 2 ** failures));
    }
  }
}

let storage: Storage | null = null;
let executor: Executor | null = null;
/** Agent calls by task key. */
const calls = new Map<string, number>();
/** Storage errors the executor reported, by error name. */
const storageErrors = new Map<string, number>();
/** The first message of each. */
const errorMessages = new Map<string, string>();
/** Releases the agents waiting on the gate. */
let openGate: () => void = () => {};
let gate: Promise<void> = Promise.resolve();

const registry = new AgentRegistry().register({
  name: "big",
  description: "Waits for the gate, then answers random text of the size and seed its input asks for",
  execute: async (input: JsonValue, ctx) => {
    const { seed, bytes } = input as { seed: number; bytes: number };
    calls.set(ctx.task.key, (calls.get(ctx.task.key) ?? 0) + 1);
    // Node counts calls across reloads.
    await (globalThis as { __diskCall?: (key: string) => Promise<void> }).__diskCall?.(ctx.task.key);
    await gate;
    return { text: seededText(seed, bytes) };
  },
});

const disk = {
  /** Open the database `name` of `kind` and an executor on it (not started). */
  async open(kind: "indexeddb" | "sqljs+indexeddb" | "sqljs+opfs", name: string): Promise<void> {
    if (kind === "indexeddb") storage = await openIndexedDbStorage({ name });
    else {
      // The test server serves sql.js's files under /sqljs/.
      const sql = await loadSqlJs({ locateFile: (file) => `/sqljs/${file}` });
      const persister = kind === "sqljs+opfs" ? createOpfsPersister({ name }) : createIndexedDbPersister({ name });
      storage = await openSqlJsStorage({ sql, persister });
    }
    executor = new Executor({
      storage,
      registry,
      // A stable id: after a reload the executor takes back its interrupted tasks at once.
      id: "disk-page",
      maxWorkers: 4,
      // The disk stays full for seconds: leases must outlast it (heartbeats are writes too).
      leaseMs: 120_000,
      pollIntervalMs: 200,
    });
    executor.on("storage:error", ({ error }) => {
      const name = (error as Error)?.name ?? "?";
      storageErrors.set(name, (storageErrors.get(name) ?? 0) + 1);
      if (!errorMessages.has(name)) errorMessages.set(name, (error as Error)?.message ?? String(error));
    });
  },

  /** Hold the agents (they are called, then wait) until `release()`. */
  hold(): void {
    gate = new Promise((resolve) => (openGate = resolve));
  },
  release(): void {
    openGate();
  },

  /** Submit a job of one task whose input is `bytes` of text made from `seed`. */
  async submitBlob(seed: number, bytes: number): Promise<{ ok: true; id: string } | { ok: false; error: ErrorView }> {
    try {
      const job = await executor!.submit({
        name: `blob-${seed}`,
        // Not due for a day: the executor leaves it alone, and the job only takes room.
        tasks: [{
          key: "blob",
          agent: "big",
          input: { seed, bytes, blob: seededText(seed, bytes) },
          delayMs: 86_400_000,
        }],
        metadata: { seed },
      });
      return { ok: true, id: job.id };
    } catch (e) {
      return { ok: false, error: view(e) };
    }
  },

  /** Submit a job of `n` tasks, each answering `bytes` of text made from its seed (`seed0 + i`). */
  async submitOutputs(n: number, bytes: number, seed0: number): Promise<string> {
    const tasks = Array.from(
      { length: n },
      (_, i) => ({ key: `t${i}`, agent: "big", input: { seed: seed0 + i, bytes } }),
    );
    return (await executor!.submit({ name: "outputs", tasks })).id;
  },

  start(): void {
    executor!.start();
  },

  /** Every stored job: its seed (blob jobs), status, and each task's input and output digests. */
  async jobs(): Promise<{ id: string; name: string; status: string; tasks: Record<string, unknown>[] }[]> {
    const out = [];
    for (const job of await retried(() => storage!.listJobs())) {
      const tasks = (await retried(() => storage!.listTasks({ jobId: job.id }))).map((t) => {
        const input = t.input as { seed: number; bytes: number; blob?: string };
        const output = t.output as { text?: string } | null;
        return {
          key: t.key,
          status: t.status,
          attempts: t.attempts,
          seed: input.seed,
          bytes: input.bytes,
          blob: input.blob === undefined ? null : digest(input.blob),
          output: output?.text === undefined ? null : digest(output.text),
        };
      });
      out.push({ id: job.id, name: job.name, status: job.status, tasks });
    }
    return out;
  },

  /**
   * Wait for a job's end: its outputs' digests by key, or the error. `wait()` gives up after
   * five failed reads in a row; like an app, this waits again while they may pass (a disk
   * that just got room: sql.js saves again only once its backoff ends), for up to 60 s.
   */
  async wait(id: string): Promise<{ ok: true; outputs: Record<string, string> } | { ok: false; error: ErrorView }> {
    try {
      const end = Date.now() + 60_000;
      const job = await retried(() => executor!.job(id));
      let outputs: Record<string, JsonValue>;
      for (;;) {
        try {
          outputs = await job.wait();
          break;
        } catch (e) {
          if (!isTransientStorageError(e) || Date.now() > end) throw e;
        }
      }
      const digests: Record<string, string> = {};
      for (const [key, value] of Object.entries(outputs)) digests[key] = digest((value as { text: string }).text);
      return { ok: true, outputs: digests };
    } catch (e) {
      return { ok: false, error: view(e) };
    }
  },

  /** What the IndexedDB adapter's open found (`null` for sql.js, whose persisters note nothing). */
  openReport(): { created: boolean; recreated: boolean } | null {
    const report = (storage as { openReport?: { created: boolean; recreated: boolean } } | null)?.openReport;
    return report ? { ...report } : null;
  },

  /** What happened so far. */
  report(): {
    calls: Record<string, number>;
    storageErrors: Record<string, number>;
    errorMessages: Record<string, string>;
    stats: ExecutorStats | null;
  } {
    return {
      calls: Object.fromEntries(calls),
      storageErrors: Object.fromEntries(storageErrors),
      errorMessages: Object.fromEntries(errorMessages),
      stats: executor?.stats() ?? null,
    };
  },

  async close(): Promise<void> {
    await executor?.shutdown({ graceMs: 1000 });
    await storage?.close();
  },
};

(globalThis as { disk?: typeof disk }).disk = disk;
