/**
 * An executor on the system clock driven by Bun's fake timers (`jest.useFakeTimers()`),
 * whose advance is synchronous: the test moves time in steps and lets promises settle
 * between them.
 */

import { afterEach, jest, test } from "bun:test";
import { deepEqual, equal, ok } from "node:assert/strict";
import { AgentRegistry, defineAgent, Executor, JobFailedError } from "../../../mod.ts";
import type { Agent, JsonValue } from "../../../mod.ts";
import { createMemoryStorage } from "../../../adapters/memory.ts";

afterEach(() => jest.useRealTimers());

/** Advance the fake time by `ms` in steps of `stepMs`, letting promise chains run after each. */
async function advance(ms: number, stepMs = 1_000): Promise<void> {
  for (let done = 0; done < ms; done += stepMs) {
    jest.advanceTimersByTime(Math.min(stepMs, ms - done));
    // A turn of the event loop lets promises settle (Bun fakes every setTimeout, not setImmediate).
    await new Promise((resolve) => setImmediate(resolve));
  }
}

function observe<T>(promise: Promise<T>): () => { value: T } | { error: unknown } | "pending" {
  let outcome: { value: T } | { error: unknown } | "pending" = "pending";
  promise.then((value) => (outcome = { value }), (error) => (outcome = { error }));
  return () => outcome;
}

function executorOf(
  agent: Agent<JsonValue, JsonValue>,
  options: { taskTimeoutMs?: number; maxAttempts?: number } = {},
) {
  return new Executor({
    storage: createMemoryStorage(),
    registry: new AgentRegistry().register(agent),
    retry: { delayMs: 60_000, factor: 2 },
    ...options,
  });
}

async function shutdown(executor: Executor): Promise<void> {
  const done = executor.shutdown();
  await advance(20_000);
  await done;
}

test("retries wait their backoff on jest.useFakeTimers() and the job completes", async () => {
  jest.useFakeTimers();
  let calls = 0;
  const flaky = defineAgent({
    name: "flaky",
    description: "Fails twice, then answers",
    execute: (): JsonValue => {
      if (++calls < 3) throw new Error("not yet");
      return "ok";
    },
  });
  const executor = executorOf(flaky as Agent<JsonValue, JsonValue>);
  executor.start();
  const job = await executor.submit({ name: "t", tasks: [{ key: "a", agent: "flaky", input: null }] });
  const outcome = observe(job.wait());
  // The backoffs are one minute, then two; a timer fires in the step it falls due in, or
  // (armed at the end of one) in the next, so the steps bound the times loosely.
  await advance(170_000);
  equal(calls, 2);
  equal(outcome(), "pending");
  await advance(20_000);
  deepEqual(outcome(), { value: { a: "ok" } });
  await shutdown(executor);
});

test("a task times out on jest.useFakeTimers()", async () => {
  jest.useFakeTimers();
  const hangs = defineAgent({
    name: "hangs",
    description: "Waits until its signal aborts",
    execute: (_input: JsonValue, ctx) =>
      new Promise<JsonValue>((_resolve, reject) =>
        ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason))
      ),
  });
  const executor = executorOf(hangs, { taskTimeoutMs: 5_000, maxAttempts: 1 });
  executor.start();
  const job = await executor.submit({ name: "t", tasks: [{ key: "a", agent: "hangs", input: null }] });
  const outcome = observe(job.wait());
  await advance(3_000);
  equal(outcome(), "pending");
  await advance(5_000);
  const got = outcome();
  ok(got !== "pending" && "error" in got && got.error instanceof JobFailedError, "the job failed");
  deepEqual((got.error as JobFailedError).failedTasks, [{ key: "a", error: "Task timed out after 5000 ms" }]);
  await shutdown(executor);
});
