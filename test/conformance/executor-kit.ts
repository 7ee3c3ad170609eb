/** Shared tools of the executor and job suites: a manual clock, agents, and waiting helpers. */

import type { Agent } from "../../src/agent.ts";
import { ManualClock } from "../../src/clock.ts";
import type { TaskContext } from "../../src/context.ts";
import { Executor, type ExecutorOptions } from "../../src/executor.ts";
import { AgentRegistry } from "../../src/registry.ts";
import type { Queue, RingQueue } from "../../src/queue.ts";
import type { Storage } from "../../src/storage.ts";
import type { JsonValue, Task, TaskSpec } from "../../src/types.ts";
import type { JobHandle } from "../../src/job-handle.ts";

/** What every executor/job case receives. */
export interface ExecContext {
  /** A fresh storage. */
  storage: Storage;
  /** Whether the storage is durable (some cases reopen it). */
  durable: boolean;
}

export const START = 1_700_000_000_000;

export function agent(
  name: string,
  execute: (input: JsonValue, ctx: TaskContext) => unknown,
): Agent<JsonValue, JsonValue> {
  return { name, description: `test agent ${name}`, execute: execute as Agent["execute"] };
}

export function registryOf(...agents: Agent<JsonValue, JsonValue>[]): AgentRegistry {
  const r = new AgentRegistry();
  for (const a of agents) r.register(a);
  return r;
}

export interface Harness {
  executor: Executor;
  clock: ManualClock;
  registry: AgentRegistry;
}

/** An executor on a manual clock with fast defaults; `options` override them. */
export function harness(
  storage: Storage,
  agents: Agent<JsonValue, JsonValue>[],
  options: Partial<ExecutorOptions> & { clock?: ManualClock } = {},
): Harness {
  const clock = options.clock ?? new ManualClock(START);
  const registry = registryOf(...agents);
  const executor = new Executor({
    storage,
    registry,
    clock,
    maxWorkers: 4,
    leaseMs: 10_000,
    pollIntervalMs: 1000,
    retry: { delayMs: 1000, factor: 2, maxDelayMs: 60_000 },
    ...options,
  });
  return { executor, clock, registry };
}

/**
 * Let real time pass in small steps (durable storages answer asynchronously) until `cond`
 * holds: about 10 s of it, with or without `clock` (whose due timers each step fires; it
 * does not move it), as a server on a loaded machine may take seconds to answer.
 */
export async function until(
  cond: () => boolean | Promise<boolean>,
  what = "condition",
  clock?: ManualClock,
): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await cond()) return;
    if (clock) await clock.advance(0);
    if (!clock || i >= 50) await new Promise((r) => setTimeout(r, i < 50 ? 0 : 5));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Move `clock` forward `stepMs` at a time, letting real time pass between steps (durable
 * storages answer asynchronously, and work may wait on a timer), until `cond` holds: a fixed
 * number of steps assumes how fast the storage answers.
 */
