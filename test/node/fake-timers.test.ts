/**
 * An executor on the system clock, driven by vitest's fake timers instead of a
 * `ManualClock`: what a team whose tests already fake time does.
 */

import { afterEach, expect, test, vi } from "vitest";
import { AgentRegistry, defineAgent, Executor, JobFailedError, ManualClock } from "../../mod.ts";
import type { Agent, JsonValue } from "../../mod.ts";
import { createMemoryStorage } from "../../adapters/memory.ts";

/** The runtime's own setTimeout, taken before any test fakes it. */
const realSetTimeout = globalThis.setTimeout;

afterEach(() => {
  vi.useRealTimers();
});

/** An executor on the system clock (no `clock` option) and the memory adapter. */
function executorOf(
  agents: Agent<JsonValue, JsonValue>[],
  options: { taskTimeoutMs?: number; maxAttempts?: number } = {},
) {
  const registry = new AgentRegistry();
  for (const a of agents) registry.register(a);
  return new Executor({ storage: createMemoryStorage(), registry, retry: { delayMs: 60_000, factor: 2 }, ...options });
}

/** Shut down while the fake timers move (the grace period is a timer too). */
async function shutdown(executor: Executor): Promise<void> {
  const done = executor.shutdown();
  await vi.advanceTimersByTimeAsync(20_000);
  await done;
}

/** What `promise` did once it settled, or "pending". */
function observe<T>(promise: Promise<T>): () => { value: T } | { error: unknown } | "pending" {
  let outcome: { value: T } | { error: unknown } | "pending" = "pending";
  promise.then((value) => (outcome = { value }), (error) => (outcome = { error }));
  return () => outcome;
}

const hangs = defineAgent({
  name: "hangs",
  description: "Waits until its signal aborts",
  execute: (_input: JsonValue, ctx) =>
    new Promise<JsonValue>((_resolve, reject) => ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))),
});

test("retries wait their backoff on vi.useFakeTimers() and the job completes", async () => {
  vi.useFakeTimers();
  let calls = 0;
  const flaky = defineAgent({
    name: "flaky",
    description: "Fails twice, then answers",
    execute: () => {
      if (++calls < 3) throw new Error("not yet");
      return "ok";
    },
  });
  const executor = executorOf([flaky as Agent<JsonValue, JsonValue>]);
  executor.start();
  const job = await executor.submit({ name: "t", tasks: [{ key: "a", agent: "flaky", input: null }] });
  const outcome = observe(job.wait());
  await vi.advanceTimersByTimeAsync(179_000); // the backoffs are one minute, then two
  expect(calls).toBe(2);
  expect(outcome()).toBe("pending");
  await vi.advanceTimersByTimeAsync(1_000);
  expect(outcome()).toEqual({ value: { a: "ok" } });
  await shutdown(executor);
});

test("a delayed task runs once the fake time reaches its delayMs", async () => {
  vi.useFakeTimers();
  const once = defineAgent({ name: "once", description: "Answers", execute: () => 1 });
  const executor = executorOf([once as Agent<JsonValue, JsonValue>]);
  executor.start();
  const job = await executor.submit({
    name: "t",
    tasks: [{ key: "a", agent: "once", input: null, delayMs: 3_600_000 }],
  });
  const outcome = observe(job.wait());
  await vi.advanceTimersByTimeAsync(3_599_000);
  expect(outcome()).toBe("pending");
  await vi.advanceTimersByTimeAsync(1_000);
  expect(outcome()).toEqual({ value: { a: 1 } });
  await shutdown(executor);
});

for (
  const [what, toFake] of [
    ["vi.useFakeTimers()", undefined],
    // vitest 2's default, and a list many suites still pass: `performance.now()` stays real.
    [
      "fake timers that leave performance.now() real",
      [
        "setTimeout",
        "clearTimeout",
        "setInterval",
        "clearInterval",
        "setImmediate",
        "clearImmediate",
        "Date",
      ] as const,
    ],
  ] as const
) {
  test(`a task times out on ${what}`, async () => {
    vi.useFakeTimers(toFake ? { toFake: [...toFake] } : {});
    const executor = executorOf([hangs], { taskTimeoutMs: 5_000, maxAttempts: 1 });
    executor.start();
    const job = await executor.submit({ name: "t", tasks: [{ key: "a", agent: "hangs", input: null }] });
    const outcome = observe(job.wait());
    // (Measured from a deadline on `performance.now()`, the timeout may come a millisecond or
    // two early when that is real: real time passes between taking the deadline and arming it.)
    await vi.advanceTimersByTimeAsync(4_900);
    expect(outcome()).toBe("pending");
    await vi.advanceTimersByTimeAsync(100);
    const got = outcome();
    expect(got !== "pending" && "error" in got ? got.error : got).toBeInstanceOf(JobFailedError);
    expect((got as { error: JobFailedError }).error.failedTasks).toEqual([
      { key: "a", error: "Task timed out after 5000 ms" },
    ]);
    await shutdown(executor);
  });
}

test("ManualClock.runUntil() still settles a job while the runner's fake timers are installed", async () => {
  // Teams that fake timers for every test (a global beforeEach) and follow the ManualClock recipe.
  vi.useFakeTimers();
  const clock = new ManualClock(1_700_000_000_000);
  let calls = 0;
  const flaky = defineAgent({
    name: "flaky",
    description: "Fails once, then answers",
    execute: () => {
      if (++calls < 2) throw new Error("not yet");
      return "ok";
    },
  });
  const executor = new Executor({
    storage: createMemoryStorage({ now: () => clock.now() }),
    registry: new AgentRegistry().register(flaky),
    clock,
  });
  executor.start();
  const job = await executor.submit({ name: "t", tasks: [{ key: "a", agent: "flaky", input: null }] });
  // Bounded in real time: a runUntil() that waits on the faked setTimeout never returns.
  let stuck!: ReturnType<typeof realSetTimeout>;
  const run = Promise.race([
    clock.runUntil(job.wait()),
    new Promise((resolve) => (stuck = realSetTimeout(() => resolve("runUntil() never settled"), 2_000))),
  ]);
  try {
    expect(await run).toEqual({ a: "ok" });
  } finally {
    clearTimeout(stuck);
  }
  await clock.runUntil(executor.shutdown());
});
