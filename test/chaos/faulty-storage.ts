/**
 * A fault-injecting {@link Storage} for tests: wraps a real storage and makes a chosen or
 * random fraction of calls fail, either before the call reaches the storage (nothing was
 * applied) or after it returned (it was applied, but the caller sees an error, as when a
 * connection drops before the answer arrives), and adds latency. A seeded PRNG makes a
 * run reproducible: the same seed and the same call order give the same faults.
 */

import { StorageError } from "../../src/errors.ts";
import type {
  ClaimOptions,
  CommitOp,
  CommitResult,
  JobQuery,
  PruneOptions,
  RenewOptions,
  Storage,
  StorageCapabilities,
  TaskQuery,
} from "../../src/storage.ts";
import type { Job, JsonValue, Task } from "../../src/types.ts";

/** The storage methods a fault can hit (`watch` and `close` never fail). */
export type StorageMethod =
  | "createJob"
  | "getJob"
  | "listJobs"
  | "getTask"
  | "getTasks"
  | "listTasks"
  | "claimReady"
  | "commit"
  | "renewLeases"
  | "expiredLeases"
  | "getCache"
  | "getState"
  | "prune";

/** When a fault strikes: before the call (nothing applied) or after it (applied, error reported). */
export type FaultMode = "before" | "after";

/** The calls an executor makes on its own and retries: the default targets of random faults. */
export const EXECUTOR_METHODS: readonly StorageMethod[] = Object.freeze([
  "claimReady",
  "commit",
  "renewLeases",
  "expiredLeases",
  "listTasks",
  "prune",
]);

/** Every method that can fail. */
export const ALL_METHODS: readonly StorageMethod[] = Object.freeze([
  "createJob",
  "getJob",
  "listJobs",
  "getTask",
  "getTasks",
  "listTasks",
  "claimReady",
  "commit",
  "renewLeases",
  "expiredLeases",
  "getCache",
  "getState",
  "prune",
]);

/** Options of {@link FaultyStorage}. */
export interface FaultyStorageOptions {
  /** Seed of the PRNG that picks faults and latencies (default 1). */
  seed?: number;
  /** Fraction of calls of `methods` that fail at random, from 0 to 1 (default 0). */
  rate?: number;
  /** Methods random faults may hit (default {@link EXECUTOR_METHODS}). */
  methods?: readonly StorageMethod[];
  /** Modes random faults pick from, uniformly (default both). */
  modes?: readonly FaultMode[];
  /** Latency added to every call: a fixed number of milliseconds or a `[min, max]` range (default none). */
  latencyMs?: number | readonly [number, number];
  /**
   * Latency added to every answer, after the wrapped storage applied the call (a durable
   * store flushing, a slow network back): the change is visible to other callers before its
   * caller hears of it. Same forms as `latencyMs` (default none).
   */
  answerLatencyMs?: number | readonly [number, number];
}

/** One injected fault. */
export interface FaultRecord {
  method: StorageMethod;
  mode: FaultMode;
  /** The call number of that method (from 1). */
  call: number;
}

/** The error a fault throws: a `StorageError`, as a backend's own transient failure would be. */
export class InjectedFaultError extends StorageError {
  override name: string = "InjectedFaultError";
  readonly fault: FaultRecord;
  constructor(fault: FaultRecord) {
    super(
      `Injected fault in ${fault.method}() call ${fault.call} ` +
        (fault.mode === "before" ? "(not applied)" : "(applied, answer lost)"),
    );
    this.fault = fault;
  }
}

