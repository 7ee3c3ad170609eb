/**
 * The executor suite: worker pool, ready queue, persist-then-run, retries, timeouts,
 * leases, recovery and shutdown — run against every adapter in every runtime.
 */

import { ManualClock, systemClock, timerClock } from "../../src/clock.ts";
import {
  InvalidTransitionError,
  JobFailedError,
  NonRetryableError,
  NotFoundError,
  StorageBlockedError,
  StorageClosedError,
  StorageCorruptError,
  StorageError,
  TaskTimeoutError,
} from "../../src/errors.ts";
import { Executor } from "../../src/executor.ts";
import { Heap } from "../../src/heap.ts";
import { type Queue, RingQueue } from "../../src/queue.ts";
import type { Task } from "../../src/types.ts";
import { deepEqual, equal, ok, rejects, throws } from "./assert.ts";
import {
  aborted,
  agent,
  claimHeldBack,
  crashInFirstCall,
  deferred,
  type ExecContext,
  type Harness,
  harness,
  holdingFirstStart,
  intercept,
  queueOver,
  registryOf,
  START,
  until,
  untilAdvancing,
} from "./executor-kit.ts";
import { buildJob } from "./fixtures.ts";
import type { Case } from "./harness.ts";
import type { CommitOp } from "../../src/storage.ts";

/** An op that stores an attempt's result (a start sets no status). */
const isResult = (op: CommitOp): boolean => op.type === "updateTask" && op.set.status !== undefined;

async function taskByKey(ctx: ExecContext, jobId: string, key: string): Promise<Task> {
  const t = (await ctx.storage.listTasks({ jobId })).find((x) => x.key === key);
  ok(t, `task ${key}`);
  return t;
}

