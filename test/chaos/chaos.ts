/**
 * The chaos suite: executor and job workloads (chains and DAGs, retries, permanent
 * failures, timeouts, spawned children with cache and state, at-most-once tasks,
 * cancellation) run through a {@link FaultyStorage} that fails calls before and after
 * applying them and adds latency. The executor must keep running, retry its own storage
 * calls with backoff, report each failure as `storage:error`, and lose or duplicate
 * nothing: every task ends in the right stored state, runs exactly as often as its
 * durability and failures allow, and each job ends once.
 *
 * Runner-neutral: registered for every target in every runtime by `suites.ts`.
 */

import { ManualClock, systemClock } from "../../src/clock.ts";
import { NonRetryableError, NotFoundError, StorageCorruptError } from "../../src/errors.ts";
import { Executor } from "../../src/executor.ts";
import { JobHandle } from "../../src/job-handle.ts";
import { isFinal, isSatisfied } from "../../src/status.ts";
import type { Durability, Task } from "../../src/types.ts";
import { deepEqual, equal, ok } from "../conformance/assert.ts";
import { agent, registryOf, START, until as untilOn, untilAdvancing } from "../conformance/executor-kit.ts";
import type { Case } from "../conformance/harness.ts";
import { FaultyStorage, InjectedFaultError, prng } from "./faulty-storage.ts";
import {
  dagSpecs,
  doomed,
  randomDag,
  type ReliabilityContext,
  reportingExecutor,
  retrying,
  settled,
  sleep,
  within,
} from "./kit.ts";

/** Resolve once `cond` holds, checking every few milliseconds. */
async function until(cond: () => boolean): Promise<void> {
  while (!cond()) await sleep(2);
}

/** The id of the task of `jobId` with `key`. */
async function byKey(ctx: ReliabilityContext, jobId: string, key: string): Promise<string> {
  const task = (await ctx.storage.listTasks({ jobId })).find((t) => t.key === key);
  ok(task, `task ${key} exists`);
  return task.id;
}

/** Resolve once the stored task has `status`. */
async function statusIs(ctx: ReliabilityContext, id: string, status: string): Promise<void> {
  await within(
    4000,
    `task ${id} ${status}`,
    (async () => {
      while ((await ctx.storage.getTask(id))?.status !== status) await sleep(2);
    })(),
  );
}

/** Count of runs per task key. */
class Runs {
  readonly byKey = new Map<string, number>();
  readonly active = new Set<string>();
  readonly overlaps: string[] = [];
  start(key: string): void {
    if (this.active.has(key)) this.overlaps.push(key);
    this.active.add(key);
    this.byKey.set(key, (this.byKey.get(key) ?? 0) + 1);
  }
  end(key: string): void {
    this.active.delete(key);
  }
  of(key: string): number {
    return this.byKey.get(key) ?? 0;
  }
}

/** An agent that counts its runs in `runs` and returns its task's key. */
function keyAgent(name: string, runs: Runs) {
  return agent(name, (_input, c) => {
    runs.start(c.task.key);
    runs.end(c.task.key);
    return c.task.key;
  });
}

function chain(n: number, seed: number): { key: string; dependsOn: string[] }[] {
  const random = prng(seed);
  return Array.from({ length: n }, (_, i) => ({
    key: `k${i}`,
    dependsOn: i < 4 ? [] : [`k${Math.floor(random() * i)}`, `k${i - 1 - Math.floor(random() * 3)}`]
      .filter((d, j, all) => all.indexOf(d) === j),
  }));
}

async function allTasks(ctx: ReliabilityContext, jobId: string): Promise<Task[]> {
  return await ctx.storage.listTasks({ jobId });
}

/** Every task of the job completed once, exactly as asked. */
async function exactlyOnce(
  ctx: ReliabilityContext,
  durability: Durability,
  seed: number,
  n: number,
): Promise<void> {
  const runs = new Runs();
  const work = agent("work", async (input, c) => {
    runs.start(c.task.key);
    await sleep((input as number) % 3);
    runs.end(c.task.key);
    return { key: c.task.key, double: (input as number) * 2 };
  });
  const faulty = new FaultyStorage(ctx.storage, { seed, rate: 0.25, latencyMs: [0, 2] });
  const { executor, report } = reportingExecutor(faulty, [work]);
  // A listener that throws on every event it hears changes nothing.
  for (const e of ["storage:error", "task:completed", "job:completed"] as const) {
    executor.on(e, () => {
      throw new Error("listener bug");
    });
  }
  executor.start();
  const specs = chain(n, seed).map((s, i) => ({ ...s, agent: "work", input: i, durability }));
  const job = await executor.submit({ name: "chaos", tasks: specs });
  const out = await settled(job);
  await executor.shutdown();
  ok(!(out instanceof Error), `job failed: ${(out as Error).message}`);
  for (let i = 0; i < n; i++) deepEqual(out[`k${i}`], { key: `k${i}`, double: i * 2 }, `output of k${i}`);
  for (let i = 0; i < n; i++) equal(runs.of(`k${i}`), 1, `k${i} ran ${runs.of(`k${i}`)} times`);
  deepEqual(runs.overlaps, [], "no task ran twice at once");
  const stored = await allTasks(ctx, job.id);
  for (const t of stored) {
    equal(t.status, "completed", `status of ${t.key}`);
    equal(t.attempts, 1, `attempts of ${t.key}`);
    equal(t.leaseOwner, null, `lease of ${t.key}`);
  }
  deepEqual(report.jobEnds.get(job.id), ["job:completed"], "job ended once");
  ok(faulty.faultCount() > 0, "faults were injected");
  ok(faulty.faultCount(undefined, "after") > 0, "faults after applying were injected");
  ok(report.storageErrors.length > 0, "storage:error was reported");
  ok(report.storageErrors.every((e) => e.error instanceof InjectedFaultError), "only injected faults");
  const s = executor.stats();
  equal(s.lost, 0, "nothing reported lost");
  equal(s.completed, n, "every completion reported once");
  for (const t of stored) equal(report.completed.get(t.id), 1, `task:completed of ${t.key}`);
}