export async function untilAdvancing(
  cond: () => boolean | Promise<boolean>,
  what: string,
  clock: ManualClock,
  stepMs: number,
): Promise<void> {
  for (let i = 0; i < 2000; i++) {
    if (await cond()) return;
    await clock.advance(stepMs);
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * A custom ready queue for tests: `ring` behind every `Queue` member, with the members in
 * `over` in their place (getters kept as getters).
 */
export function queueOver(ring: RingQueue<Task>, over: Partial<Record<keyof Queue<Task>, unknown>> = {}): Queue<Task> {
  const queue: Queue<Task> = {
    get capacity() {
      return ring.capacity;
    },
    get size() {
      return ring.size;
    },
    get closed() {
      return ring.closed;
    },
    tryPush: (t) => ring.tryPush(t),
    push: (t) => ring.push(t),
    tryPop: () => ring.tryPop(),
    pop: () => ring.pop(),
    drain: () => ring.drain(),
    close: () => ring.close(),
  };
  return Object.defineProperties(queue, Object.getOwnPropertyDescriptors(over));
}

/** A promise with its resolve/reject exposed. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** Resolve when the signal aborts (with its reason as rejection). */
export function aborted(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => {
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
}

/** Replacements of some storage methods: each gets the original (bound) and returns the replacement. */
export type Overrides = { [K in keyof Storage]?: (original: Storage[K]) => Storage[K] };

/** The storage with some methods replaced, to delay, drop or fail calls in a test. */
export function intercept(storage: Storage, overrides: Overrides): Storage {
  return new Proxy(storage, {
    get(target, prop) {
      const value = Reflect.get(target, prop) as unknown;
      const bound = typeof value === "function" ? value.bind(target) : value;
      const wrap = overrides[prop as keyof Storage] as ((original: unknown) => unknown) | undefined;
      return wrap ? wrap(bound) : bound;
    },
  });
}

/**
 * `storage` whose next claim that brings tasks (`which` of them), once `hold()` was called, is
 * stored but answered only at `release()`: a claim in flight while a test changes things.
 * `overrides` intercept its other calls (they may wait on `released`, or ask `held()`).
 */
export function claimHeldBack(
  storage: Storage,
  overrides: Omit<Overrides, "claimReady"> = {},
  which: (claimed: readonly Task[]) => boolean = (claimed) => claimed.length > 0,
): { storage: Storage; hold(): void; held(): boolean; release(): void; released: Promise<void> } {
  const gate = deferred();
  let armed = false;
  let held = false;
  return {
    storage: intercept(storage, {
      ...overrides,
      claimReady: (claim) => async (o) => {
        const claimed = await claim(o);
        if (armed && which(claimed)) {
          armed = false;
          held = true;
          await gate.promise;
        }
        return claimed;
      },
    }),
    hold: () => void (armed = true),
    held: () => held,
    release: () => gate.resolve(),
    released: gate.promise,
  };
}

/**
 * `storage` with the first commit that stores an at-most-once start (`startedAt`) held
 * until `release()`: `held()` tells it arrived.
 */
export function holdingFirstStart(storage: Storage): { storage: Storage; held(): boolean; release(): void } {
  const gate = deferred();
  let held = false;
  return {
    storage: intercept(storage, {
      commit: (commit) => async (ops, now) => {
        if (!held && ops.some((o) => o.type === "updateTask" && o.set.startedAt !== undefined)) {
          held = true;
          await gate.promise;
        }
        return await commit(ops, now);
      },
    }),
    held: () => held,
    release: () => gate.resolve(),
  };
}

/**
 * A process that "dies" in the middle of a task: an executor with one worker submits
 * `tasks` (agent "work") and hangs in the first agent it calls; the rest wait in its ready
 * queue. `revive()` starts a second executor on the same storage once the first one's
 * leases have expired. Every call of "work", in either, is counted in `runs` by task key.
 */
export async function crashInFirstCall(
  storage: Storage,
  tasks: TaskSpec[],
  options: Pick<Partial<ExecutorOptions>, "queue" | "prefetch"> = {},
): Promise<{ job: JobHandle; runs: Record<string, number>; revive(): Harness }> {
  const started = deferred();
  const runs: Record<string, number> = {};
  const count = (key: string) => (runs[key] = (runs[key] ?? 0) + 1);
  const dead = harness(storage, [
    agent("work", (_input, c) => {
      count(c.task.key);
      started.resolve();
      return new Promise(() => {});
    }),
  ], { maxWorkers: 1, leaseMs: 1000, heartbeatMs: 300, ...options });
  const job = await dead.executor.submit({ name: "crash", tasks });
  dead.executor.start();
  await started.promise;
  return {
    job,
    runs,
    revive() {
      const alive = harness(storage, [agent("work", (_input, c) => {
        count(c.task.key);
        return "done";
      })], { clock: new ManualClock(START + 5000), leaseMs: 1000, heartbeatMs: 300 });
      alive.executor.start();
      return alive;
    },
  };
}
