/**
 * Targets of the reliability suites: a fresh storage per case and, for the durable
 * backends, raw write access to its rows (`tamper`) for the corrupted-record cases. The
 * memory target has no rows to tamper with (it keeps frozen objects).
 */

import { createMemoryStorage } from "../../adapters/memory.ts";
import type { Storage } from "../../src/storage.ts";
import type { Tamper } from "./kit.ts";

/** One backend the reliability suites run against. */
export interface ReliabilityTarget {
  /** Shown in test names. */
  name: string;
  /** Whether the storage is durable. */
  durable: boolean;
  /** Whether `open()` gives raw access to stored rows (`tamper`). */
  tamper: boolean;
  /** A fresh, empty storage. */
  open(): Promise<{ storage: Storage; tamper?: Tamper; teardown: () => Promise<void> }>;
}

/** The memory adapter. */
export const memoryReliabilityTarget: ReliabilityTarget = {
  name: "memory",
  durable: false,
  tamper: false,
  open() {
    const storage = createMemoryStorage();
    return Promise.resolve({ storage, teardown: () => storage.close() });
  },
};
