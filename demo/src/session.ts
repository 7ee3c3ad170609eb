/**
 * Opens the chosen storage and an executor on it (browser only: it loads the sql.js WASM
 * through Vite and uses Web Locks).
 *
 * The page keeps its executor's id in `sessionStorage` and holds a Web Lock named after
 * it while it lives; after a reload, tasks still leased by the previous id (whose lock is
 * gone) are released at once instead of waiting for their leases to expire.
 *
 * @module
 */

import wasmUrl from "sql.js/dist/sql-wasm-browser.wasm?url";
import { type AgentRegistry, Executor, newId, type Storage, StorageBlockedError } from "../../mod.ts";
import { releaseLeasesOf } from "./recovery.ts";
import type { StorageKind } from "./storage-kind.ts";

/** IndexedDB database of the IndexedDB storage. */
export const IDB_NAME = "task-core-demo";
/** IndexedDB database of the sql.js persister. */
export const SQLJS_PERSISTER_NAME = "task-core-demo-sqljs";

const EXECUTOR_KEY = "task-core-demo:executor:";
const LOCK_PREFIX = "task-core-demo:executor:";

/** An open storage with a started executor. */
export interface Session {
  /** Which storage. */
  readonly kind: StorageKind;
  /** The storage. */
  readonly storage: Storage;
  /** The executor (started). */
  readonly executor: Executor;
  /** Tasks of the previous executor of this tab released at open. */
  readonly released: number;
  /**
   * The open created the database anew although this browser had opened it before: it was
   * deleted since (by another tab, or by the browser), with every job in it (IndexedDB only).
   */
  readonly recreated: boolean;
  /** Stop the executor (running tasks are released without counting) and close the storage. */
  close(): Promise<void>;
}

/** Executor settings of the demo: short leases, so work of a closed tab is picked up within seconds. */
export const EXECUTOR_OPTIONS = Object.freeze({
  // No `prefetch` (the default): a task is claimed only for a free worker, so what the page
  // shows as running is what runs.
  maxWorkers: 3,
  leaseMs: 4000,
  heartbeatMs: 1000,
  recoveryIntervalMs: 2000,
  pollIntervalMs: 500,
  taskTimeoutMs: 20_000,
  shutdownGraceMs: 0,
  progressThrottleMs: 100,
  retry: { delayMs: 500, factor: 2, maxDelayMs: 4000, jitter: true },
});

/** Hold a Web Lock (waiting for it) until `release` is called: it tells other pages this executor lives. */
function holdLock(name: string): Promise<{ release: () => void }> {
  const locks = globalThis.navigator?.locks;
  if (!locks) return Promise.resolve({ release: () => {} });
  return new Promise((resolve) => {
    let release = () => {};
    const held = new Promise<void>((r) => (release = r));
    locks.request(name, () => {
      resolve({ release });
      return held;
    }).catch(() => resolve({ release: () => {} }));
  });
}

async function lockIsHeld(name: string): Promise<boolean> {
  const locks = globalThis.navigator?.locks;
  if (!locks) return false;
  const state = await locks.query();
  return (state.held ?? []).some((l) => l.name === name);
}

/** The storage, and whether its open found the database deleted since this browser last opened it. */
async function openStorage(kind: StorageKind): Promise<{ storage: Storage; recreated: boolean }> {
  if (kind === "memory") {
    const { createMemoryStorage } = await import("../../adapters/memory.ts");
    return { storage: createMemoryStorage(), recreated: false };
  }
  if (kind === "indexeddb") {
    const { openIndexedDbStorage } = await import("../../adapters/indexeddb.ts");
    const storage = await openIndexedDbStorage({ name: IDB_NAME });
    return { storage, recreated: storage.openReport.recreated };
  }
  // One tab at a time opens a persisted sql.js database (the persister holds a Web Lock);
  // a reloading tab's old page lets go of it within a moment, so wait up to 3 s.
  const { createIndexedDbPersister, openSqlJsStorage } = await import("../../adapters/sqljs.ts");
  try {
    const storage = await openSqlJsStorage({
      locateFile: () => wasmUrl,
      persister: createIndexedDbPersister({ name: SQLJS_PERSISTER_NAME, lockWaitMs: 3000 }),
    });
    return { storage, recreated: false };
  } catch (e) {
    if (e instanceof StorageBlockedError) {
      throw new Error("The sql.js storage is open in another tab: close it there, or pick IndexedDB or memory here");
    }
    throw e;
  }
}

/** Open `kind`, release what this tab's previous executor left running, and start an executor. */
export async function openSession(kind: StorageKind, registry: AgentRegistry): Promise<Session> {
  const { storage, recreated } = await openStorage(kind);
  let tab: globalThis.Storage | null = null;
  try {
    tab = globalThis.sessionStorage; // throws where the browser refuses site data
  } catch {
    // Then the page cannot tell its previous executor: its tasks resume when their leases expire.
  }
  let released = 0;
  try {
    const previous = tab?.getItem(EXECUTOR_KEY + kind);
    if (previous && !(await lockIsHeld(LOCK_PREFIX + previous))) {
      released = await releaseLeasesOf(storage, previous, Date.now());
    }
  } catch (e) {
    console.warn("Could not release the previous executor's tasks; they resume when their leases expire", e);
  }
  const id = `demo-${newId()}`;
  tab?.setItem(EXECUTOR_KEY + kind, id);
  const alive = await holdLock(LOCK_PREFIX + id);
  const executor = new Executor({ storage, registry, id, ...EXECUTOR_OPTIONS });
  executor.start();
  let closing: Promise<void> | null = null;
  return {
    kind,
    storage,
    executor,
    released,
    recreated,
    close: () =>
      closing ??= (async () => {
        try {
          await executor.shutdown({ graceMs: 0 });
        } finally {
          await storage.close().catch(() => {});
          alive.release();
        }
      })(),
  };
}