/** A small, fast, seeded PRNG (mulberry32): returns numbers in [0, 1). */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function range(ms: number | readonly [number, number] = 0): readonly [number, number] {
  return typeof ms === "number" ? [ms, ms] : [ms[0], ms[1]];
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A storage that fails on purpose. See the module doc. */
export class FaultyStorage implements Storage {
  readonly name: string;
  readonly capabilities: StorageCapabilities;
  /** The wrapped storage (calls on it are never faulted). */
  readonly inner: Storage;
  /** Every fault injected so far, in order. */
  readonly faults: FaultRecord[] = [];
  /** Calls so far, by method. */
  readonly calls: Partial<Record<StorageMethod, number>> = {};
  /** Calls made and not yet answered. */
  inFlight = 0;
  readonly #random: () => number;
  readonly #latency: readonly [number, number];
  readonly #answerLatency: readonly [number, number];
  #rate: number;
  #methods: ReadonlySet<StorageMethod>;
  #modes: readonly FaultMode[];
  #down = false;
  readonly #planned = new Map<StorageMethod, FaultMode[]>();

  constructor(inner: Storage, options: FaultyStorageOptions = {}) {
    this.inner = inner;
    this.name = `faulty(${inner.name})`;
    this.capabilities = inner.capabilities;
    this.#random = prng(options.seed ?? 1);
    this.#rate = options.rate ?? 0;
    this.#methods = new Set(options.methods ?? EXECUTOR_METHODS);
    this.#modes = options.modes ?? ["before", "after"];
    this.#latency = range(options.latencyMs);
    this.#answerLatency = range(options.answerLatencyMs);
  }

  /** Change the random fault rate (0 stops random faults). */
  setRate(rate: number, methods?: readonly StorageMethod[], modes?: readonly FaultMode[]): void {
    this.#rate = rate;
    if (methods) this.#methods = new Set(methods);
    if (modes) this.#modes = modes;
  }

  /** Make the next `count` calls of `method` fail in `mode` (chosen faults run before random ones). */
  failNext(method: StorageMethod, mode: FaultMode = "before", count = 1): void {
    let list = this.#planned.get(method);
    if (!list) this.#planned.set(method, list = []);
    for (let i = 0; i < count; i++) list.push(mode);
  }

  /** An outage: while on, every call of a faulted method fails before reaching the storage. */
  setDown(down: boolean): void {
    this.#down = down;
  }

  /** Faults injected in `method` (or in all methods). */
  faultCount(method?: StorageMethod, mode?: FaultMode): number {
    return this.faults.filter((f) => (!method || f.method === method) && (!mode || f.mode === mode)).length;
  }

  #pick(method: StorageMethod, call: number): FaultRecord | null {
    const planned = this.#planned.get(method);
    if (planned && planned.length > 0) return { method, mode: planned.shift()!, call };
    if (!this.#methods.has(method)) return null;
    if (this.#down) return { method, mode: "before", call };
    if (this.#rate <= 0 || this.#random() >= this.#rate) return null;
    const mode = this.#modes[Math.floor(this.#random() * this.#modes.length)] ?? "before";
    return { method, mode, call };
  }

  async #wait([min, max]: readonly [number, number]): Promise<void> {
    if (max > 0) await sleep(min + this.#random() * (max - min));
  }

  async #call<T>(method: StorageMethod, fn: () => Promise<T>): Promise<T> {
    this.inFlight++;
    try {
      return await this.#faulted(method, fn);
    } finally {
      this.inFlight--;
    }
  }

  async #faulted<T>(method: StorageMethod, fn: () => Promise<T>): Promise<T> {
    const call = (this.calls[method] = (this.calls[method] ?? 0) + 1);
    const fault = this.#pick(method, call);
    // `latencyMs` delays the call on its way to the storage; `answerLatencyMs` (below) its
    // answer on the way back, after the storage applied it.
    if (this.#latency[1] > 0) await this.#wait(this.#latency);
    if (fault?.mode === "before") {
      this.faults.push(fault);
      throw new InjectedFaultError(fault);
    }
    let result: T;
    try {
      result = await fn();
    } finally {
      await this.#wait(this.#answerLatency);
    }
    if (fault?.mode === "after") {
      this.faults.push(fault);
      throw new InjectedFaultError(fault);
    }
    return result;
  }

  createJob(job: Job, tasks: readonly Task[]): Promise<CommitResult> {
    return this.#call("createJob", () => this.inner.createJob(job, tasks));
  }
  getJob(id: string): Promise<Job | undefined> {
    return this.#call("getJob", () => this.inner.getJob(id));
  }
  listJobs(query?: JobQuery): Promise<Job[]> {
    return this.#call("listJobs", () => this.inner.listJobs(query));
  }
  getTask(id: string): Promise<Task | undefined> {
    return this.#call("getTask", () => this.inner.getTask(id));
  }
  getTasks(ids: readonly string[]): Promise<Task[]> {
    return this.#call("getTasks", () => this.inner.getTasks(ids));
  }
  listTasks(query: TaskQuery): Promise<Task[]> {
    return this.#call("listTasks", () => this.inner.listTasks(query));
  }
  claimReady(options: ClaimOptions): Promise<Task[]> {
    return this.#call("claimReady", () => this.inner.claimReady(options));
  }
  commit(ops: readonly CommitOp[], now?: number): Promise<CommitResult> {
    return this.#call("commit", () => this.inner.commit(ops, now));
  }
  renewLeases(options: RenewOptions): Promise<string[]> {
    return this.#call("renewLeases", () => this.inner.renewLeases(options));
  }
  expiredLeases(now: number, limit?: number): Promise<Task[]> {
    return this.#call("expiredLeases", () => this.inner.expiredLeases(now, limit));
  }
  getCache(jobId: string, key: string): Promise<JsonValue | undefined> {
    return this.#call("getCache", () => this.inner.getCache(jobId, key));
  }
  getState(scope: string, key: string): Promise<JsonValue | undefined> {
    return this.#call("getState", () => this.inner.getState(scope, key));
  }
  prune(options: PruneOptions): Promise<number> {
    return this.#call("prune", () => this.inner.prune(options));
  }
  watch(listener: () => void): () => void {
    return this.inner.watch(listener);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}
