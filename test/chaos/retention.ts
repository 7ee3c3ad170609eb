/**
 * The executor's `retention` option: ended jobs (with their tasks and cache) are deleted
 * periodically by count or by age through `storage.prune`, and an open job never is.
 */

import { deepEqual, equal, ok, throws } from "../conformance/assert.ts";
import type { ManualClock } from "../../src/clock.ts";
import { agent, deferred, harness, intercept, START, until } from "../conformance/executor-kit.ts";
import type { Case } from "../conformance/harness.ts";
import type { ReliabilityContext } from "./kit.ts";

const echo = agent("echo", (i) => i);

/**
 * Let time pass in steps until `cond` holds: a periodic prune schedules its next run when
 * the last one finished, which on a slow storage may be after a longer `advance()` ended.
 */
async function passUntil(
  clock: ManualClock,
  cond: () => boolean,
  what: string,
  idle?: () => boolean,
): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (cond()) return;
    // Time runs on only once the storage answered what it was asked (when `idle` is given):
    // moving on past a slow answer would make work due that real time would not yet have.
    if (idle) await until(idle, "the storage's answer", clock);
    await clock.advance(100);
  }
  throw new Error(`timed out waiting for ${what}`);
}

export const retentionCases: Case<ReliabilityContext>[] = [
  {
    name: "retention keeps the last N ended jobs, deletes the others with their tasks and cache, and never an open job",
    async run(ctx) {
      const gate = deferred();
      const { executor, clock } = harness(ctx.storage, [
        echo,
        agent("held", () => gate.promise),
        agent("cached", (_i, c) => {
          c.cache.set("k", 1);
          return null;
        }),
      ], { retention: { keepLast: 2, intervalMs: 1000 } });
      executor.start();
      const open = await executor.submit({ name: "open", tasks: [{ key: "a", agent: "held" }] });
      const ended: string[] = [];
      for (let i = 0; i < 5; i++) {
        const job = await executor.submit({
          name: `done-${i}`,
          tasks: [{ key: "a", agent: i === 0 ? "cached" : "echo", input: i }],
        });
        await job.wait();
        ended.push(job.id);
        await clock.advance(10); // distinct end times
      }
      equal(await ctx.storage.getCache(ended[0]!, "k"), 1);
      await passUntil(clock, () => executor.stats().pruned === 3, "the first prune");
      const left = (await ctx.storage.listJobs()).map((j) => j.id).sort();
      deepEqual(left, [open.id, ended[3]!, ended[4]!].sort(), "the open job and the 2 newest ended ones are left");
      equal((await ctx.storage.listTasks({ jobId: ended[0]! })).length, 0, "tasks of a pruned job are gone");
      equal(await ctx.storage.getCache(ended[0]!, "k"), undefined, "its cache too");
      equal((await ctx.storage.listTasks({ jobId: open.id })).length, 1, "the open job keeps its task");
      gate.resolve();
      await open.wait();
      await passUntil(clock, () => executor.stats().pruned === 4, "the second prune");
      equal((await ctx.storage.listJobs()).length, 2);
      await executor.shutdown();
    },
  },
  {
    name: "retention by age deletes jobs that ended more than finishedBeforeMs ago",
    async run(ctx) {
      let pruning = 0;
      const storage = intercept(ctx.storage, {
        prune: (prune) => async (...args) => {
          pruning++;
          try {
            return await prune(...args);
          } finally {
            pruning--;
          }
        },
      });
      const { executor, clock } = harness(storage, [echo], {
        retention: { finishedBeforeMs: 5000, intervalMs: 1000 },
      });
      executor.start();
      const old = await executor.submit({ name: "old", tasks: [{ key: "a", agent: "echo" }] });
      await old.wait();
      await clock.advance(3000);
      equal(executor.stats().pruned, 0, "not old enough yet");
      const recent = await executor.submit({ name: "recent", tasks: [{ key: "a", agent: "echo" }] });
      await recent.wait();
      await passUntil(clock, () => executor.stats().pruned === 1, "the prune", () => pruning === 0);
      ok(clock.now() - START >= 5000, "not before the job was 5 s old");
      deepEqual((await ctx.storage.listJobs()).map((j) => j.id), [recent.id]);
      await executor.shutdown();
    },
  },
  {
    name: "bad retention options are a TypeError or RangeError naming the option",
    run(ctx) {
      const bad: [unknown, ErrorConstructor, string][] = [
        [{}, TypeError, '"retention" needs "keepLast" or "finishedBeforeMs"'],
        [{ keepLast: -1 }, RangeError, '"retention.keepLast"'],
        [{ keepLast: 1.5 }, RangeError, '"retention.keepLast"'],
        [{ finishedBeforeMs: Number.NaN }, RangeError, '"retention.finishedBeforeMs"'],
        [{ keepLast: 1, intervalMs: 0 }, RangeError, '"retention.intervalMs"'],
        ["daily", TypeError, '"retention" must be an object'],
      ];
      for (const [retention, type, text] of bad) {
        throws(() => harness(ctx.storage, [], { retention: retention as never }), type, text);
      }
      ok(
        harness(ctx.storage, [], { retention: { keepLast: 0 } }).executor,
        "keepLast 0 (delete every ended job) is fine",
      );
    },
  },
];
