/**
 * The robustness suite: an agent that never settles and ignores its signal, and clocks
 * that jump. (A listener that throws is covered by the executor suite, "a listener that
 * throws does not break the executor", and again under faults by the chaos suite.)
 */

import { type Clock, ManualClock } from "../../src/clock.ts";
import { Executor, type ExecutorOptions } from "../../src/executor.ts";
import type { Task } from "../../src/types.ts";
import { deepEqual, equal, ok } from "../conformance/assert.ts";
import { agent, deferred, harness, registryOf, START, until } from "../conformance/executor-kit.ts";
import type { Case } from "../conformance/harness.ts";
import { type ReliabilityContext, within } from "./kit.ts";

/**
 * A wall clock that can jump while timers keep their delays, as in every JS runtime:
 * `setTimeout` runs on a monotonic clock, `Date.now()` follows the system time. Time
 * passes with `advance()` (a `ManualClock` underneath); `jump()` moves only `now()`.
 */
class JumpingClock implements Clock {
  readonly timers: ManualClock = new ManualClock(START);
  #offset = 0;
  now(): number {
    return this.timers.now() + this.#offset;
  }
  setTimer(fn: () => void, ms: number): unknown {
    return this.timers.setTimer(fn, ms);
  }
  clearTimer(handle: unknown): void {
    this.timers.clearTimer(handle);
  }
  jump(ms: number): void {
    this.#offset += ms;
  }
  advance(ms: number): Promise<void> {
    return this.timers.advance(ms);
  }
}

async function stored(ctx: ReliabilityContext, jobId: string): Promise<Record<string, Task>> {
  return Object.fromEntries((await ctx.storage.listTasks({ jobId })).map((t) => [t.key, t]));
}

/** Advance in steps (durable storages answer asynchronously) until `cond` holds. */
async function advanceUntil(clock: JumpingClock, cond: () => Promise<boolean> | boolean, what: string, step = 100) {
  for (let i = 0; i < 2000; i++) {
    if (await cond()) return;
    await clock.advance(step);
  }
  throw new Error(`timed out waiting for ${what}`);
}

function jumpingExecutor(
  ctx: ReliabilityContext,
  clock: JumpingClock,
  agents: Parameters<typeof registryOf>,
  options: Partial<ExecutorOptions> = {},
): Executor {
  return new Executor({
    storage: ctx.storage,
    registry: registryOf(...agents),
    clock,
    leaseMs: 10_000,
    pollIntervalMs: 1000,
    retry: { delayMs: 1000, factor: 2, maxDelayMs: 60_000 },
    ...options,
  });
}

