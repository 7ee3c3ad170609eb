import * as v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { expect, test } from "vitest";
import { createMemoryStorage } from "../../adapters/memory.ts";
import { openSqlJsStorage } from "../../adapters/sqljs.ts";
import { Executor } from "../../src/executor.ts";
import { AgentRegistry } from "../../src/registry.ts";
import { buildJob } from "../conformance/fixtures.ts";

v8.setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;
// Live objects of a class, counted in the heap (Node 20.13 and later): the adapter's maps are private.
const queryObjects = (v8 as { queryObjects?: (c: unknown, o: { format: "count" }) => number }).queryObjects;
const counted = test.skipIf(typeof queryObjects !== "function");

test("memory: prune() lets go of a pruned task that left the ready queue unclaimed (a delayed task whose job was cancelled)", async () => {
  const storage = createMemoryStorage({ now: () => 1_000 });
  // Ready, due a year from now: filed in the delayed part of the ready queue.
  const b = buildJob([{ key: "later", runAt: 1_000 + 365 * 86_400_000, input: { big: "x".repeat(1_000_000) } }]);
  await storage.createJob(b.job, b.tasks);
  await storage.claimReady({ limit: 10, now: 2_000, owner: "o", leaseMs: 100 }); // claims nothing: not due
  const job = (await storage.getJob(b.job.id))!;
  await storage.commit([
    { type: "updateJob", id: job.id, expect: { version: job.version }, set: { status: "cancelled" } },
  ]);
  let ref: WeakRef<object> | undefined = new WeakRef((await storage.getTask(b.tasks[0]!.id))!);
  expect(await storage.prune({ keepLast: 0 })).toBe(1);
  expect(await storage.getTask(b.tasks[0]!.id)).toBeUndefined();
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 0));
    gc();
  }
  expect(ref.deref(), "the pruned task record (and its 1 MB input) is still referenced").toBeUndefined();
  ref = undefined;
  await storage.close();
});

counted(
  "memory: a job's cache holds no empty map once its last key is deleted (skipped without v8.queryObjects)",
  async () => {
    const storage = createMemoryStorage({ now: () => 1_000 });
    const jobs = [];
    for (let i = 0; i < 500; i++) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      jobs.push(b.job.id);
    }
    gc();
    const before = queryObjects!(Map, { format: "count" });
    for (const id of jobs) {
      await storage.commit([{ type: "setCache", jobId: id, key: "k", value: 1 }]);
      await storage.commit([{ type: "setCache", jobId: id, key: "k", value: undefined }]);
    }
    gc();
    const grown = queryObjects!(Map, { format: "count" }) - before;
    expect(await storage.getCache(jobs[0]!, "k")).toBeUndefined();
    expect(grown, "maps left behind by 500 jobs' emptied caches").toBeLessThan(50);
    await storage.close();
  },
);

counted(
  "memory: prune() lets go of the ready-queue entries of cancelled tasks due far ahead (skipped without v8.queryObjects)",
  async () => {
    const storage = createMemoryStorage({ now: () => 1_000 });
    const year = 365 * 86_400_000;
    const n = 2_000;
    gc();
    const before = queryObjects!(Object, { format: "count" });
    for (let i = 0; i < n; i++) {
      // Each due at its own time a year ahead (one ready bucket each), then cancelled with its job.
      const b = buildJob([{ key: "later", runAt: year + i }]);
      await storage.createJob(b.job, b.tasks);
      await storage.commit([
        { type: "updateJob", id: b.job.id, expect: { version: 1 }, set: { status: "cancelled" } },
      ]);
    }
    expect(await storage.prune({ keepLast: 0 })).toBe(n);
    expect(await storage.listJobs()).toEqual([]);
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 0));
      gc();
    }
    const left = queryObjects!(Object, { format: "count" }) - before;
    // Before: a bucket and a task entry per pruned task, kept until a claim passed its runAt.
    expect(left, `objects left by ${n} pruned jobs`).toBeLessThan(n / 2);
    await storage.close();
  },
);

test("executor: an idle executor keeps no task it ran reachable (the claim loop's frame let go of the last claim)", async () => {
  // sql.js answers each claim with fresh records: only the executor could hold them.
  const storage = await openSqlJsStorage();
  const registry = new AgentRegistry();
  const inputs: WeakRef<object>[] = [];
  registry.register({
    name: "keep",
    description: "notes its input",
    execute: (input: unknown) => {
      inputs.push(new WeakRef(input as object));
      return null;
    },
  });
  const executor = new Executor({ storage, registry, pollIntervalMs: 3_600_000 });
  executor.start();
  for (let i = 0; i < 3; i++) {
    const job = await executor.submit({
      name: "j",
      tasks: [{ key: "k", agent: "keep", input: { big: "x".repeat(1_000_000) } }],
    });
    await job.wait();
  }
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 0));
    /x/.exec("x"); // a match of its own: the engine keeps the subject of the last one
    gc();
  }
  expect(inputs.map((r) => r.deref() === undefined), "inputs of the tasks run, still referenced").toEqual([
    true,
    true,
    true,
  ]);
  await executor.shutdown();
  await storage.close();
});