export const executorCases: Case<ExecContext>[] = [
  {
    name: "runs a task and stores its output",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [agent("double", (n) => (n as number) * 2)]);
      executor.start();
      const job = await executor.submit({ name: "one", tasks: [{ key: "a", agent: "double", input: 21 }] });
      deepEqual(await job.wait(), { a: 42 });
      const t = await taskByKey(ctx, job.id, "a");
      equal(t.status, "completed");
      equal(t.attempts, 1);
      equal(t.leaseOwner, null);
      await executor.shutdown();
    },
  },
  {
    name: "persist-then-run: execute sees its own claim already stored",
    async run(ctx) {
      let seen: Task | undefined;
      const { executor } = harness(ctx.storage, [
        agent("peek", async (_input, c) => {
          seen = await c.storage.getTask(c.task.id);
          return null;
        }),
      ]);
      executor.start();
      const job = await executor.submit({ name: "peek", tasks: [{ key: "a", agent: "peek" }] });
      await job.wait();
      ok(seen);
      equal(seen.status, "running");
      equal(seen.attempts, 1);
      equal(seen.leaseOwner, executor.id);
      ok(seen.leaseExpiresAt !== null);
      await executor.shutdown();
    },
  },
  {
    name: "a retryable error is retried after the configured backoff, with attempts and error stored",
    async run(ctx) {
      let calls = 0;
      const { executor, clock } = harness(ctx.storage, [
        agent("flaky", () => {
          calls++;
          if (calls < 3) throw new Error(`flake ${calls}`);
          return "ok";
        }),
      ]);
      const delays: number[] = [];
      executor.on("task:retrying", (e) => delays.push(e.delayMs));
      executor.start();
      const job = await executor.submit({ name: "flaky", tasks: [{ key: "a", agent: "flaky" }] });
      await until(() => calls === 1, "first attempt", clock);
      await until(async () => (await taskByKey(ctx, job.id, "a")).status === "ready", "retry stored", clock);
      const stored = await taskByKey(ctx, job.id, "a");
      equal(stored.attempts, 1);
      equal(stored.error?.message, "flake 1");
      equal(stored.error?.retryable, true);
      equal(stored.runAt, clock.now() + 1000);
      await clock.advance(999);
      equal(calls, 1);
      await clock.advance(1);
      await until(() => calls === 2, "second attempt", clock);
      await until(() => delays.length === 2, "second retry", clock);
      await clock.advance(2000);
      deepEqual(await job.wait(), { a: "ok" });
      deepEqual(delays, [1000, 2000]);
      equal((await taskByKey(ctx, job.id, "a")).attempts, 3);
      await executor.shutdown();
    },
  },
  {
    name: "ManualClock.runUntil(job.wait()) runs minutes of backoff and a 10-minute timeout without advancing by hand",
    async run(ctx) {
      let flakes = 0;
      let hangs = 0;
      const { executor, clock } = harness(ctx.storage, [
        agent("flaky", () => {
          if (++flakes < 3) throw new Error(`flake ${flakes}`);
          return "ok";
        }),
        agent("hang", async (_i, c) => {
          if (++hangs === 1) await aborted(c.signal); // the first attempt runs into its timeout
          return "second try";
        }),
      ], { retry: { delayMs: 60_000, factor: 2, maxDelayMs: 600_000 }, pollIntervalMs: 60_000, leaseMs: 120_000 });
      const retries: number[] = [];
      executor.on("task:retrying", (e) => retries.push(e.delayMs));
      executor.start();
      const job = await executor.submit({
        name: "skip",
        tasks: [
          { key: "flaky", agent: "flaky" },
          { key: "hang", agent: "hang", timeoutMs: 600_000 },
          { key: "after", agent: "flaky", dependsOn: ["flaky", "hang"] },
        ],
      });
      const started = clock.monotonic();
      deepEqual(await clock.runUntil(job.wait()), { flaky: "ok", hang: "second try", after: "ok" });
      deepEqual([...retries].sort((a, b) => a - b), [60_000, 60_000, 120_000]);
      ok(clock.monotonic() - started >= 660_000, "the timeout (10 min) and its retry (1 min) passed on the clock");
      equal(executor.stats().timedOut, 1);
      equal((await taskByKey(ctx, job.id, "flaky")).attempts, 3);
      await executor.shutdown();
    },
  },
  {
    name: "a NonRetryableError fails the task at once",
    async run(ctx) {
      let calls = 0;
      const { executor } = harness(ctx.storage, [
        agent("fatal", () => {
          calls++;
          throw new NonRetryableError("bad request");
        }),
      ]);
      executor.start();
      const job = await executor.submit({ name: "fatal", tasks: [{ key: "a", agent: "fatal" }] });
      const e = await rejects<Error & { failedTasks: { key: string; error: string }[] }>(() => job.wait(), Error);
      deepEqual(e.failedTasks, [{ key: "a", error: "bad request" }]);
      equal(calls, 1);
      const t = await taskByKey(ctx, job.id, "a");
      equal(t.status, "failed");
      equal(t.error?.name, "NonRetryableError");
      equal(t.error?.retryable, false);
      await executor.shutdown();
    },
  },
  {
    name:
      "task:retrying and task:failed carry the value the agent threw as `cause`, stack and all (the stored error keeps only name and message)",
    async run(ctx) {
      class PaymentDeclined extends Error {
        override name = "PaymentDeclined";
      }
      const thrown: Error[] = [];
      const { executor, clock } = harness(ctx.storage, [
        agent("pay", () => {
          const e = new PaymentDeclined(`declined ${thrown.length + 1}`);
          thrown.push(e);
          throw e;
        }),
      ], { maxAttempts: 2 });
      const causes: unknown[] = [];
      executor.on("task:retrying", ({ cause }) => void causes.push(cause));
      executor.on("task:failed", ({ error, cause }) => {
        causes.push(cause);
        equal(error.name, "PaymentDeclined");
      });
      executor.start();
      const job = await executor.submit({ name: "pay", tasks: [{ key: "a", agent: "pay" }] });
      const e = await clock.runUntil(rejects<JobFailedError>(() => job.wait(), JobFailedError));
      deepEqual(e.failedTasks, [{ key: "a", error: "declined 2" }]);
      equal(causes.length, 2);
      ok(causes[0] === thrown[0] && causes[1] === thrown[1], "each event told the very error its attempt threw");
      ok(typeof (causes[1] as Error).stack === "string", "with its stack");
      await executor.shutdown();
    },
  },
  {
    name: "exhausted attempts fail the task with the last error",
    async run(ctx) {
      let calls = 0;
      const { executor, clock } = harness(ctx.storage, [
        agent("always", () => {
          calls++;
          throw new Error(`try ${calls}`);
        }),
      ], { retry: { delayMs: 10, factor: 1 } });
      executor.start();
      const job = await executor.submit({ name: "x", tasks: [{ key: "a", agent: "always", maxAttempts: 2 }] });
      const waiting = job.wait().catch((e) => e);
      await until(() => calls === 1, "attempt 1", clock);
      await clock.advance(10);
      await until(() => calls === 2, "attempt 2", clock);
      const err = await waiting;
      equal(err.name, "JobFailedError");
      const t = await taskByKey(ctx, job.id, "a");
      equal(t.status, "failed");
      equal(t.attempts, 2);
      equal(t.error?.message, "try 2");
      await executor.shutdown();
    },
  },
  {
    name: "an agent's error is stored readable and bounded on every adapter: NUL, huge messages and names, odd throws",
    async run(ctx) {
      const huge = "m".repeat(5_000_000);
      const throwers: Record<string, () => unknown> = {
        "nul-message": () => new Error("bad\0byte"),
        "nul-string": () => "text\0with NUL",
        "huge-message": () => new Error(huge),
        "huge-name": () => Object.assign(new Error("named"), { name: "N".repeat(1_000_000) }),
        "huge-string": () => huge,
        "cut-pair": () => new Error(`${"x".repeat(16 * 1024 - 41)}${"\u{1F600}".repeat(40)}`),
        "aggregate": () => new AggregateError([new Error("one"), "two"], "several"),
      };
      const agents = Object.entries(throwers).map(([name, make]) =>
        agent(name, () => {
          throw make();
        })
      );
      const { executor, clock } = harness(ctx.storage, agents, { retry: { delayMs: 10, factor: 1 } });
      executor.start();
      const job = await executor.submit({
        name: "errors",
        tasks: agents.map((a) => ({ key: a.name, agent: a.name, maxAttempts: 2 })),
      });
      // The first attempts are stored as retries (their reason names the error) ...
      await until(
        async () => {
          const tasks = await ctx.storage.listTasks({ jobId: job.id });
          return tasks.every((t) => t.status === "ready" && t.attempts === 1);
        },
        "every first attempt stored as a retry",
        clock,
      );
      equal((await taskByKey(ctx, job.id, "nul-message")).statusReason, "Retrying: bad\ufffdbyte");
      // ... and the second ones as failures.
      await clock.advance(10);
      await rejects(() => job.wait(), JobFailedError);
      const byKey = Object.fromEntries((await ctx.storage.listTasks({ jobId: job.id })).map((t) => [t.key, t]));
      for (const [key, t] of Object.entries(byKey)) {
        equal(t.status, "failed", key);
        equal(t.attempts, 2, key);
        ok(t.error !== null && t.error.name.length <= 16 * 1024 && t.error.message.length <= 16 * 1024, key);
        ok(t.statusReason !== null && t.statusReason.length <= 16 * 1024 + 100, key);
        ok(!t.statusReason.includes("\0"), `${key}: the reason is text every store keeps`);
      }
      // JSON keeps NUL on every adapter: the message is stored as thrown.
      equal(byKey["nul-message"]!.error?.message, "bad\0byte");
      equal(byKey["nul-message"]!.statusReason, "bad\ufffdbyte");
      equal(byKey["nul-string"]!.error?.message, "text\0with NUL");
      for (const key of ["huge-message", "huge-string"]) {
        const message = byKey[key]!.error!.message;
        ok(message.startsWith("m".repeat(16_000)), `${key}: the start of the message is kept`);
        const [, kept, more] = /^(m*)\u2026 \((\d+) more characters\)$/.exec(message) ?? [];
        equal(kept!.length + Number(more), huge.length, `${key}: says what was left out: ${message.slice(-60)}`);
      }
      ok(byKey["huge-name"]!.error!.name.startsWith("N".repeat(1000)));
      equal(byKey["huge-name"]!.error!.message, "named");
      const cut = byKey["cut-pair"]!.error!.message;
      ok(cut.startsWith("x".repeat(16 * 1024 - 41)) && !/\ufffd/.test(cut), "a cut never splits a surrogate pair");
      equal(byKey["aggregate"]!.error?.name, "AggregateError");
      equal(byKey["aggregate"]!.error?.message, "several");
      // A person's reasons holding NUL are stored alike everywhere too.
      const other = await executor.submit({
        name: "reasons",
        tasks: [{ key: "a", agent: "aggregate", delayMs: 60_000 }],
      });
      const [pending] = await ctx.storage.listTasks({ jobId: other.id });
      const cancelled = await executor.cancelTask(pending!.id, "no\0more");
      equal(cancelled.statusReason, "no\ufffdmore");
      equal((await ctx.storage.getTask(pending!.id))?.statusReason, "no\ufffdmore");
      await executor.shutdown();
    },
  },
  {
    name: "a timeout aborts the signal with TaskTimeoutError and the attempt is retried",
    async run(ctx) {
      const reasons: unknown[] = [];
      let calls = 0;
      const { executor, clock } = harness(ctx.storage, [
        agent("slow", async (_i, c) => {
          calls++;
          if (calls === 1) {
            try {
              await aborted(c.signal);
            } catch (e) {
              reasons.push(e);
              throw e;
            }
          }
          return "second time lucky";
        }),
      ], { retry: { delayMs: 5 } });
      executor.start();
      const job = await executor.submit({ name: "t", tasks: [{ key: "a", agent: "slow", timeoutMs: 100 }] });
      await until(() => calls === 1, "first attempt", clock);
      await clock.advance(100);
      await until(() => reasons.length === 1, "abort", clock);
      ok(reasons[0] instanceof TaskTimeoutError);
      await until(async () => (await taskByKey(ctx, job.id, "a")).status === "ready", "retry stored", clock);
      equal((await taskByKey(ctx, job.id, "a")).error?.name, "TaskTimeoutError");
      await clock.advance(5);
      deepEqual(await job.wait(), { a: "second time lucky" });
      equal(executor.stats().timedOut, 1);
      await executor.shutdown();
    },
  },
  {
    name: "an agent that ignores its signal frees its slot on timeout, is counted, and its late result is discarded",
    async run(ctx) {
      const late = deferred<string>();
      let calls = 0;
      const { executor, clock } = harness(ctx.storage, [
        agent("stubborn", () => {
          calls++;
          return calls === 1 ? late.promise : "fresh";
        }),
        agent("other", () => "other ran"),
      ], { maxWorkers: 1, retry: { delayMs: 1000 } });
      executor.start();
      const job = await executor.submit({
        name: "s",
        tasks: [{ key: "a", agent: "stubborn", timeoutMs: 50 }, { key: "b", agent: "other", priority: 1 }],
      });
      await until(() => calls === 1, "stubborn started", clock);
      await clock.advance(50);
      await until(async () => (await taskByKey(ctx, job.id, "b")).status === "completed", "slot freed", clock);
      equal(executor.stats().ignoredAbort, 1);
      late.resolve("late");
      await clock.advance(1000);
      deepEqual(await job.wait(), { a: "fresh", b: "other ran" });
      await executor.shutdown();
    },
  },
  {
    name: "an agent answering with a thenable whose then throws fails that attempt; the executor goes on",
    async run(ctx) {
      const { executor, clock } = harness(ctx.storage, [
        agent("odd", () => ({
          then() {
            throw new NonRetryableError("then refused");
          },
        })),
        agent("fine", () => "ok"),
      ]);
      executor.start();
      const bad = await executor.submit({ name: "odd", tasks: [{ key: "a", agent: "odd" }] });
      await rejects(() => bad.wait(), Error);
      const a = await taskByKey(ctx, bad.id, "a");
      equal(a.status, "failed");
      equal(a.error?.message, "then refused");
      const good = await executor.submit({ name: "fine", tasks: [{ key: "b", agent: "fine" }] });
      deepEqual(await good.wait(), { b: "ok" });
      equal(executor.stats().running, 0);
      await until(() => executor.stats().completed === 1, "stats", clock);
      await executor.shutdown();
    },
  },
  {
    name: "an at-most-once attempt dropped while its start was being stored is not counted as ignoring its signal",
    async run(ctx) {
      const { storage, held, release } = holdingFirstStart(ctx.storage);
      let calls = 0;
      const { executor, clock } = harness(storage, [agent("pay", () => ++calls)]);
      executor.start();
      const job = await executor.submit({
        name: "pay",
        tasks: [{ key: "a", agent: "pay", durability: "at-most-once" }],
      });
      await until(held, "the start being stored", clock);
      const stopped = executor.shutdown({ graceMs: 0 });
      release();
      await stopped;
      // The check of an abort runs a macrotask after it: let any such check run.
      await new Promise((r) => setTimeout(r, 1));
      equal(calls, 0);
      equal(executor.stats().ignoredAbort, 0);
      equal((await taskByKey(ctx, job.id, "a")).status, "ready");
    },
  },
  {
    name: "maxWorkers is never exceeded",
    async run(ctx) {
      let running = 0;
      let peak = 0;
      const { executor } = harness(ctx.storage, [
        agent("work", async () => {
          running++;
          peak = Math.max(peak, running);
          await new Promise((r) => setTimeout(r, 1));
          running--;
          return null;
        }),
      ], { maxWorkers: 3 });
      executor.start();
      const job = await executor.submit({
        name: "many",
        tasks: Array.from({ length: 40 }, (_, i) => ({ key: `t${i}`, agent: "work" })),
      });
      await job.wait();
      equal(peak, 3);
      await executor.shutdown();
    },
  },
  {
    name: "backpressure: the ready queue never holds more than its capacity",
    async run(ctx) {
      let peak = 0;
      const { executor } = harness(ctx.storage, [agent("noop", () => null)], {
        queueCapacity: 5,
        maxWorkers: 2,
        prefetch: Infinity, // claims fill the queue's room
        queue: (capacity) => {
          const q = new RingQueue<Task>(capacity);
          const push = q.tryPush.bind(q);
          q.tryPush = (t) => {
            const ok = push(t);
            peak = Math.max(peak, q.size);
            return ok;
          };
          return q;
        },
      });
      executor.start();
      const job = await executor.submit({
        name: "bp",
        tasks: Array.from({ length: 60 }, (_, i) => ({ key: `t${i}`, agent: "noop" })),
      });
      await job.wait();
      ok(peak > 0 && peak <= 5, `peak queue size ${peak}`);
      equal(executor.stats().claimed, 60);
      await executor.shutdown();
    },
  },
  {
    name: "a synchronous agent runs a long queue without growing the stack (each end starts the next in one loop)",
    async run(ctx) {
      // Every queued task settles inside the call that starts it: were each end to start
      // the next by a nested call, 3,000 of them would overflow the stack.
      const n = 3000;
      const { executor } = harness(ctx.storage, [agent("echo", (i) => i)], {
        queueCapacity: n,
        maxWorkers: 1,
        prefetch: Infinity,
      });
      const job = await executor.submit({
        name: "sync",
        tasks: Array.from({ length: n }, (_, i) => ({ key: `t${i}`, agent: "echo", input: i })),
      });
      executor.start();
      const out = await job.wait();
      equal(Object.keys(out).length, n);
      equal(out.t2999, 2999);
      equal(executor.stats().completed, n);
      await executor.shutdown();
    },
  },
  {
    name: "shutdown leaves no timer armed, whether the executor was started or not",
    async run(ctx) {
      // An executor used only as a client (submit, pause, resume) arms no timer: it must not
      // keep its process alive until a delayed task is due.
      const idle = harness(ctx.storage, [agent("noop", () => null)]);
      const later = await idle.executor.submit({ name: "later", tasks: [{ key: "a", agent: "noop", delayMs: 3000 }] });
      await later.pause();
      await later.resume();
      equal(idle.clock.pending, 0, "timers armed by a never-started executor");
      await idle.executor.shutdown();
      equal(idle.clock.pending, 0, "timers left by a never-started executor");
      const started = harness(ctx.storage, [agent("noop", () => null)]);
      started.executor.start();
      await started.executor.submit({ name: "later", tasks: [{ key: "a", agent: "noop", delayMs: 3000 }] });
      await started.executor.shutdown();
      equal(started.clock.pending, 0, "timers left by a started executor");
    },
  },
  {
    name: "a delayed task submitted before start() runs at its time once the executor starts",
    async run(ctx) {
      let ranAt = -1;
      const { executor, clock } = harness(ctx.storage, [agent("noop", () => (ranAt = clock.now() - START))], {
        pollIntervalMs: 60_000,
        leaseMs: 600_000,
        recoveryIntervalMs: 600_000,
      });
      const job = await executor.submit({ name: "later", tasks: [{ key: "a", agent: "noop", delayMs: 3000 }] });
      executor.start();
      await until(() => clock.pending > 0, "the executor's timers", clock);
      await clock.advance(2999);
      equal(ranAt, -1);
      await clock.advance(1);
      await until(() => ranAt >= 0, "the task run at its time", clock);
      equal(ranAt, 3000);
      deepEqual(await job.wait(), { a: 3000 });
      await executor.shutdown();
    },
  },
  {
    name: "stats().ignoredAbort is final when shutdown() resolves",
    async run(ctx) {
      let calls = 0;
      const { executor, clock } = harness(ctx.storage, [agent("deaf", () => {
        calls++;
        return new Promise(() => {});
      })]);
      executor.start();
      await executor.submit({ name: "d", tasks: [{ key: "a", agent: "deaf" }] });
      await until(() => calls === 1, "started", clock);
      await executor.shutdown({ graceMs: 0 });
      equal(executor.stats().ignoredAbort, 1);
    },
  },
  {
    name:
      "a job cancelled during shutdown's grace period reports its running attempt as lost (task:lost, stats().lost)",
    async run(ctx) {
      let calls = 0;
      const { executor, clock } = harness(ctx.storage, [agent("deaf", () => {
        calls++;
        return new Promise(() => {});
      })]);
      const lost: string[] = [];
      executor.on("task:lost", (e) => lost.push(e.task.key));
      executor.start();
      const job = await executor.submit({ name: "g", tasks: [{ key: "a", agent: "deaf" }] });
      await until(() => calls === 1, "started", clock);
      const stopping = executor.shutdown({ graceMs: 10_000 });
      await job.cancel();
      await clock.advance(10_000);
      await stopping;
      // Its result will never be stored (the job was cancelled), as when it is cancelled
      // while the executor runs: not a task handed back by shutdown.
      deepEqual(lost, ["a"]);
      const stats = executor.stats();
      equal(stats.started, 1);
      equal(stats.lost, 1);
      equal((await taskByKey(ctx, job.id, "a")).status, "cancelled");
    },
  },
  {
    name: "stats().storageErrors counts every storage:error, also a result commit the storage refuses for good",
    async run(ctx) {
      // A storage of its own that refuses an op as malformed (a TypeError): the result is
      // dropped, not retried, and told as a storage:error all the same.
      let refused = false;
      const storage = intercept(ctx.storage, {
        commit: (commit) => (ops, now) => {
          if (!refused && ops.some(isResult)) {
            refused = true;
            return Promise.reject(new TypeError("This storage refuses the op"));
          }
          return commit(ops, now);
        },
      });
      const { executor, clock } = harness(storage, [agent("noop", () => "done")]);
      const errors: string[] = [];
      const lost: string[] = [];
      executor.on("storage:error", (e) => errors.push(`${e.operation}: ${(e.error as Error).message}`));
      executor.on("task:lost", (e) => lost.push(e.task.key));
      executor.start();
      await executor.submit({ name: "r", tasks: [{ key: "a", agent: "noop" }] });
      await until(() => lost.length === 1, "the refused result dropped", clock);
      deepEqual(errors, ["commit: This storage refuses the op"]);
      equal(executor.stats().storageErrors, errors.length);
      await executor.shutdown({ graceMs: 0 });
    },
  },
  {
    name: "an executor abandoned mid-task is recovered by a second executor once the lease expires",
    async run(ctx) {
      const started = deferred();
      const dead = harness(ctx.storage, [
        agent("job", () => {
          started.resolve();
          return new Promise(() => {}); // the process "dies" here
        }),
      ], { leaseMs: 1000, heartbeatMs: 300 });
      dead.executor.start();
      const job = await dead.executor.submit({ name: "r", tasks: [{ key: "a", agent: "job" }] });
      await started.promise;
      // A second executor whose clock is past the lease: the first one never renews again.
      const clock = new ManualClock(START + 5000);
      const alive = harness(ctx.storage, [agent("job", () => "recovered")], { clock, leaseMs: 1000, heartbeatMs: 300 });
      const retrying: string[] = [];
      alive.executor.on("task:retrying", (e) => retrying.push(e.error.name));
      alive.executor.start();
      const result = await (await alive.executor.job(job.id)).wait();
      deepEqual(result, { a: "recovered" });
      const t = await taskByKey(ctx, job.id, "a");
      equal(t.attempts, 2);
      equal(t.leaseOwner, null);
      ok(alive.executor.stats().recovered >= 1);
      deepEqual(retrying, ["LeaseExpiredError"], "the crashed attempt is reported as one to retry");
      equal(alive.executor.stats().retried, 1);
      await alive.executor.shutdown();
    },
  },
  {
    name:
      "recovery leaves a task whose owner renewed its expired lease after recovery read it: it does not run twice at once",
    async run(ctx) {
      const client = harness(ctx.storage, [agent("job", () => "client")]);
      const job = await client.executor.submit({ name: "slow-owner", tasks: [{ key: "a", agent: "job" }] });
      // The owner (a slow executor, not a crashed one) holds the task with a lease that has
      // expired by the clock of the recovering executor.
      const [held] = await ctx.storage.claimReady({ limit: 1, now: START, owner: "slow", leaseMs: 10 });
      equal(held!.jobId, job.id);
      let renewed = 0;
      // Its renewal lands between recovery's read of the expired lease and recovery's commit.
      const racing = intercept(ctx.storage, {
        expiredLeases: (original) => async (now: number, limit?: number) => {
          const found = await original(now, limit);
          if (found.some((t) => t.id === held!.id)) {
            renewed += (await ctx.storage.renewLeases({ ids: [held!.id], owner: "slow", now, leaseMs: 10_000 })).length;
          }
          return found;
        },
      });
      const ran: string[] = [];
      const clock = new ManualClock(START + 5000);
      const recovering = harness(racing, [agent("job", (_i, c) => {
        ran.push(c.task.key);
        return "again";
      })], { clock });
      recovering.executor.start();
      await until(() => renewed > 0, "the owner's renewal", clock);
      await clock.advance(0);
      await recovering.executor.shutdown();
      deepEqual(ran, [], "the task was not run a second time alongside its owner");
      equal(recovering.executor.stats().recovered, 0);
      const t = await ctx.storage.getTask(held!.id);
      equal(t!.status, "running");
      equal(t!.leaseOwner, "slow");
      equal(t!.version, held!.version, "nothing was written to the task");
    },
  },
  {
    name: "recovery takes back every expired lease of crashed executors at once, not one page per interval",
    async run(ctx) {
      // A crashed executor with `prefetch` (or several crashed ones) held more tasks than
      // one read of expired leases answers (500).
      const count = 520;
      const client = harness(ctx.storage, [agent("job", () => null)]);
      const job = await client.executor.submit({
        name: "many",
        tasks: Array.from({ length: count }, (_, i) => ({ key: `t${i}`, agent: "job" })),
      });
      const held = await ctx.storage.claimReady({ limit: count, now: START, owner: "crashed", leaseMs: 1000 });
      equal(held.length, count);
      const clock = new ManualClock(START + 5000);
      const alive = harness(ctx.storage, [agent("job", () => "recovered")], { clock, leaseMs: 1000 });
      alive.executor.start();
      // No time passes: the recovery at start must take back all of them.
      await until(() => alive.executor.stats().recovered >= count, "every expired lease recovered", clock);
      equal(alive.executor.stats().recovered, count);
      deepEqual(Object.keys(await job.wait()).length, count);
      await alive.executor.shutdown();
    },
  },
  {
    name: "a crashed last attempt recovered as failed is reported as failed (event and stats)",
    async run(ctx) {
      const started = deferred();
      const dead = harness(ctx.storage, [
        agent("job", () => {
          started.resolve();
          return new Promise(() => {});
        }),
      ], { leaseMs: 1000, heartbeatMs: 300 });
      dead.executor.start();
      const job = await dead.executor.submit({ name: "r", tasks: [{ key: "a", agent: "job", maxAttempts: 1 }] });
      await started.promise;
      const clock = new ManualClock(START + 5000);
      const alive = harness(ctx.storage, [agent("job", () => "never")], { clock, leaseMs: 1000, heartbeatMs: 300 });
      const failed: string[] = [];
      alive.executor.on("task:failed", (e) => failed.push(`${e.task.key}: ${e.error.name}`));
      alive.executor.on("job:failed", (e) => failed.push(`job ${e.job.name}`));
      alive.executor.start();
      await rejects(async () => await (await alive.executor.job(job.id)).wait(), Error);
      await until(() => failed.length === 2, "both events", clock);
      deepEqual(failed, ["a: LeaseExpiredError", "job r"], "the task's end is reported before its job's");
      equal(alive.executor.stats().failed, 1);
      equal(alive.executor.stats().started, 0);
      await alive.executor.shutdown();
    },
  },
  {
    name: "an executor restarted with the same id takes back its interrupted tasks without waiting for the lease",
    async run(ctx) {
      const started = deferred();
      const clock = new ManualClock(START);
      const dead = harness(ctx.storage, [
        agent("job", () => {
          started.resolve();
          return new Promise(() => {});
        }),
      ], { id: "worker-1", clock, leaseMs: 60_000 });
      dead.executor.start();
      const job = await dead.executor.submit({ name: "own", tasks: [{ key: "a", agent: "job" }] });
      await started.promise;
      // The restarted executor's clock is one millisecond on, far inside the 60 s lease (the
      // frozen first executor, still in this process, cannot claim what becomes ready then).
      const later = new ManualClock(START + 1);
      const again = harness(ctx.storage, [agent("job", () => "resumed")], {
        id: "worker-1",
        clock: later,
        leaseMs: 60_000,
      });
      again.executor.start();
      deepEqual(await (await again.executor.job(job.id)).wait(), { a: "resumed" });
      equal((await taskByKey(ctx, job.id, "a")).attempts, 2);
      equal(later.now(), START + 1);
      await again.executor.shutdown();
    },
  },
  {
    name: "an at-most-once task interrupted by a crash is blocked, not run again",
    async run(ctx) {
      const started = deferred();
      let runs = 0;
      const dead = harness(ctx.storage, [
        agent("charge", () => {
          runs++;
          started.resolve();
          return new Promise(() => {});
        }),
      ], { leaseMs: 1000, heartbeatMs: 300 });
      dead.executor.start();
      const job = await dead.executor.submit({
        name: "pay",
        tasks: [{ key: "charge", agent: "charge", durability: "at-most-once" }],
      });
      await started.promise;
      const alive = harness(ctx.storage, [agent("charge", () => runs++)], {
        clock: new ManualClock(START + 5000),
        leaseMs: 1000,
        heartbeatMs: 300,
      });
      const blocked: string[] = [];
      alive.executor.on("task:blocked", (e) => blocked.push(`${e.task.key}: ${e.task.statusReason}`));
      alive.executor.start();
      await until(async () => (await taskByKey(ctx, job.id, "charge")).status === "blocked", "blocked");
      const t = await taskByKey(ctx, job.id, "charge");
      ok(t.statusReason?.includes("at-most-once"));
      equal(runs, 1);
      // A person is needed: the executor that blocked it says so.
      await until(() => blocked.length === 1, "task:blocked");
      deepEqual(blocked, [`charge: ${t.statusReason}`]);
      equal((await ctx.storage.getJob(job.id))!.status, "running");
      await alive.executor.shutdown();
    },
  },
  {
    name: "an at-most-once task claimed but never started goes back to ready after a crash, and runs once",
    async run(ctx) {
      // "first" hangs (the process "dies" in it), "second" waits in the ready queue.
      const { job, runs, revive } = await crashInFirstCall(ctx.storage, [
        { key: "first", agent: "work", durability: "at-most-once", priority: 0 },
        { key: "second", agent: "work", durability: "at-most-once", priority: 1 },
      ], { prefetch: Infinity });
      await until(async () => (await taskByKey(ctx, job.id, "second")).status === "running", "second claimed");
      const queued = await taskByKey(ctx, job.id, "second");
      equal(queued.startedAt, null, "claimed, not started");
      ok((await taskByKey(ctx, job.id, "first")).startedAt !== null, "the start of the hanging task is stored");
      const alive = revive();
      await until(async () => (await taskByKey(ctx, job.id, "second")).status === "completed", "second completed");
      await until(async () => (await taskByKey(ctx, job.id, "first")).status === "blocked", "first blocked");
      deepEqual(runs, { first: 1, second: 1 });
      const second = await taskByKey(ctx, job.id, "second");
      equal(second.attempts, 1, "the claim that never ran is not counted");
      ok(second.startedAt !== null);
      await alive.executor.shutdown();
    },
  },
  {
    name: "a crash spends no attempt of the tasks waiting in the ready queue, only of the one it interrupted",
    async run(ctx) {
      // "first" hangs (the process "dies" in it); four more wait in the ready queue. One
      // attempt each: a charge for a claim that never ran would fail the task.
      const waiting = ["w1", "w2", "w3", "w4"];
      const { job, runs, revive } = await crashInFirstCall(ctx.storage, [
        { key: "first", agent: "work", maxAttempts: 1, priority: 0 },
        ...waiting.map((key) => ({ key, agent: "work", maxAttempts: 1, priority: 1 })),
      ], { prefetch: Infinity });
      await until(async () => {
        const tasks = await ctx.storage.listTasks({ jobId: job.id });
        return tasks.every((t) => t.status === "running");
      }, "the others claimed into the ready queue");
      const alive = revive();
      await until(async () => (await ctx.storage.getJob(job.id))?.status === "failed", "the job ended");
      equal((await taskByKey(ctx, job.id, "first")).status, "failed");
      for (const key of waiting) {
        const t = await taskByKey(ctx, job.id, key);
        equal(t.status, "completed", `${key}: ${t.statusReason}`);
        equal(t.attempts, 1, `${key}: the claim that never ran is not counted`);
        equal(t.error, null, key);
      }
      deepEqual(runs, { first: 1, w1: 1, w2: 1, w3: 1, w4: 1 });
      const first = await taskByKey(ctx, job.id, "first");
      equal(first.error?.name, "LeaseExpiredError", "the interrupted attempt counts");
      await alive.executor.shutdown();
    },
  },
  {
    name: "a crash spends no attempt of a task its claim started when a reordering queue hands out another first",
    async run(ctx) {
      // A last-in first-out ready queue (the `queue` option): the worker takes the last
      // task claimed, not the first, which the claim started for it.
      const lifo = (capacity: number): Queue<Task> => {
        const items: Task[] = [];
        let closed = false;
        return {
          capacity,
          get size() {
            return items.length;
          },
          get closed() {
            return closed;
          },
          tryPush: (t) => !closed && items.length < capacity && items.push(t) > 0,
          push: (
            t,
          ) => (!closed && items.length < capacity && items.push(t) > 0
            ? Promise.resolve()
            : Promise.reject(new Error("full"))),
          tryPop: () => items.pop(),
          pop: () => Promise.resolve(items.pop()),
          drain: () => items.splice(0),
          close: () => void (closed = true),
        };
      };
      const keys = ["w1", "w2", "w3"];
      const { job, runs, revive } = await crashInFirstCall(
        ctx.storage,
        keys.map((key) => ({ key, agent: "work", maxAttempts: 1 })),
        { queue: lifo, prefetch: Infinity },
      );
      // The task the claim started for the free worker runs first, whatever the queue's order.
      deepEqual(runs, { w1: 1 });
      const before = await ctx.storage.listTasks({ jobId: job.id });
      const alive = revive();
      await until(
        async () => ["completed", "failed", "cancelled"].includes((await ctx.storage.getJob(job.id))!.status),
        "the job ended",
      );
      for (const key of ["w2", "w3"]) {
        const t = await taskByKey(ctx, job.id, key);
        const b = before.find((x) => x.key === key)!;
        equal(
          t.status,
          "completed",
          `${key} (startedAt ${b.startedAt} while it waited in the queue, its agent never called): ${t.statusReason}`,
        );
      }
      equal((await taskByKey(ctx, job.id, "w1")).status, "failed", "the interrupted attempt counts");
      deepEqual(runs, { w1: 1, w2: 1, w3: 1 });
      await alive.executor.shutdown();
    },
  },
  {
    name: "a start stored with its answer lost does not call the agent once another executor recovered the task",
    async run(ctx) {
      const gate = deferred<string>();
      let outage = false; // A's calls fail before reaching the storage
      let loseAnswer = false;
      const down = () => new StorageError("connection down");
      const isStart = (o: CommitOp) =>
        o.type === "updateTask" && o.set.startedAt !== undefined && o.set.status === undefined;
      const storageA = intercept(ctx.storage, {
        commit: (commit) => async (ops, now) => {
          if (outage) throw down();
          const result = await commit(ops, now);
          if (loseAnswer && ops.some(isStart)) {
            loseAnswer = false;
            outage = true;
            throw new StorageError("connection lost after the commit");
          }
          return result;
        },
        renewLeases: (renew) => async (o) => {
          if (outage) throw down();
          return await renew(o);
        },
        claimReady: (claim) => async (o) => {
          if (outage) throw down();
          return await claim(o);
        },
      });
      const calls: string[] = [];
      const a = harness(storageA, [
        agent("busy", () => gate.promise),
        agent("work", (_input, c) => {
          calls.push(`A:${c.task.key}`);
          return "done";
        }),
      ], { maxWorkers: 1, leaseMs: 1000, heartbeatMs: 300, prefetch: Infinity });
      const lostA: string[] = [];
      a.executor.on("task:lost", (e) => lostA.push(e.reason));
      a.executor.start();
      const job = await a.executor.submit({
        name: "x",
        tasks: [{ key: "busy", agent: "busy", priority: 0 }, { key: "t", agent: "work", priority: 1 }],
      });
      await until(
        () => a.executor.stats().started === 1 && a.executor.stats().queued === 1,
        "busy runs, t waits",
        a.clock,
      );
      // busy ends: its result and t's start are stored in one commit whose answer is lost.
      loseAnswer = true;
      gate.resolve("ok");
      await until(() => outage, "the start stored, its answer lost", a.clock);
      const stored = await taskByKey(ctx, job.id, "t");
      ok(stored.startedAt !== null, "t's start is stored");
      // Another executor (whose claims find nothing to take) recovers t once its lease ended.
      const b = harness(intercept(ctx.storage, { claimReady: () => () => Promise.resolve([]) }), [
        agent("work", () => "done"),
      ], { clock: new ManualClock(START + 5000), leaseMs: 1000 });
      b.executor.start();
      await untilAdvancing(
        async () => (await taskByKey(ctx, job.id, "t")).status === "ready",
        "B recovered t",
        b.clock,
        500,
      );
      // A's storage is back: its retry conflicts with its own earlier write.
      outage = false;
      await untilAdvancing(() => calls.length > 0 || lostA.length > 0, "A settled t's start", a.clock, 1000);
      const t = await taskByKey(ctx, job.id, "t");
      deepEqual(calls, [], `A called the agent of a task stored ${t.status} (${t.statusReason})`);
      await b.executor.shutdown();
      await a.executor.shutdown();
    },
  },
  {
    name: "a task claimed for a free worker is started by its claim: a chain writes no start of its own",
    async run(ctx) {
      let startWrites = 0;
      const storage = intercept(ctx.storage, {
        commit: (commit) => (ops, now) => {
          for (const op of ops) if (op.type === "updateTask" && op.set.startedAt !== undefined) startWrites++;
          return commit(ops, now);
        },
      });
      const order: string[] = [];
      const { executor } = harness(storage, [agent("step", (_input, c) => {
        order.push(c.task.key);
        return c.task.key;
      })], { maxWorkers: 2 });
      executor.start();
      const keys = ["a", "b", "c", "d", "e"];
      const job = await executor.submit({
        name: "chain",
        tasks: keys.map((key, i) => ({ key, agent: "step", ...(i > 0 ? { dependsOn: [keys[i - 1]!] } : {}) })),
      });
      await job.wait();
      deepEqual(order, keys);
      equal(startWrites, 0, "starts written apart from their claim");
      for (const t of await ctx.storage.listTasks({ jobId: job.id })) {
        ok(t.startedAt !== null && t.startedAt <= t.finishedAt!, `${t.key} started ${t.startedAt}`);
        equal(t.attempts, 1, t.key);
      }
      await executor.shutdown();
    },
  },
  {
    name: "graceful shutdown lets running tasks finish within the grace period",
    async run(ctx) {
      const gate = deferred<string>();
      const started = deferred();
      const { executor, clock } = harness(ctx.storage, [
        agent("slow", () => {
          started.resolve();
          return gate.promise;
        }),
      ]);
      executor.start();
      const job = await executor.submit({ name: "g", tasks: [{ key: "a", agent: "slow" }] });
      await started.promise;
      const stopping = executor.shutdown({ graceMs: 5000 });
      await clock.advance(100);
      gate.resolve("done");
      await stopping;
      const t = await taskByKey(ctx, job.id, "a");
      equal(t.status, "completed");
      equal(t.output, "done");
    },
  },
  {
    name: "shutdown past the grace period aborts running tasks and releases them without counting the attempt",
    async run(ctx) {
      const reasons: unknown[] = [];
      const started = deferred();
      const { executor, clock } = harness(ctx.storage, [
        agent("hang", async (_i, c) => {
          started.resolve();
          try {
            await aborted(c.signal);
          } catch (e) {
            reasons.push(e);
          }
          return "too late";
        }),
      ]);
      executor.start();
      const job = await executor.submit({ name: "g", tasks: [{ key: "a", agent: "hang" }] });
      await started.promise;
      const stopping = executor.shutdown({ graceMs: 200 });
      await clock.advance(200);
      await stopping;
      equal(reasons.length, 1);
      const t = await taskByKey(ctx, job.id, "a");
      equal(t.status, "ready");
      equal(t.attempts, 0);
      equal(t.leaseOwner, null);
    },
  },
  {
    name: "shutdown past the grace period blocks an at-most-once task whose agent still runs, and releases the rest",
    async run(ctx) {
      let runs = 0;
      const started = deferred();
      const { executor, clock } = harness(ctx.storage, [
        agent("charge", async (_i, c) => {
          runs++;
          started.resolve();
          await aborted(c.signal).catch(() => {});
          return "too late";
        }),
      ], { maxWorkers: 1 });
      executor.start();
      const job = await executor.submit({
        name: "pay",
        tasks: [
          { key: "charge", agent: "charge", durability: "at-most-once", priority: 0 },
          { key: "queued", agent: "charge", durability: "at-most-once", priority: 1 },
        ],
      });
      await started.promise;
      const stopping = executor.shutdown({ graceMs: 200 });
      await clock.advance(200);
      await stopping;
      equal(runs, 1, "the queued task never started");
      const charged = await taskByKey(ctx, job.id, "charge");
      equal(charged.status, "blocked");
      ok(charged.statusReason?.includes("at-most-once"), charged.statusReason ?? "");
      equal(charged.attempts, 1, "its attempt counts: the agent ran");
      const queued = await taskByKey(ctx, job.id, "queued");
      equal(queued.status, "ready");
      equal(queued.attempts, 0);
    },
  },
  {
    name: "shutdown() called from a task:started listener starts no other task of the same claim",
    async run(ctx) {
      let runs = 0;
      let stopping: Promise<void> | undefined;
      const { executor } = harness(ctx.storage, [
        agent("work", async (_i, c) => {
          runs++;
          await aborted(c.signal).catch(() => {});
          return "too late";
        }),
      ], { maxWorkers: 4 });
      // Submitted before start: one claim takes the three tasks and starts each for a free worker.
      const job = await executor.submit({
        name: "stop",
        tasks: ["a", "b", "c"].map((key) => ({ key, agent: "work" })),
      });
      executor.on("task:started", () => {
        stopping ??= executor.shutdown({ graceMs: 0 });
      });
      executor.start();
      await until(() => stopping !== undefined, "the first start");
      await stopping;
      equal(runs, 1, "only the task whose start called shutdown() ran");
      const tasks = await ctx.storage.listTasks({ jobId: job.id });
      deepEqual(tasks.map((t) => [t.status, t.attempts]), [["ready", 0], ["ready", 0], ["ready", 0]]);
    },
  },
  {
    name: "claimed tasks still waiting in the queue are released at shutdown",
    async run(ctx) {
      const started = deferred();
      const { executor } = harness(ctx.storage, [
        agent("hang", () => {
          started.resolve();
          return new Promise(() => {});
        }),
      ], { maxWorkers: 1 });
      executor.start();
      const job = await executor.submit({
        name: "q",
        tasks: Array.from({ length: 5 }, (_, i) => ({ key: `t${i}`, agent: "hang" })),
      });
      await started.promise;
      await executor.shutdown({ graceMs: 0 });
      const tasks = await ctx.storage.listTasks({ jobId: job.id });
      deepEqual(tasks.map((t) => [t.status, t.attempts]), Array.from({ length: 5 }, () => ["ready", 0]));
    },
  },
  {
    name: "a completion that arrives after the lease was lost is rejected and does not overwrite the new attempt",
    async run(ctx) {
      const first = deferred<string>();
      const started = deferred();
      const zombie = harness(ctx.storage, [
        agent("w", () => {
          started.resolve();
          return first.promise;
        }),
      ], { leaseMs: 1000, heartbeatMs: 300 });
      const lost: string[] = [];
      zombie.executor.on("task:lost", (e) => lost.push(e.task.key));
      zombie.executor.start();
      const job = await zombie.executor.submit({ name: "z", tasks: [{ key: "a", agent: "w" }] });
      await started.promise;
      const other = harness(ctx.storage, [agent("w", () => "winner")], {
        clock: new ManualClock(START + 5000),
        leaseMs: 1000,
        heartbeatMs: 300,
      });
      other.executor.start();
      await (await other.executor.job(job.id)).wait();
      first.resolve("zombie");
      await until(() => lost.length === 1, "zombie rejected");
      const t = await taskByKey(ctx, job.id, "a");
      equal(t.output, "winner");
      equal(t.attempts, 2);
      await other.executor.shutdown();
      await zombie.executor.shutdown({ graceMs: 0 });
    },
  },
  {
    name: "a lease renewal answered late does not end the next attempt of the same task",
    async run(ctx) {
      // The renewal is evaluated while the task waits for its retry, and answered once the
      // next attempt runs: that answer is about the attempt that ended, not the new one.
      const arrive = deferred();
      const answer = deferred();
      const evaluated = deferred();
      let gate = false;
      const storage = intercept(ctx.storage, {
        renewLeases: (renew) => async (o) => {
          if (!gate) return await renew(o);
          gate = false;
          await arrive.promise;
          const renewed = await renew(o);
          evaluated.resolve();
          await answer.promise;
          return renewed;
        },
      });
      const attempts: { signal: AbortSignal; done: ReturnType<typeof deferred<string>> }[] = [];
      const { executor, clock } = harness(storage, [agent("twice", (_i, c) => {
        const done = deferred<string>();
        attempts.push({ signal: c.signal, done });
        return done.promise;
      })], { heartbeatMs: 1000, retry: { delayMs: 500, factor: 1, maxDelayMs: 500 } });
      executor.start();
      const job = await executor.submit({ name: "late", tasks: [{ key: "a", agent: "twice" }] });
      await until(() => attempts.length === 1, "first attempt", clock);
      gate = true;
      await clock.advance(1000); // the heartbeat asks; its request is on its way
      attempts[0]!.done.reject(new Error("transient"));
      await until(async () => (await taskByKey(ctx, job.id, "a")).status === "ready", "retry stored", clock);
      arrive.resolve();
      await evaluated.promise; // evaluated while the task was ready: not renewed
      await clock.advance(500);
      await until(() => attempts.length === 2, "second attempt", clock);
      answer.resolve();
      for (let i = 0; i < 5; i++) await clock.advance(0);
      equal(attempts[1]!.signal.aborted, false, "the second attempt was not aborted");
      equal(executor.stats().lost, 0);
      attempts[1]!.done.resolve("ok");
      deepEqual(await job.wait(), { a: "ok" });
      await executor.shutdown();
    },
  },
  {
    name: "a result waiting for a slow commit keeps its lease renewed",
    async run(ctx) {
      const release = deferred();
      let stall = false;
      let renewing = 0;
      const storage = intercept(ctx.storage, {
        commit: (commit) => async (...args) => {
          // The completion waits (the start, stored before the agent runs, goes through).
          if (stall && args[0].some((o) => o.type === "updateTask" && o.set.status === "completed")) {
            await release.promise;
          }
          return await commit(...args);
        },
        renewLeases: (renew) => async (...args) => {
          renewing++;
          try {
            return await renew(...args);
          } finally {
            renewing--;
          }
        },
      });
      const { executor, clock } = harness(storage, [agent("quick", () => "done")], {
        leaseMs: 3000,
        heartbeatMs: 1000,
      });
      executor.start();
      const job = await executor.submit({ name: "slow-commit", tasks: [{ key: "a", agent: "quick" }] });
      stall = true;
      await until(() => executor.stats().started === 1, "attempt ran", clock);
      const claimed = await taskByKey(ctx, job.id, "a");
      equal(claimed.status, "running");
      // Three lease lengths pass while the completion waits for its commit. A heartbeat's
      // renewal may take a while to reach a durable storage: each second waits for it to be
      // answered (moving the clock on past an unanswered renewal lets the lease expire in a
      // way real time does not).
      for (let i = 0; i < 9; i++) {
        await clock.advance(1000);
        await until(() => renewing === 0, `the renewal of second ${i + 1} answered`, clock);
      }
      await until(
        async () => (await taskByKey(ctx, job.id, "a")).leaseExpiresAt! > clock.now(),
        "the lease renewed past now",
        clock,
      );
      const held = await taskByKey(ctx, job.id, "a");
      equal(held.status, "running");
      release.resolve();
      deepEqual(await job.wait(), { a: "done" });
      await executor.shutdown();
    },
  },
  {
    name: "shutdown waits for a recovery already under way; nothing touches the storage after it resolved",
    async run(ctx) {
      const release = deferred();
      let holdRecovery = false;
      let callsAfter = 0;
      let resolved = false;
      const storage = new Proxy(ctx.storage, {
        get(target, prop) {
          const value = Reflect.get(target, prop) as unknown;
          if (typeof value !== "function") return value;
          return (...args: unknown[]) => {
            if (resolved) callsAfter++;
            if (prop === "expiredLeases" && holdRecovery) {
              holdRecovery = false;
              return release.promise.then(() => (value as (...a: unknown[]) => unknown).apply(target, args));
            }
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      const { executor, clock } = harness(storage, [agent("noop", () => null)], { recoveryIntervalMs: 1000 });
      executor.start();
      const job = await executor.submit({ name: "r", tasks: [{ key: "a", agent: "noop" }] });
      await job.wait();
      holdRecovery = true;
      await clock.advance(1000); // a periodic recovery asks for expired leases, and waits
      const stopping = executor.shutdown().then(() => (resolved = true));
      for (let i = 0; i < 5; i++) await clock.advance(0);
      equal(resolved, false, "shutdown resolved while a recovery was under way");
      release.resolve();
      await stopping;
      for (let i = 0; i < 5; i++) await clock.advance(1000);
      equal(callsAfter, 0, "storage calls after shutdown resolved");
      equal(clock.pending, 0, "timers left");
    },
  },
  {
    name: "results of a job cancelled by another executor are dropped together, not one commit attempt per result",
    async run(ctx) {
      const gate = deferred();
      let started = 0;
      let completionCommits = 0;
      const storage = intercept(ctx.storage, {
        commit: (commit) => (ops, now) => {
          if (ops.some((o) => o.type === "updateTask" && o.set.status === "completed")) completionCommits++;
          return commit(ops, now);
        },
      });
      const { executor, clock } = harness(storage, [
        agent("hold", async () => {
          started++;
          await gate.promise;
          return "late";
        }),
      ], { maxWorkers: 30 });
      const lost: string[] = [];
      executor.on("task:lost", (e) => lost.push(e.task.key));
      executor.start();
      const job = await executor.submit({
        name: "big",
        tasks: Array.from({ length: 30 }, (_, i) => ({ key: `t${i}`, agent: "hold" })),
      });
      await until(() => started === 30, "every task running", clock);
      // Another process cancels the job: this executor learns it only when it commits.
      const other = harness(ctx.storage, [agent("hold", () => null)], { clock });
      await (await other.executor.job(job.id)).cancel();
      gate.resolve();
      await until(() => lost.length === 30, "every result dropped", clock);
      ok(completionCommits <= 3, `${completionCommits} commit attempts for 30 stale results`);
      equal(executor.stats().lost, 30);
      for (const t of await ctx.storage.listTasks({ jobId: job.id })) equal(t.status, "cancelled", t.key);
      await executor.shutdown();
    },
  },
  {
    name: "a batch applied with its answer lost is reported stored even when its retry conflicts for another reason",
    async run(ctx) {
      const gate = deferred();
      let armed = true;
      let holdClaims = false;
      let claimedElsewhere: string[] = [];
      const storage = intercept(ctx.storage, {
        commit: (commit) => async (ops, now) => {
          if (!(armed && ops.length === 3 && ops.every(isResult))) return await commit(ops, now);
          armed = false;
          holdClaims = true; // this executor must not claim the retried task first
          await commit(ops, now);
          // Applied; while the answer is lost, another executor claims the retried task.
          // (PostgreSQL's SKIP LOCKED passes over a row a transaction of this executor holds
          // for a moment, e.g. a lease renewal: asked again then.)
          for (let i = 0; i < 100 && claimedElsewhere.length === 0; i++) {
            if (i > 0) await new Promise((r) => setTimeout(r, 10));
            const other = await ctx.storage.claimReady({ limit: 10, now: now!, owner: "other", leaseMs: 30_000 });
            claimedElsewhere = other.map((t) => t.key);
          }
          holdClaims = false;
          throw new StorageError("connection lost after the commit");
        },
        claimReady: (claim) => (options) => holdClaims ? Promise.resolve([]) : claim(options),
      });
      const { executor, clock } = harness(storage, [
        agent("flaky", async () => {
          await gate.promise;
          throw new Error("try again");
        }),
        agent("ok", async (input) => {
          await gate.promise;
          return input;
        }),
      ], { maxWorkers: 3, retry: { delayMs: 0 } });
      const events: string[] = [];
      executor.on("task:completed", (e) => events.push(`completed ${e.task.key}`));
      executor.on("task:lost", (e) => events.push(`lost ${e.task.key}`));
      await executor.submit({ name: "j1", tasks: [{ key: "a", agent: "flaky", priority: 0 }] });
      const j2 = await executor.submit({
        name: "j2",
        tasks: [{ key: "b", agent: "ok", input: 1, priority: 1 }, { key: "c", agent: "ok", input: 2, priority: 1 }],
      });
      executor.start();
      await until(() => executor.stats().running === 3, "three running", clock);
      gate.resolve();
      deepEqual(await j2.wait(), { b: 1, c: 2 });
      // The commit is retried after a backoff on the executor's clock.
      await untilAdvancing(
        () => events.includes("completed b") && events.includes("completed c"),
        "b and c reported completed",
        clock,
        100,
      );
      equal(armed, false, "the lost answer happened");
      deepEqual(claimedElsewhere, ["a"]);
      ok(!events.includes("lost b") && !events.includes("lost c"), events.join(", "));
      await executor.shutdown({ graceMs: 0 });
    },
  },
  {
    name: "a failed batch is not taken as stored when its retry conflicts on a retry that kept the task's runAt",
    async run(ctx) {
      // A retry with no delay on a clock that has not moved writes back the `runAt` the
      // task already had: that `runAt` shows nothing about whether the batch landed.
      const gate = deferred();
      let armed = true;
      let other: ReturnType<typeof harness> | null = null;
      let j1 = "";
      const storage = intercept(ctx.storage, {
        commit: (commit) => async (ops, now) => {
          if (!(armed && ops.length === 2 && ops.every(isResult))) return await commit(ops, now);
          armed = false;
          // Not applied; meanwhile another process cancels the retried task's job.
          await (await other!.executor.job(j1)).cancel();
          throw new StorageError("connection lost before the commit");
        },
      });
      const { executor, clock } = harness(storage, [
        agent("flaky", async () => {
          await gate.promise;
          throw new Error("try again");
        }),
        agent("ok", async (input) => {
          await gate.promise;
          return input;
        }),
      ], { maxWorkers: 2, retry: { delayMs: 0 } });
      other = harness(ctx.storage, [agent("flaky", () => null), agent("ok", () => null)], { clock });
      const events: string[] = [];
      executor.on("task:completed", (e) => events.push(`completed ${e.task.key}`));
      executor.on("task:lost", (e) => events.push(`lost ${e.task.key}`));
      j1 = (await executor.submit({ name: "j1", tasks: [{ key: "a", agent: "flaky" }] })).id;
      const j2 = await executor.submit({ name: "j2", tasks: [{ key: "b", agent: "ok", input: 1 }] });
      executor.start();
      await until(() => executor.stats().running === 2, "two running", clock);
      gate.resolve();
      await untilAdvancing(
        () => events.includes("completed b") && events.includes("lost a"),
        "b completed and a lost",
        clock,
        100,
      );
      equal(armed, false, "the failed commit happened");
      deepEqual(events.sort(), ["completed b", "lost a"]);
      equal((await taskByKey(ctx, j2.id, "b")).status, "completed", "b's completion was written");
      deepEqual(await j2.wait(), { b: 1 });
      equal((await taskByKey(ctx, j1, "a")).status, "cancelled");
      await executor.shutdown({ graceMs: 0 });
    },
  },
  {
    name: "a late lease renewal answer does not abort a new attempt of a task handed back and claimed again",
    async run(ctx) {
      let held: { args: Parameters<typeof ctx.storage.renewLeases>[0]; resolve: (ids: string[]) => void } | null = null;
      const storage = intercept(ctx.storage, {
        renewLeases: (renew) => (args) => {
          if (held !== null || !args.ids.some((id) => id === slowId)) return renew(args);
          return new Promise<string[]>((resolve) => (held = { args, resolve }));
        },
      });
      let slowId = "";
      const long = deferred<string>();
      const aborts: string[] = [];
      const { executor, clock } = harness(storage, [
        agent("long", () => long.promise),
        agent("slow", (_i, c) =>
          new Promise((_r, reject) => {
            c.signal.addEventListener("abort", () => {
              aborts.push(String((c.signal.reason as Error).message));
              reject(c.signal.reason);
            });
          })),
      ], { maxWorkers: 1, leaseMs: 30_000, heartbeatMs: 10_000, prefetch: Infinity });
      await executor.submit({ name: "j0", tasks: [{ key: "L", agent: "long", priority: 0 }] });
      const j2 = await executor.submit({ name: "j2", tasks: [{ key: "T", agent: "slow", priority: 1 }] });
      slowId = (await j2.tasks())[0]!.id;
      executor.start();
      await until(() => executor.stats().running === 1 && executor.stats().queued === 1, "L running, T queued", clock);
      await clock.advance(10_000); // a renewal of L and T is sent; its answer waits
      await until(() => held !== null, "renewal sent", clock);
      await j2.pause(); // T is handed back unstarted
      const answer = await ctx.storage.renewLeases(held!.args); // T is no longer claimed: not renewed
      await j2.resume();
      await until(() => executor.stats().queued === 1, "T claimed again", clock);
      long.resolve("done"); // the worker starts T's new attempt
      await until(() => executor.stats().running === 1 && executor.stats().queued === 0, "T started", clock);
      held!.resolve(answer); // the old renewal's answer arrives late
      for (let i = 0; i < 5; i++) await clock.advance(0);
      deepEqual(aborts, []);
      equal(executor.stats().running, 1);
      await executor.shutdown({ graceMs: 0 });
    },
  },
  {
    name: "a commit that fails for good (a corrupt or closed storage) drops its results instead of retrying forever",
    async run(ctx) {
      // It breaks after the agent ran (the result is dropped), or before: while the task
      // waits in the ready queue behind a busy worker, whose end drops its start.
      for (const when of ["result", "start"] as const) {
        let broken = false;
        let runs = 0;
        const gate = deferred<string>();
        const storage = intercept(ctx.storage, {
          commit: (commit) => (...args) =>
            broken ? Promise.reject(new StorageCorruptError("tasks", "bad page")) : commit(...args),
        });
        const { executor, clock } = harness(storage, [
          agent("noop", (_input, c) => {
            if (c.task.key !== when) return "x"; // (not the other round's task, if recovered here)
            runs++;
            broken = true;
            return "x";
          }),
          agent("busy", () => gate.promise),
        ], { maxWorkers: 1, prefetch: Infinity });
        const lost: string[] = [];
        executor.on("task:lost", (e) => {
          if (e.task.key === when) lost.push(e.reason);
        });
        const job = await executor.submit({
          name: "c",
          tasks: when === "result"
            ? [{ key: when, agent: "noop" }]
            : [{ key: "busy", agent: "busy", priority: 0 }, { key: when, agent: "noop", priority: 1 }],
        });
        executor.start();
        if (when === "start") {
          await until(
            () => executor.stats().started === 1 && executor.stats().queued === 1,
            "one busy, one queued",
            clock,
          );
          broken = true;
          gate.resolve("done");
        }
        await until(() => lost.length === 1, "dropped", clock);
        ok(lost[0]!.includes("bad page"), lost[0]);
        equal(runs, when === "start" ? 0 : 1, when);
        await executor.shutdown(); // does not wait on a commit that can never succeed
        const t = await taskByKey(ctx, job.id, when);
        equal(t.status, "running", "still claimed: recovery runs it again once the lease expires");
        equal(t.startedAt === null, when === "start", "recovery sees whether its start was stored");
      }
    },
  },
  {
    name: "shutdown() resolves when the storage keeps failing past the grace period: the results are reported lost",
    async run(ctx) {
      // With no grace, with a grace that ends during the outage (the commit failing after the
      // runs ended), and with a long grace cut short by a second call.
      for (const mode of ["no grace", "grace of 5 s", "second call"] as const) {
        let down = false;
        const storage = intercept(ctx.storage, {
          commit: (commit) => (...args) =>
            down ? Promise.reject(new StorageError("connection refused")) : commit(...args),
        });
        const gate = deferred<string>();
        const { executor, clock } = harness(storage, [agent("slow", () => gate.promise)]);
        const lost: string[] = [];
        executor.on("task:lost", (e) => lost.push(e.reason));
        executor.start();
        const job = await executor.submit({ name: "outage", tasks: [{ key: "a", agent: "slow" }] });
        await until(() => executor.stats().running === 1, "running", clock);
        down = true; // the storage goes away for good
        gate.resolve("done");
        await until(() => executor.stats().storageErrors > 0, "the result's commit failing", clock);
        let stopped = false;
        const graceMs = mode === "no grace" ? 0 : mode === "grace of 5 s" ? 5000 : 3_600_000;
        void executor.shutdown({ graceMs }).then(() => (stopped = true));
        for (let i = 0; i < 200 && !stopped; i++) {
          await clock.advance(1000);
          if (mode === "second call" && i === 10) void executor.shutdown({ graceMs: 0 });
        }
        ok(stopped, `shutdown() resolved (${mode})`);
        equal(lost.length, 1, mode);
        ok(lost[0]!.includes("connection refused"), lost[0]);
        down = false;
        const [t] = await ctx.storage.listTasks({ jobId: job.id });
        equal(t!.status, "running", "still claimed: recovery runs it again once the lease expires");
      }
    },
  },
  {
    name:
      "shutdown() resolves past the grace period when a commit's answer was lost and the reads that would confirm it keep failing",
    async run(ctx) {
      let loseAnswer = false;
      let readsDown = false;
      const storage = intercept(ctx.storage, {
        commit: (commit) => async (ops, now) => {
          const result = await commit(ops, now);
          if (loseAnswer) {
            loseAnswer = false;
            throw new StorageError("connection lost after the commit");
          }
          return result;
        },
        getTasks: (getTasks) => (ids) =>
          readsDown ? Promise.reject(new StorageError("connection refused")) : getTasks(ids),
      });
      const gate = deferred<string>();
      const { executor, clock } = harness(storage, [agent("slow", () => gate.promise)]);
      const lost: string[] = [];
      executor.on("task:lost", (e) => lost.push(e.reason));
      executor.start();
      const job = await executor.submit({ name: "outage", tasks: [{ key: "a", agent: "slow" }] });
      await until(() => executor.stats().started === 1, "running", clock);
      loseAnswer = true;
      readsDown = true;
      gate.resolve("done");
      await until(() => executor.stats().storageErrors > 0, "the answer lost", clock);
      let stopped = false;
      void executor.shutdown({ graceMs: 0 }).then(() => (stopped = true));
      for (let i = 0; i < 200 && !stopped; i++) await clock.advance(1000);
      ok(stopped, "shutdown() resolved");
      equal(lost.length, 1);
      readsDown = false;
      const [t] = await ctx.storage.listTasks({ jobId: job.id });
      equal(t!.status, "completed", "the commit was applied; only its answer was lost");
    },
  },
  {
    name: "an executor whose storage was closed stops (run() resolves) instead of polling it for good",
    async run(ctx) {
      let closed = false;
      const storage = intercept(ctx.storage, {
        claimReady: (claim) => (o) =>
          closed ? Promise.reject(new StorageClosedError("The storage is closed")) : claim(o),
      });
      const { executor, clock } = harness(storage, [agent("noop", () => null)]);
      const errors: string[] = [];
      executor.on("storage:error", (e) => errors.push(`${e.operation}: ${(e.error as Error).name}`));
      let stopped = false;
      void executor.run().then(() => (stopped = true));
      const job = await executor.submit({ name: "a", tasks: [{ key: "a", agent: "noop" }] });
      deepEqual(await job.wait(), { a: null });
      closed = true;
      // The next poll claims, meets the closed storage, and the executor stops.
      await untilAdvancing(() => stopped || errors.length > 1, "run() to resolve", clock, 1000);
      ok(stopped, "run() resolved");
      deepEqual(errors, ["claimReady: StorageClosedError"]);
      for (let i = 0; i < 5; i++) await clock.advance(1000);
      equal(errors.length, 1, "no claims after it stopped");
    },
  },
  {
    name:
      "closing the storage wakes an idle executor and a pending wait() at once, with no poll: run() resolves, wait() rejects with StorageClosedError",
    async run(ctx) {
      const { executor, clock } = harness(ctx.storage, [agent("noop", () => null)]);
      let stopped = false;
      void executor.run().then(() => (stopped = true));
      // Not due for an hour: the executor idles and the job waits.
      const job = await executor.submit({ name: "later", tasks: [{ key: "a", agent: "noop", delayMs: 3_600_000 }] });
      let outcome: unknown = null;
      void job.wait().then(() => (outcome = "resolved"), (e) => (outcome = e));
      for (let i = 0; i < 5; i++) await clock.advance(0);
      equal(outcome, null, "the job waits");
      await ctx.storage.close();
      // The clock does not move: no poll comes, nor the task's time. Before, both waited for
      // the next poll (pollIntervalMs, 1 s by default) to learn of the close.
      await until(() => stopped && outcome !== null, "run() to resolve and wait() to settle", clock);
      ok(outcome instanceof StorageClosedError, `wait() rejected with StorageClosedError, got ${outcome}`);
      equal(executor.stats().started, 0);
    },
  },
  {
    name: "an executor whose storage was closed just after a claim failed stops too, instead of polling it for good",
    async run(ctx) {
      // The claim fails with an error that may pass (a dropped connection), and the storage
      // is closed before the next claim: the hand-back of that claim's orphans meets it first.
      let closed = false;
      let failNextClaim = false;
      const storage = new Proxy(ctx.storage, {
        get(target, prop) {
          const value = Reflect.get(target, prop) as unknown;
          if (typeof value !== "function") return value;
          return (...args: unknown[]) => {
            if (closed && prop !== "watch" && prop !== "close") {
              return Promise.reject(new StorageClosedError("The storage is closed"));
            }
            if (prop === "claimReady" && failNextClaim) {
              failNextClaim = false;
              closed = true;
              return Promise.reject(new StorageError("connection reset"));
            }
            return (value as (...a: unknown[]) => unknown).apply(target, args);
          };
        },
      });
      const { executor, clock } = harness(storage, [agent("noop", () => null)]);
      const errors: string[] = [];
      executor.on("storage:error", (e) => {
        if (e.operation === "claimReady" || e.operation === "listTasks") {
          errors.push(`${e.operation}: ${(e.error as Error).name}`);
        }
      });
      let stopped = false;
      void executor.run().then(() => (stopped = true));
      const job = await executor.submit({ name: "a", tasks: [{ key: "a", agent: "noop" }] });
      deepEqual(await job.wait(), { a: null });
      failNextClaim = true;
      // The next poll claims; before the fix it polled on for good (one error per poll).
      await untilAdvancing(() => stopped || errors.length >= 10, "run() to resolve, or errors to pile up", clock, 1000);
      ok(stopped, `run() resolved (storage errors: ${errors.length}, the last ${errors.at(-1)})`);
      deepEqual(errors, ["claimReady: StorageError", "listTasks: StorageClosedError"]);
      for (let i = 0; i < 5; i++) await clock.advance(1000);
      equal(errors.length, 2, "no calls after it stopped");
    },
  },
  {
    name: "shutdown() does not wait out the claim loop's backoff after a failed claim",
    async run(ctx) {
      // Claims fail (an outage): the loop waits before the next one, up to pollIntervalMs.
      // shutdown({ graceMs: 0 }) ends that wait: it resolves with no time passing.
      let failures = 0;
      const storage = intercept(ctx.storage, {
        claimReady: () => () => {
          failures++;
          return Promise.reject(new StorageError("connection refused"));
        },
      });
      const { executor, clock } = harness(storage, [agent("noop", () => null)], { pollIntervalMs: 60_000 });
      executor.start();
      await until(() => failures > 0, "a failed claim", clock);
      let stopped = false;
      void executor.shutdown({ graceMs: 0 }).then(() => (stopped = true));
      await until(() => stopped, "shutdown() to resolve without the clock moving", clock);
      equal(failures, 1, "no claim after shutdown began");
    },
  },
  {
    name: "a start() whose storage.watch() throws leaves the executor idle: a later start() runs its tasks",
    async run(ctx) {
      let failWatch = true;
      const storage = intercept(ctx.storage, {
        watch: (watch) => (listener) => {
          if (failWatch) throw new Error("watch failed");
          return watch(listener);
        },
      });
      const { executor, clock } = harness(storage, [agent("noop", () => 1)]);
      throws(() => executor.start(), Error);
      equal(executor.running, false, "not running after start() threw");
      failWatch = false;
      executor.start();
      equal(executor.running, true);
      const job = await executor.submit({ name: "w", tasks: [{ key: "a", agent: "noop" }] });
      let result: unknown;
      void job.wait().then((r) => (result = r));
      await untilAdvancing(() => result !== undefined, "the job ran", clock, 1000);
      deepEqual(result, { a: 1 });
      await executor.shutdown();
    },
  },
  {
    name: "a result the storage refuses as malformed is reported lost, not silently forgotten",
    async run(ctx) {
      const storage = intercept(ctx.storage, {
        commit: (commit) => (ops, now) =>
          ops.some((o) => o.type === "updateTask" && o.set.status === "completed")
            ? Promise.reject(new TypeError("a value the storage cannot hold"))
            : commit(ops, now),
      });
      const { executor, clock } = harness(storage, [agent("noop", () => "x")]);
      const lost: string[] = [];
      executor.on("task:lost", (e) => lost.push(e.reason));
      executor.start();
      await executor.submit({ name: "m", tasks: [{ key: "a", agent: "noop" }] });
      await until(() => lost.length === 1, "result dropped", clock);
      ok(lost[0]!.includes("cannot hold"), lost[0]);
      equal(executor.stats().lost, 1);
      await executor.shutdown();
    },
  },
  {
    name: "cancelling a job drops its tasks waiting in the ready queue: their agents are never called",
    async run(ctx) {
      const gate = deferred();
      const started: string[] = [];
      const { executor, clock } = harness(ctx.storage, [agent("wait", async (_i, c) => {
        started.push(c.task.key);
        await Promise.race([gate.promise, aborted(c.signal)]);
        return null;
      })], { maxWorkers: 1, queueCapacity: 10, prefetch: Infinity });
      executor.start();
      const job = await executor.submit({
        name: "c",
        tasks: Array.from({ length: 5 }, (_, i) => ({ key: `t${i}`, agent: "wait" })),
      });
      await until(() => started.length === 1 && executor.stats().queued === 4, "one running, four queued", clock);
      await job.cancel();
      await until(() => executor.stats().running === 0, "the running one aborted", clock);
      gate.resolve();
      for (let i = 0; i < 5; i++) await clock.advance(1000);
      deepEqual(started, ["t0"]);
      equal(executor.stats().started, 1);
      deepEqual(
        new Set((await ctx.storage.listTasks({ jobId: job.id })).map((t) => t.status)),
        new Set(["cancelled"]),
      );
      await executor.shutdown();
    },
  },
  {
    name: "tasks of a cancelled job leave the ready queue at once: not counted as queued, their room claimable",
    async run(ctx) {
      const hold = deferred<string>();
      const { executor, clock } = harness(ctx.storage, [
        agent("hold", () => hold.promise),
        agent("x", (n) => n),
      ], { maxWorkers: 1, queueCapacity: 3, prefetch: Infinity });
      executor.start();
      const first = await executor.submit({ name: "a", tasks: [{ key: "h", agent: "hold" }] });
      await until(() => executor.stats().running === 1, "the only worker busy", clock);
      const doomed = await executor.submit({
        name: "b",
        tasks: [1, 2, 3].map((i) => ({ key: `t${i}`, agent: "x", input: i })),
      });
      await until(() => executor.stats().queued === 3, "the queue full", clock);
      await doomed.cancel();
      equal(executor.stats().queued, 0);
      const next = await executor.submit({ name: "c", tasks: [{ key: "y", agent: "x", input: 7 }] });
      // Claimed while the worker is still busy: the cancelled tasks no longer hold the room.
      await until(async () => (await taskByKey(ctx, next.id, "y")).status === "running", "y claimed", clock);
      // Stored as claimed before the claim's answer reaches the executor (a server answers
      // later than it commits): then it is queued.
      await until(() => executor.stats().queued === 1, "y queued", clock);
      equal(executor.stats().running, 1, "the worker is still busy with h");
      hold.resolve("done");
      deepEqual(await next.wait(), { y: 7 });
      deepEqual(await first.wait(), { h: "done" });
      await executor.shutdown();
    },
  },
  {
    name:
      "a custom queue that throws stops the executor: queue:error is told, run() rejects with the error, its claim is handed back",
    async run(ctx) {
      const broken = new Error("queue bug");
      let pushes = 0;
      const queue = (n: number): Queue<Task> => {
        const ring = new RingQueue<Task>(n);
        return queueOver(ring, {
          tryPush: (t: Task) => {
            if (++pushes === 2) throw broken;
            return ring.tryPush(t);
          },
        });
      };
      const hold = deferred<string>();
      const runs: string[] = [];
      const agents = [
        agent("hold", () => hold.promise),
        agent("x", (n, c) => {
          runs.push(c.task.key);
          return n;
        }),
      ];
      const { executor, clock } = harness(ctx.storage, agents, {
        maxWorkers: 1,
        queueCapacity: 4,
        prefetch: Infinity,
        queue,
      });
      const faults: { operation: string; error: unknown }[] = [];
      executor.on("queue:error", (e) => faults.push(e));
      const first = await executor.submit({ name: "a", tasks: [{ key: "h", agent: "hold" }] });
      const stopped = executor.run().then(() => null, (e: unknown) => e);
      await until(() => executor.stats().running === 1, "the only worker busy", clock);
      const job = await executor.submit({
        name: "b",
        tasks: [1, 2, 3].map((i) => ({ key: `t${i}`, agent: "x", input: i })),
      });
      await until(() => faults.length > 0, "the queue's fault told", clock);
      deepEqual(faults.map((f) => f.operation), ["tryPush"]);
      equal(faults[0]!.error, broken);
      equal(executor.running, false, "stopping: it claims no more");
      hold.resolve("done");
      equal(await stopped, broken, "run() rejects with the queue's error once the executor stopped");
      deepEqual(await first.wait(), { h: "done" }, "the running task finished within the grace period");
      // What it claimed but could not queue went back to ready, its attempt not counted: a
      // new executor runs every task once.
      const next = harness(ctx.storage, agents, { clock });
      next.executor.start();
      deepEqual(await job.wait(), { t1: 1, t2: 2, t3: 3 });
      deepEqual([...runs].sort(), ["t1", "t2", "t3"]);
      for (const t of await job.tasks()) equal(t.attempts, 1, t.key);
      await next.executor.shutdown();
    },
  },
  {
    name: "a task a custom queue refuses back after a cancel is handed back to storage, not held",
    async run(ctx) {
      const hold = deferred<string>();
      // A queue that refuses the first push after a drain (drain is documented as a shutdown call).
      const queue = (n: number): Queue<Task> => {
        const ring = new RingQueue<Task>(n);
        let drained = false;
        return queueOver(ring, {
          tryPush: (t: Task) => {
            if (!drained) return ring.tryPush(t);
            drained = false;
            return false;
          },
          drain: () => {
            drained = true;
            return ring.drain();
          },
        });
      };
      const { executor, clock } = harness(ctx.storage, [agent("hold", () => hold.promise), agent("x", (n) => n)], {
        maxWorkers: 1,
        queueCapacity: 4,
        prefetch: Infinity,
        queue,
      });
      executor.start();
      await executor.submit({ name: "a", tasks: [{ key: "h", agent: "hold" }] });
      await until(() => executor.stats().running === 1, "the only worker busy", clock);
      const doomed = await executor.submit({ name: "b", tasks: [{ key: "t", agent: "x", input: 1 }] });
      const kept = await executor.submit({ name: "c", tasks: [{ key: "k", agent: "x", input: 2 }] });
      await until(() => executor.stats().queued === 2, "both queued", clock);
      await doomed.cancel();
      hold.resolve("done");
      // Held in the executor with nothing to run it, k would never end; handed back, it is
      // claimed again and runs.
      await until(async () => (await taskByKey(ctx, kept.id, "k")).status === "completed", "k run", clock);
      equal((await taskByKey(ctx, kept.id, "k")).attempts, 1, "the attempt it never started is not counted");
      deepEqual(await kept.wait(), { k: 2 });
      await executor.shutdown();
    },
  },
  {
    name: "a renewal that says a queued task's lease is lost aborts that task if it started meanwhile",
    async run(ctx) {
      const arrive = deferred();
      let gate = false;
      let dropId = "";
      const storage = intercept(ctx.storage, {
        renewLeases: (renew) => async (o) => {
          if (!gate) return await renew(o);
          gate = false;
          await arrive.promise;
          // The storage answers that this task's lease is no longer held.
          return (await renew(o)).filter((id) => id !== dropId);
        },
      });
      const runs: { key: string; signal: AbortSignal; done: ReturnType<typeof deferred<string>> }[] = [];
      const { executor, clock } = harness(storage, [agent("hold", (_i, c) => {
        const done = deferred<string>();
        runs.push({ key: c.task.key, signal: c.signal, done });
        return done.promise;
      })], { heartbeatMs: 1000, maxWorkers: 1, prefetch: Infinity });
      executor.start();
      const job = await executor.submit({
        name: "q",
        tasks: [{ key: "a", agent: "hold" }, { key: "b", agent: "hold" }],
      });
      await until(() => runs.length === 1 && executor.stats().queued === 1, "a runs, b waits", clock);
      dropId = (await taskByKey(ctx, job.id, "b")).id;
      gate = true;
      await clock.advance(1000); // the heartbeat asks about a (running) and b (queued)
      runs[0]!.done.resolve("a");
      await until(() => runs.length === 2, "b started", clock);
      arrive.resolve();
      await until(() => runs[1]!.signal.aborted, "b aborted", clock);
      equal(runs[1]!.key, "b");
      equal(executor.stats().lost, 1);
      await executor.shutdown();
    },
  },
  {
    name: "a retry stored paused (its job was paused) whose answer was lost is recognised as stored",
    async run(ctx) {
      let loseAnswer = false;
      const storage = intercept(ctx.storage, {
        commit: (commit) => async (...args) => {
          const result = await commit(...args);
          if (loseAnswer && args[0].some((op) => op.type === "updateTask" && op.set.status === "ready")) {
            loseAnswer = false;
            throw new StorageError("connection reset after the commit");
          }
          return result;
        },
      });
      const fail = deferred<string>();
      const { executor, clock } = harness(storage, [agent("f", () => fail.promise)]);
      const lost: string[] = [];
      executor.on("task:lost", (e) => lost.push(e.reason));
      executor.start();
      const job = await executor.submit({ name: "p", tasks: [{ key: "a", agent: "f" }] });
      await until(() => executor.stats().started === 1, "started", clock);
      await job.pause();
      loseAnswer = true;
      fail.reject(new Error("try again"));
      // The commit is retried after a backoff on the executor's clock.
      await untilAdvancing(
        () => executor.stats().retried > 0 || lost.length > 0,
        "the retry reported",
        clock,
        100,
      );
      deepEqual(lost, []);
      equal(executor.stats().retried, 1);
      equal((await taskByKey(ctx, job.id, "a")).status, "paused");
      await executor.shutdown();
    },
  },
  {
    name: "a task due in 30 days leaves the executor idle (setTimeout fires delays past ~24.8 days at once)",
    async run(ctx) {
      // Timers that behave as the runtime's: a delay past 2^31 - 1 ms fires after 1 ms.
      const runtimeLike = (manual: ManualClock) =>
        timerClock({
          now: () => manual.now(),
          setTimeout: (fn, ms) => manual.setTimer(fn, ms > 2 ** 31 - 1 ? 1 : ms),
          clearTimeout: (h) => manual.clearTimer(h),
        });
      const month = 30 * 86_400_000;
      // The clock itself: a 30-day timer fires at its time, not before; a cleared one never.
      const alone = new ManualClock(START);
      const bare = runtimeLike(alone);
      let fired = 0;
      bare.setTimer(() => fired++, month);
      bare.clearTimer(bare.setTimer(() => fired++, month));
      await alone.advance(month - 1);
      equal(fired, 0);
      await alone.advance(1);
      equal(fired, 1);

      const manual = new ManualClock(START);
      let claims = 0;
      const storage = intercept(ctx.storage, {
        claimReady: (claim) => (o) => {
          claims++;
          return claim(o);
        },
      });
      const { executor } = harness(storage, [agent("noop", () => null)], {
        clock: runtimeLike(manual) as ManualClock,
        pollIntervalMs: 60_000,
        leaseMs: 600_000,
        recoveryIntervalMs: 3_600_000,
      });
      executor.start();
      await executor.submit({ name: "later", tasks: [{ key: "a", agent: "noop", delayMs: month }] });
      await until(() => claims > 0, "the first claim", manual);
      const before = claims;
      for (let i = 0; i < 30; i++) await manual.advance(10);
      ok(claims - before <= 1, `${claims - before} claims in 300 ms`);
      await executor.shutdown();
    },
  },
  {
    name: "tasks a storage claims past the queue's room are handed back, not stranded as running",
    async run(ctx) {
      // A storage breaking its contract (the claim answers more than `limit`).
      const storage = intercept(ctx.storage, {
        claimReady: (claim) => (o) => claim({ ...o, limit: o.limit + 5 }),
      });
      const { executor, clock } = harness(storage, [agent("noop", () => "ok")], { queueCapacity: 2, maxWorkers: 1 });
      executor.start();
      const job = await executor.submit({
        name: "surplus",
        tasks: Array.from({ length: 12 }, (_, i) => ({ key: `t${i}`, agent: "noop" })),
      });
      await until(async () => (await job.status()).status === "completed", "the job to complete", clock);
      const tasks = await ctx.storage.listTasks({ jobId: job.id });
      deepEqual(new Set(tasks.map((t) => t.status)), new Set(["completed"]));
      ok(tasks.every((t) => t.attempts === 1), "a handed-back claim does not count as an attempt");
      await executor.shutdown();
    },
  },
  {
    name: "two executors on one storage never run one task twice at the same time",
    async run(ctx) {
      const active = new Set<string>();
      const runs = new Map<string, number>();
      let overlap = 0;
      const work = agent("w", async (_i, c) => {
        if (active.has(c.task.id)) overlap++;
        active.add(c.task.id);
        runs.set(c.task.id, (runs.get(c.task.id) ?? 0) + 1);
        await new Promise((r) => setTimeout(r, Math.random() * 2));
        active.delete(c.task.id);
        return null;
      });
      const clock = new ManualClock(START);
      const a = harness(ctx.storage, [work], { clock, maxWorkers: 3, queueCapacity: 7 });
      const b = harness(ctx.storage, [work], { clock, maxWorkers: 3, queueCapacity: 7 });
      a.executor.start();
      b.executor.start();
      const job = await a.executor.submit({
        name: "pair",
        tasks: Array.from({ length: 80 }, (_, i) => ({ key: `t${i}`, agent: "w" })),
      });
      await job.wait();
      equal(overlap, 0);
      equal(runs.size, 80);
      ok([...runs.values()].every((n) => n === 1), "each task ran once");
      ok(a.executor.stats().completed > 0 || b.executor.stats().completed > 0);
      await a.executor.shutdown();
      await b.executor.shutdown();
    },
  },
  {
    name: 'executors with claimAgents: "registered" run only their own agents\' tasks of a job that spans them',
    async run(ctx) {
      const ran: string[] = [];
      const alpha = agent("alpha", (_i, c) => (ran.push(`alpha:${c.task.key}`), null));
      const beta = agent("beta", (_i, c) => (ran.push(`beta:${c.task.key}`), null));
      const clock = new ManualClock(START);
      // A submitter that knows both agents and runs nothing; each worker registers one.
      const submitter = harness(ctx.storage, [alpha, beta], { clock });
      const a = harness(ctx.storage, [alpha], { clock, claimAgents: "registered", id: "a" });
      const b = harness(ctx.storage, [beta], { clock, claimAgents: "registered", id: "b" });
      a.executor.start();
      b.executor.start();
      const job = await submitter.executor.submit({
        name: "span",
        tasks: [
          { key: "a1", agent: "alpha" },
          { key: "b1", agent: "beta", dependsOn: ["a1"] },
          { key: "a2", agent: "alpha", dependsOn: ["b1"] },
          { key: "b2", agent: "beta" },
        ],
      });
      await untilAdvancing(async () => (await job.status()).status !== "running", "the job ended", clock, 1000);
      equal((await job.status()).status, "completed");
      deepEqual(ran.filter((r) => r.startsWith("alpha")).sort(), ["alpha:a1", "alpha:a2"]);
      deepEqual(ran.filter((r) => r.startsWith("beta")).sort(), ["beta:b1", "beta:b2"]);
      equal(a.executor.stats().completed, 2);
      equal(b.executor.stats().completed, 2);
      equal(a.executor.stats().failed + b.executor.stats().failed, 0, "no task failed as of an unknown agent");
      await a.executor.shutdown();
      await b.executor.shutdown();
    },
  },
  {
    name: 'claimAgents: "registered": a task may spawn a child of an agent only another executor registers',
    async run(ctx) {
      const ran: string[] = [];
      const parent = agent("parent", (_i, c) => {
        c.spawn({ key: "child", agent: "childAgent", input: 1 });
        ran.push(`parent@${c.task.key}`);
        return "p";
      });
      const child = agent("childAgent", (n) => (ran.push("child"), (n as number) + 1));
      const clock = new ManualClock(START);
      const submitter = harness(ctx.storage, [parent, child], { clock });
      const a = harness(ctx.storage, [parent], { clock, claimAgents: "registered", id: "a" });
      const b = harness(ctx.storage, [child], { clock, claimAgents: "registered", id: "b" });
      a.executor.start();
      b.executor.start();
      const job = await submitter.executor.submit({ name: "cross", tasks: [{ key: "p", agent: "parent" }] });
      await untilAdvancing(async () => (await job.status()).status !== "running", "the job ended", clock, 1000);
      const tasks = await job.tasks();
      equal(
        (await job.status()).status,
        "completed",
        JSON.stringify(tasks.map((t) => [t.key, t.status, t.error?.message])),
      );
      deepEqual(await job.wait(), { p: "p", "p/child": 2 });
      equal(a.executor.stats().completed, 1);
      equal(b.executor.stats().completed, 1);
      await a.executor.shutdown();
      await b.executor.shutdown();
    },
  },
  {
    name:
      'claimAgents: "registered" leaves a task of an agent it lacks ready, and claims it once the agent is registered',
    async run(ctx) {
      const later = agent("later", () => "done");
      const submitter = harness(ctx.storage, [later]);
      const worker = harness(ctx.storage, [agent("other", () => null)], {
        clock: submitter.clock,
        claimAgents: "registered",
      });
      worker.executor.start();
      const job = await submitter.executor.submit({ name: "wait", tasks: [{ key: "t", agent: "later" }] });
      for (let i = 0; i < 5; i++) await submitter.clock.advance(1000); // polls: nothing to claim
      equal((await job.tasks())[0]!.status, "ready");
      equal(worker.executor.stats().failed, 0);
      worker.registry.register(later);
      // Registering tells the executor nothing: its next poll claims the task.
      await untilAdvancing(
        async () => (await job.status()).status !== "running",
        "the job ended",
        submitter.clock,
        1000,
      );
      deepEqual(await job.wait(), { t: "done" });
      await worker.executor.shutdown();
    },
  },
  {
    name: 'claimAgents: "registered" hands back a claimed task whose agent was unregistered before it ran',
    async run(ctx) {
      const gate = deferred();
      const first = agent("first", () => gate.promise.then(() => null));
      const second = agent("second", () => "ran");
      const { executor, registry, clock } = harness(ctx.storage, [first, second], {
        claimAgents: "registered",
        maxWorkers: 1,
        prefetch: Infinity,
      });
      const lost: string[] = [];
      executor.on("task:lost", (e) => lost.push(e.reason));
      executor.start();
      const job = await executor.submit({
        name: "unregister",
        tasks: [{ key: "a", agent: "first" }, { key: "b", agent: "second", priority: 1 }],
      });
      const task = async (key: string) => (await job.tasks()).find((t) => t.key === key)!;
      // "b" is claimed into the queue while "a" holds the only worker.
      await untilAdvancing(async () => (await task("b")).status === "running", "b claimed", clock, 10);
      registry.unregister("second");
      gate.resolve();
      await untilAdvancing(
        async () => (await task("b")).statusReason?.includes("no longer registered") === true,
        "b handed back",
        clock,
        10,
      );
      const b = await task("b");
      equal(b.attempts, 0, "its attempt is not counted");
      equal(executor.stats().failed, 0, "not failed as of an unknown agent");
      deepEqual(lost, [], "handed back, not lost");
      registry.register(second);
      await untilAdvancing(async () => (await job.status()).status !== "running", "the job ended", clock, 1000);
      deepEqual(await job.wait(), { a: null, b: "ran" });
      await executor.shutdown();
    },
  },
  {
    name: "claimAgents: a list of names claims only those agents' tasks; bad values are refused naming the option",
    async run(ctx) {
      const ran: string[] = [];
      const x = agent("x", (_i, c) => (ran.push(c.task.key), null));
      const y = agent("y", (_i, c) => (ran.push(c.task.key), null));
      const { executor, clock } = harness(ctx.storage, [x, y], { claimAgents: ["y"] });
      executor.start();
      const job = await executor.submit({
        name: "some",
        tasks: [{ key: "x1", agent: "x" }, { key: "y1", agent: "y" }, { key: "y2", agent: "y", dependsOn: ["y1"] }],
      });
      await untilAdvancing(() => ran.length >= 2, "both y tasks ran", clock, 100);
      for (let i = 0; i < 3; i++) await clock.advance(1000);
      deepEqual(ran, ["y1", "y2"]);
      equal((await job.tasks()).find((t) => t.key === "x1")!.status, "ready");
      await executor.shutdown();
      const registry = registryOf(x);
      const make = (claimAgents: unknown) => () =>
        new Executor({ storage: ctx.storage, registry, claimAgents: claimAgents as never });
      throws(make("some"), TypeError, '"claimAgents"');
      throws(make([1]), TypeError, '"claimAgents"');
      throws(make([""]), TypeError, '"claimAgents"');
      const bare = { get: registry.get.bind(registry), has: registry.has.bind(registry) } as never;
      throws(
        () => new Executor({ storage: ctx.storage, registry: bare, claimAgents: "registered" }),
        TypeError,
        "names()",
      );
    },
  },
  {
    name:
      "claimAgents: a list naming an agent the registry lacks leaves its tasks ready instead of claiming them again",
    async run(ctx) {
      const ghost = agent("ghost", () => "ghost ran");
      const client = harness(ctx.storage, [ghost]);
      const job = await client.executor.submit({ name: "ghost", tasks: [{ key: "g", agent: "ghost" }] });
      let claims = 0;
      // Past 50 claims answer nothing, so that a claim loop that spins fails this case
      // rather than starving the event loop.
      const counted = intercept(ctx.storage, {
        claimReady: (claim) => (o) => ++claims > 50 ? Promise.resolve([]) : claim(o),
      });
      const { executor, registry, clock } = harness(counted, [agent("real", () => null)], {
        claimAgents: ["real", "ghost"],
      });
      executor.start();
      for (let i = 0; i < 3; i++) await clock.advance(1000);
      ok(claims <= 10, `claims while idle for 3 polls: ${claims}`);
      equal(executor.stats().lost, 0, "no claim handed back");
      const g = (await job.tasks())[0]!;
      equal(g.status, "ready");
      equal(g.attempts, 0);
      // Registered later, it runs.
      registry.register(ghost);
      claims = 0;
      await untilAdvancing(async () => (await job.status()).status !== "running", "the job ended", clock, 1000);
      deepEqual(await job.wait(), { g: "ghost ran" });
      await executor.shutdown();
    },
  },
  {
    name: "a claimed task naming an unknown agent fails with a clear error instead of staying running",
    async run(ctx) {
      const b = buildJob([{ key: "a", agent: "ghost" }]);
      await ctx.storage.createJob(b.job, b.tasks);
      const { executor } = harness(ctx.storage, [agent("real", () => null)]);
      executor.start();
      await until(async () => (await ctx.storage.getTask(b.id("a")))!.status === "failed", "failed");
      const t = (await ctx.storage.getTask(b.id("a")))!;
      equal(t.error?.name, "UnknownAgentError");
      ok(t.error?.message.includes('"ghost"'));
      await executor.shutdown();
    },
  },
  {
    name: "by default an executor claims only for its free workers: each claim stores the start, nothing waits claimed",
    async run(ctx) {
      const gate = deferred<string>();
      const { executor, clock } = harness(ctx.storage, [agent("hold", () => gate.promise)], { maxWorkers: 2 });
      executor.start();
      const job = await executor.submit({
        name: "free-workers",
        tasks: Array.from({ length: 8 }, (_, i) => ({ key: `t${i}`, agent: "hold" })),
      });
      await until(() => executor.stats().running === 2, "both workers busy", clock);
      for (let i = 0; i < 10; i++) await clock.advance(0);
      const tasks = await ctx.storage.listTasks({ jobId: job.id });
      const running = tasks.filter((t) => t.status === "running");
      equal(running.length, 2, "only the tasks the workers run are claimed");
      ok(running.every((t) => t.startedAt !== null), "their claim stored their start");
      equal(tasks.filter((t) => t.status === "ready").length, 6);
      equal(executor.stats().queued, 0);
      equal(executor.stats().claimed, 2);
      gate.resolve("done");
      // Nothing here waits on the clock: moving it on would only expire leases while a durable
      // storage answers in real time.
      equal(Object.keys(await job.wait()).length, 8);
      equal(executor.stats().claimed, 8);
      await executor.shutdown();
    },
  },
  {
    name: "prefetch holds that many claimed tasks waiting beyond the free workers, unstarted, within the queue's room",
    async run(ctx) {
      for (const [prefetch, queueCapacity, waiting] of [[3, 10, 3], [Infinity, 4, 4], [6, 4, 4]] as const) {
        const gate = deferred<string>();
        const { executor, clock } = harness(ctx.storage, [agent("hold", () => gate.promise)], {
          maxWorkers: 2,
          prefetch,
          queueCapacity,
        });
        executor.start();
        const job = await executor.submit({
          name: `prefetch-${prefetch}`,
          tasks: Array.from({ length: 12 }, (_, i) => ({ key: `t${i}`, agent: "hold" })),
        });
        await until(() => executor.stats().running === 2 && executor.stats().queued === waiting, "claimed", clock);
        for (let i = 0; i < 10; i++) await clock.advance(0);
        const what = `prefetch ${prefetch}, queueCapacity ${queueCapacity}`;
        equal(executor.stats().queued, waiting, what);
        const tasks = await ctx.storage.listTasks({ jobId: job.id });
        const claimed = tasks.filter((t) => t.status === "running");
        equal(claimed.length, 2 + waiting, what);
        equal(claimed.filter((t) => t.startedAt === null).length, waiting, `${what}: the waiting ones are not started`);
        gate.resolve("done");
        equal(Object.keys(await job.wait()).length, 12, what);
        await executor.shutdown();
      }
    },
  },
  {
    name: "by default priorities hold over all waiting work: an urgent task (lower priority) submitted later runs next",
    async run(ctx) {
      const gate = deferred<string>();
      const order: string[] = [];
      const { executor, clock } = harness(ctx.storage, [
        agent("hold", () => gate.promise),
        agent("log", (_i, c) => {
          order.push(c.task.key);
          return null;
        }),
      ], { maxWorkers: 1 });
      executor.start();
      const busy = await executor.submit({ name: "busy", tasks: [{ key: "busy", agent: "hold" }] });
      await until(() => executor.stats().running === 1, "the only worker busy", clock);
      const routine = await executor.submit({
        name: "routine",
        tasks: Array.from({ length: 5 }, (_, i) => ({ key: `r${i}`, agent: "log" })),
      });
      const urgent = await executor.submit({ name: "urgent", tasks: [{ key: "u", agent: "log", priority: -1 }] });
      for (let i = 0; i < 10; i++) await clock.advance(0);
      gate.resolve("done");
      await Promise.all([busy.wait(), routine.wait(), urgent.wait()]);
      deepEqual(order, ["u", "r0", "r1", "r2", "r3", "r4"]);
      await executor.shutdown();
    },
  },
  {
    name: "by default two executors on one storage share a burst of work: each claims only for its free workers",
    async run(ctx) {
      const gate = deferred<string>();
      const ran: Record<string, string[]> = { a: [], b: [] };
      const work = (who: "a" | "b") =>
        agent("hold", (_i, c) => {
          ran[who]!.push(c.task.key);
          return gate.promise;
        });
      const clock = new ManualClock(START);
      const a = harness(ctx.storage, [work("a")], { clock, maxWorkers: 2 });
      const b = harness(ctx.storage, [work("b")], { clock, maxWorkers: 2 });
      a.executor.start();
      const job = await a.executor.submit({
        name: "burst",
        tasks: Array.from({ length: 4 }, (_, i) => ({ key: `t${i}`, agent: "hold" })),
      });
      await until(() => a.executor.stats().running === 2, "a's workers busy", clock);
      b.executor.start();
      await until(() => b.executor.stats().running === 2, "b takes the rest", clock);
      equal(ran.a!.length + ran.b!.length, 4);
      gate.resolve("done");
      await job.wait();
      await a.executor.shutdown();
      await b.executor.shutdown();
    },
  },
  {
    name: "a crash with the default prefetch leaves no claimed task waiting: the others stay ready, no attempt spent",
    async run(ctx) {
      const waiting = ["w1", "w2", "w3"];
      const { job, runs, revive } = await crashInFirstCall(ctx.storage, [
        { key: "first", agent: "work", maxAttempts: 1, priority: 0 },
        ...waiting.map((key) => ({ key, agent: "work", maxAttempts: 1, priority: 1 })),
      ]);
      for (const key of waiting) {
        const t = await taskByKey(ctx, job.id, key);
        equal(t.status, "ready", key);
        equal(t.attempts, 0, key);
      }
      const alive = revive();
      await until(async () => (await ctx.storage.getJob(job.id))?.status === "failed", "the job ended");
      for (const key of waiting) equal((await taskByKey(ctx, job.id, key)).status, "completed", key);
      deepEqual(runs, { first: 1, w1: 1, w2: 1, w3: 1 });
      await alive.executor.shutdown();
    },
  },
  {
    name:
      "wait() and shutdown() name an option they do not know instead of ignoring it (wait({ timeout }) waited for good)",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [agent("noop", () => null)]);
      const job = await executor.submit({ name: "a", tasks: [{ key: "a", agent: "noop" }] });
      await rejects(
        () => job.wait({ timeout: 5000 } as never),
        TypeError,
        'Unknown wait() option "timeout" (did you mean "signal: AbortSignal.timeout(ms)"?); the options are "signal"',
      );
      await rejects(() => job.wait({ signal: undefined, deadline: 1 } as never), TypeError, '"deadline"');
      // A deadline or a signal given in place of the options object waited for good too.
      await rejects(
        () => job.wait(5000 as never),
        TypeError,
        "wait() expects an options object ({ signal }), got 5000",
      );
      await rejects(
        () => job.wait(AbortSignal.timeout(5000) as never),
        TypeError,
        "wait() takes its signal as an option: wait({ signal })",
      );
      executor.start();
      await rejects(
        () => executor.shutdown({ grace: 0 } as never),
        TypeError,
        'Unknown shutdown() option "grace" (did you mean "graceMs"?); the options are "graceMs"',
      );
      // shutdown(0) waited the whole default grace.
      await rejects(
        () => executor.shutdown(0 as never),
        TypeError,
        "shutdown() expects an options object ({ graceMs }), got 0",
      );
      equal(executor.running, true, "the refused shutdown() left the executor running");
      deepEqual(await job.wait({}), { a: null });
      await executor.shutdown({ graceMs: 0 });
    },
  },
  {
    name: "bad configuration is a RangeError or TypeError naming the option and the value",
    run(ctx) {
      const registry = registryOf();
      throws(() => new Executor({ storage: ctx.storage, registry, maxWorkers: 0 }), RangeError, '"maxWorkers"');
      throws(() => new Executor({ storage: ctx.storage, registry, maxAttempts: 2 ** 31 }), RangeError, '"maxAttempts"');
      // A misspelt option is named, not ignored (JavaScript callers get no compile error).
      const loose = (o: Record<string, unknown>) => () =>
        new Executor({ storage: ctx.storage, registry, ...o } as never);
      throws(
        loose({ concurrency: 3 }),
        TypeError,
        'Unknown Executor option "concurrency" (did you mean "maxWorkers"?)',
      );
      throws(loose({ retry: { delay: 10 } }), TypeError, 'Unknown Executor option "retry.delay"');
      throws(loose({ retention: { keepLast: 1, maxAge: 5 } }), TypeError, 'Unknown Executor option "retention.maxAge"');
      throws(() => new Executor({ storage: ctx.storage, registry, queueCapacity: 1.5 }), RangeError, "1.5");
      throws(() => new Executor({ storage: ctx.storage, registry, prefetch: -1 }), RangeError, '"prefetch"');
      throws(() => new Executor({ storage: ctx.storage, registry, prefetch: 2.5 }), RangeError, "2.5");
      throws(() => new Executor({ storage: ctx.storage, registry, prefetch: Number.NaN }), RangeError, '"prefetch"');
      throws(() => new Executor({ storage: ctx.storage, registry, prefetch: "8" as never }), TypeError, '"prefetch"');
      throws(
        () => new Executor({ storage: ctx.storage, registry, queueCapacity: 2 ** 32 }),
        RangeError,
        "queueCapacity",
      );
      throws(() => new RingQueue(2 ** 32), RangeError, "capacity");
      throws(() => new Executor({ storage: ctx.storage, registry, taskTimeoutMs: -1 }), RangeError, '"taskTimeoutMs"');
      // Its leases' owner: a UTF-8 store would keep U+FFFD there, no longer this executor's id.
      throws(() => new Executor({ storage: ctx.storage, registry, id: "worker-\ud83d" }), TypeError, '"id"');
      throws(
        () => new Executor({ storage: ctx.storage, registry, retry: { factor: Number.NaN } }),
        RangeError,
        "retry.factor",
      );
      throws(
        () => new Executor({ storage: ctx.storage, registry, leaseMs: 100, heartbeatMs: 200 }),
        RangeError,
        "heartbeatMs",
      );
      throws(() => new Executor({ storage: undefined as never, registry }), TypeError, '"storage"');
      throws(() => new Executor({ storage: ctx.storage, registry, retry: "fast" as never }), TypeError, '"retry"');
      throws(() => new Executor({ storage: ctx.storage, registry, retry: { factor: 0.5 } }), RangeError, "0.5");
      throws(() => new Executor({ storage: ctx.storage, registry, queue: 5 as never }), TypeError, '"queue"');
      throws(() => new Executor({ storage: ctx.storage, registry, queue: () => ({}) as never }), TypeError, '"queue"');
      throws(() => new Executor({ storage: ctx.storage, registry, clock: {} as never }), TypeError, '"clock"');
      throws(() => new Executor({ storage: ctx.storage, registry, random: 1 as never }), TypeError, '"random"');
      // A value of another type is a TypeError that shows it as given (a string is quoted).
      throws(() => new Executor({ storage: ctx.storage, registry, maxWorkers: "4" as never }), TypeError, '"4"');
      // Where 0 is allowed the message says non-negative.
      throws(
        () => new Executor({ storage: ctx.storage, registry, shutdownGraceMs: -1 }),
        RangeError,
        "non-negative number, got -1",
      );
      throws(
        () => new Executor({ storage: ctx.storage, registry, retry: { delayMs: -1 } }),
        RangeError,
        "non-negative",
      );
      throws(
        () => new Executor({ storage: ctx.storage, registry, retention: { keepLast: "3" as never } }),
        TypeError,
        '"retention.keepLast" must be a non-negative integer, got "3"',
      );
      // A cap of 0 with no delay is a valid choice (retry at once), as is a constant delay.
      new Executor({ storage: ctx.storage, registry, retry: { delayMs: 0, maxDelayMs: 0 } });
      new Executor({ storage: ctx.storage, registry, retry: { factor: 1 } });
    },
  },
  {
    name: "bad arguments to run(), on(), job(), review(), retryTask(), cancelTask() and wait() are errors naming them",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [agent("noop", () => null)]);
      await rejects(() => executor.run("x" as never), TypeError, '"signal"');
      throws(() => executor.on("task:completed", 5 as never), TypeError, "needs a function");
      const job = await executor.submit({ name: "a", tasks: [{ key: "a", agent: "noop" }] });
      const [t] = await ctx.storage.listTasks({ jobId: job.id });
      await rejects(() => executor.review(t!.id, "maybe" as never), TypeError, '"decision"');
      await rejects(() => executor.review(t!.id, "reject", 42 as never), TypeError, '"reason"');
      // An id that is not text is a mistake in the call, not a task or job that is missing.
      await rejects(() => executor.job(5 as never), TypeError, 'job() "id" must be a string, got 5');
      await rejects(() => executor.review({} as never, "accept"), TypeError, 'review() "taskId"');
      await rejects(() => executor.retryTask({} as never), TypeError, 'retryTask() "taskId"');
      await rejects(() => executor.cancelTask(undefined as never), TypeError, 'cancelTask() "taskId"');
      // A task that never asked for review, or is not blocked, is named as such.
      await rejects(() => executor.review(t!.id, "accept"), InvalidTransitionError, "did not ask for review");
      await rejects(() => executor.retryTask(t!.id), InvalidTransitionError, "blocked task only");
      await rejects(() => job.wait({ signal: {} as never }), TypeError, '"signal"');
      await executor.shutdown();
      // A shut-down executor does not silently stay idle when asked to run again.
      throws(() => executor.start(), Error, "create a new Executor");
      await rejects(() => executor.run(), Error, "create a new Executor");
    },
  },
  {
    name: "shutdown() refuses a bad grace period, and a later call with a shorter one cuts the first short",
    async run(ctx) {
      const { executor, clock } = harness(ctx.storage, [agent("hang", () => new Promise(() => {}))]);
      for (const graceMs of [Number.NaN, -5, "x", Infinity]) {
        await rejects(() => executor.shutdown({ graceMs: graceMs as number }), RangeError, '"graceMs"');
      }
      executor.start();
      const job = await executor.submit({ name: "g", tasks: [{ key: "a", agent: "hang" }] });
      await until(() => executor.stats().running === 1, "the task to start", clock);
      let done = false;
      const first = executor.shutdown({ graceMs: 60_000 }).then(() => (done = true));
      await clock.advance(1000);
      equal(done, false);
      const second = executor.shutdown({ graceMs: 0 });
      await second;
      await first;
      equal(done, true);
      equal((await taskByKey(ctx, job.id, "a")).status, "ready", "released without counting the attempt");
    },
  },
  {
    name: "an idle executor does not spin: it claims about once per poll interval",
    async run(ctx) {
      let claims = 0;
      const storage = intercept(ctx.storage, {
        claimReady: (claim) => (o) => {
          claims++;
          return claim(o);
        },
      });
      const { executor, clock } = harness(storage, [agent("noop", () => null)], { pollIntervalMs: 1000 });
      executor.start();
      await clock.advance(0);
      const before = claims;
      await clock.advance(10_000);
      ok(claims - before <= 11, `claims while idle for 10 poll intervals: ${claims - before}`);
      await executor.shutdown();
    },
  },
  {
    name: "many wait()s read their own job about once each, not once per change of any job",
    async run(ctx) {
      let reads = 0;
      const storage = intercept(ctx.storage, {
        getJob: (getJob) => (id) => {
          reads++;
          return getJob(id);
        },
      });
      const { executor, clock } = harness(storage, [agent("ok", async () => {
        await Promise.resolve();
        return 1;
      })], { maxWorkers: 2 });
      const n = 40;
      const handles = [];
      for (let i = 0; i < n; i++) {
        handles.push(await executor.submit({ name: `j${i}`, tasks: [{ key: "a", agent: "ok" }] }));
      }
      let ended = 0;
      const waits = handles.map((h) => h.wait().then(() => ended++));
      await until(() => reads >= n, "every wait() read its job", clock);
      reads = 0;
      executor.start();
      await until(() => ended === n, "every job ended", clock);
      await Promise.all(waits);
      // One read per job when it ends (waking every waiter on every change read ~n²/2).
      ok(reads <= 2 * n, `${reads} job reads for ${n} jobs`);
      await executor.shutdown();
    },
  },
  {
    name: "a task whose result could not be stored is not handed back as an unstarted claim after a failed claim",
    async run(ctx) {
      // The completions fail with an error that will not pass: the tasks stay claimed until
      // their leases expire. A claim that fails next hands back claims whose answer was lost;
      // these two ran, so the at-most-once one must be blocked, not run again, and the
      // at-least-once one's attempt must count.
      const calls: Record<string, number> = { pay: 0, log: 0 };
      const failCompletion = new Set<string>();
      let failClaim = false;
      const storage = intercept(ctx.storage, {
        commit: (commit) => (ops, now) => {
          if (ops.some((o) => o.type === "updateTask" && o.set.status === "completed" && failCompletion.has(o.id))) {
            failCompletion.clear();
            return Promise.reject(new StorageCorruptError("tasks", "bad page"));
          }
          return commit(ops, now);
        },
        claimReady: (claimReady) => (o) => {
          if (!failClaim) return claimReady(o);
          failClaim = false;
          return Promise.reject(new StorageError("connection reset"));
        },
      });
      const { executor, clock } = harness(storage, [agent("work", (_input, c) => {
        if (++calls[c.task.key]! === 1) failCompletion.add(c.task.id);
        return "done";
      })], { recoveryIntervalMs: 1000 });
      const lost: string[] = [];
      executor.on("task:lost", (p) => lost.push(p.task.key));
      executor.start();
      // One after the other: a failed commit drops every result of its group.
      const payJob = await executor.submit({
        name: "p",
        tasks: [{ key: "pay", agent: "work", durability: "at-most-once" }],
      });
      await until(() => lost.length === 1, "pay's result dropped", clock);
      const logJob = await executor.submit({ name: "l", tasks: [{ key: "log", agent: "work" }] });
      await until(() => lost.length === 2, "log's result dropped", clock);
      deepEqual(lost, ["pay", "log"]);
      failClaim = true;
      await executor.submit({ name: "poke", tasks: [{ key: "x", agent: "work" }] });
      // The leases expire (10 s) and recovery runs every second: move on until it acted.
      await untilAdvancing(
        async () => (await taskByKey(ctx, payJob.id, "pay")).status === "blocked",
        "pay blocked",
        clock,
        1000,
      );
      await untilAdvancing(
        async () => (await taskByKey(ctx, logJob.id, "log")).status === "completed",
        "log rerun",
        clock,
        1000,
      );
      equal(calls.pay, 1, "the at-most-once agent ran once");
      equal(calls.log, 2);
      equal((await taskByKey(ctx, logJob.id, "log")).attempts, 2, "the attempt whose result was lost counts");
      await executor.shutdown();
    },
  },
  {
    name: "a task whose result was lost once is handed back when a later claim of it loses its answer",
    async run(ctx) {
      // Its first result fails to store: recovery counts that attempt and makes it ready.
      // Claimed again, with the claim's answer lost, it is a new claim that never started:
      // it goes back uncounted, and its last attempt runs (it is not left to recovery,
      // which would fail it for want of attempts).
      let calls = 0;
      let failCompletion = true;
      let loseClaimOf = "";
      const storage = intercept(ctx.storage, {
        commit: (commit) => (ops, now) => {
          if (failCompletion && ops.some((o) => o.type === "updateTask" && o.set.status === "completed")) {
            failCompletion = false;
            return Promise.reject(new StorageCorruptError("tasks", "bad page"));
          }
          return commit(ops, now);
        },
        claimReady: (claimReady) => async (o) => {
          const claimed = await claimReady(o);
          if (loseClaimOf !== "" && claimed.some((t) => t.id === loseClaimOf)) {
            loseClaimOf = "";
            throw new StorageError("connection reset after the claim");
          }
          return claimed;
        },
      });
      const { executor, clock } = harness(storage, [agent("work", (_input, c) => {
        if (++calls === 1) loseClaimOf = c.task.id;
        return "done";
      })], { recoveryIntervalMs: 1000 });
      const lost: string[] = [];
      executor.on("task:lost", (p) => lost.push(p.task.key));
      executor.start();
      const job = await executor.submit({ name: "t", tasks: [{ key: "t", agent: "work", maxAttempts: 2 }] });
      await until(() => lost.length === 1, "the first result dropped", clock);
      await untilAdvancing(
        async () => (await taskByKey(ctx, job.id, "t")).status === "completed",
        "t completed",
        clock,
        1000,
      );
      equal(loseClaimOf, "", "the second claim's answer was lost");
      const t = await taskByKey(ctx, job.id, "t");
      equal(t.status, "completed", t.statusReason ?? "");
      equal(calls, 2);
      equal(t.attempts, 2, "the lost result's attempt counts; the lost claim's does not");
      await executor.shutdown();
    },
  },
  {
    name: "an executor does not recover the tasks of its own claim still in flight when their lease ends meanwhile",
    async run(ctx) {
      // A claim slower than the lease (on a manual clock moved on while a durable storage
      // answers in real time, or a stalled connection): recovery would send the task back to
      // ready and count a crashed attempt, then the claim's answer would run it all the same.
      const claim = claimHeldBack(ctx.storage);
      let calls = 0;
      const { executor, clock } = harness(claim.storage, [agent("work", () => {
        calls++;
        return "done";
      })], { leaseMs: 1000, heartbeatMs: 300, recoveryIntervalMs: 500 });
      const retried: number[] = [];
      executor.on("task:retrying", (e) => retried.push(e.delayMs));
      claim.hold();
      executor.start();
      const job = await executor.submit({ name: "slow-claim", tasks: [{ key: "a", agent: "work" }] });
      await until(() => claim.held(), "the claim stored, its answer held", clock);
      await untilAdvancing(
        async () => ((await taskByKey(ctx, job.id, "a")).leaseExpiresAt ?? Infinity) < clock.now() - 1000,
        "the claim's lease ended a while ago",
        clock,
        250,
      );
      for (let i = 0; i < 10; i++) await clock.advance(0); // recovery passes ran meanwhile
      equal(executor.stats().recovered, 0, "its own claim in flight was recovered");
      claim.release();
      deepEqual(await job.wait(), { a: "done" });
      equal(calls, 1);
      deepEqual(retried, []);
      equal((await taskByKey(ctx, job.id, "a")).attempts, 1);
      await executor.shutdown();
    },
  },
  {
    name: "an executor recovers its own task whose result was not stored while a later claim is in flight",
    async run(ctx) {
      // Task a ran here and its result commit failed for good (its lease renewed after the
      // claim of b was made): it waits for recovery, as after a crash. A claim of b held in
      // flight (a stalled connection) must not keep recovery from a once its lease ended:
      // only the leases the claim itself set are its own.
      let aId = "";
      let failed = false;
      const claim = claimHeldBack(ctx.storage, {
        commit: (commit) => async (ops, now) => {
          if (!failed && ops.some((o) => o.type === "updateTask" && o.id === aId && o.set.status !== undefined)) {
            failed = true;
            throw new StorageBlockedError("the result's commit fails for good");
          }
          return await commit(ops, now);
        },
      }, (claimed) => claimed.some((t) => t.key === "b"));
      const gate = deferred<string>();
      let aCalls = 0;
      const block = agent("block", () => (++aCalls === 1 ? gate.promise : "again"));
      const work = agent("work", () => "done");
      const { executor, clock } = harness(claim.storage, [block, work], {
        leaseMs: 1000,
        heartbeatMs: 300,
        recoveryIntervalMs: 500,
      });
      let lost = false;
      executor.on("task:lost", () => void (lost = true));
      executor.start();
      const job = await executor.submit({
        name: "dropped",
        tasks: [{ key: "a", agent: "block" }, { key: "b", agent: "work", runAt: START + 5000 }],
      });
      aId = (await taskByKey(ctx, job.id, "a")).id;
      await until(() => aCalls === 1, "a started", clock);
      claim.hold();
      await untilAdvancing(() => claim.held(), "the claim of b stored, its answer held", clock, 250);
      const claimedAt = clock.now();
      // A heartbeat renews a's lease after the claim was made; then a's result is dropped.
      await untilAdvancing(
        async () => ((await taskByKey(ctx, job.id, "a")).leaseExpiresAt ?? 0) > claimedAt + 1000,
        "a's lease renewed after the claim",
        clock,
        100,
      );
      gate.resolve("done");
      await until(() => lost, "a's result dropped", clock);
      await untilAdvancing(
        async () => {
          const a = await taskByKey(ctx, job.id, "a");
          return a.status !== "running" || (a.leaseExpiresAt ?? Infinity) < clock.now() - 1000;
        },
        "a recovered, or its lease ended a while ago",
        clock,
        250,
      );
      for (let i = 0; i < 10; i++) await clock.advance(0); // recovery passes ran meanwhile
      const a = await taskByKey(ctx, job.id, "a");
      equal(a.status, "ready", "a was not recovered while the claim of b was in flight");
      claim.release();
      deepEqual(await job.wait(), { a: "again", b: "done" });
      await executor.shutdown();
    },
  },
  {
    name: "a job cancelled or paused while a claim of its tasks is answered late starts none of them",
    async run(ctx) {
      // The claim is stored before the cancel or pause; its answer arrives after the call
      // resolved, which promises that the job's claimed, unstarted tasks do not start.
      for (const change of ["cancel", "pause"] as const) {
        const claim = claimHeldBack(ctx.storage);
        const { storage } = claim;
        claim.hold();
        let calls = 0;
        const { executor, clock } = harness(storage, [agent("work", () => {
          calls++;
          return "done";
        })]);
        executor.start();
        const job = await executor.submit({ name: change, tasks: [{ key: "a", agent: "work" }] });
        await until(() => claim.held(), "the claim stored, its answer held", clock);
        equal((await taskByKey(ctx, job.id, "a")).status, "running");
        if (change === "cancel") await job.cancel();
        else await job.pause();
        claim.release();
        for (let i = 0; i < 20; i++) await clock.advance(10);
        equal(calls, 0, `the agent ran after ${change}() resolved`);
        const a = await taskByKey(ctx, job.id, "a");
        if (change === "cancel") {
          equal(a.status, "cancelled");
        } else {
          equal(a.status, "paused", "handed back to wait with its job");
          equal(a.attempts, 0, "the unstarted claim's attempt does not count");
          await job.resume();
          deepEqual(await job.wait(), { a: "done" });
          equal(calls, 1);
        }
        await executor.shutdown();
      }
    },
  },
  {
    name:
      "a job cancelled or paused by another executor while a claim of its tasks is answered late starts none of them",
    async run(ctx) {
      // As above, but the cancel or pause is made through another executor on the storage (a
      // client, another tab or process): this one learns of it from the storage's change notice,
      // which arrives while its claim is in flight (it holds no task of the job yet). With
      // `vague`, the notice names no jobs (anything may have changed).
      const variants = [
        ["cancel", false, false],
        ["pause", false, false],
        ["cancel", true, false],
        ["pause", true, false],
        ["cancel", false, true],
        ["pause", true, true],
      ] as const;
      for (const [change, slowRead, vague] of variants) {
        const claim: ReturnType<typeof claimHeldBack> = claimHeldBack(ctx.storage, {
          // With `slowRead`, this executor's read of the changed job answers after the claim.
          getJob: (getJob) => async (id) => {
            const job = await getJob(id);
            if (slowRead) {
              await claim.released;
              await new Promise((r) => setTimeout(r, 5));
            }
            return job;
          },
          ...(vague ? { watch: (original) => (listener) => original(() => listener(undefined)) } : {}),
        });
        const { storage } = claim;
        claim.hold();
        let calls = 0;
        const work = agent("work", () => {
          calls++;
          return "done";
        });
        const { executor, clock } = harness(storage, [work]);
        const client = harness(ctx.storage, [work], { clock }).executor;
        executor.start();
        const job = await client.submit({ name: change, tasks: [{ key: "a", agent: "work" }] });
        await until(() => claim.held(), "the claim stored, its answer held", clock);
        equal((await taskByKey(ctx, job.id, "a")).status, "running");
        if (change === "cancel") await job.cancel();
        else await job.pause();
        for (let i = 0; i < 5; i++) await clock.advance(0); // the change notice is handled
        claim.release();
        for (let i = 0; i < 20; i++) await clock.advance(10);
        equal(
          calls,
          0,
          `the agent ran after another executor's ${change}() resolved (slow read: ${slowRead}, vague: ${vague})`,
        );
        const a = await taskByKey(ctx, job.id, "a");
        if (change === "cancel") equal(a.status, "cancelled");
        else {
          equal(a.status, "paused", "handed back to wait with its job");
          equal(a.attempts, 0, "the unstarted claim's attempt does not count");
          await job.resume();
          deepEqual(await job.wait(), { a: "done" });
          equal(calls, 1);
        }
        await executor.shutdown();
        await client.shutdown();
      }
    },
  },
  {
    name: "a claim's tasks wait for the read of their paused job with a pollIntervalMs past setTimeout's limit",
    async run(ctx) {
      // pollIntervalMs may be any positive number (the clock waits long delays in legs): a
      // bound on the read of a job a notice named during the claim that setTimeout cannot
      // keep (over 2^31 - 1 ms) must not end at once and start the paused job's task.
      const claim: ReturnType<typeof claimHeldBack> = claimHeldBack(ctx.storage, {
        getJob: (getJob) => async (id) => {
          const job = await getJob(id);
          if (claim.held()) {
            await claim.released;
            await new Promise((r) => setTimeout(r, 50)); // a read slower than 1 ms of real time
          }
          return job;
        },
      });
      const { storage } = claim;
      let calls = 0;
      const work = agent("work", () => {
        calls++;
        return "done";
      });
      const { executor, clock } = harness(storage, [work], { pollIntervalMs: 2 ** 31 });
      const client = harness(ctx.storage, [work], { clock }).executor;
      executor.start();
      claim.hold();
      const job = await client.submit({ name: "pause", tasks: [{ key: "a", agent: "work" }] });
      await until(() => claim.held(), "the claim stored, its answer held", clock);
      await job.pause();
      for (let i = 0; i < 5; i++) await clock.advance(0); // the change notice is handled
      claim.release();
      await until(async () => (await taskByKey(ctx, job.id, "a")).status !== "running", "a handed back or run");
      equal(calls, 0, "the agent ran after another executor's pause() resolved");
      equal((await taskByKey(ctx, job.id, "a")).status, "paused");
      await executor.shutdown();
      await client.shutdown();
    },
  },
  {
    name: "a job cancelled or paused by another executor while a claim of more of its tasks is answered late " +
      "starts none of them",
    async run(ctx) {
      // As above, but this executor already runs a task of the job ("a") when the claim of
      // another ("b", due later) is in flight: the notice's read of the job must land before
      // the claim's tasks start too, not only for jobs it holds nothing of yet.
      for (const change of ["pause", "cancel"] as const) {
        const claim: ReturnType<typeof claimHeldBack> = claimHeldBack(ctx.storage, {
          // This executor's read of the changed job answers after the claim.
          getJob: (getJob) => async (id) => {
            const job = await getJob(id);
            if (claim.held()) {
              await claim.released;
              await new Promise((r) => setTimeout(r, 5));
            }
            return job;
          },
        }, (claimed) => claimed.some((t) => t.key === "b"));
        const { storage } = claim;
        let aStarted = false;
        let calls = 0;
        const block = agent("block", (_input, c) => {
          aStarted = true;
          return aborted(c.signal).catch(() => "stopped");
        });
        const work = agent("work", () => {
          calls++;
          return "done";
        });
        const { executor, clock } = harness(storage, [block, work]);
        const client = harness(ctx.storage, [block, work], { clock }).executor;
        executor.start();
        const job = await client.submit({
          name: change,
          tasks: [{ key: "a", agent: "block" }, { key: "b", agent: "work", runAt: START + 5000 }],
        });
        await until(() => aStarted, "a started", clock);
        claim.hold();
        await untilAdvancing(() => claim.held(), "the claim of b stored, its answer held", clock, 500);
        equal((await taskByKey(ctx, job.id, "b")).status, "running");
        if (change === "cancel") await job.cancel();
        else await job.pause();
        for (let i = 0; i < 5; i++) await clock.advance(0); // the change notice is handled
        claim.release();
        for (let i = 0; i < 20; i++) await clock.advance(10);
        equal(calls, 0, `b's agent ran after another executor's ${change}() resolved`);
        const b = await taskByKey(ctx, job.id, "b");
        if (change === "cancel") equal(b.status, "cancelled");
        else {
          equal(b.status, "paused", "handed back to wait with its job");
          equal(b.attempts, 0, "the unstarted claim's attempt does not count");
        }
        await executor.shutdown({ graceMs: 0 });
        await client.shutdown();
      }
    },
  },
  {
    name:
      "a read of a changed job that never answers while a claim is in flight does not stop claiming, nor hold shutdown",
    async run(ctx) {
      // The storage's read of one job hangs (a lost connection, a blocked transaction), and a
      // notice names that job while a claim is in flight: a job the claim brought nothing of
      // (the claim's tasks still run), or the claimed one (shutdown does not wait for it).
      for (const sameJob of [false, true]) {
        const never = deferred<undefined>();
        let hang = "";
        const claim = claimHeldBack(ctx.storage, {
          getJob: (getJob) => (id) => (id === hang ? never.promise : getJob(id)),
        });
        const { storage } = claim;
        let calls = 0;
        const work = agent("work", () => {
          calls++;
          return "done";
        });
        const { executor, clock } = harness(storage, [work]);
        const client = harness(ctx.storage, [work], { clock }).executor;
        const other = await client.submit({ name: "other", tasks: [{ key: "x", agent: "work", runAt: START + 1e9 }] });
        executor.start();
        claim.hold();
        const job = await client.submit({ name: "claimed", tasks: [{ key: "a", agent: "work" }] });
        await until(() => claim.held(), "the claim stored, its answer held", clock);
        hang = sameJob ? job.id : other.id;
        if (sameJob) await job.pause();
        else await other.cancel();
        for (let i = 0; i < 5; i++) await clock.advance(0); // the change notice is handled
        claim.release();
        if (!sameJob) {
          deepEqual(await job.wait(), { a: "done" });
          equal(calls, 1);
        }
        let stopped = false;
        void executor.shutdown({ graceMs: 0 }).then(() => (stopped = true));
        await until(() => stopped, "shutdown resolved while a read hangs", clock);
        never.resolve(undefined);
        await client.shutdown();
      }
    },
  },
  {
    name: "a job paused by another executor while the checks of a claim's jobs are read starts none of its tasks",
    async run(ctx) {
      // A notice that names no jobs during the claim: its job is read after the claim answers.
      // The job is paused elsewhere while that read is under way (the read may answer
      // `running`): the notice of the pause is checked before the claim's tasks start too.
      const slow = deferred();
      let reading = false;
      let calls = 0;
      const claim: ReturnType<typeof claimHeldBack> = claimHeldBack(ctx.storage, {
        getJob: (getJob) => async (id) => {
          const job = await getJob(id);
          if (claim.held() && !reading) {
            reading = true; // the first read after the claim answers `running`, late
            await slow.promise;
          }
          return job;
        },
        watch: (original) => (listener) => original(() => listener(undefined)),
      });
      const { storage } = claim;
      const work = agent("work", () => {
        calls++;
        return "done";
      });
      const { executor, clock } = harness(storage, [work]);
      const client = harness(ctx.storage, [work], { clock }).executor;
      executor.start();
      claim.hold();
      const job = await client.submit({ name: "pause", tasks: [{ key: "a", agent: "work" }] });
      await until(() => claim.held(), "the claim stored, its answer held", clock);
      // Any change during the claim: the notice names no jobs.
      await client.submit({ name: "other", tasks: [{ key: "x", agent: "work", runAt: START + 1e9 }] });
      for (let i = 0; i < 5; i++) await clock.advance(0);
      claim.release();
      await until(() => reading, "the claimed job read", clock);
      await job.pause();
      for (let i = 0; i < 5; i++) await clock.advance(0); // the change notice is handled
      slow.resolve();
      for (let i = 0; i < 20; i++) await clock.advance(10);
      equal(calls, 0, "the agent ran after another executor's pause() resolved");
      const a = await taskByKey(ctx, job.id, "a");
      equal(a.status, "paused", "handed back to wait with its job");
      equal(a.attempts, 0, "the unstarted claim's attempt does not count");
      await executor.shutdown();
      await client.shutdown();
    },
  },
  {
    name: "notices naming other jobs while a claim is in flight: its tasks do not wait for their reads, each read once",
    async run(ctx) {
      // Other executors end, pause or cancel their jobs all the time: this executor learns of
      // each from the storage's notices, and reads a job a notice names during a claim at once
      // (the claim may bring its tasks). Its tasks wait only for reads of their own jobs: here
      // the other jobs' reads never answer, and the claimed job completes all the same.
      const never = new Promise<undefined>(() => {});
      const reads: string[] = [];
      let others = new Set<string>();
      const claim = claimHeldBack(ctx.storage, {
        getJob: (getJob) => (id) => {
          reads.push(id);
          return others.has(id) ? never : getJob(id);
        },
      });
      const { storage } = claim;
      const work = agent("work", () => "done");
      const { executor, clock } = harness(storage, [work]);
      const client = harness(ctx.storage, [work], { clock }).executor;
      const jobs = [];
      for (let i = 0; i < 20; i++) {
        const tasks = [{ key: "x", agent: "work", runAt: START + 1e9 }];
        jobs.push(await client.submit({ name: `other ${i}`, tasks }));
      }
      others = new Set(jobs.map((o) => o.id));
      executor.start();
      claim.hold();
      const job = await client.submit({ name: "claimed", tasks: [{ key: "a", agent: "work" }] });
      await until(() => claim.held(), "the claim stored, its answer held", clock);
      for (const other of jobs) await other.cancel();
      for (let i = 0; i < 5; i++) await clock.advance(0); // the change notices are handled
      claim.release();
      deepEqual(await job.wait(), { a: "done" });
      const read = reads.filter((id) => others.has(id));
      equal(read.length, new Set(read).size, "each other job read once, for its one notice");
      await executor.shutdown();
      await client.shutdown();
    },
  },
  {
    name:
      "a job paused while a task's start is being stored does not call its agent; paused and resumed, it runs that attempt",
    async run(ctx) {
      for (const resumed of [false, true]) {
        const { storage, held, release } = holdingFirstStart(ctx.storage);
        let calls = 0;
        const { executor, clock } = harness(storage, [agent("work", () => ++calls)]);
        const lost: string[] = [];
        executor.on("task:lost", (e) => lost.push(e.reason));
        executor.start();
        const job = await executor.submit({
          name: "p",
          tasks: [{ key: "a", agent: "work", durability: "at-most-once" }],
        });
        await until(held, "the start being stored", clock);
        await job.pause();
        if (resumed) {
          await job.resume();
          release();
          deepEqual(await job.wait(), { a: 1 });
          equal(executor.stats().claimed, 1, "claimed once: not handed back and claimed again");
        } else {
          release();
          // The hand-back is one more write, which a durable storage may take a while to answer.
          await until(
            async () => (await taskByKey(ctx, job.id, "a")).status !== "running",
            "the start's answer",
            clock,
          );
          for (let i = 0; i < 10; i++) await clock.advance(10);
          equal(calls, 0, "the agent ran after pause() resolved");
          const a = await taskByKey(ctx, job.id, "a");
          equal(a.status, "paused", "handed back to wait with its job");
          equal(a.attempts, 0, "the attempt that never started does not count");
          // Handed back, as a paused job's queued tasks are: no result was lost.
          deepEqual(lost, [], "task:lost for a task handed back to its paused job");
          equal(executor.stats().lost, 0);
          await job.resume();
          deepEqual(await job.wait(), { a: 1 });
        }
        equal(calls, 1);
        equal((await taskByKey(ctx, job.id, "a")).attempts, 1);
        await executor.shutdown();
      }
    },
  },
  {
    name: "a task recovered elsewhere and claimed again by the executor still running it leaves one tracked run",
    async run(ctx) {
      // Renewals fail past the lease; another executor recovers the task; this one claims it
      // again while its first attempt still runs. The first attempt is given up (its result
      // could not be stored), and the second is the one tracked: renewed, cancelled, shut down.
      let failRenew = false;
      const storage = intercept(ctx.storage, {
        renewLeases: (renew) => (o) => failRenew ? Promise.reject(new StorageError("connection dropped")) : renew(o),
      });
      let calls = 0;
      const first = deferred<string>();
      const aborted: number[] = [];
      const { executor, clock } = harness(storage, [agent("work", (_i, c) => {
        const n = ++calls;
        c.signal.addEventListener("abort", () => aborted.push(n));
        return n === 1 ? first.promise : new Promise<string>(() => {}); // later attempts hang, ignoring the signal
      })], { leaseMs: 1000, heartbeatMs: 300, pollIntervalMs: 100, taskTimeoutMs: 1e9 });
      executor.start();
      const job = await executor.submit({ name: "j", tasks: [{ key: "a", agent: "work" }] });
      await until(() => calls === 1, "the first attempt started", clock);
      failRenew = true;
      await clock.advance(1500);
      const [expired] = await ctx.storage.expiredLeases(clock.now());
      ok(expired, "the lease expired");
      // Another executor's recovery.
      await ctx.storage.commit([{
        type: "updateTask",
        id: expired.id,
        expect: { version: expired.version, status: "running", leaseExpiresAt: expired.leaseExpiresAt },
        set: { status: "ready", runAt: clock.now(), statusReason: "Recovered after its lease expired" },
      }], clock.now());
      await until(() => calls === 2, "the second attempt started", clock);
      deepEqual(aborted, [1], "the first attempt was given up when the task was claimed again");
      first.resolve("late");
      await clock.advance(0);
      equal(executor.stats().running, 1, "the second attempt is still tracked");
      failRenew = false;
      for (let i = 0; i < 20; i++) await clock.advance(300);
      equal(calls, 2, "no third attempt: the second one's lease was renewed");
      const t = await taskByKey(ctx, job.id, "a");
      equal(t.status, "running");
      equal(t.leaseOwner, executor.id);
      await job.cancel();
      await clock.advance(0);
      deepEqual(aborted, [1, 2], "cancel reached the second attempt");
      equal(executor.stats().running, 0);
      await executor.shutdown({ graceMs: 0 });
    },
  },
  {
    name:
      "an at-most-once start stored late sets the lease from when it is stored, so no recovery blocks the running task",
    async run(ctx) {
      let failStart = true;
      let startAttempts = 0;
      const storage = intercept(ctx.storage, {
        commit: (commit) => (ops, now) => {
          if (ops.some((o) => o.type === "updateTask" && o.set.startedAt !== undefined)) {
            startAttempts++;
            if (failStart) return Promise.reject(new StorageError("connection dropped before the commit"));
          }
          return commit(ops, now);
        },
      });
      let calls = 0;
      const gate = deferred<string>();
      const { executor, clock } = harness(storage, [agent("pay", () => (calls++, gate.promise))], {
        leaseMs: 10_000,
        heartbeatMs: 3000,
      });
      executor.start();
      const job = await executor.submit({
        name: "pay",
        tasks: [{ key: "a", agent: "pay", durability: "at-most-once" }],
      });
      await until(() => startAttempts > 0, "the start being stored", clock);
      // The start's commit fails for 15 s (longer than the lease); heartbeats renew meanwhile.
      for (let i = 0; i < 30; i++) await clock.advance(500);
      failStart = false;
      await untilAdvancing(() => calls > 0, "the agent called", clock, 50);
      equal(calls, 1, "the agent was called once the start was stored");
      const t = await taskByKey(ctx, job.id, "a");
      ok(t.leaseExpiresAt! > clock.now(), `the stored lease ends ${t.leaseExpiresAt! - clock.now()} ms from now`);
      // Another executor's recovery now finds no expired lease.
      const other = harness(ctx.storage, [agent("pay", () => "other")], { clock });
      other.executor.start();
      await clock.advance(0);
      await clock.advance(0);
      gate.resolve("charged");
      deepEqual(await job.wait(), { a: "charged" });
      equal(calls, 1);
      await other.executor.shutdown();
      await executor.shutdown();
    },
  },
  {
    name: "an at-most-once start stored with its answer lost is recognised after a heartbeat renewed its lease",
    async run(ctx) {
      let calls = 0;
      let loseAnswer = true;
      const storage = intercept(ctx.storage, {
        commit: (commit) => async (ops, now) => {
          const result = await commit(ops, now);
          if (loseAnswer && ops.some((o) => o.type === "updateTask" && o.set.startedAt !== undefined)) {
            loseAnswer = false;
            throw new StorageError("connection lost after the commit");
          }
          return result;
        },
      });
      const { executor, clock } = harness(storage, [agent("once", () => ++calls)], {
        leaseMs: 1000,
        heartbeatMs: 10,
        random: () => 0.99,
      });
      const lost: string[] = [];
      executor.on("task:lost", (p) => lost.push(p.reason));
      executor.start();
      const job = await executor.submit({
        name: "s",
        tasks: [{ key: "a", agent: "once", durability: "at-most-once" }],
      });
      // Heartbeats (every 10 ms) renew the lease while the lost answer is sorted out; a durable
      // storage answers in real time, so time moves in steps until the task ends.
      await untilAdvancing(
        async () => !["pending", "ready", "running"].includes((await taskByKey(ctx, job.id, "a")).status),
        "the task to end",
        clock,
        10,
      );
      await clock.advance(3000); // past the lease: a start judged unstored would be blocked
      const a = await taskByKey(ctx, job.id, "a");
      equal(a.status, "completed", `${a.status}: ${a.statusReason}`);
      equal(calls, 1);
      deepEqual(lost, []);
      await executor.shutdown();
    },
  },
  {
    name:
      "a retry stored with its answer lost and claimed again before the commit is retried counts as a retry, not a lost result",
    async run(ctx) {
      let loseAnswer = true;
      const storage = intercept(ctx.storage, {
        commit: (commit) => async (ops, now) => {
          const result = await commit(ops, now);
          if (loseAnswer && ops.some((o) => o.type === "updateTask" && o.set.status === "ready" && o.set.error)) {
            loseAnswer = false;
            throw new StorageError("connection lost after the commit");
          }
          return result;
        },
      });
      let n = 0;
      const { executor, clock } = harness(storage, [agent("flaky", () => {
        if (++n === 1) throw new Error("boom");
        return "ok";
      })], { retry: { delayMs: 0 } });
      executor.start();
      const job = await executor.submit({ name: "r", tasks: [{ key: "f", agent: "flaky" }] });
      // The commit's retry waits on the clock: time moves in steps until the job ends.
      await untilAdvancing(async () => (await job.status()).status === "completed", "the job to end", clock, 10);
      deepEqual(await job.wait(), { f: "ok" });
      equal((await taskByKey(ctx, job.id, "f")).attempts, 2);
      const { retried, lost, completed } = executor.stats();
      deepEqual({ retried, lost, completed }, { retried: 1, lost: 0, completed: 1 });
      await executor.shutdown();
    },
  },
  {
    name: "wait() on a job pruned between reading it and listing its tasks throws NotFoundError, not an empty success",
    async run(ctx) {
      let pruneAfterRead = false;
      const storage = intercept(ctx.storage, {
        getJob: (getJob) => async (id) => {
          const job = await getJob(id);
          if (pruneAfterRead && job?.status === "completed") {
            pruneAfterRead = false;
            equal(await ctx.storage.prune({ keepLast: 0 }), 1);
          }
          return job;
        },
      });
      const { executor, clock } = harness(storage, [agent("x", (n) => n)]);
      executor.start();
      const job = await executor.submit({ name: "p", tasks: [{ key: "a", agent: "x", input: 1 }] });
      await until(async () => (await job.status()).status === "completed", "the job ended", clock);
      pruneAfterRead = true;
      const e = await rejects(() => job.wait(), NotFoundError);
      ok(e.message.includes(job.id), e.message);
      await executor.shutdown();
    },
  },
  {
    name: "a handle's tasks() on a job retention deleted throws NotFoundError, as status() does, not an empty list",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [agent("x", (n) => n)]);
      executor.start();
      const job = await executor.submit({ name: "p", tasks: [{ key: "a", agent: "x", input: 1 }] });
      deepEqual(await job.wait(), { a: 1 });
      equal((await job.tasks()).length, 1);
      equal(await ctx.storage.prune({ keepLast: 0 }), 1);
      await rejects(() => job.status(), NotFoundError);
      const e = await rejects(() => job.tasks(), NotFoundError);
      ok(e.message.includes(job.id), e.message);
      await executor.shutdown();
    },
  },
  {
    name:
      "an agent may control its own job and task: cancel aborts it, pause lets it finish, its own task refuses review, retry and cancel",
    async run(ctx) {
      const refusals: string[] = [];
      let abortedByCancel = false;
      // The agents call the executor that runs them (`h`, set before any agent runs).
      const h: Harness = harness(ctx.storage, [
        agent("self", async (input, c) => {
          const job = await h.executor.job(c.task.jobId);
          if (input === "cancel") {
            await job.cancel();
            abortedByCancel = c.signal.aborted;
            return "not stored";
          }
          for (const call of [() => h.executor.review(c.task.id, "accept"), () => h.executor.retryTask(c.task.id)]) {
            await call().then(() => refusals.push("done"), (e) => refusals.push((e as Error).name));
          }
          await h.executor.cancelTask(c.task.id).then(
            () => refusals.push("done"),
            (e) => refusals.push((e as Error).name),
          );
          await job.pause();
          return "stored";
        }),
      ]);
      const executor = h.executor;
      const lost: string[] = [];
      executor.on("task:lost", ({ task }) => lost.push(task.key));
      executor.start();
      const paused = await executor.submit({ name: "pause", tasks: [{ key: "p", agent: "self", input: "pause" }] });
      deepEqual(await paused.wait(), { p: "stored" });
      deepEqual(refusals, ["InvalidTransitionError", "InvalidTransitionError", "InvalidTransitionError"]);
      const cancelled = await executor.submit({
        name: "cancel",
        tasks: [{ key: "c", agent: "self", input: "cancel" }],
      });
      await rejects(() => cancelled.wait(), JobFailedError);
      ok(abortedByCancel, "cancelling its own job aborted the agent's signal");
      deepEqual(lost, ["c"]);
      equal((await taskByKey(ctx, cancelled.id, "c")).status, "cancelled");
      await executor.shutdown({ graceMs: 0 });
    },
  },
  {
    name: "an agent that calls shutdown() without awaiting it completes its task, and nothing new starts",
    async run(ctx) {
      let stopping: Promise<void> | undefined;
      const h: Harness = harness(ctx.storage, [
        agent("stop", () => {
          stopping = h.executor.shutdown();
          return "stopped";
        }),
        agent("next", () => "ran"),
      ]);
      const executor = h.executor;
      executor.start();
      const job = await executor.submit({
        name: "stop",
        tasks: [{ key: "stop", agent: "stop" }, { key: "next", agent: "next", dependsOn: ["stop"] }],
      });
      await until(() => stopping !== undefined, "the agent's call", h.clock);
      await stopping;
      const stop = await taskByKey(ctx, job.id, "stop");
      deepEqual([stop.status, stop.output, stop.attempts], ["completed", "stopped", 1]);
      equal((await taskByKey(ctx, job.id, "next")).status, "ready");
    },
  },
  {
    name: "a listener that throws does not break the executor",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [agent("noop", () => 1)]);
      const reported: string[] = [];
      executor.on("task:completed", () => {
        throw new Error("listener bug");
      });
      // An async listener's rejection is reported too (it would be an unhandled rejection).
      executor.on("job:completed", async () => {
        await Promise.resolve();
        throw new Error("async listener bug");
      });
      executor.on("listener:error", (e) => reported.push(e.event));
      executor.start();
      const job = await executor.submit({
        name: "l",
        tasks: [{ key: "a", agent: "noop" }, { key: "b", agent: "noop" }],
      });
      deepEqual(await job.wait(), { a: 1, b: 1 });
      await until(() => reported.length === 3, "the async listener's rejection reported");
      deepEqual(reported.sort(), ["job:completed", "task:completed", "task:completed"]);
      await executor.shutdown();
    },
  },
  {
    name: "stats() and events count what happened",
    async run(ctx) {
      const { executor, clock } = harness(ctx.storage, [
        agent("ok", () => "fine"),
        agent("bad", () => {
          throw new NonRetryableError("no");
        }),
      ]);
      const seen: string[] = [];
      for (const e of ["task:started", "task:completed", "task:failed", "job:failed"] as const) {
        executor.on(e, () => seen.push(e));
      }
      executor.start();
      const job = await executor.submit({
        name: "s",
        tasks: [{ key: "a", agent: "ok" }, { key: "b", agent: "bad", dependsOn: ["a"] }],
      });
      await job.wait().catch(() => {});
      await until(() => seen.includes("job:failed"), "job:failed", clock);
      const s = executor.stats();
      equal(s.claimed, 2);
      equal(s.started, 2);
      equal(s.completed, 1);
      equal(s.failed, 1);
      equal(s.running, 0);
      deepEqual(seen.filter((e) => e === "job:failed"), ["job:failed"]);
      await executor.shutdown();
    },
  },
  {
    name: "run(signal) resolves after a graceful shutdown when the signal aborts",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [agent("noop", () => null)]);
      const controller = new AbortController();
      const running = executor.run(controller.signal);
      const job = await executor.submit({ name: "r", tasks: [{ key: "a", agent: "noop" }] });
      await job.wait();
      controller.abort();
      await running;
      equal(executor.running, false);
    },
  },
  {
    name:
      "a custom queue whose capacity or size is not an integer count, or that is not empty when built, is refused, not left never claiming",
    run(ctx) {
      const shaped = (capacity: unknown, size: unknown) => (): Queue<Task> =>
        queueOver(new RingQueue<Task>(4), { capacity, size });
      // An unbounded queue (capacity Infinity), a fractional capacity, and `size` written
      // as a method: each makes the claim limit `capacity - size` no integer, which
      // claimReady() refuses on every claim, so the executor would run nothing.
      // A new queue saying it holds more than its capacity (or anything at all) leaves no room to claim into.
      for (const [capacity, size] of [[Infinity, 0], [2.5, 0], [4, () => 0], [4, 5], [4, 1e9], [4, 1]] as const) {
        throws(
          () => harness(ctx.storage, [agent("echo", (n) => n)], { queue: shaped(capacity, size) }),
          TypeError,
          'Executor option "queue"',
        );
      }
    },
  },
  {
    name: "a custom queue whose tryPop hands a task out twice does not start its attempt twice",
    async run(ctx) {
      // A buggy queue: every item comes out twice.
      const twice = (n: number): Queue<Task> => {
        const ring = new RingQueue<Task>(n);
        let again: Task | undefined;
        return queueOver(ring, {
          get size() {
            return ring.size + (again ? 1 : 0);
          },
          tryPop: () => {
            const t = again ?? ring.tryPop();
            again = again ? undefined : t;
            return t;
          },
        });
      };
      let calls = 0;
      const { executor, clock } = harness(ctx.storage, [
        agent("count", async () => {
          calls++;
          await new Promise((r) => setTimeout(r, 5));
          return calls;
        }),
      ], { queue: twice, maxWorkers: 4 });
      executor.start();
      const job = await executor.submit({ name: "dup", tasks: [{ key: "a", agent: "count" }] });
      await until(async () => (await job.status()).status === "completed", "the job to complete", clock);
      equal(calls, 1, "the agent of one attempt ran once");
      await executor.shutdown();
    },
  },
  {
    name: "a custom queue that hands out copies of its tasks (a cloning or serializing queue) still runs them",
    async run(ctx) {
      const copying = (n: number): Queue<Task> => {
        const ring = new RingQueue<Task>(n);
        return queueOver(ring, {
          tryPop: () => {
            const t = ring.tryPop();
            return t && structuredClone(t);
          },
        });
      };
      const { executor, clock } = harness(ctx.storage, [agent("echo", (n) => n)], { queue: copying });
      executor.start();
      const job = await executor.submit({ name: "copies", tasks: [{ key: "a", agent: "echo", input: 7 }] });
      await untilAdvancing(async () => (await job.status()).status === "completed", "the job to end", clock, 1000);
      equal((await job.status()).status, "completed", "the job of a task the queue handed out as a copy");
      equal(executor.stats().started, 1);
      await executor.shutdown();
    },
  },
  {
    name: "ManualClock: a timeout ends its attempt after timeoutMs of advance() when set() moved the wall clock back",
    async run(ctx) {
      const timedOut: string[] = [];
      const { executor, clock } = harness(ctx.storage, [agent("hang", () => new Promise(() => {}))]);
      executor.on("task:timeout", ({ task }) => timedOut.push(task.key));
      executor.start();
      await executor.submit({ name: "back", tasks: [{ key: "a", agent: "hang", timeoutMs: 1000, maxAttempts: 1 }] });
      await until(() => executor.stats().started === 1, "the attempt to start", clock);
      clock.set(clock.now() - 3_600_000); // the wall clock steps back an hour
      await clock.advance(1000);
      await clock.advance(0);
      equal(timedOut.join(), "a", "a 1 s timeout had not fired after 1 s of monotonic time");
      await executor.shutdown({ graceMs: 0 });
    },
  },
  {
    name: "a custom queue that refuses a task while reporting room does not make the claim loop spin",
    async run(ctx) {
      // A queue that holds one task at a time though it reports room for four (a per-job
      // share, say): every claim past the first is refused and handed back.
      const stingy = (n: number): Queue<Task> => {
        const ring = new RingQueue<Task>(n);
        return queueOver(ring, { tryPush: (t: Task) => ring.size >= 1 ? false : ring.tryPush(t) });
      };
      let claims = 0;
      const storage = intercept(ctx.storage, {
        claimReady: (claim) => async (o) => {
          claims++;
          // Past a bound, yield to timers: a spinning loop must not starve the test itself.
          if (claims > 200) await new Promise((r) => setTimeout(r, 1));
          return await claim(o);
        },
      });
      const hold = deferred<string>();
      const { executor, clock } = harness(storage, [agent("hold", () => hold.promise)], {
        queue: stingy,
        queueCapacity: 4,
        maxWorkers: 1,
        prefetch: Infinity,
      });
      executor.start();
      const job = await executor.submit({
        name: "stingy",
        tasks: Array.from({ length: 5 }, (_, i) => ({ key: `t${i}`, agent: "hold" })),
      });
      await until(
        () => executor.stats().running === 1 && executor.stats().queued === 1,
        "one running, one queued",
        clock,
      );
      const before = claims;
      await new Promise((r) => setTimeout(r, 50)); // nothing can start or enter meanwhile
      const spun = claims - before;
      hold.resolve("ok");
      await until(async () => (await job.status()).status === "completed", "the job to complete", clock).finally(
        () => executor.shutdown({ graceMs: 0 }),
      );
      ok(spun <= 2, `${spun} claims (each handing tasks back) in 50 ms with nothing able to enter the queue`);
    },
  },
  {
    name: "run(signal) takes its abort listener off the signal once the executor stopped by shutdown()",
    async run(ctx) {
      const controller = new AbortController();
      const signal = controller.signal;
      let listening = 0;
      const add = signal.addEventListener.bind(signal);
      const remove = signal.removeEventListener.bind(signal);
      signal.addEventListener = ((type: string, l: EventListener, o?: AddEventListenerOptions) => {
        if (type === "abort") listening++;
        add(type, l, o);
      }) as typeof signal.addEventListener;
      signal.removeEventListener = ((type: string, l: EventListener, o?: EventListenerOptions) => {
        if (type === "abort") listening--;
        remove(type, l, o);
      }) as typeof signal.removeEventListener;
      for (let i = 0; i < 3; i++) {
        const { executor } = harness(ctx.storage, [agent("noop", () => null)]);
        const running = executor.run(signal);
        await executor.shutdown();
        await running;
      }
      equal(listening, 0, "abort listeners left on a signal that outlives the executors");
    },
  },
  {
    name: "a task's timeout counts its own running time when the wall clock jumps forward or back",
    async run(ctx) {
      // The wall clock jumps (NTP, a resumed VM) while timers keep their delays, as
      // `setTimeout` does: `set()` moves `now()`, the timers and `monotonic()` (the real
      // clock's `performance.now()`) do not.
      ok(typeof systemClock.monotonic === "function", "the real clock has a time that never jumps");
      const timers = new ManualClock(START);
      const gates = new Map<string, ReturnType<typeof deferred<string>>>();
      const aborted: string[] = [];
      const executor = new Executor({
        storage: ctx.storage,
        registry: registryOf(agent("slow", (_i, c) => {
          c.signal.addEventListener("abort", () => aborted.push(c.task.key));
          const gate = deferred<string>();
          gates.set(c.task.key, gate);
          return gate.promise;
        })),
        clock: timers,
        leaseMs: 10_000,
        pollIntervalMs: 1000,
        retry: { delayMs: 60_000 },
      });
      executor.start();
      // Forward: "long" has run 1 s of its 60 s when "short" times out.
      const first = await executor.submit({
        name: "forward",
        tasks: [{ key: "long", agent: "slow", timeoutMs: 60_000 }, { key: "short", agent: "slow", timeoutMs: 1000 }],
      });
      await until(() => gates.has("long") && gates.has("short"), "both started", timers);
      timers.set(timers.now() + 3_600_000); // an hour forward
      await timers.advance(1000);
      await until(() => aborted.includes("short"), "short's timeout", timers);
      deepEqual(
        aborted,
        ["short"],
        `only the task whose own timeout passed is aborted, got ${JSON.stringify(aborted)}`,
      );
      equal(executor.stats().timedOut, 1);
      gates.get("long")!.resolve("done");
      await until(async () => (await taskByKey(ctx, first.id, "long")).status === "completed", "long", timers);
      equal((await taskByKey(ctx, first.id, "long")).attempts, 1, "long was not run again");
      // Backward: a 1 s timeout still ends the attempt after 1 s, not after the jump too.
      const second = await executor.submit({
        name: "back",
        tasks: [{ key: "back", agent: "slow", timeoutMs: 1000 }],
      });
      await until(() => gates.has("back"), "back started", timers);
      timers.set(timers.now() - 2 * 3_600_000); // two hours back
      await timers.advance(1000);
      await until(() => aborted.includes("back"), "back's timeout", timers);
      equal(executor.stats().timedOut, 2);
      ok(second.id);
      await executor.shutdown({ graceMs: 0 });
    },
  },
  {
    name: "an executor used only as a client keeps no wake-up times that have passed",
    async run(ctx) {
      // A never-started executor (a process that only submits) keeps the wake-up times of
      // delayed tasks for a later start(): the ones already due must not pile up for good.
      const heaps = new Set<Heap<unknown>>();
      const push = Heap.prototype.push;
      Heap.prototype.push = function (this: Heap<unknown>, item: unknown) {
        if (typeof item === "number") heaps.add(this);
        push.call(this, item);
      };
      try {
        const { executor, clock } = harness(ctx.storage, [agent("noop", () => null)]);
        for (let i = 0; i < 50; i++) {
          if (i > 0) await clock.advance(1000); // the tasks submitted so far are due
          await executor.submit({ name: `later${i}`, tasks: [{ key: "a", agent: "noop", delayMs: 1000 }] });
        }
        // Only the last task is not due: its time may be kept (once or twice), no other.
        const held = Math.max(0, ...[...heaps].map((h) => h.size));
        ok(held <= 2, `${held} wake-up times held for 50 delayed tasks, 49 of them already due`);
        await executor.shutdown();
      } finally {
        Heap.prototype.push = push;
      }
    },
  },
  {
    name: "progress after the wall clock jumped back is told within the throttle interval, not held for the jump",
    async run(ctx) {
      const timers = new ManualClock(START);
      const told: number[] = [];
      const step = deferred();
      const finish = deferred<string>();
      let report: ((f: number) => void) | null = null;
      const executor = new Executor({
        storage: ctx.storage,
        registry: registryOf(agent("work", async (_i, c) => {
          report = (f) => c.progress(f);
          c.progress(0.1);
          await step.promise;
          return await finish.promise;
        })),
        clock: timers,
        leaseMs: 10_000,
        pollIntervalMs: 1000,
        progressThrottleMs: 100,
      });
      executor.on("task:progress", (e) => told.push(e.fraction));
      executor.start();
      await executor.submit({ name: "p", tasks: [{ key: "a", agent: "work" }] });
      await until(() => told.length === 1, "the first report", timers);
      await timers.advance(500);
      timers.set(timers.now() - 3_600_000); // the wall clock goes an hour back
      report!(0.5);
      await timers.advance(200); // more than the throttle interval since the first report
      deepEqual(told, [0.1, 0.5], `reports told: ${JSON.stringify(told)}`);
      finish.resolve("done");
      step.resolve();
      await executor.shutdown({ graceMs: 0 });
    },
  },
  {
    name: "a second shutdown() with a shorter grace cuts the first short also after the wall clock jumped",
    async run(ctx) {
      const timers = new ManualClock(START);
      let calls = 0;
      const executor = new Executor({
        storage: ctx.storage,
        registry: registryOf(agent("hang", () => {
          calls++;
          return new Promise(() => {});
        })),
        clock: timers,
        leaseMs: 10_000,
        pollIntervalMs: 1000,
      });
      executor.start();
      await executor.submit({ name: "g", tasks: [{ key: "a", agent: "hang" }] });
      await until(() => calls === 1, "the task to start", timers);
      let firstDone = false;
      const first = executor.shutdown({ graceMs: 60_000 }).then(() => (firstDone = true));
      await timers.advance(1000);
      timers.set(timers.now() + 3_600_000); // the wall clock goes an hour forward
      let secondDone = false;
      const second = executor.shutdown({ graceMs: 0 }).then(() => (secondDone = true));
      await until(() => secondDone, "the second shutdown() with no grace", timers);
      await first;
      ok(firstDone);
      await second;
    },
  },
  {
    name:
      "a random source that throws or answers outside [0, 1) neither stops the executor nor makes a retry's delay NaN, negative or past the cap",
    async run(ctx) {
      const sources: [string, () => number][] = [
        ["throws", () => {
          throw new Error("no entropy");
        }],
        ["NaN", () => Number.NaN],
        ["2", () => 2],
        ["-1", () => -1],
      ];
      for (const [what, random] of sources) {
        let calls = 0;
        const { executor, clock } = harness(ctx.storage, [agent("flaky", () => {
          if (++calls < 3) throw new Error("not yet");
          return calls;
        })], { random, retry: { delayMs: 1000, factor: 2, maxDelayMs: 1500, jitter: true } });
        const delays: number[] = [];
        const storageErrors: unknown[] = [];
        executor.on("task:retrying", (p) => delays.push(p.delayMs, p.task.runAt - p.error.at));
        executor.on("storage:error", (p) => storageErrors.push(p.error));
        executor.start();
        const job = await executor.submit({ name: `random ${what}`, tasks: [{ key: "a", agent: "flaky" }] });
        // An hour of clock time: the retries need 2.5 s of it, but each fired poll moves the
        // clock 1 s while a durable storage's answer is on its way (a loaded server can take
        // 60 such turns to answer a commit).
        deepEqual(await clock.runUntil(job.wait(), { maxMs: 3_600_000 }), { a: 3 }, what);
        deepEqual(delays, [1000, 1000, 1500, 1500], `random() ${what}: the retries wait the whole capped delay`);
        deepEqual(storageErrors, [], what);
        const a = await taskByKey(ctx, job.id, "a");
        equal(a.attempts, 3, what);
        await executor.shutdown();
      }
    },
  },
];