export const robustnessCases: Case<ReliabilityContext>[] = [
  {
    name:
      "an agent that never settles and ignores its signal is counted and holds shutdown no longer than the grace period",
    async run(ctx) {
      const { executor, clock } = harness(ctx.storage, [agent("hang", () => new Promise(() => {}))]);
      executor.start();
      const job = await executor.submit({ name: "hang", tasks: [{ key: "a", agent: "hang" }] });
      await until(() => executor.stats().running === 1, "the task to start", clock);
      let done = false;
      const stopping = executor.shutdown({ graceMs: 5000 }).then(() => (done = true));
      await clock.advance(4990);
      ok(!done, "shutdown waits for the grace period");
      await clock.advance(10);
      await within(5000, "shutdown", stopping);
      equal(executor.stats().ignoredAbort, 1, "the agent that ignored its signal is counted");
      equal(executor.stats().running, 0);
      const t = (await stored(ctx, job.id))["a"]!;
      equal(t.status, "ready", "the task was released for another executor");
      equal(t.attempts, 0, "the aborted attempt is not counted");
      equal(t.leaseOwner, null);
    },
  },
  {
    name: "the clock jumping backwards does not double-run, lose or stall tasks",
    async run(ctx) {
      const clock = new JumpingClock();
      const runs = new Map<string, number>();
      const gates = new Map([["a", deferred()], ["b", deferred()]]);
      let active = 0;
      let overlap = false;
      const count = (key: string) => {
        runs.set(key, (runs.get(key) ?? 0) + 1);
      };
      const e = jumpingExecutor(ctx, clock, [
        agent("slow", async (_i, c) => {
          count(c.task.key);
          if (++active > 2) overlap = true;
          await gates.get(c.task.key)!.promise;
          active--;
          return c.task.key;
        }),
        agent("flaky", (_i, c) => {
          count(c.task.key);
          if (runs.get(c.task.key) === 1) throw new Error("first attempt fails");
          return c.task.key;
        }),
        agent("quick", (_i, c) => {
          count(c.task.key);
          return c.task.key;
        }),
      ]);
      e.start();
      const job = await e.submit({
        name: "jump",
        tasks: [
          { key: "a", agent: "slow" },
          { key: "b", agent: "slow" },
          { key: "c", agent: "flaky" },
          { key: "d", agent: "quick", delayMs: 2000 },
        ],
      });
      await advanceUntil(
        clock,
        async () => {
          const t = await stored(ctx, job.id);
          return t["a"]!.status === "running" && t["b"]!.status === "running" && t["c"]!.status === "ready" &&
            runs.get("c") === 1;
        },
        "a and b running, c waiting for its retry",
        10,
      );
      clock.jump(-5 * 60_000); // five minutes back
      // Leases are renewed and checked against the new time: nothing looks expired.
      await clock.advance(30_000);
      equal(e.stats().recovered, 0, "no live task was recovered");
      const late = await e.submit({ name: "after", tasks: [{ key: "e", agent: "quick" }] });
      await advanceUntil(clock, async () => (await stored(ctx, late.id))["e"]!.status === "completed", "e", 10);
      // A retry scheduled after the jump waits for its own time, not for the old one.
      const retried = await e.submit({ name: "retry-after", tasks: [{ key: "f", agent: "flaky" }] });
      await advanceUntil(clock, () => runs.get("f") === 1, "f's first attempt", 10);
      const f = async () => (await stored(ctx, retried.id))["f"]!;
      await advanceUntil(clock, async () => (await f()).status === "ready", "f's retry to be stored", 10);
      const due = (await f()).runAt;
      ok(due > clock.now(), "the retry is due later");
      while (clock.now() < due - 10) {
        await clock.advance(10);
        equal(runs.get("f"), 1, `f's retry ran at ${clock.now()}, before its runAt ${due}`);
      }
      await advanceUntil(clock, async () => (await f()).status === "completed", "f's retry", 10);
      gates.get("a")!.resolve();
      gates.get("b")!.resolve();
      // c's retry and d were due at times the clock must reach again: they run then, once.
      await advanceUntil(
        clock,
        async () => {
          const t = await stored(ctx, job.id);
          return Object.values(t).every((x) => x.status === "completed");
        },
        "every task",
        5000,
      );
      await e.shutdown();
      deepEqual(Object.fromEntries([...runs].sort()), { a: 1, b: 1, c: 2, d: 1, e: 1, f: 2 }, "runs per task");
      ok(!overlap, "no task ran twice at once");
      equal(e.stats().lost, 0);
      equal(e.stats().recovered, 0);
      ok(clock.now() >= START + 2000, "the delayed tasks waited for the clock to reach their time again");
    },
  },
  {
    name: "the clock jumping forward past the lease does not make the executor re-run its own live tasks",
    async run(ctx) {
      const clock = new JumpingClock();
      const gate = deferred();
      const runs = new Map<string, number>();
      const e = jumpingExecutor(ctx, clock, [
        agent("slow", async (_i, c) => {
          runs.set(c.task.key, (runs.get(c.task.key) ?? 0) + 1);
          await gate.promise;
          return c.task.key;
        }),
      ], { recoveryIntervalMs: 500 });
      e.start();
      const job = await e.submit({
        name: "forward",
        tasks: [{ key: "least", agent: "slow" }, { key: "most", agent: "slow", durability: "at-most-once" }],
      });
      await advanceUntil(clock, () => runs.size === 2, "both tasks to start", 10);
      clock.jump(60 * 60_000); // an hour forward: every lease looks expired
      await clock.advance(2000); // recovery runs several times
      gate.resolve();
      await advanceUntil(
        clock,
        async () => {
          const t = await stored(ctx, job.id);
          return Object.values(t).every((x) => x.status === "completed");
        },
        "both tasks",
        100,
      );
      await e.shutdown();
      deepEqual(Object.fromEntries([...runs].sort()), { least: 1, most: 1 });
      equal(e.stats().recovered, 0, "its own live tasks were not recovered");
    },
  },
];
