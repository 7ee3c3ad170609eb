/**
 * The storage targets every shared suite runs against, per runtime. A runtime's shim
 * picks the targets it can run (the file persister needs a file system, IndexedDB needs
 * a browser or fake-indexeddb).
 */

import { createMemoryStorage } from "../adapters/memory.ts";
import type { Storage } from "../src/storage.ts";
import { FaultyStorage } from "./chaos/faulty-storage.ts";

export interface Target {
  /** Shown in test names. */
  name: string;
  durable: boolean;
  /** A fresh, empty storage. `reopen` opens the same data again (durable targets). */
  open(): Promise<{ storage: Storage; reopen?: () => Promise<Storage>; teardown: () => Promise<void> }>;
}

export const memoryTarget: Target = {
  name: "memory",
  durable: false,
  open() {
    const storage = createMemoryStorage();
    return Promise.resolve({ storage, teardown: () => storage.close() });
  },
};

/**
 * The memory adapter with a real delay (0-4 ms, seeded) before each answer: the executor's
 * interleavings with a store that answers late (a change is visible to others before its
 * caller hears of it), and a check that no case counts on how fast a storage answers.
 */
export const latencyTarget: Target = {
  name: "memory+latency",
  durable: false,
  open() {
    const storage = new FaultyStorage(createMemoryStorage(), { answerLatencyMs: [0, 4], seed: 7 });
    return Promise.resolve({ storage, teardown: () => storage.close() });
  },
};
