/**
 * Small contracts with no storage: retry backoff and ids — run in every runtime.
 */

import { backoffDelay, DEFAULT_RETRY } from "../../src/backoff.ts";
import { newId } from "../../src/ids.ts";
import { Emitter } from "../../src/events.ts";
import { JobHandle, type JobHost } from "../../src/job-handle.ts";
import { ManualClock, systemClock, timerClock } from "../../src/clock.ts";
import type { Job, Task } from "../../src/types.ts";
import { applyCommit, type RuleTx } from "../../src/commit-rules.ts";
import { JobValidationError } from "../../src/errors.ts";
import { MAX_TASKS_PER_JOB, taskFromSpec } from "../../src/scheduler.ts";
import { equal, ok, rejects, throws } from "./assert.ts";
import type { Case } from "./harness.ts";

export const unitCases: Case<unknown>[] = [
  {
    name:
      "commit rules: a task inserted into a job that holds MAX_TASKS_PER_JOB tasks is a JobValidationError (too-many-tasks)",
    run() {
      // A job at the limit (reached by spawned children: submission refuses more up front).
      const now = 1_000_000;
      const job: Job = {
        id: "job",
        name: "full",
        status: "running",
        metadata: null,
        taskCount: MAX_TASKS_PER_JOB,
        openCount: 1,
        failedCount: 0,
        version: 1,
        createdAt: now,
        updatedAt: now,
        finishedAt: null,
      };
      const written: string[] = [];
      const tx: RuleTx = {
        getTask: () => undefined,
        getJob: (id) => (id === job.id ? job : undefined),
        dependents: () => [],
        jobTasks: () => [],
        putTask: (t) => void written.push(t.id),
        putJob: (j) => void written.push(j.id),
        setCache: () => {},
        setState: () => {},
      };
      const child = (id: string): Task =>
        taskFromSpec({ key: "p/c", agent: "a" }, { id, jobId: job.id, parentId: "p", dependencies: [] }, null, {
          maxAttempts: 1,
        }, now);
      const e = throws(() => applyCommit(tx, [{ type: "insertTask", task: child("c1") }], now), JobValidationError);
      equal((e as JobValidationError).problems[0]?.code, "too-many-tasks");
      equal(written.length, 0, "nothing written");
      // One below the limit, one more task fits; two do not.
      job.taskCount = MAX_TASKS_PER_JOB - 1;
      applyCommit(tx, [{ type: "insertTask", task: child("c2") }], now);
      written.length = 0;
      throws(
        () =>
          applyCommit(tx, [{ type: "insertTask", task: child("c3") }, { type: "insertTask", task: child("c4") }], now),
        JobValidationError,
        "at most",
      );
      equal(written.length, 0, "nothing written");
    },
  },
  {
    name:
      "timerClock: the legs of a timer past 2^31 - 1 ms are measured on monotonic time, so a wall-clock step does not move it",
    async run() {
      // Runtime-like timers (a delay past 2^31 - 1 ms fires after 1 ms) on a manual clock
      // whose wall clock is set back 20 days while a 30-day timer waits.
      const manual = new ManualClock(1_000_000);
      const clock = timerClock({
        now: () => manual.now(),
        monotonic: () => manual.monotonic(),
        setTimeout: (fn, ms) => manual.setTimer(fn, ms > 2 ** 31 - 1 ? 1 : ms),
        clearTimeout: (h) => manual.clearTimer(h),
      });
      const day = 86_400_000;
      let fired = 0;
      clock.setTimer(() => fired++, 30 * day);
      await manual.advance(10 * day);
      manual.set(manual.now() - 20 * day);
      await manual.advance(20 * day - 1);
      equal(fired, 0, "fired early");
      await manual.advance(1);
      equal(fired, 1, "a 30-day timer had not fired after 30 days of monotonic time");
    },
  },
  {
    name:
      "timerClock: a timer past 2^31 - 1 ms fires on time when monotonic() lags the timers (fake setTimeout, real performance.now())",
    async run() {
      // A test's fake timers move while the host's monotonic time stands still.
      const manual = new ManualClock(1_000_000);
      const clock = timerClock({
        now: () => manual.now(),
        monotonic: () => 0,
        setTimeout: (fn, ms) => manual.setTimer(fn, ms),
        clearTimeout: (h) => manual.clearTimer(h),
      });
      const day = 86_400_000;
      let fired = 0;
      clock.setTimer(() => fired++, 30 * day);
      await manual.advance(30 * day - 1);
      equal(fired, 0, "fired early");
      await manual.advance(1);
      equal(fired, 1, "a 30-day timer had not fired after 30 days of the timers' time");
    },
  },
  {
    name:
      "systemClock: timers fire in the order of their delays, and a cleared one never fires, whenever it is cleared",
    async run() {
      // In a page each timer is armed from a task of its own (after the call returns): one
      // cleared before that, or after, must not fire.
      const fired: string[] = [];
      const at = (label: string, ms: number) => systemClock.setTimer(() => fired.push(label), ms);
      at("b", 2);
      systemClock.clearTimer(at("cleared at once", 0));
      at("a", 0);
      const late = at("cleared once armed", 5);
      await new Promise<void>((resolve) => systemClock.setTimer(resolve, 1));
      systemClock.clearTimer(late);
      await new Promise<void>((resolve) => systemClock.setTimer(resolve, 20));
      equal(fired.sort().join(), "a,b");
    },
  },
  {
    name: "ManualClock: a timer fires after its delay of monotonic() time, whatever set() did to now()",
    async run() {
      const clock = new ManualClock(1_000_000);
      const fired: string[] = [];
      clock.setTimer(() => fired.push("back"), 1000);
      clock.set(1_000_000 - 3_600_000); // the wall clock steps back an hour
      await clock.advance(1000);
      equal(clock.monotonic(), 1000);
      equal(fired.join(), "back", "a 1 s timer had not fired after 1 s of monotonic time");
      clock.setTimer(() => fired.push("forward"), 1000);
      clock.set(clock.now() + 7_200_000); // and forward two hours
      await clock.advance(0);
      equal(fired.join(), "back", "a jump of the wall clock fired a timer early");
      await clock.advance(1000);
      equal(fired.join(), "back,forward");
      equal(clock.monotonic(), 2000);
    },
  },
  {
    name: "ManualClock.advance() refuses a time that is not a finite number, and moves nothing",
    async run() {
      const clock = new ManualClock(1_000);
      let fired = 0;
      // A timer that re-arms itself, as a started executor's poll does: advance(Infinity)
      // would fire it for good.
      const rearm = () => {
        fired++;
        clock.setTimer(rearm, 1_000);
      };
      clock.setTimer(rearm, 1_000);
      for (const bad of [Infinity, -Infinity, NaN, "5" as unknown as number]) {
        await rejects(() => clock.advance(bad), RangeError, "finite number");
      }
      equal(fired, 0);
      equal(clock.now(), 1_000);
      equal(clock.monotonic(), 0);
      await clock.advance(2_500);
      equal(fired, 2);
    },
  },
  {
    name: "ManualClock.runUntil() skips from timer to timer until the promise settles, and answers its value",
    async run() {
      const clock = new ManualClock(1_000_000);
      const fired: number[] = [];
      const done = new Promise<string>((resolve) => {
        // A chain: each timer sets the next, as a retry's backoff does after a failed attempt.
        clock.setTimer(() => {
          fired.push(clock.monotonic());
          clock.setTimer(() => {
            fired.push(clock.monotonic());
            resolve("done");
          }, 60_000);
        }, 5_000);
      });
      clock.setTimer(() => fired.push(-1), 3_600_000); // due after the promise settled: not fired
      equal(await clock.runUntil(done), "done");
      equal(fired.join(), "5000,65000");
      equal(clock.monotonic(), 65_000);
      equal(clock.now(), 1_065_000);
      equal(clock.pending, 1);
      // A rejection is thrown; a promise that already settled costs no time.
      const failing = new Promise((_, reject) => clock.setTimer(() => reject(new TypeError("boom")), 10));
      let thrown: unknown;
      await clock.runUntil(failing).catch((e) => (thrown = e));
      ok(thrown instanceof TypeError);
      equal(await clock.runUntil(Promise.resolve(7)), 7);
      equal(clock.monotonic(), 65_010);
    },
  },
  {
    name: "ManualClock.runUntil() refuses to skip past maxMs, moves at most stepMs at a time, and calls a wait " +
      "with no timer left endless",
    async run() {
      const clock = new ManualClock(0);
      let fired = 0;
      const late = new Promise<void>((resolve) =>
        clock.setTimer(() => {
          fired++;
          resolve();
        }, 10_000)
      );
      let thrown: unknown;
      await clock.runUntil(late, { maxMs: 9_999 }).catch((e) => (thrown = e));
      ok(thrown instanceof RangeError, `a RangeError, got ${thrown}`);
      equal(clock.monotonic(), 0, "nothing moved: the next timer lay past maxMs");
      equal(fired, 0);
      thrown = undefined;
      await clock.runUntil(late, { maxMs: 2_500, stepMs: 1_000 }).catch((e) => (thrown = e));
      ok(thrown instanceof RangeError);
      equal(clock.monotonic(), 2_000, "two steps of 1 s, the third would pass maxMs");
      await clock.runUntil(late, { stepMs: 3_000 });
      equal([fired, clock.monotonic()].join(), "1,10000");
      thrown = undefined;
      await clock.runUntil(new Promise(() => {})).catch((e) => (thrown = e));
      ok(thrown instanceof Error && /can never settle/.test(thrown.message), `got ${thrown}`);
      for (const bad of [{ maxMs: -1 }, { maxMs: NaN }, { stepMs: 0 }]) {
        thrown = undefined;
        await clock.runUntil(Promise.resolve(), bad).catch((e) => (thrown = e));
        ok(thrown instanceof RangeError, `${JSON.stringify(bad)} refused`);
      }
    },
  },
  {
    name: "ManualClock.runUntil() with refused options still observes the promise: its rejection is not left unhandled",
    async run() {
      const clock = new ManualClock(0);
      // A thenable stands for job.wait(): what runUntil() hands its `then` is what handles a rejection.
      let handled = false;
      const watched: PromiseLike<never> = {
        then(_onValue, onError) {
          handled = typeof onError === "function";
          return Promise.resolve() as never;
        },
      };
      let thrown: unknown;
      await clock.runUntil(watched, { stepMs: 0 }).catch((e) => (thrown = e));
      ok(thrown instanceof RangeError, `a RangeError, got ${thrown}`);
      await clock.advance(0);
      ok(handled, "the promise was given a rejection handler");
    },
  },
  {
    name: "Emitter: off() stops a listener added with once(), as it stops one added with on()",
    run() {
      const emitter = new Emitter();
      const job = { id: "j" } as Job;
      let calls = 0;
      const listener = () => calls++;
      emitter.once("job:completed", listener);
      emitter.off("job:completed", listener);
      equal(emitter.has("job:completed"), false, "nobody listens after off()");
      emitter.emit("job:completed", { job });
      equal(calls, 0);
    },
  },
  {
    name:
      "JobHandle.on(): an event reads its job once however many jobs are listened to, and listeners keep their order",
    run() {
      // 1,000 handles each listening to their own job: an event of one job is handed to
      // that job's listeners only, not offered to every handle's listener to drop.
      const emitter = new Emitter();
      const host: JobHost = {
        storage: null as never,
        clock: new ManualClock(0),
        pollIntervalMs: 1000,
        on: (event, listener) => emitter.on(event, listener),
        onJob: (event, jobId, listener) => emitter.onJob(event, jobId, listener),
        setJobStatus: () => Promise.reject(new Error("not used")),
      };
      const heard: string[] = [];
      emitter.on("task:completed", () => heard.push("executor 1"));
      const handles = Array.from({ length: 1000 }, (_, i) => new JobHandle(`job-${i}`, host));
      const offs = handles.map((h) => h.on("task:completed", () => heard.push(h.id)));
      emitter.on("task:completed", () => heard.push("executor 2"));
      handles[7]!.on("task:completed", () => heard.push("job-7 again"));
      let reads = 0;
      const task = { jobId: "job-7" } as Task;
      const payload = {
        get task() {
          reads++;
          return task;
        },
      };
      emitter.emit("task:completed", payload);
      equal(heard.join(", "), "executor 1, job-7, executor 2, job-7 again");
      ok(reads <= 2, `the event's task was read ${reads} times`);
      for (const off of offs) off();
      heard.length = 0;
      emitter.emit("task:completed", { task });
      equal(heard.join(", "), "executor 1, executor 2, job-7 again", "a stopped listener is not called");
      equal(emitter.has("task:completed"), true);
      equal(emitter.has("task:failed"), false);
      const off = handles[1]!.on("task:failed", () => {});
      equal(emitter.has("task:failed"), true, "a job's listener counts as a listener of its event");
      off();
      equal(emitter.has("task:failed"), false);
    },
  },
  {
    name: "backoffDelay grows by the factor, stops at the cap, and jitters within [0, delay)",
    run() {
      const o = { delayMs: 100, factor: 3, maxDelayMs: 1000, jitter: false };
      equal(backoffDelay(1, o), 100);
      equal(backoffDelay(2, o), 300);
      equal(backoffDelay(3, o), 900);
      equal(backoffDelay(4, o), 1000);
      equal(backoffDelay(5000, o), 1000, "a power past Infinity is still capped");
      const j = { ...o, jitter: true };
      equal(backoffDelay(3, j, () => 0), 0);
      equal(backoffDelay(3, j, () => 0.5), 450);
      ok(backoffDelay(3, j, () => 0.999999) < 900);
      equal(backoffDelay(1, DEFAULT_RETRY), 1000);
    },
  },
  {
    name: "backoffDelay with no delay is 0 at any attempt (never NaN)",
    run() {
      for (const attempt of [1, 2, 1026, 1e6]) {
        equal(backoffDelay(attempt, { delayMs: 0, factor: 2, maxDelayMs: 1000, jitter: false }), 0);
        equal(backoffDelay(attempt, { delayMs: 0, factor: 2, maxDelayMs: 1000, jitter: true }, () => 0.5), 0);
      }
    },
  },
  {
    name:
      "backoffDelay with a random source answering outside [0, 1) waits the capped delay (never NaN, negative or past the cap)",
    run() {
      const j = { delayMs: 100, factor: 3, maxDelayMs: 1000, jitter: true };
      for (const r of [Number.NaN, 1, 2, -1, Infinity, -Infinity, "0.5" as never, undefined as never]) {
        equal(backoffDelay(3, j, () => r), 900, `random() answering ${String(r)}`);
        equal(backoffDelay(9, j, () => r), 1000, `random() answering ${String(r)}, capped`);
      }
    },
  },
  {
    name: "newId makes 26-character ids that increase, from fractional and backward-going times too",
    run() {
      const valid = /^[0-9A-HJKMNP-TV-Z]{26}$/;
      // Times a little ahead of the clock, so that each one is new to the id generator.
      const base = Date.now() + 5_000;
      let prev = newId(base);
      for (const t of [base + 0.5, base + 30.25, base + 29, base + 31.9, Number.NaN, base + 64.5]) {
        const id = newId(t);
        ok(valid.test(id), JSON.stringify(id));
        ok(prev < id, `${prev} < ${id} (time ${t})`);
        prev = id;
      }
    },
  },
];
