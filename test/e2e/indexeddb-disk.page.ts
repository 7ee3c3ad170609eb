/**
 * The page side of `test/e2e/indexeddb-disk.e2e.mjs`: an executor on IndexedDB in a
 * Chromium profile that lives on a small disk, driven from Node through `globalThis.disk`.
 *
 * Values are random text (what a full disk needs: Chromium compresses what repeats) that
 * Node can check without holding it: each one is made from a seed, and Node compares the
 * digest the page reports with the digest of the value made again from that seed.
 */

import { openIndexedDbStorage } from "../../adapters/indexeddb.ts";
import { isTransientStorageError } from "../../src/errors.ts";
import { Executor, type ExecutorStats } from "../../src/executor.ts";
import { AgentRegistry } from "../../src/registry.ts";
import type { Storage } from "../../src/storage.ts";
import type { JsonValue } from "../../src/types.ts";

/** `length` characters of random-looking text made from `seed` (xorshift32: the same in Node). */
export function seededText(seed: number, length: number): string {
  let x = (seed | 0) || 1;
  const codes = new Array<number>(length);
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    codes[i] = 33 + ((x >>> 0) % 90);
  }
  let out = "";
  for (let i = 0; i < length; i += 8192) out += String.fromCharCode(...codes.slice(i, i + 8192));
  return out;
}

/** A short digest of a text (FNV-1a), so Node checks a value without reading it whole. */
export function digest(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return `${text.length}:${(h >>> 0).toString(16)}`;
}

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
/** Releases the agents waiting on the gate. */
let openGate: () => void = () => {};
let gate: Promise<void> = Promise.resolve();

const registry = new AgentRegistry().register({
  name: "big",
  description: "Waits for the gate, then answers random text of the size and seed its input asks for",
  execute: async (input: JsonValue, ctx) => {
    const { seed, bytes } = input as { seed: number; bytes: number };
    calls.set(ctx.task.key, (calls.get(ctx.task.key) ?? 0) + 1);
    await gate;
    return { text: seededText(seed, bytes) };
  },
});

const disk = {
  /** Open the database `name` and an executor on it (not started). */
  async open(name: string): Promise<void> {
    storage = await openIndexedDbStorage({ name });
    executor = new Executor({
      storage,
      registry,
      maxWorkers: 4,
      // The disk stays full for seconds: leases must outlast it (heartbeats are writes too).
      leaseMs: 120_000,
      pollIntervalMs: 200,
    });
    executor.on("storage:error", ({ error }) => {
      const name = (error as Error)?.name ?? "?";
      storageErrors.set(name, (storageErrors.get(name) ?? 0) + 1);
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

  /** Wait for a job's end: its outputs' digests by key, or the error. */
  async wait(id: string): Promise<{ ok: true; outputs: Record<string, string> } | { ok: false; error: ErrorView }> {
    try {
      const outputs = await (await executor!.job(id)).wait();
      const digests: Record<string, string> = {};
      for (const [key, value] of Object.entries(outputs)) digests[key] = digest((value as { text: string }).text);
      return { ok: true, outputs: digests };
    } catch (e) {
      return { ok: false, error: view(e) };
    }
  },

  /** What happened so far. */
  report(): { calls: Record<string, number>; storageErrors: Record<string, number>; stats: ExecutorStats | null } {
    return {
      calls: Object.fromEntries(calls),
      storageErrors: Object.fromEntries(storageErrors),
      stats: executor?.stats() ?? null,
    };
  },

  async close(): Promise<void> {
    await executor?.shutdown({ graceMs: 1000 });
    await storage?.close();
  },
};

(globalThis as { disk?: typeof disk }).disk = disk;