/** The chaos cases; `seed` picks the fault pattern (each case derives its own from it). */
export function chaosCases(seed = 1): Case<ReliabilityContext>[] {
  return [
    {
      name: `random faults before and after applying: every task runs and completes exactly once (seed ${seed})`,
      run: (ctx) => exactlyOnce(ctx, "at-least-once", seed, 40),
    },
    {
      name: `at-most-once tasks under random faults run once and none is blocked (seed ${seed})`,
      run: (ctx) => exactlyOnce(ctx, "at-most-once", seed + 100, 30),
    },
    {
      name: "a commit applied but reported as failed: the task completes once, is not lost, its job ends once",
      async run(ctx) {
        const runs = new Runs();
        let flaky = 0;
        const faulty = new FaultyStorage(ctx.storage);
        // A retry delay longer than the commit's own retry: the task is still as the lost
        // commit left it when the executor looks (had it moved on, the executor could not tell).
        const { executor, report } = reportingExecutor(faulty, [
          agent("once", (input, c) => {
            runs.start(c.task.key);
            runs.end(c.task.key);
            return { got: input };
          }),
          agent("flaky", (_input, c) => {
            runs.start(c.task.key);
            runs.end(c.task.key);
            if (++flaky === 1) throw new Error("first attempt fails");
            return "second";
          }),
        ], { retry: { delayMs: 300 } });
        executor.start();
        // The completion of "a" and the retry of "b" are each the only op of a commit
        // whose answer is lost after it was applied.
        faulty.failNext("commit", "after");
        const one = await executor.submit({ name: "one", tasks: [{ key: "a", agent: "once", input: 7 }] });
        deepEqual(await settled(one), { a: { got: 7 } });
        // The job ended in storage; the executor learns it once its retried commit conflicts.
        await within(5000, "the completion to be reported", until(() => report.completed.size === 1));
        faulty.failNext("commit", "after");
        const two = await executor.submit({ name: "two", tasks: [{ key: "b", agent: "flaky" }] });
        deepEqual(await settled(two), { b: "second" });
        await executor.shutdown();
        equal(faulty.faultCount("commit", "after"), 2, "both faults struck");
        equal(runs.of("a"), 1);
        equal(runs.of("b"), 2, "one failed attempt and one retry");
        const [a] = await allTasks(ctx, one.id);
        equal(a?.status, "completed");
        deepEqual(a?.output, { got: 7 });
        const [b] = await allTasks(ctx, two.id);
        equal(b?.status, "completed");
        equal(b?.attempts, 2);
        deepEqual(report.lost, [], "no task:lost");
        equal(report.completed.get(a!.id), 1, "task:completed once");
        equal(report.retrying.get(b!.id), 1, "task:retrying once");
        deepEqual(report.jobEnds.get(one.id), ["job:completed"]);
        deepEqual(report.jobEnds.get(two.id), ["job:completed"]);
        equal(executor.stats().completed, 2);
        equal(executor.stats().retried, 1);
      },
    },
    {
      name: "a claim applied but reported as failed hands its tasks back: each runs once, at-most-once ones too",
      async run(ctx) {
        const runs = new Runs();
        const faulty = new FaultyStorage(ctx.storage);
        const { executor, report } = reportingExecutor(faulty, [
          keyAgent("once", runs),
        ]);
        // The claim that finds the job's tasks is applied, but the executor never hears of it.
        faulty.failNext("claimReady", "after", 2);
        const tasks = Array.from({ length: 6 }, (_, i) => ({
          key: `t${i}`,
          agent: "once",
          durability: (i % 2 ? "at-most-once" : "at-least-once") as Durability,
        }));
        const job = await executor.submit({ name: "claims", tasks });
        executor.start();
        const out = await settled(job, 4000);
        await executor.shutdown();
        ok(!(out instanceof Error), `job failed: ${(out as Error).message}`);
        equal(faulty.faultCount("claimReady", "after"), 2);
        for (const t of tasks) equal(runs.of(t.key), 1, `${t.key} ran once`);
        for (const t of await allTasks(ctx, job.id)) {
          equal(t.status, "completed", `status of ${t.key}`);
          equal(t.attempts, 1, `attempts of ${t.key}: a handed-back claim is not an attempt`);
        }
        deepEqual(report.jobEnds.get(job.id), ["job:completed"]);
      },
    },
    {
      name:
        "wait() rides out failing reads: errors that may pass are retried for as long as they fail, each reported; a corrupt store is thrown",
      async run(ctx) {
        const faulty = new FaultyStorage(ctx.storage);
        const { executor, report } = reportingExecutor(faulty, [agent("double", (input) => (input as number) * 2)]);
        executor.start();
        const job = await executor.submit({ name: "reads", tasks: [{ key: "a", agent: "double", input: 21 }] });
        ok(!((await settled(job, 4000)) instanceof Error), "the job completed");
        await executor.shutdown();
        // Without a retry of its own, the caller still gets the outputs.
        faulty.failNext("getJob", "before", 3);
        faulty.failNext("listTasks", "before", 2);
        deepEqual(await job.wait(), { a: 42 }, "wait() answered through five failed reads");
        equal(faulty.faultCount("getJob") + faulty.faultCount("listTasks"), 5);
        // A longer outage (a failover takes seconds): 25 failed reads in a row, each reported.
        const before = report.storageErrors.length;
        faulty.failNext("getJob", "before", 25);
        deepEqual(await job.wait(), { a: 42 }, "wait() answered through 25 failed reads in a row");
        const reported = report.storageErrors.slice(before);
        equal(reported.length, 25, "each failed read reported as storage:error");
        ok(reported.every((e) => e.operation === "getJob" && e.error instanceof InjectedFaultError));
        deepEqual(reported.map((e) => e.attempt).slice(0, 3), [1, 2, 3], "counted in a row");
        // A store that cannot be read as it is: thrown at once, not retried.
        let reads = 0;
        const corrupt = new Proxy(faulty, {
          get(target, key) {
            if (key === "getJob") {
              return () => {
                reads++;
                return Promise.reject(new StorageCorruptError("jobs", "bad row"));
              };
            }
            const value = Reflect.get(target, key, target);
            return typeof value === "function" ? value.bind(target) : value;
          },
        });
        const handle = new JobHandle(job.id, {
          storage: corrupt,
          clock: systemClock,
          pollIntervalMs: 10,
          on: () => () => {},
          setJobStatus: () => Promise.reject(new Error("not used")),
        });
        const thrown = await handle.wait().then(() => null, (e: unknown) => e);
        ok(thrown instanceof StorageCorruptError, `a StorageCorruptError is thrown, got ${String(thrown)}`);
        equal(reads, 1, "and not retried");
      },
    },
    {
      name: "submit() rides out a failing createJob: retried with backoff, stored once when a failed call was applied",
      async run(ctx) {
        const runs = new Runs();
        const faulty = new FaultyStorage(ctx.storage);
        const { executor, report } = reportingExecutor(faulty, [
          keyAgent("once", runs),
        ]);
        executor.start();
        // Applied, but the caller hears of a failure: the read-back finds the job.
        faulty.failNext("createJob", "after", 1);
        const applied = await executor.submit({ name: "applied", tasks: [{ key: "a", agent: "once" }] });
        // Not applied, twice: the third call stores it.
        faulty.failNext("createJob", "before", 2);
        const refused = await executor.submit({ name: "refused", tasks: [{ key: "b", agent: "once" }] });
        deepEqual(await settled(applied, 4000), { a: "a" });
        deepEqual(await settled(refused, 4000), { b: "b" });
        equal((await ctx.storage.listJobs()).filter((j) => j.name === "applied").length, 1, "stored once");
        equal(runs.of("a"), 1);
        equal(runs.of("b"), 1);
        equal(report.storageErrors.filter((e) => e.operation === "createJob").length, 3, "each failure reported");
        // A sixth failure in a row is thrown, and nothing was stored.
        faulty.failNext("createJob", "before", 6);
        const thrown = await executor.submit({ name: "lost", tasks: [{ key: "c", agent: "once" }] }).then(
          () => null,
          (e: unknown) => e,
        );
        await executor.shutdown();
        ok(thrown instanceof InjectedFaultError, `the sixth failure is thrown, got ${String(thrown)}`);
        equal((await ctx.storage.listJobs()).filter((j) => j.name === "lost").length, 0);
      },
    },
    {
      name: "submit() with a job id of the caller's whose createJob answer was lost starts a delayed task at its time",
      async run(ctx) {
        // The read-back finds the job stored, by this submit: its delayed task is this
        // executor's to wake for, as for a job with a generated id (no poll for a minute).
        const clock = new ManualClock(START);
        const runs = new Runs();
        const faulty = new FaultyStorage(ctx.storage);
        const { executor } = reportingExecutor(faulty, [keyAgent("later", runs)], { pollIntervalMs: 60_000, clock });
        executor.start();
        await untilOn(() => (faulty.calls.claimReady ?? 0) > 0, "the first claim", clock);
        faulty.failNext("createJob", "after", 1);
        const job = await executor.submit({
          id: "lost-answer",
          name: "delayed",
          tasks: [{ key: "a", agent: "later", delayMs: 1000 }],
        });
        equal(job.id, "lost-answer");
        await untilAdvancing(() => runs.of("a") === 1 || clock.now() >= START + 30_000, "the delayed task", clock, 250);
        equal(runs.of("a"), 1, "the task ran at its time, not at the next poll");
        ok(clock.now() < START + 5000, `ran at ${clock.now() - START} ms`);
        await executor.shutdown();
      },
    },
    {
      name: "review() and retryTask() ride out failing calls: retried with backoff, applied once",
      async run(ctx) {
        const runs = new Runs();
        const faulty = new FaultyStorage(ctx.storage);
        const { executor, report } = reportingExecutor(faulty, [
          keyAgent("once", runs),
          agent("doomed", () => {
            throw new NonRetryableError("broken for good");
          }),
        ]);
        executor.start();
        const reviewed = await executor.submit({
          name: "reviewed",
          tasks: [{ key: "r", agent: "once", review: true }, { key: "q", agent: "once", review: true }],
        });
        const r = await byKey(ctx, reviewed.id, "r");
        const q = await byKey(ctx, reviewed.id, "q");
        await statusIs(ctx, r, "completed");
        await statusIs(ctx, q, "completed");
        // Accepted, with only the answer lost: read back, not written twice.
        faulty.failNext("commit", "after", 1);
        equal((await executor.review(r, "accept")).status, "accepted");
        // Rejected after two refused commits: the task runs again.
        faulty.failNext("getTask", "before", 1);
        faulty.failNext("commit", "before", 2);
        equal((await executor.review(q, "reject", "again")).status, "ready");
        await until(() => runs.of("q") === 2);
        await statusIs(ctx, q, "completed");
        faulty.failNext("commit", "after", 1);
        equal((await executor.review(q, "accept")).status, "accepted");
        deepEqual(await settled(reviewed, 4000), { r: "r", q: "q" });
        // A blocked task sent back to ready through a failing read and a lost answer runs once.
        const blocked = await executor.submit({
          name: "blocked",
          tasks: [
            { key: "d", agent: "doomed" },
            { key: "b", agent: "once", dependsOn: ["d"], onDependencyFailure: "block" },
          ],
        });
        const b = await byKey(ctx, blocked.id, "b");
        await statusIs(ctx, b, "blocked");
        faulty.failNext("getTask", "before", 1);
        faulty.failNext("commit", "after", 1);
        // The answer read back is the task as stored now: ready, or already run again.
        const retried = await executor.retryTask(b);
        ok(["ready", "running", "completed"].includes(retried.status), `back to ready, got ${retried.status}`);
        ok((await settled(blocked, 4000)) instanceof Error, "the job with a failed task fails");
        await executor.shutdown();
        equal(runs.of("r"), 1);
        equal(runs.of("b"), 1);
        equal((await ctx.storage.getTask(b))?.status, "completed");
        deepEqual(report.jobEnds.get(reviewed.id), ["job:completed"], "the job's end is reported once");
        deepEqual(report.jobEnds.get(blocked.id), ["job:failed"]);
        equal(report.storageErrors.filter((e) => e.operation === "commit").length, 5, "each failed commit reported");
        equal(report.storageErrors.filter((e) => e.operation === "getTask").length, 2, "each failed read reported");
      },
    },
    {
      name: "pause(), resume() and cancel() ride out failing calls; a sixth failure in a row is thrown",
      async run(ctx) {
        const runs = new Runs();
        const faulty = new FaultyStorage(ctx.storage);
        // A "gate" task runs until the test opens its gate or its signal aborts.
        const gates = new Map<string, () => void>();
        let aborted = 0;
        const { executor, report } = reportingExecutor(faulty, [
          keyAgent("once", runs),
          agent("gate", (_input, c) => {
            runs.start(c.task.key);
            return new Promise((resolve, reject) => {
              gates.set(c.task.key, () => resolve(null));
              c.signal.addEventListener("abort", () => {
                aborted++;
                reject(c.signal.reason);
              });
            }).finally(() => runs.end(c.task.key));
          }),
        ]);
        executor.start();
        const paused = await executor.submit({
          name: "paused",
          tasks: [{ key: "g", agent: "gate" }, { key: "after", agent: "once", dependsOn: ["g"] }],
        });
        const g = await byKey(ctx, paused.id, "g");
        await statusIs(ctx, g, "running");
        faulty.failNext("commit", "after", 1);
        equal((await paused.pause()).status, "paused");
        gates.get("g")!();
        const after = await byKey(ctx, paused.id, "after");
        await statusIs(ctx, after, "paused");
        faulty.failNext("getJob", "before", 1);
        faulty.failNext("commit", "before", 2);
        equal((await paused.resume()).status, "running");
        deepEqual(await settled(paused, 4000), { g: null, after: "after" });
        // Cancel a job whose task runs: the commit's answer is lost, the signal is still aborted.
        const held = await executor.submit({ name: "held", tasks: [{ key: "h", agent: "gate" }] });
        const h = await byKey(ctx, held.id, "h");
        await statusIs(ctx, h, "running");
        faulty.failNext("commit", "after", 1);
        equal((await held.cancel()).status, "cancelled");
        await until(() => aborted === 1);
        ok((await settled(held, 4000)) instanceof Error, "wait() rejects for a cancelled job");
        deepEqual(report.jobEnds.get(held.id), ["job:cancelled"], "the job's end is reported once");
        // Six failures in a row: the sixth is thrown, and the job stays as it was.
        const idle = await executor.submit({ name: "idle", tasks: [{ key: "i", agent: "gate" }] });
        await statusIs(ctx, await byKey(ctx, idle.id, "i"), "running");
        faulty.failNext("getJob", "before", 6);
        const thrown = await idle.pause().then(() => null, (e: unknown) => e);
        ok(thrown instanceof InjectedFaultError, `the sixth failure is thrown, got ${String(thrown)}`);
        equal((await ctx.storage.getJob(idle.id))?.status, "running");
        await executor.shutdown({ graceMs: 0 });
        equal(runs.of("g"), 1);
        equal(runs.of("after"), 1);
        equal(report.storageErrors.filter((e) => e.operation === "commit").length, 4, "each failed commit reported");
        equal(report.storageErrors.filter((e) => e.operation === "getJob").length, 6, "each failed read reported");
      },
    },
    {
      name: "job(), status() and tasks() ride out failing reads; a sixth failure in a row is thrown",
      async run(ctx) {
        const runs = new Runs();
        const faulty = new FaultyStorage(ctx.storage);
        const { executor, report } = reportingExecutor(faulty, [keyAgent("once", runs)]);
        executor.start();
        const submitted = await executor.submit({ name: "reads", tasks: [{ key: "a", agent: "once" }] });
        deepEqual(await settled(submitted, 4000), { a: "a" });
        faulty.failNext("getJob", "before", 2);
        const handle = await executor.job(submitted.id);
        equal(handle.id, submitted.id);
        faulty.failNext("getJob", "before", 5);
        equal((await handle.status()).status, "completed");
        faulty.failNext("listTasks", "before", 3);
        deepEqual((await handle.tasks()).map((t) => t.key), ["a"]);
        equal(report.storageErrors.length, 10, "each failed read reported");
        faulty.failNext("getJob", "before", 6);
        const thrown = await handle.status().then(() => null, (e: unknown) => e);
        ok(thrown instanceof InjectedFaultError, `the sixth failure is thrown, got ${String(thrown)}`);
        // A job that is not there is told at once, not retried.
        const missing = await executor.job("no-such-job").then(() => null, (e: unknown) => e);
        ok(missing instanceof NotFoundError, `NotFoundError, got ${String(missing)}`);
        await executor.shutdown();
      },
    },
    {
      name: `retries, exhausted attempts and permanent failures are stored right under faults (seed ${seed})`,
      async run(ctx) {
        const runs = new Runs();
        const faulty = new FaultyStorage(ctx.storage, { seed: seed + 200, rate: 0.25, latencyMs: [0, 1] });
        const { executor, report } = reportingExecutor(faulty, [
          agent("flaky", (input, c) => {
            runs.start(c.task.key);
            runs.end(c.task.key);
            if (runs.of(c.task.key) <= (input as number)) throw new Error(`flake ${runs.of(c.task.key)}`);
            return runs.of(c.task.key);
          }),
          agent("doomed", (_i, c) => {
            runs.start(c.task.key);
            runs.end(c.task.key);
            throw new NonRetryableError("broken for good");
          }),
          agent("never", (_i, c) => {
            runs.start(c.task.key);
            runs.end(c.task.key);
            return null;
          }),
        ]);
        executor.start();
        const good = await executor.submit({
          name: "flaky",
          tasks: Array.from({ length: 12 }, (_, i) => ({ key: `f${i}`, agent: "flaky", input: i % 3, maxAttempts: 4 })),
        });
        const bad = await executor.submit({
          name: "bad",
          tasks: [
            { key: "doomed", agent: "doomed" },
            { key: "exhaust", agent: "flaky", input: 5, maxAttempts: 2 },
            { key: "after-doomed", agent: "never", dependsOn: ["doomed"] },
            { key: "after-that", agent: "never", dependsOn: ["after-doomed"] },
            { key: "fine", agent: "flaky", input: 0 },
          ],
        });
        const outGood = await settled(good);
        const outBad = await settled(bad);
        await executor.shutdown();
        ok(!(outGood instanceof Error), `flaky job failed: ${(outGood as Error).message}`);
        for (let i = 0; i < 12; i++) {
          equal(runs.of(`f${i}`), (i % 3) + 1, `f${i} ran ${runs.of(`f${i}`)} times`);
          equal(outGood[`f${i}`], (i % 3) + 1);
        }
        for (const t of await allTasks(ctx, good.id)) {
          equal(t.status, "completed");
          equal(t.attempts, Number(t.key.slice(1)) % 3 + 1, `attempts of ${t.key}`);
          equal(t.error, null, `a completed task keeps no error (${t.key})`);
        }
        ok(outBad instanceof Error, "the bad job failed");
        const byKey = Object.fromEntries((await allTasks(ctx, bad.id)).map((t) => [t.key, t]));
        equal(byKey["doomed"]?.status, "failed");
        equal(byKey["doomed"]?.error?.name, "NonRetryableError");
        equal(byKey["doomed"]?.attempts, 1);
        equal(runs.of("doomed"), 1);
        equal(byKey["exhaust"]?.status, "failed");
        equal(byKey["exhaust"]?.attempts, 2);
        equal(byKey["exhaust"]?.error?.message, "flake 2");
        equal(runs.of("exhaust"), 2);
        equal(byKey["after-doomed"]?.status, "cancelled");
        equal(byKey["after-that"]?.status, "cancelled");
        equal(runs.of("after-doomed") + runs.of("after-that"), 0, "dependents of a failed task never ran");
        equal(byKey["fine"]?.status, "completed");
        deepEqual(report.jobEnds.get(good.id), ["job:completed"]);
        deepEqual(report.jobEnds.get(bad.id), ["job:failed"]);
        equal(executor.stats().lost, 0, "nothing reported lost");
        ok(faulty.faultCount() > 0, "faults were injected");
      },
    },
    {
      name: `spawned children, cache and state written with a completion are neither lost nor doubled (seed ${seed})`,
      async run(ctx) {
        const runs = new Runs();
        const faulty = new FaultyStorage(ctx.storage, { seed: seed + 300, rate: 0.3, latencyMs: [0, 1] });
        const { executor, report } = reportingExecutor(faulty, [
          agent("parent", (input, c) => {
            runs.start(c.task.key);
            runs.end(c.task.key);
            const first = c.spawn({ key: "c0", agent: "child", input: { n: input as number, i: 0 } });
            c.spawn({ key: "c1", agent: "child", input: { n: input as number, i: 1 }, dependsOn: ["c0"] });
            c.spawn({ key: "c2", agent: "child", input: { n: input as number, i: 2 } });
            c.cache.set(`parent-${input}`, { first: first.id });
            c.state("chaos").set(`parent-${input}`, input as number);
            return input;
          }),
          agent("child", (_input, c) => {
            runs.start(c.task.key);
            runs.end(c.task.key);
            return c.task.key;
          }),
        ]);
        executor.start();
        const job = await executor.submit({
          name: "spawn",
          tasks: Array.from({ length: 8 }, (_, i) => ({ key: `p${i}`, agent: "parent", input: i })),
        });
        const out = await settled(job);
        await executor.shutdown();
        ok(!(out instanceof Error), `job failed: ${(out as Error).message}`);
        const tasks = await allTasks(ctx, job.id);
        equal(tasks.length, 8 * 4, "8 parents and 3 children each, no more");
        for (let i = 0; i < 8; i++) {
          const parent = tasks.find((t) => t.key === `p${i}`)!;
          const children = tasks.filter((t) => t.parentId === parent.id);
          deepEqual(children.map((c) => c.key).sort(), [`p${i}/c0`, `p${i}/c1`, `p${i}/c2`]);
          equal(runs.of(`p${i}`), 1, `p${i} ran once`);
          for (const c of children) equal(runs.of(c.key), 1, `${c.key} ran once`);
          deepEqual(await ctx.storage.getCache(job.id, `parent-${i}`), {
            first: children.find((c) => c.key.endsWith("c0"))!.id,
          });
          equal(await ctx.storage.getState("chaos", `parent-${i}`), i);
        }
        ok(tasks.every((t) => t.status === "completed"));
        deepEqual(report.jobEnds.get(job.id), ["job:completed"]);
      },
    },
    {
      name:
        "an outage stalls the executor, which backs off, reports each failed call and finishes once storage is back",
      async run(ctx) {
        const clock = new ManualClock(START);
        const runs = new Runs();
        const faulty = new FaultyStorage(ctx.storage, { methods: ["claimReady", "commit", "renewLeases"] });
        const { executor, report } = reportingExecutor(faulty, [
          agent("work", (_i, c) => {
            runs.start(c.task.key);
            runs.end(c.task.key);
            return c.task.key;
          }),
        ], { pollIntervalMs: 100, clock, random: () => 0.5 });
        executor.start();
        await untilOn(() => (faulty.calls.claimReady ?? 0) > 0, "the first claim", clock);
        faulty.setDown(true);
        const job = await executor.submit({
          name: "outage",
          tasks: Array.from({ length: 10 }, (_, i) => ({ key: `t${i}`, agent: "work" })),
        });
        // A claim sent before the outage may still be on its way to a durable storage: count
        // from the first claim that failed.
        await untilOn(() => report.storageErrors.some((e) => e.operation === "claimReady"), "a failed claim", clock);
        const claimsBefore = (faulty.calls.claimReady ?? 0) - 1;
        // 400 ms of the executor's clock, in steps; each waits for the calls under way (the
        // hand-back of a failed claim's tasks reads a storage that may answer slowly), so that
        // the executor's clock does not run ahead of what real time would let it do.
        for (let i = 0; i < 40; i++) {
          await clock.advance(10);
          await untilOn(() => faulty.inFlight === 0, "the storage's answers", clock);
        }
        const claimsDuring = (faulty.calls.claimReady ?? 0) - claimsBefore;
        ok(claimsDuring >= 2, `the executor kept trying (${claimsDuring} claims)`);
        ok(claimsDuring <= 10, `the executor backed off instead of spinning (${claimsDuring} claims in 400 ms)`);
        const attempts = report.storageErrors.filter((e) => e.operation === "claimReady").map((e) => e.attempt);
        ok(attempts.length >= 2, "each failed claim was reported");
        deepEqual(attempts, attempts.map((_, i) => i + 1), "attempt numbers count the consecutive failures");
        equal(runs.byKey.size, 0, "nothing ran during the outage");
        faulty.setDown(false);
        let out: Record<string, unknown> | Error | undefined;
        void settled(job).then((o) => (out = o));
        // The next claim comes after the backoff reached during the outage (at most 5 s).
        await untilAdvancing(() => out !== undefined, "the job to end", clock, 100);
        await executor.shutdown();
        ok(out !== undefined && !(out instanceof Error), "the job completed");
        for (let i = 0; i < 10; i++) equal(runs.of(`t${i}`), 1);
        deepEqual(report.jobEnds.get(job.id), ["job:completed"]);
      },
    },
    {
      name:
        "an executor backing off after failed claims claims at once when the storage tells of new work, not after its backoff",
      async run(ctx) {
        // PostgreSQL: claims fail while the server is down; once it is back, another
        // process's submit reaches this one as a NOTIFY, which must not wait out a backoff
        // that grows up to `pollIntervalMs` (here a minute).
        const clock = new ManualClock(START);
        const runs = new Runs();
        const work = keyAgent("work", runs);
        const faulty = new FaultyStorage(ctx.storage, { methods: ["claimReady"] });
        const { executor, report } = reportingExecutor(faulty, [work], { pollIntervalMs: 60_000, clock });
        executor.start();
        await untilOn(() => (faulty.calls.claimReady ?? 0) > 0, "the first claim", clock);
        faulty.setDown(true);
        const during = await executor.submit({ name: "during", tasks: [{ key: "a", agent: "work" }] });
        const failedClaims = () => report.storageErrors.filter((e) => e.operation === "claimReady").length;
        // Eight failed claims in a row: the executor now waits 6.4 s before the next one.
        await untilAdvancing(() => failedClaims() >= 8, "eight failed claims", clock, 10);
        faulty.setDown(false);
        const other = new Executor({ storage: faulty, registry: registryOf(work), clock });
        const after = await other.submit({ name: "after", tasks: [{ key: "b", agent: "work" }] });
        // The executor's clock does not move: the notice of the submit wakes the claim loop.
        await untilOn(() => runs.of("a") === 1 && runs.of("b") === 1, "both tasks to run", clock);
        await untilOn(
          () => report.jobEnds.has(during.id) && report.jobEnds.has(after.id),
          "both jobs to end",
          clock,
        );
        equal(failedClaims(), 8, "no claim failed after the storage was back");
        await executor.shutdown();
        deepEqual(report.jobEnds.get(during.id), ["job:completed"]);
        deepEqual(report.jobEnds.get(after.id), ["job:completed"]);
      },
    },
    {
      name: "wait() backing off after failed reads answers as soon as its executor ends the job, not after its backoff",
      async run(ctx) {
        const clock = new ManualClock(START);
        let release!: () => void;
        const gate = new Promise<void>((resolve) => (release = resolve));
        const faulty = new FaultyStorage(ctx.storage, { methods: ["getJob"] });
        const { executor, report } = reportingExecutor(faulty, [
          agent("gated", async (_i, c) => {
            await gate;
            return c.task.key;
          }),
        ], { pollIntervalMs: 60_000, clock });
        executor.start();
        const job = await executor.submit({ name: "gated", tasks: [{ key: "a", agent: "gated" }] });
        await untilOn(() => executor.stats().started === 1, "the task to start", clock);
        faulty.setDown(true);
        let out: unknown;
        job.wait().then((o) => (out = o), (e: unknown) => (out = e));
        const failedReads = () => report.storageErrors.filter((e) => e.operation === "getJob").length;
        // Eight failed reads in a row: wait() now backs off up to 2.5 s (jittered).
        await untilAdvancing(() => failedReads() >= 8, "eight failed reads", clock, 10);
        faulty.setDown(false);
        release();
        // The executor's clock does not move: its commit that ends the job wakes wait().
        await untilOn(() => out !== undefined, "wait() to answer", clock);
        deepEqual(out, { a: "a" });
        await executor.shutdown();
        // Its backoff, cut short, left no timer armed (on the system clock, one that would keep
        // a Node process alive for up to `pollIntervalMs` after wait() answered).
        equal(clock.pending, 0, "timers left on the clock");
      },
    },
    {
      name: "lease renewals failing for longer than the lease do not make the executor re-run its own live tasks",
      async run(ctx) {
        const runs = new Runs();
        const faulty = new FaultyStorage(ctx.storage, { methods: ["renewLeases"] });
        const { executor, report } = reportingExecutor(faulty, [
          agent("slow", async (_i, c) => {
            runs.start(c.task.key);
            await sleep(400);
            runs.end(c.task.key);
            return c.task.key;
          }),
        ], { leaseMs: 120, heartbeatMs: 30, recoveryIntervalMs: 20 });
        const job = await executor.submit({
          name: "leases",
          tasks: [
            { key: "least", agent: "slow" },
            { key: "most", agent: "slow", durability: "at-most-once" },
          ],
        });
        faulty.setDown(true);
        executor.start();
        await sleep(250); // twice the lease: every renewal so far failed
        faulty.setDown(false);
        const out = await settled(job);
        await executor.shutdown();
        ok(!(out instanceof Error), `job failed: ${(out as Error).message}`);
        ok(report.storageErrors.some((e) => e.operation === "renewLeases"), "renewals failed");
        equal(runs.of("least"), 1, "the at-least-once task ran once");
        equal(runs.of("most"), 1, "the at-most-once task ran once");
        deepEqual(runs.overlaps, []);
        for (const t of await allTasks(ctx, job.id)) equal(t.status, "completed", `${t.key} completed, not blocked`);
        deepEqual(report.lost, []);
      },
    },
    {
      name:
        `timeouts under faults: a timed-out attempt is retried, never overlaps its retry, and completes (seed ${seed})`,
      async run(ctx) {
        const runs = new Runs();
        const faulty = new FaultyStorage(ctx.storage, { seed: seed + 400, rate: 0.2, latencyMs: [0, 1] });
        const { executor, report } = reportingExecutor(faulty, [
          agent("sometimes-slow", async (input, c) => {
            runs.start(c.task.key);
            try {
              if (runs.of(c.task.key) === 1 && (input as number) % 2 === 0) {
                await new Promise((_, reject) => c.signal.addEventListener("abort", () => reject(c.signal.reason)));
              }
              return c.task.key;
            } finally {
              runs.end(c.task.key);
            }
          }),
        ]);
        executor.start();
        const job = await executor.submit({
          name: "timeouts",
          tasks: Array.from(
            { length: 8 },
            (_, i) => ({ key: `t${i}`, agent: "sometimes-slow", input: i, timeoutMs: 40 }),
          ),
        });
        const out = await settled(job);
        await executor.shutdown();
        ok(!(out instanceof Error), `job failed: ${(out as Error).message}`);
        for (let i = 0; i < 8; i++) equal(runs.of(`t${i}`), i % 2 === 0 ? 2 : 1, `t${i} runs`);
        deepEqual(runs.overlaps, []);
        equal(executor.stats().timedOut, 4);
        for (const t of await allTasks(ctx, job.id)) {
          equal(t.status, "completed");
          equal(t.attempts, Number(t.key.slice(1)) % 2 === 0 ? 2 : 1, `attempts of ${t.key}`);
        }
        deepEqual(report.jobEnds.get(job.id), ["job:completed"]);
      },
    },
    {
      name: `random DAGs under faults keep the scheduling invariants (seed ${seed})`,
      async run(ctx) {
        const random = prng(seed + 500);
        const faulty = new FaultyStorage(ctx.storage, { seed: seed + 501, rate: 0.2, latencyMs: [0, 1] });
        const violations: string[] = [];
        let runs = new Runs();
        const { executor, report } = reportingExecutor(faulty, [
          agent("node", async (input, c) => {
            runs.start(c.task.key);
            const deps = await ctx.storage.getTasks(c.task.dependencies);
            for (const d of deps) if (!isSatisfied(d)) violations.push(`${c.task.key} started before ${d.key}`);
            runs.end(c.task.key);
            if ((input as { fails: boolean }).fails) throw new NonRetryableError("planned failure");
            return c.task.key;
          }),
        ]);
        executor.start();
        for (let round = 0; round < 3; round++) {
          runs = new Runs();
          const nodes = randomDag(random, 20 + Math.floor(random() * 40), 0.06);
          const job = await executor.submit({ name: `dag-${round}`, tasks: dagSpecs(nodes, "node") });
          await settled(job);
          equal(violations.length, 0, violations.join("; "));
          const stored = await allTasks(ctx, job.id);
          ok(stored.every((t) => isFinal(t)), "every task final");
          // The executor reports the end once its own commit (maybe retried) is done.
          await within(5000, "the job's end event", until(() => report.jobEnds.has(job.id)));
          equal(report.jobEnds.get(job.id)?.length, 1, "the job ended once");
          const dead = doomed(nodes);
          for (const t of stored) {
            const i = Number((t.input as { i: number }).i);
            const want = dead.has(i) ? "cancelled" : nodes[i]!.fails ? "failed" : "completed";
            equal(t.status, want, `status of ${t.key}`);
            equal(runs.of(t.key), dead.has(i) ? 0 : 1, `runs of ${t.key}`);
          }
        }
        await executor.shutdown();
        ok(faulty.faultCount() > 0);
      },
    },
    {
      name: "cancelling a job under faults aborts its running tasks and ends it as cancelled",
      async run(ctx) {
        const started: string[] = [];
        const faulty = new FaultyStorage(ctx.storage, { seed: seed + 600, rate: 0.2 });
        const { executor, report } = reportingExecutor(faulty, [
          agent("wait", (_i, c) => {
            started.push(c.task.key);
            return new Promise((_, reject) => c.signal.addEventListener("abort", () => reject(c.signal.reason)));
          }),
        ]);
        executor.start();
        const job = await executor.submit({
          name: "cancel",
          tasks: Array.from({ length: 10 }, (_, i) => ({ key: `t${i}`, agent: "wait" })),
        });
        await within(
          5000,
          "tasks to start",
          (async () => {
            while (started.length < 4) await sleep(2);
          })(),
        );
        await retrying(() => job.cancel());
        const out = await settled(job);
        ok(out instanceof Error, "wait() rejects for a cancelled job");
        await executor.shutdown();
        equal((await ctx.storage.getJob(job.id))?.status, "cancelled");
        for (const t of await allTasks(ctx, job.id)) equal(t.status, "cancelled", `status of ${t.key}`);
        ok((report.jobEnds.get(job.id)?.length ?? 0) <= 1, "the job ended at most once");
        equal(executor.stats().running, 0);
      },
    },
  ];
}
