/**
 * The job suite: DAG submission and validation, dependency resolution, failure
 * propagation, spawned children, TaskContext, job control and review — on every adapter.
 */

import type { Agent } from "../../src/agent.ts";
import type { SpawnSpec, TaskContext } from "../../src/context.ts";
import { ManualClock } from "../../src/clock.ts";
import {
  ConflictError,
  InvalidTransitionError,
  JobFailedError,
  JobValidationError,
  NonRetryableError,
  StorageError,
  TaskAbortedError,
} from "../../src/errors.ts";
import { defineJsonAgent } from "../../src/json-agent.ts";
import type { JobSpec, JsonValue, Task } from "../../src/types.ts";
import { deepEqual, equal, ok, rejects, throws } from "./assert.ts";
import {
  aborted,
  agent,
  deferred,
  type ExecContext,
  harness,
  intercept,
  START,
  until,
  untilAdvancing,
} from "./executor-kit.ts";
import type { Case } from "./harness.ts";

function byKey(tasks: Task[]): Record<string, Task> {
  return Object.fromEntries(tasks.map((t) => [t.key, t]));
}

const echo = agent("echo", (input) => input);
const fail = agent("fail", () => {
  throw new NonRetryableError("broken on purpose");
});

const typedAgent = defineJsonAgent({
  name: "typed",
  description: "Needs a name",
  inputSchema: { type: "object", properties: { name: { type: "string" } }, required: ["name"] },
  outputSchema: { type: "string" },
  execute: (input) => `hi ${input.name}`,
}) as unknown as Agent<JsonValue, JsonValue>;

/** An agent "inc": reads counter "n" of shared state "counters", waits for `gate`, writes n + 1. */
function counterAgent(gate: Promise<unknown>) {
  const seen = { calls: 0, reads: 0 };
  const inc = agent("inc", async (_i, c) => {
    seen.calls++;
    const n = ((await c.state("counters").get("n")) as number | undefined) ?? 0;
    seen.reads++;
    await gate;
    c.state("counters").set("n", n + 1);
    return n + 1;
  });
  return { inc, seen };
}

export const jobCases: Case<ExecContext>[] = [
  {
    name: "a chain runs in dependency order and passes outputs along",
    async run(ctx) {
      const order: string[] = [];
      const step = agent("step", async (input, c) => {
        order.push(c.task.key);
        const deps = await c.dependencyOutputs();
        return Object.values(deps).reduce((sum: number, v) => sum + (v as number), input as number);
      });
      const { executor } = harness(ctx.storage, [step]);
      executor.start();
      const job = await executor.submit({
        name: "chain",
        tasks: [
          { key: "c", agent: "step", input: 100, dependsOn: ["b"] },
          { key: "b", agent: "step", input: 10, dependsOn: ["a"] },
          { key: "a", agent: "step", input: 1 },
        ],
      });
      deepEqual(await job.wait(), { a: 1, b: 11, c: 111 });
      deepEqual(order, ["a", "b", "c"]);
      await executor.shutdown();
    },
  },
  {
    name:
      "a job id of the caller's makes submit() idempotent: a second submit stores nothing and returns the first job",
    async run(ctx) {
      const runs: string[] = [];
      const count = agent("count", (input, c) => {
        runs.push(c.task.key);
        return input;
      });
      const { executor } = harness(ctx.storage, [count]);
      const spec = { id: "order-123", name: "ship", tasks: [{ key: "a", agent: "count", input: 1 }] };
      const first = await executor.submit(spec);
      equal(first.id, "order-123");
      // A second submit (a page reloaded, a retried request), even with another spec: the
      // job stored first is the job.
      const again = await executor.submit({ ...spec, tasks: [{ key: "b", agent: "count", input: 2 }] });
      equal(again.id, "order-123");
      const jobs = (await ctx.storage.listJobs()).filter((j) => j.id === "order-123");
      equal(jobs.length, 1);
      deepEqual((await again.tasks()).map((t) => t.key), ["a"]);
      // Two executors submitting at once store one job too.
      const other = harness(ctx.storage, [count], { clock: executor.clock as ManualClock });
      const both = await Promise.all([
        executor.submit({ id: "order-124", name: "ship", tasks: [{ key: "c", agent: "count", input: 3 }] }),
        other.executor.submit({ id: "order-124", name: "ship", tasks: [{ key: "d", agent: "count", input: 4 }] }),
      ]);
      deepEqual(both.map((h) => h.id), ["order-124", "order-124"]);
      equal((await both[0]!.tasks()).length, 1, "one job, with the tasks of whichever submit stored it");
      executor.start();
      deepEqual(await first.wait(), { a: 1 });
      deepEqual(await again.wait(), { a: 1 });
      const out = await both[1]!.wait();
      ok(JSON.stringify(out) === '{"c":3}' || JSON.stringify(out) === '{"d":4}', JSON.stringify(out));
      equal(runs.length, 2, "each stored task ran once");
      // A job id is text a person or a URL can carry: anything else is a JobValidationError, and nothing is written.
      for (const id of ["", "a/b", "a b", "x".repeat(129), "caf\u00e9", 7, null]) {
        const e = await rejects(
          () => executor.submit({ id, name: "bad", tasks: [{ key: "a", agent: "count" }] } as never),
          JobValidationError,
          '"id"',
        );
        ok((e as JobValidationError).problems.some((p) => p.code === "invalid-job"), String(id));
      }
      await executor.shutdown();
    },
  },
  {
    name: "fan-out and fan-in: the join sees every dependency's output by key",
    async run(ctx) {
      let joined: Record<string, JsonValue> = {};
      const join = agent("join", async (_i, c) => {
        joined = await c.dependencyOutputs();
        return Object.keys(joined).length;
      });
      const { executor } = harness(ctx.storage, [echo, join]);
      executor.start();
      const leaves = Array.from({ length: 6 }, (_, i) => ({
        key: `leaf${i}`,
        agent: "echo",
        input: i,
        dependsOn: ["root"],
      }));
      const job = await executor.submit({
        name: "fan",
        tasks: [{ key: "root", agent: "echo", input: "r" }, ...leaves, {
          key: "join",
          agent: "join",
          dependsOn: leaves.map((l) => l.key),
        }],
      });
      const out = await job.wait();
      equal(out.join, 6);
      deepEqual(joined, { leaf0: 0, leaf1: 1, leaf2: 2, leaf3: 3, leaf4: 4, leaf5: 5 });
      await executor.shutdown();
    },
  },
  {
    name: "a diamond's join starts only after both branches completed",
    async run(ctx) {
      const finished = new Set<string>();
      let joinSaw: string[] = [];
      const work = agent("work", async (_i, c) => {
        if (c.task.key === "join") joinSaw = [...finished].sort();
        await new Promise((r) => setTimeout(r, c.task.key === "left" ? 5 : 0));
        finished.add(c.task.key);
        return c.task.key;
      });
      const { executor } = harness(ctx.storage, [work]);
      executor.start();
      const job = await executor.submit({
        name: "diamond",
        tasks: [
          { key: "top", agent: "work" },
          { key: "left", agent: "work", dependsOn: ["top"] },
          { key: "right", agent: "work", dependsOn: ["top"] },
          { key: "join", agent: "work", dependsOn: ["left", "right"] },
        ],
      });
      await job.wait();
      deepEqual(joinSaw, ["left", "right", "top"]);
      await executor.shutdown();
    },
  },
  {
    name: "submission reports every problem at once and writes nothing",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [echo, typedAgent]);
      const e = await rejects<JobValidationError>(
        () =>
          executor.submit({
            name: "bad",
            tasks: [
              { key: "a", agent: "echo" },
              { key: "a", agent: "echo" },
              { key: "b", agent: "nobody" },
              { key: "c", agent: "echo", dependsOn: ["zzz"] },
              { key: "d", agent: "echo", input: { f: () => 1 } as unknown as JsonValue },
              { key: "e", agent: "typed", input: { name: 42 } },
              { key: "f", agent: "echo", maxAttempts: 0 },
              { key: "g/h", agent: "echo" },
              { key: "i#2", agent: "echo" },
              { key: "j", agent: "echo", runAt: START + 1000, delayMs: 5000 },
              { key: "k", agent: "echo", maxAttempts: 2 ** 31 },
            ],
          }),
        JobValidationError,
      );
      const codes = e.problems.map((p) => `${p.key}:${p.code}`).sort();
      deepEqual(codes, [
        "a:duplicate-key",
        "b:unknown-agent",
        "c:unknown-dependency",
        "d:invalid-input",
        "e:invalid-input",
        "f:invalid-option",
        "g/h:invalid-key",
        "i#2:invalid-key",
        "j:invalid-option",
        "k:invalid-option",
      ]);
      ok(e.message.includes('"nobody"'));
      ok(e.problems.some((p) => p.key === "j" && p.message.includes('"runAt" or "delayMs"')), "both start times");
      deepEqual(await ctx.storage.listJobs(), []);
    },
  },
  {
    name: "submit() reports a task or job field it does not know, naming the one meant, and writes nothing",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [echo]);
      // What users of other queues write: from JavaScript or a spec read from JSON, no
      // compile error catches these, and each would silently run with the default.
      const e = await rejects<JobValidationError>(
        () =>
          executor.submit({
            name: "misspelt",
            priority: 1,
            tasks: [
              { key: "a", agent: "echo", timeout: 50 },
              { key: "b", agent: "echo", attempts: 1 },
              { key: "c", agent: "echo", backoff: { delay: 10 } },
              { key: "d", agent: "echo", colour: "red" },
              { key: "ok", agent: "echo", timeoutMs: 50, maxAttempts: 1, description: "fine" },
            ],
          } as unknown as JobSpec),
        JobValidationError,
      );
      deepEqual(e.problems.map((p) => `${p.key ?? ""}:${p.code}`).sort(), [
        ":invalid-job",
        "a:invalid-option",
        "b:invalid-option",
        "c:invalid-option",
        "d:invalid-option",
      ]);
      const message = (key: string | undefined) => e.problems.find((p) => p.key === key)!.message;
      ok(message("a").includes('"timeout"') && message("a").includes('"timeoutMs"'), message("a"));
      ok(message("b").includes('"attempts"') && message("b").includes('"maxAttempts"'), message("b"));
      ok(message("c").includes('"backoff"') && message("c").includes('"retry"'), message("c"));
      ok(message("d").includes('"colour"'), message("d"));
      ok(message(undefined).includes('"priority"'), message(undefined));
      deepEqual(await ctx.storage.listJobs(), []);

      // spawn() checks its spec the same way: the parent fails, no child is written.
      const parent = agent("parent", (_i, c) => {
        c.spawn({ key: "x", agent: "echo", timeout: 50 } as unknown as SpawnSpec);
        return "unreachable";
      });
      const second = harness(ctx.storage, [parent, echo]);
      second.executor.start();
      const job = await second.executor.submit({ name: "spawn", tasks: [{ key: "p", agent: "parent" }] });
      await rejects(() => job.wait(), JobFailedError);
      const tasks = await job.tasks();
      equal(tasks.length, 1);
      equal(tasks[0]!.attempts, 1, "not retried");
      ok(tasks[0]!.error?.message.includes('"timeoutMs"'), tasks[0]!.error?.message);
      await second.executor.shutdown();
    },
  },
  {
    name: "a job, task or spawn field set to undefined counts as not given, as in every options object",
    async run(ctx) {
      // A spec built by spreading another library's options, or `{ timeout: opts.timeout }`
      // with nothing given: the key holds no value, so nothing is ignored.
      const parent = agent("parent", (_i, c) => {
        c.spawn({ key: "x", agent: "echo", input: 2, timeout: undefined } as unknown as SpawnSpec);
        return 1;
      });
      const { executor } = harness(ctx.storage, [parent, echo]);
      executor.start();
      const job = await executor.submit({
        name: "undefined-fields",
        priority: undefined,
        tasks: [{ key: "p", agent: "parent", attempts: undefined, maxAttempts: 1 }],
      } as unknown as JobSpec);
      deepEqual(await job.wait(), { p: 1, "p/x": 2 });
      await executor.shutdown();
    },
  },
  {
    name: "an input validator that throws is a problem of its task's input: JobValidationError, nothing written",
    async run(ctx) {
      const crashing = {
        name: "crashy",
        description: "Its validator throws",
        inputSchema: { type: "object" },
        outputSchema: true,
        validator: {
          name: "crashing",
          compile: () => () => {
            throw new Error("validator crashed");
          },
        },
        execute: (input: JsonValue) => input,
      } as unknown as Agent<JsonValue, JsonValue>;
      const { executor } = harness(ctx.storage, [echo, crashing]);
      const e = await rejects<JobValidationError>(
        () =>
          executor.submit({
            name: "crash",
            tasks: [{ key: "a", agent: "crashy", input: {} }, { key: "b", agent: "nobody" }],
          }),
        JobValidationError,
      );
      deepEqual(e.problems.map((p) => `${p.key}:${p.code}`).sort(), ["a:invalid-input", "b:unknown-agent"]);
      const a = e.problems.find((p) => p.key === "a")!;
      ok(a.message.includes('"crashy"') && a.message.includes("validator crashed"), a.message);
      deepEqual(await ctx.storage.listJobs(), []);
    },
  },
  {
    name: "JobHandle.on() refuses a listener that is not a function, and on() an unknown event, with a TypeError",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [echo]);
      const reported: string[] = [];
      executor.on("listener:error", (e) => reported.push(e.event));
      const job = await executor.submit({ name: "on", tasks: [{ key: "a", agent: "echo", input: 1 }] });
      throws(() => executor.on("job:completed", undefined as never), TypeError, "needs a function");
      throws(() => job.on("job:completed", undefined as never), TypeError, "needs a function");
      // A misspelt event (JavaScript callers get no compile error) is refused, not silently never told.
      throws(() => executor.on("job:complete" as never, () => {}), TypeError, 'unknown event "job:complete"');
      throws(() => job.on("job:complete" as never, () => {}), TypeError, 'unknown event "job:complete"');
      executor.start();
      deepEqual(await job.wait(), { a: 1 });
      deepEqual(reported, [], "no listener:error from a listener that was never a function");
      await executor.shutdown();
    },
  },
  {
    name: "an output validator that throws fails the task at once with a ValidationError: the agent is not run again",
    async run(ctx) {
      let calls = 0;
      const crashing = {
        name: "crashy-out",
        description: "Its output validator throws",
        inputSchema: true,
        outputSchema: { type: "object" },
        validator: {
          name: "crashing",
          compile: (schema: unknown) =>
            schema === true ? () => [] : () => {
              throw new Error("validator crashed");
            },
        },
        execute: () => {
          calls++;
          return {};
        },
      } as unknown as Agent<JsonValue, JsonValue>;
      const { executor, clock } = harness(ctx.storage, [crashing]);
      executor.start();
      const job = await executor.submit({ name: "crash-out", tasks: [{ key: "a", agent: "crashy-out" }] });
      await untilAdvancing(async () => (await job.status()).status !== "running", "the job ended", clock, 1000);
      const [task] = await job.tasks();
      equal(task!.status, "failed");
      equal(calls, 1, "the agent ran once");
      equal(task!.error?.name, "ValidationError");
      equal(task!.error?.retryable, false);
      ok(task!.error!.message.includes('Output of agent "crashy-out"'), task!.error!.message);
      ok(task!.error!.message.includes("validator crashed"), task!.error!.message);
      await executor.shutdown();
    },
  },
  {
    name:
      "text holding NUL is refused alike on every adapter: job names, keys, text options, cache and state keys, agent names",
    async run(ctx) {
      // PostgreSQL's text holds no NUL: it refused such a job or result at the write, where
      // every other adapter stored it, and an agent's result was dropped for a lease expiry.
      const seen: string[] = [];
      const { executor, registry, clock } = harness(ctx.storage, [
        agent("echo", (i) => i),
        agent("writer", (_i, c) => {
          const tries: [string, () => unknown][] = [
            ["cache set", () => c.cache.set("k\0", 1)],
            ["cache delete", () => c.cache.delete("\0")],
            ["state scope", () => c.state("s\0")],
            ["state set", () => c.state("s").set("k\0", 1)],
          ];
          for (const [what, f] of tries) {
            try {
              f();
              seen.push(`${what}: accepted`);
            } catch (e) {
              seen.push(`${what}: ${(e as Error).name} ${/NUL/.test((e as Error).message)}`);
            }
          }
          c.cache.set("fine", 1);
          return "done";
        }),
      ]);
      const specs: [string, unknown][] = [
        ["invalid-job", { name: "a\0b", tasks: [{ key: "a", agent: "echo" }] }],
        ["invalid-key", { name: "j", tasks: [{ key: "a\0", agent: "echo" }] }],
        ["invalid-option", { name: "j", tasks: [{ key: "a", agent: "echo", description: "d\0" }] }],
      ];
      for (const [code, spec] of specs) {
        const e = await rejects<JobValidationError>(() => executor.submit(spec as never), JobValidationError);
        equal(e.problems[0]?.code, code, e.message);
      }
      deepEqual(await ctx.storage.listJobs(), []);
      throws(() => registry.register(agent("bad\0name", (i) => i)), TypeError);
      // An executor's id is stored as the owner of its leases: PostgreSQL refused every
      // claim of an executor whose id held NUL (it ran nothing), where the others ran all.
      const id = throws(() => harness(ctx.storage, [agent("echo", (i) => i)], { id: "worker\0" }), TypeError);
      ok(/"id"/.test(id.message) && /NUL/.test(id.message), id.message);
      executor.start();
      const job = await executor.submit({ name: "w", tasks: [{ key: "w", agent: "writer" }] });
      deepEqual(await clock.runUntil(job.wait()), { w: "done" });
      deepEqual(seen, [
        "cache set: TypeError true",
        "cache delete: TypeError true",
        "state scope: TypeError true",
        "state set: TypeError true",
      ]);
      equal(await ctx.storage.getCache(job.id, "fine"), 1);
      await executor.shutdown();
    },
  },
  {
    name: "an output failing with thousands of schema issues stores the first 100 in the error's details, each bounded",
    async run(ctx) {
      const many = {
        name: "many-issues",
        description: "Its output fails every item",
        inputSchema: true,
        outputSchema: { type: "array" },
        validator: {
          name: "every-item",
          compile: (schema: unknown) =>
            schema === true ? () => [] : (value: unknown) =>
              (value as string[]).map((v, i) => ({
                path: `/${i}${v}`,
                keyword: "type",
                message: "must be a number",
              })),
        },
        execute: () => ["k".repeat(100_000), ...Array.from({ length: 4999 }, () => "x".repeat(100))],
      } as unknown as Agent<JsonValue, JsonValue>;
      const { executor, clock } = harness(ctx.storage, [many]);
      executor.start();
      const job = await executor.submit({ name: "many", tasks: [{ key: "a", agent: "many-issues" }] });
      await untilAdvancing(async () => (await job.status()).status !== "running", "the job ended", clock, 1000);
      const [task] = await job.tasks();
      equal(task!.status, "failed");
      equal(task!.error?.name, "ValidationError");
      const details = task!.error?.details as { path: string; message: string }[];
      equal(details.length, 100);
      equal(details[1]!.path, `/1${"x".repeat(100)}`);
      ok(details[0]!.path.length <= 16 * 1024, "a huge path is cut");
      ok(task!.error!.message.length <= 16 * 1024, "the message is cut");
      await executor.shutdown();
    },
  },
  {
    name: "a JobValidationError's message lists the first 100 problems and counts the rest; problems holds all",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [echo]);
      const tasks = Array.from({ length: 250 }, (_, i) => ({ key: `t${i}`, agent: "ecoh" }));
      const e = await rejects<JobValidationError>(() => executor.submit({ name: "typo", tasks }), JobValidationError);
      equal(e.problems.length, 250);
      ok(e.problems.every((p) => p.code === "unknown-agent"));
      equal(e.message.split("no agent named").length - 1, 100, "problems in the message");
      ok(e.message.endsWith("; and 150 more problems (see the error's problems)"), e.message.slice(-80));
      deepEqual(await ctx.storage.listJobs(), []);
    },
  },
  {
    name: "a problem names a null value as null, not as an object",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [echo]);
      const e = await rejects<JobValidationError>(
        () =>
          executor.submit({
            name: null,
            tasks: [
              { key: "a", agent: null, priority: null, dependsOn: [null] },
              { key: "b", agent: "echo", description: null },
            ],
          } as never),
        JobValidationError,
      );
      equal(e.problems.length, 5, e.message);
      for (const p of e.problems) ok(p.message.endsWith("null") && !p.message.includes("object"), p.message);
      deepEqual(await ctx.storage.listJobs(), []);
    },
  },
  {
    name: "a cycle is rejected naming the keys on it",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [echo]);
      const e = await rejects<JobValidationError>(
        () =>
          executor.submit({
            name: "loop",
            tasks: [
              { key: "start", agent: "echo" },
              { key: "x", agent: "echo", dependsOn: ["start", "z"] },
              { key: "y", agent: "echo", dependsOn: ["x"] },
              { key: "z", agent: "echo", dependsOn: ["y"] },
            ],
          }),
        JobValidationError,
      );
      const cycle = e.problems.find((p) => p.code === "cycle");
      ok(cycle, "a cycle problem");
      for (const k of ['"x"', '"y"', '"z"']) ok(cycle.message.includes(k), `${cycle.message} names ${k}`);
      ok(!cycle.message.includes('"start"'));
      deepEqual(await ctx.storage.listJobs(), []);
    },
  },
  {
    name: "an empty job and a malformed spec are rejected",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [echo]);
      const empty = await rejects<JobValidationError>(
        () => executor.submit({ name: "e", tasks: [] }),
        JobValidationError,
      );
      equal(empty.problems[0]!.code, "empty-job");
      await rejects(() => executor.submit(null as never), JobValidationError, "got null");
      await rejects(
        () => executor.submit({ name: "x", tasks: [{ agent: "echo" }] } as never),
        JobValidationError,
        "key",
      );
      deepEqual(await ctx.storage.listJobs(), []);
    },
  },
  {
    name: "a failure cascades through two levels of dependents and the job fails once",
    async run(ctx) {
      const ran: string[] = [];
      const track = agent("track", (_i, c) => {
        ran.push(c.task.key);
        return null;
      });
      const { executor } = harness(ctx.storage, [fail, track]);
      const ends: string[] = [];
      executor.on("job:failed", () => ends.push("failed"));
      executor.on("job:completed", () => ends.push("completed"));
      executor.start();
      const job = await executor.submit({
        name: "cascade",
        tasks: [
          { key: "bad", agent: "fail" },
          { key: "child", agent: "track", dependsOn: ["bad"] },
          { key: "grandchild", agent: "track", dependsOn: ["child"] },
          { key: "independent", agent: "track" },
        ],
      });
      const e = await rejects<JobFailedError>(() => job.wait(), JobFailedError);
      deepEqual(e.failedTasks, [{ key: "bad", error: "broken on purpose" }]);
      const t = byKey(await job.tasks());
      equal(t.child!.status, "cancelled");
      equal(t.child!.statusReason, 'Dependency "bad" failed');
      equal(t.grandchild!.status, "cancelled");
      deepEqual(ran, ["independent"]);
      await until(() => ends.length > 0, "job end event");
      deepEqual(ends, ["failed"]);
      await executor.shutdown();
    },
  },
  {
    name: "onDependencyFailure: block leaves the dependent for a person, who can retry it",
    async run(ctx) {
      let attempts = 0;
      const flaky = agent("flaky-once", () => {
        attempts++;
        if (attempts === 1) throw new NonRetryableError("first time fails");
        return "ok";
      });
      // The dependent, sent on without its failed dependency, sees only the outputs that exist.
      const deps = agent("deps", async (_i, c) => ({ saw: await c.dependencyOutputs() }));
      const { executor } = harness(ctx.storage, [flaky, echo, deps]);
      const blocked: string[] = [];
      executor.on("task:blocked", (e) => blocked.push(`${e.task.key}: ${e.task.statusReason}`));
      executor.start();
      const job = await executor.submit({
        name: "block",
        tasks: [
          { key: "parent", agent: "echo", input: 1 },
          { key: "guarded", agent: "flaky-once", dependsOn: ["parent"] },
          { key: "after", agent: "deps", dependsOn: ["parent", "guarded"], onDependencyFailure: "block" },
        ],
      });
      await until(async () => byKey(await job.tasks()).after!.status === "blocked", "blocked");
      const after = byKey(await job.tasks()).after!;
      equal(after.statusReason, 'Dependency "guarded" failed');
      deepEqual(blocked, ['after: Dependency "guarded" failed']);
      equal((await job.status()).status, "running");
      await executor.retryTask(after.id);
      const e = await rejects<JobFailedError>(() => job.wait(), JobFailedError);
      deepEqual(e.failedTasks.map((f) => f.key), ["guarded"]);
      deepEqual(byKey(await job.tasks()).after!.output, { saw: { parent: 1 } }, "no null for the failed dependency");
      await executor.shutdown();
    },
  },
  {
    name: "cancel() aborts running tasks' signals, cancels the rest, and wait() rejects",
    async run(ctx) {
      const started = deferred();
      const reasons: unknown[] = [];
      const hang = agent("hang", async (_i, c) => {
        started.resolve();
        try {
          await aborted(c.signal);
        } catch (e) {
          reasons.push(e);
          throw e;
        }
      });
      const { executor } = harness(ctx.storage, [hang, echo]);
      const cancelled: string[] = [];
      executor.on("job:cancelled", (e) => cancelled.push(e.job.id));
      executor.start();
      const job = await executor.submit({
        name: "cancel",
        tasks: [{ key: "running", agent: "hang" }, { key: "later", agent: "echo", dependsOn: ["running"] }],
      });
      await started.promise;
      const waiting = job.wait().catch((e) => e);
      await job.cancel();
      const err = await waiting;
      ok(err instanceof JobFailedError);
      equal(err.status, "cancelled");
      await until(() => reasons.length === 1, "signal aborted");
      ok(reasons[0] instanceof TaskAbortedError);
      const t = byKey(await job.tasks());
      equal(t.running!.status, "cancelled");
      equal(t.later!.status, "cancelled");
      equal(t.later!.statusReason, "Job cancelled");
      deepEqual(cancelled, [job.id]);
      await executor.shutdown();
    },
  },
  {
    name: "pause() stops claims for the job and resume() continues it",
    async run(ctx) {
      const gate = deferred<string>();
      const ran: string[] = [];
      const step = agent("step", (_i, c) => {
        ran.push(c.task.key);
        return c.task.key === "first" ? gate.promise : c.task.key;
      });
      const { executor, clock } = harness(ctx.storage, [step]);
      executor.start();
      const job = await executor.submit({
        name: "pause",
        tasks: [{ key: "first", agent: "step" }, { key: "second", agent: "step", dependsOn: ["first"] }],
      });
      await until(() => ran.length === 1, "first running", clock);
      await job.pause();
      gate.resolve("first done");
      await until(async () => byKey(await job.tasks()).second!.status === "paused", "second parked", clock);
      await clock.advance(5000);
      deepEqual(ran, ["first"]);
      equal((await job.status()).status, "paused");
      await job.resume();
      deepEqual(await job.wait(), { first: "first done", second: "second" });
      await executor.shutdown();
    },
  },
  {
    name: "pause(), resume() and cancel() called without awaiting take effect in the order they were called",
    async run(ctx) {
      const gate = deferred<string>();
      const step = agent("step", (_i, c) => (c.task.key === "first" ? gate.promise : c.task.key));
      const hang = agent("hang", (_i, c) => aborted(c.signal));
      const { executor, clock } = harness(ctx.storage, [step, hang]);
      executor.start();
      const job = await executor.submit({
        name: "order",
        tasks: [{ key: "first", agent: "step" }, { key: "second", agent: "step", dependsOn: ["first"] }],
      });
      await until(async () => byKey(await job.tasks()).first!.status === "running", "first running", clock);
      // Each read the job as running before the other wrote: the pause was written last.
      const answers = await Promise.all([job.pause(), job.resume()]);
      deepEqual(answers.map((j) => j.status), ["paused", "running"]);
      equal((await job.status()).status, "running", "resume() was called last");
      const again = await Promise.all([job.resume(), job.pause(), job.resume(), job.pause()]);
      deepEqual(again.map((j) => j.status), ["running", "paused", "running", "paused"]);
      equal((await job.status()).status, "paused");
      await job.resume();
      gate.resolve("first done");
      deepEqual(await job.wait(), { first: "first done", second: "second" });
      // After a cancel, a resume called next finds the job ended and leaves it so.
      const other = await executor.submit({ name: "order-2", tasks: [{ key: "x", agent: "hang" }] });
      const [cancelled, resumed] = await Promise.all([other.cancel(), other.resume()]);
      equal(cancelled.status, "cancelled");
      equal(resumed.status, "cancelled");
      await executor.shutdown();
    },
  },
  {
    name: "pause() hands back tasks already claimed into the ready queue: nothing of the job starts while paused",
    async run(ctx) {
      const gate = deferred<string>();
      const ran: string[] = [];
      const step = agent("step", (_i, c) => {
        ran.push(c.task.key);
        return c.task.key === "a" ? gate.promise : c.task.key;
      });
      const { executor, clock } = harness(ctx.storage, [step], { maxWorkers: 1, prefetch: Infinity });
      executor.start();
      const job = await executor.submit({
        name: "pause-queued",
        tasks: [{ key: "a", agent: "step" }, { key: "b", agent: "step" }, { key: "c", agent: "step" }],
      });
      await until(() => ran.length === 1 && executor.stats().queued === 2, "a running, b and c queued", clock);
      await job.pause();
      gate.resolve("a done");
      await until(
        async () => {
          const t = byKey(await job.tasks());
          return t.a!.status === "completed" && t.b!.status === "paused" && t.c!.status === "paused";
        },
        "b and c parked",
        clock,
      );
      await clock.advance(5000);
      deepEqual(ran, ["a"]);
      equal(executor.stats().queued, 0);
      const t = byKey(await job.tasks());
      equal(t.b!.attempts, 0, "a handed-back claim does not count as an attempt");
      equal((await job.status()).status, "paused");
      await job.resume();
      deepEqual(await job.wait(), { a: "a done", b: "b", c: "c" });
      await executor.shutdown();
    },
  },
  {
    name: "a job paused before a shutdown stays paused for the next executor: none of its tasks starts until resume()",
    async run(ctx) {
      const ran: string[] = [];
      let hangFirst = true;
      // "a" is running when the job is paused; the shutdown (no grace) aborts it.
      const step = agent("step", (_i, c) => {
        ran.push(c.task.key);
        return c.task.key === "a" && hangFirst ? aborted(c.signal) : c.task.key;
      });
      const clock = new ManualClock(START);
      const first = harness(ctx.storage, [step], { clock });
      first.executor.start();
      const submitted = await first.executor.submit({
        name: "paused-across-restart",
        tasks: [
          { key: "a", agent: "step" },
          { key: "b", agent: "step", dependsOn: ["a"] },
          { key: "c", agent: "step", delayMs: 1000 },
        ],
      });
      await until(() => ran.length === 1, "a running", clock);
      await submitted.pause();
      // Awaited without moving the clock: a clock run ahead while a real IndexedDB is still
      // writing would let recovery find the lease expired, and charge the attempt as a crash.
      await first.executor.shutdown({ graceMs: 0 });
      hangFirst = false;
      let t = byKey(await submitted.tasks());
      equal(t.a!.status, "paused", "the attempt the shutdown aborted waits paused");
      equal(t.a!.attempts, 0, "and is not counted");
      equal(t.c!.status, "paused");

      const second = harness(ctx.storage, [step], { clock });
      second.executor.start();
      const job = await second.executor.job(submitted.id);
      const waiting = job.wait();
      await clock.advance(5000);
      deepEqual(ran, ["a"], "nothing of the paused job started after the restart");
      equal((await job.status()).status, "paused");
      t = byKey(await job.tasks());
      equal(t.b!.status, "pending");
      equal(t.c!.status, "paused");
      equal((await job.resume()).status, "running");
      deepEqual(await clock.runUntil(waiting), { a: "a", b: "b", c: "c" });
      await second.executor.shutdown();
    },
  },
  {
    name: "an ended job stays ended: pause(), resume() and cancel() resolve with it as it ended, " +
      "retryTask() refuses its failed task, and its end is told once",
    async run(ctx) {
      const hang = agent("hang", (_i, c) => aborted(c.signal));
      const { executor, clock } = harness(ctx.storage, [echo, fail, hang]);
      const ends: string[] = [];
      for (const e of ["job:completed", "job:failed", "job:cancelled"] as const) {
        executor.on(e, (p) => ends.push(`${e} ${p.job.name}`));
      }
      executor.start();
      const done = await executor.submit({ name: "done", tasks: [{ key: "a", agent: "echo", input: 1 }] });
      const failed = await executor.submit({
        name: "failed",
        tasks: [{ key: "f", agent: "fail" }, { key: "g", agent: "echo", input: 2, dependsOn: ["f"] }],
      });
      const cancelled = await executor.submit({
        name: "cancelled",
        tasks: [{ key: "h", agent: "hang" }, { key: "r", agent: "echo", input: 3, review: true }],
      });
      deepEqual(await clock.runUntil(done.wait()), { a: 1 });
      await rejects(() => clock.runUntil(failed.wait()), JobFailedError);
      await until(async () => byKey(await cancelled.tasks()).r!.status === "completed", "r awaits review", clock);
      const r = byKey(await cancelled.tasks()).r!;
      equal((await cancelled.cancel()).status, "cancelled");
      const cases: [typeof done, string][] = [[done, "completed"], [failed, "failed"], [cancelled, "cancelled"]];
      for (const [job, status] of cases) {
        equal((await job.pause()).status, status, "pause()");
        equal((await job.resume()).status, status, "resume()");
        equal((await job.cancel()).status, status, "cancel()");
        equal((await job.status()).status, status);
      }
      deepEqual(await done.wait(), { a: 1 }, "a completed job keeps its outputs");
      // A failed or cancelled task is final: retryTask() sends on a blocked task only.
      const t = byKey(await failed.tasks());
      equal(t.g!.status, "cancelled");
      await rejects(() => executor.retryTask(t.f!.id), InvalidTransitionError, "sends on a blocked task only");
      await rejects(() => executor.retryTask(t.g!.id), InvalidTransitionError, "sends on a blocked task only");
      const e = await rejects<JobFailedError>(() => failed.wait(), JobFailedError);
      deepEqual(e.failedTasks.map((f) => f.key), ["f"]);
      // The cancel ended the output awaiting review: there is nothing left to review.
      await rejects(() => executor.review(r.id, "accept"), InvalidTransitionError, "is cancelled");
      await rejects(() => cancelled.wait(), JobFailedError, "was cancelled");
      await clock.advance(5000);
      deepEqual(ends.sort(), ["job:cancelled cancelled", "job:completed done", "job:failed failed"]);
      await executor.shutdown();
    },
  },
  {
    name:
      "a job cancelled or paused through another executor stops there too: running signals abort, queued tasks never start",
    async run(ctx) {
      const gate = deferred<string>();
      const ran: string[] = [];
      const signals: AbortSignal[] = [];
      const step = agent("step", (_i, c) => {
        ran.push(c.task.key);
        signals.push(c.signal);
        return gate.promise;
      });
      const hold = deferred<string>();
      const ran2: string[] = [];
      const holding = agent("hold", (_i, c) => {
        ran2.push(c.task.key);
        signals.push(c.signal);
        return hold.promise;
      });
      const clock = new ManualClock(START);
      const worker = harness(ctx.storage, [step], { clock, maxWorkers: 1, prefetch: Infinity });
      const client = harness(ctx.storage, [step, holding], { clock });
      worker.executor.start();
      const paused = await client.executor.submit({
        name: "paused-elsewhere",
        tasks: [{ key: "a", agent: "step" }, { key: "b", agent: "step" }],
      });
      await until(() => ran.length === 1 && worker.executor.stats().queued === 1, "a running, b queued", clock);
      await paused.pause();
      await until(() => worker.executor.stats().queued === 0, "b handed back", clock);
      gate.resolve("done");
      await until(async () => byKey(await paused.tasks()).a!.status === "completed", "a stored", clock);
      await clock.advance(5000);
      deepEqual(ran, ["a"]);
      equal(byKey(await paused.tasks()).b!.status, "paused");
      await paused.cancel();

      const worker2 = harness(ctx.storage, [holding], { clock, maxWorkers: 1, prefetch: Infinity });
      await worker.executor.shutdown();
      worker2.executor.start();
      const cancelled = await client.executor.submit({
        name: "cancelled-elsewhere",
        tasks: [{ key: "x", agent: "hold" }, { key: "y", agent: "hold" }],
      });
      await until(() => ran2.length === 1 && worker2.executor.stats().queued === 1, "x running, y queued", clock);
      await cancelled.cancel();
      await until(() => signals.at(-1)!.aborted, "x's signal aborted", clock);
      hold.resolve("late");
      await clock.advance(5000);
      deepEqual(ran2, ["x"]);
      for (const t of await cancelled.tasks()) equal(t.status, "cancelled", t.key);
      await worker2.executor.shutdown();
    },
  },
  {
    name: "a change notice that names no jobs (anything may have changed) checks every job the executor holds tasks of",
    async run(ctx) {
      const gate = deferred<string>();
      const ran: string[] = [];
      const signals: AbortSignal[] = [];
      const step = agent("step", (_i, c) => {
        ran.push(c.task.key);
        signals.push(c.signal);
        return gate.promise;
      });
      const clock = new ManualClock(START);
      // The worker hears of changes, but never which jobs: as after a notice too long to
      // list them, or one missed while a connection was down.
      const vague = intercept(ctx.storage, {
        watch: (original) => (listener) => original(() => listener(undefined)),
      });
      const worker = harness(vague, [step], { clock, maxWorkers: 1, prefetch: Infinity });
      const client = harness(ctx.storage, [step], { clock });
      worker.executor.start();
      const paused = await client.executor.submit({
        name: "paused-vaguely",
        tasks: [{ key: "a", agent: "step" }, { key: "b", agent: "step" }],
      });
      await until(() => ran.length === 1 && worker.executor.stats().queued === 1, "a running, b queued", clock);
      await paused.pause();
      // No heartbeat or poll runs: the clock stands still.
      await until(() => worker.executor.stats().queued === 0, "b handed back", clock);
      await paused.cancel();
      await until(() => signals[0]!.aborted, "a's signal aborted", clock);
      gate.resolve("late");
      await worker.executor.shutdown();
      deepEqual(ran, ["a"]);
      for (const t of await paused.tasks()) equal(t.status, "cancelled", t.key);
    },
  },
  {
    name: "many notices that name no jobs at once read each held job at most twice, not once per notice",
    async run(ctx) {
      const gate = deferred<string>();
      const step = agent("step", () => gate.promise);
      const clock = new ManualClock(START);
      let notify: (() => void) | null = null;
      let reads = 0;
      const vague = intercept(ctx.storage, {
        watch: (original) => (listener) => {
          notify = () => listener(undefined);
          return original(() => listener(undefined));
        },
        getJob: (original) => (id: string) => {
          reads++;
          return original(id);
        },
      });
      const worker = harness(vague, [step], { clock, maxWorkers: 4 });
      worker.executor.start();
      for (let i = 0; i < 4; i++) {
        await worker.executor.submit({ name: `held-${i}`, tasks: [{ key: "a", agent: "step" }] });
      }
      await until(() => worker.executor.stats().running === 4, "a task of each of 4 jobs running", clock);
      for (let i = 0; i < 20; i++) await clock.advance(0); // the checks of the submissions' notices end
      reads = 0;
      for (let i = 0; i < 100; i++) notify!();
      await until(() => reads >= 4, "every held job read", clock);
      for (let i = 0; i < 20; i++) await clock.advance(0);
      ok(reads <= 8, `100 notices read the 4 held jobs ${reads} times`);
      equal(worker.executor.stats().running, 4, "nothing was stopped: every job still runs");
      gate.resolve("done");
      await worker.executor.shutdown();
    },
  },
  {
    name: "cancel() through an executor aborts its running tasks even when the job was already cancelled elsewhere",
    async run(ctx) {
      let signal: AbortSignal | null = null;
      const hang = agent("hang", async (_i, c) => {
        signal = c.signal;
        await aborted(c.signal);
      });
      const clock = new ManualClock(START);
      // A storage that tells nobody of changes: only the worker's own call can abort its task.
      const quiet = intercept(ctx.storage, { watch: () => () => () => {} });
      const worker = harness(quiet, [hang], { clock });
      const client = harness(quiet, [hang], { clock });
      // Submitted first: with no change notices, the worker finds it by its first claim.
      const job = await client.executor.submit({ name: "twice", tasks: [{ key: "a", agent: "hang" }] });
      worker.executor.start();
      await until(() => signal !== null, "a running", clock);
      await job.cancel();
      await (await worker.executor.job(job.id)).cancel();
      ok(signal!.aborted, "the worker's own cancel() aborted its attempt");
      await worker.executor.shutdown();
    },
  },
  {
    name: "a cancel() whose commit failed before another executor cancelled the job does not report the end as its own",
    async run(ctx) {
      const hang = agent("hang", (_i, c) => aborted(c.signal));
      const clock = new ManualClock(START);
      // Its cancel comes a second after the failed attempt (an outage takes time).
      const other = harness(ctx.storage, [hang], { clock: new ManualClock(START + 1000) });
      let armed = true;
      const failing = intercept(ctx.storage, {
        commit: (commit) => async (ops, now) => {
          const op = ops[0];
          if (armed && op?.type === "updateJob") {
            armed = false;
            // Another executor cancels the job; this call fails without being applied.
            await (await other.executor.job(op.id)).cancel();
            throw new StorageError("connection reset");
          }
          return await commit(ops, now);
        },
      });
      const client = harness(failing, [hang], { clock });
      const ends = { client: [] as string[], other: [] as string[] };
      for (const e of ["job:completed", "job:failed", "job:cancelled"] as const) {
        client.executor.on(e, (p) => ends.client.push(`${e} ${p.job.id}`));
        other.executor.on(e, (p) => ends.other.push(`${e} ${p.job.id}`));
      }
      const job = await client.executor.submit({ name: "cancel-race", tasks: [{ key: "a", agent: "hang" }] });
      equal((await clock.runUntil(job.cancel())).status, "cancelled");
      deepEqual(ends.other, [`job:cancelled ${job.id}`], "the executor whose cancel ended the job reports it");
      deepEqual(ends.client, [], "the executor whose cancel failed did not end the job");
      await client.executor.shutdown();
      await other.executor.shutdown();
    },
  },
  {
    name: "cancelTask() cancels a task that is not running, its dependents follow, and the job ends",
    async run(ctx) {
      const flaky = agent("fails", () => {
        throw new NonRetryableError("down");
      });
      const { executor, clock } = harness(ctx.storage, [flaky, echo]);
      executor.start();
      const job = await executor.submit({
        name: "cancel-one",
        tasks: [
          { key: "f", agent: "fails" },
          { key: "b", agent: "echo", input: 1, dependsOn: ["f"], onDependencyFailure: "block" },
          { key: "c", agent: "echo", input: 2, dependsOn: ["b"] },
          { key: "d", agent: "echo", input: 3 },
        ],
      });
      await until(async () => byKey(await job.tasks()).b!.status === "blocked", "b blocked", clock);
      const d = byKey(await job.tasks()).d!;
      await until(async () => (await ctx.storage.getTask(d.id))!.status === "completed", "d done", clock);
      await rejects(() => executor.cancelTask(d.id), InvalidTransitionError, "has ended");
      await rejects(() => executor.cancelTask(d.id, 5 as never), TypeError, '"reason"');
      const b = await executor.cancelTask(byKey(await job.tasks()).b!.id, "Not worth it");
      equal(b.status, "cancelled");
      equal(b.statusReason, "Not worth it");
      const e = await rejects<JobFailedError>(() => job.wait(), JobFailedError);
      deepEqual(e.failedTasks.map((t) => t.key), ["f"]);
      const t = byKey(await job.tasks());
      equal(t.c!.status, "cancelled");
      equal(t.c!.statusReason, 'Dependency "b" cancelled');
      await executor.shutdown();
    },
  },
  {
    name:
      "cancelTask() of a task that changed between its read and its write (a dependency ended) cancels it, no ConflictError",
    async run(ctx) {
      // The person reads b pending; before the cancel is written, a ends and b becomes
      // ready (due in a minute, so it is not claimed meanwhile). The cancel still applies.
      const gate = deferred();
      let b = "";
      let raced = false;
      const storage = intercept(ctx.storage, {
        getTask: (getTask) => async (id) => {
          const read = await getTask(id);
          if (id === b && !raced) {
            raced = true;
            gate.resolve();
            await until(async () => (await ctx.storage.getTask(b))!.status === "ready", "b ready");
          }
          return read;
        },
      });
      const { executor, clock } = harness(storage, [agent("gated", () => gate.promise.then(() => "a")), echo]);
      executor.start();
      const job = await executor.submit({
        name: "race",
        tasks: [
          { key: "a", agent: "gated" },
          { key: "b", agent: "echo", input: 1, dependsOn: ["a"], delayMs: 60_000 },
        ],
      });
      b = byKey(await job.tasks()).b!.id;
      await until(() => executor.stats().running === 1, "a running", clock);
      const cancelled = await executor.cancelTask(b, "Not needed");
      ok(raced, "b changed between the read and the write");
      equal(cancelled.status, "cancelled");
      equal(cancelled.statusReason, "Not needed");
      deepEqual(await job.wait(), { a: "a" });
      await executor.shutdown();
    },
  },
  {
    name:
      "retryTask() whose answer was lost, the task since run and blocked again, throws instead of retrying it twice",
    async run(ctx) {
      // Another executor claims the blocked task, and it is blocked again (its at-most-once
      // attempt was interrupted, after a retry that moved its runAt) while the person's
      // retry's answer is on its way and lost. The retry that follows conflicts; it must not
      // be planned again on the task as it is now, which would send it on a second time for
      // one call.
      let lose = true;
      const otherRunsIt = async (now: number, runAt: number) => {
        const [claimed] = await ctx.storage.claimReady({ limit: 1, now, owner: "other", leaseMs: 10_000 });
        await ctx.storage.commit([{
          type: "updateTask",
          id: claimed!.id,
          expect: { version: claimed!.version, status: "running" },
          set: { status: "blocked", statusReason: "Interrupted", leaseOwner: null, leaseExpiresAt: null, runAt },
        }], now);
      };
      const storage = intercept(ctx.storage, {
        commit: (commit) => async (ops, now) => {
          const result = await commit(ops, now);
          if (lose && ops.some((o) => o.type === "updateTask" && o.set.statusReason === "Retried by a person")) {
            lose = false;
            await otherRunsIt(now!, now! + 500);
            throw new StorageError("connection reset after the commit");
          }
          return result;
        },
      });
      const { executor, clock } = harness(storage, [echo]);
      const job = await executor.submit({
        name: "r",
        tasks: [{ key: "a", agent: "echo", durability: "at-most-once" }],
      });
      await otherRunsIt(clock.now(), clock.now());
      const a = byKey(await job.tasks()).a!;
      equal(a.status, "blocked");
      let outcome: unknown;
      void executor.retryTask(a.id).then((t) => (outcome = t), (e) => (outcome = e));
      await untilAdvancing(() => outcome !== undefined, "retryTask() to settle", clock, 100);
      ok(outcome instanceof ConflictError, `retryTask() settled with ${String(outcome)}`);
      const after = (await ctx.storage.getTask(a.id))!;
      equal(after.status, "blocked", "sent on once, not twice");
      equal(after.attempts, 2, "the other executor's two claims");
      await executor.shutdown();
    },
  },
  {
    name: "spawned children run in the job, a join waits for them, and the job waits for all",
    async run(ctx) {
      const parent = agent("parent", (input, c) => {
        const kids = (input as number[]).map((n, i) => c.spawn({ key: `part${i}`, agent: "square", input: n }));
        c.spawn({ key: "sum", agent: "sum", dependsOn: kids.map((k) => k.key.split("/")[1]!) });
        return "spawned";
      });
      const square = agent("square", (n) => (n as number) ** 2);
      const sum = agent("sum", async (_i, c) => {
        const deps = await c.dependencyOutputs();
        return Object.values(deps).reduce((a: number, b) => a + (b as number), 0);
      });
      const { executor } = harness(ctx.storage, [parent, square, sum]);
      executor.start();
      const job = await executor.submit({ name: "spawn", tasks: [{ key: "p", agent: "parent", input: [1, 2, 3] }] });
      const out = await job.wait();
      deepEqual(out, { p: "spawned", "p/part0": 1, "p/part1": 4, "p/part2": 9, "p/sum": 14 });
      const tasks = await job.tasks();
      const p = tasks.find((t) => t.key === "p")!;
      equal(tasks.filter((t) => t.parentId === p.id).length, 4);
      equal((await job.status()).taskCount, 5);
      await executor.shutdown();
    },
  },
  {
    name: "a child may name an earlier sibling in dependsOn by the key of the handle spawn() returned",
    async run(ctx) {
      let refused = "";
      const parent = agent("parent", (_i, c) => {
        const a = c.spawn({ key: "a", agent: "echo", input: 1 });
        const b = c.spawn({ key: "b", agent: "echo", input: 2 });
        equal(a.key, "p/a");
        // Another parent's child is no sibling, whatever its key.
        try {
          c.spawn({ key: "x", agent: "echo", dependsOn: ["q/a"] });
        } catch (e) {
          refused = (e as Error).message;
        }
        c.spawn({ key: "join", agent: "gather", dependsOn: [a.key, "b"] });
        return [a.key, b.key];
      });
      const gather = agent("gather", async (_i, c) => Object.keys(await c.dependencyOutputs()).sort());
      const { executor } = harness(ctx.storage, [parent, echo, gather]);
      executor.start();
      const job = await executor.submit({ name: "handles", tasks: [{ key: "p", agent: "parent", maxAttempts: 1 }] });
      deepEqual(await job.wait(), { p: ["p/a", "p/b"], "p/a": 1, "p/b": 2, "p/join": ["p/a", "p/b"] });
      ok(refused.includes('"q/a"'), refused);
      await executor.shutdown();
    },
  },
  {
    name: "a child spawned to run later starts at its time, without waiting for a poll",
    async run(ctx) {
      let ranAt = -1;
      const { executor, clock } = harness(ctx.storage, [
        agent("parent", (_i, c) => {
          c.spawn({ key: "later", agent: "child", delayMs: 100 });
          return "spawned";
        }),
        agent("child", () => (ranAt = clock.now() - START)),
      ], { pollIntervalMs: 60_000, leaseMs: 600_000 });
      executor.start();
      const job = await executor.submit({ name: "later", tasks: [{ key: "p", agent: "parent" }] });
      await until(async () => byKey(await job.tasks()).p!.status === "completed", "parent stored", clock);
      equal(ranAt, -1);
      await clock.advance(100);
      await until(() => ranAt >= 0, "the child run at its time", clock);
      equal(ranAt, 100);
      deepEqual(await job.wait(), { p: "spawned", "p/later": 100 });
      await executor.shutdown();
    },
  },
  {
    name: "a parent retried after spawning does not duplicate its children",
    async run(ctx) {
      let attempts = 0;
      const parent = agent("parent", (_i, c) => {
        attempts++;
        c.spawn({ key: "child", agent: "echo", input: attempts });
        c.cache.set("attempt", attempts);
        if (attempts === 1) throw new Error("crash after spawning");
        return "ok";
      });
      const { executor, clock } = harness(ctx.storage, [parent, echo], { retry: { delayMs: 10 } });
      executor.start();
      const job = await executor.submit({ name: "retry", tasks: [{ key: "p", agent: "parent" }] });
      await until(() => attempts === 1, "first attempt", clock);
      await until(async () => byKey(await job.tasks()).p!.status === "ready", "retry stored", clock);
      equal(await ctx.storage.getCache(job.id, "attempt"), undefined);
      await clock.advance(10);
      const out = await job.wait();
      equal(out["p/child"], 2);
      equal((await job.tasks()).length, 2);
      equal(await ctx.storage.getCache(job.id, "attempt"), 2);
      await executor.shutdown();
    },
  },
  {
    name:
      "children of an output awaiting review wait for its acceptance; a rejection cancels them and the rerun spawns its own",
    async run(ctx) {
      let runs = 0;
      const ran: string[] = [];
      const parent = agent("plan", (_i, c) => {
        runs++;
        const first = c.spawn({ key: "step", agent: "echo", input: runs });
        // A child asking to block when a dependency fails is cancelled all the same.
        c.spawn({ key: "sum", agent: "echo", input: runs * 10, dependsOn: ["step"], onDependencyFailure: "block" });
        return first.key;
      });
      const child = agent("echo", (input, c) => {
        ran.push(c.task.key);
        return input;
      });
      const { executor, clock } = harness(ctx.storage, [parent, child]);
      executor.start();
      const job = await executor.submit({ name: "rerun", tasks: [{ key: "p", agent: "plan", review: true }] });
      await until(async () => (await job.tasks()).length === 3, "first run", clock);
      await clock.advance(5000);
      deepEqual(ran, [], "nothing the unreviewed output spawned ran");
      let t = byKey(await job.tasks());
      equal(t["p/step"]!.status, "pending");
      await executor.review(t.p!.id, "reject", "again");
      t = byKey(await job.tasks());
      equal(t["p/step"]!.status, "cancelled");
      equal(t["p/sum"]!.status, "cancelled");
      equal(t["p/sum"]!.statusReason, 'Parent "p" rejected in review');
      await until(async () => runs === 2 && byKey(await job.tasks()).p!.status === "completed", "rerun", clock);
      await executor.review(t.p!.id, "accept");
      const out = await job.wait();
      deepEqual(out, { p: "p#2/step", "p#2/step": 2, "p#2/sum": 20 });
      deepEqual(ran, ["p#2/step", "p#2/sum"]);
      const keys = (await job.tasks()).map((t) => t.key);
      equal(new Set(keys).size, keys.length, `keys are unique: ${keys.join(", ")}`);
      await executor.shutdown();
    },
  },
  {
    name: "rejecting a reviewed output for good cancels what it spawned, and the job fails",
    async run(ctx) {
      const ran: string[] = [];
      const parent = agent("plan", (_i, c) => {
        c.spawn({ key: "send", agent: "echo", input: 1, onDependencyFailure: "block" });
        return "plan";
      });
      const child = agent("echo", (input, c) => {
        ran.push(c.task.key);
        return input;
      });
      const { executor, clock } = harness(ctx.storage, [parent, child]);
      executor.start();
      const job = await executor.submit({
        name: "final-reject",
        tasks: [{ key: "p", agent: "plan", review: true, maxAttempts: 1 }],
      });
      await until(async () => (await job.tasks()).length === 2, "spawned", clock);
      const p = byKey(await job.tasks()).p!;
      await executor.review(p.id, "reject", "no");
      const e = await rejects<JobFailedError>(() => job.wait(), JobFailedError);
      deepEqual(e.failedTasks.map((f) => f.key), ["p"]);
      const t = byKey(await job.tasks());
      equal(t.p!.status, "rejected");
      equal(t["p/send"]!.status, "cancelled");
      equal(t["p/send"]!.statusReason, 'Parent "p" rejected in review');
      deepEqual(ran, []);
      await executor.shutdown();
    },
  },
  {
    name: "a child of an output awaiting review that a cancelled sibling blocked is cancelled by the rejection too",
    async run(ctx) {
      // While "p" awaits review, a person cancels its child "c1": "c2" (block on failure)
      // is blocked. Rejecting "p", for good or to rerun it, must cancel "c2" as well: a
      // blocked child kept the job open, and retryTask() ran a child of a rejected output.
      for (const maxAttempts of [1, 2]) {
        const ran: string[] = [];
        let runs = 0;
        const parent = agent("plan", (_i, c) => {
          runs++;
          c.spawn({ key: "c1", agent: "echo", input: 1 });
          c.spawn({ key: "c2", agent: "echo", input: 2, dependsOn: ["c1"], onDependencyFailure: "block" });
          return "plan";
        });
        const child = agent("echo", (input, c) => {
          ran.push(c.task.key);
          return input;
        });
        const { executor, clock } = harness(ctx.storage, [parent, child]);
        executor.start();
        const job = await executor.submit({
          name: "gate",
          tasks: [{ key: "p", agent: "plan", review: true, maxAttempts }],
        });
        await until(async () => (await job.tasks()).length === 3, "spawned", clock);
        let t = byKey(await job.tasks());
        await executor.cancelTask(t["p/c1"]!.id, "not needed");
        equal(byKey(await job.tasks())["p/c2"]!.status, "blocked");
        await executor.review(t.p!.id, "reject", "no");
        t = byKey(await job.tasks());
        equal(t["p/c2"]!.status, "cancelled", `maxAttempts ${maxAttempts}`);
        equal(t["p/c2"]!.statusReason, 'Parent "p" rejected in review');
        if (maxAttempts === 1) {
          await rejects(() => job.wait(), JobFailedError);
        } else {
          await until(async () => runs === 2 && byKey(await job.tasks()).p!.status === "completed", "rerun", clock);
          await executor.review(byKey(await job.tasks()).p!.id, "accept");
          deepEqual(await job.wait(), { p: "plan", "p#2/c1": 1, "p#2/c2": 2 });
        }
        deepEqual(ran.filter((k) => !k.startsWith("p#2/")), [], "no child of the rejected output ran");
        await executor.shutdown();
      }
    },
  },
  {
    name: "a spawn key holding / or # fails the attempt with a JobValidationError",
    async run(ctx) {
      const parent = agent("parent", (_i, c) => {
        c.spawn({ key: "x/y", agent: "echo" });
        return "unreachable";
      });
      const { executor } = harness(ctx.storage, [parent, echo]);
      executor.start();
      const job = await executor.submit({ name: "bad-key", tasks: [{ key: "p", agent: "parent", maxAttempts: 1 }] });
      await rejects(() => job.wait(), JobFailedError);
      const tasks = await job.tasks();
      equal(tasks.length, 1);
      equal(tasks[0]!.error?.name, "JobValidationError");
      ok(tasks[0]!.error?.message.includes('"/" or "#"'), tasks[0]!.error?.message);
      await executor.shutdown();
    },
  },
  {
    name:
      "a completion whose spawned children its job cannot hold (too-many-tasks) fails its task for good; other results are stored and the job ends",
    async run(ctx) {
      // The rules refuse an insert into a job at MAX_TASKS_PER_JOB with this error (a job
      // of a million tasks is too slow to build here): the storage answers it for any spawn.
      const commits = { refused: 0 };
      const full = intercept(ctx.storage, {
        commit: (commit) => async (ops, now) => {
          if (ops.some((o) => o.type === "insertTask")) {
            commits.refused++;
            throw new JobValidationError([{
              code: "too-many-tasks",
              message: "Job holds 1000000 tasks; one job holds at most 1000000",
            }]);
          }
          return await commit(ops, now);
        },
      });
      const errors: unknown[] = [];
      const { executor, clock } = harness(full, [
        agent("parent", (_i, c) => {
          c.spawn({ key: "child", agent: "echo", input: 1 });
          return "spawned";
        }),
        echo,
      ]);
      executor.on("storage:error", (e) => errors.push(e.error));
      executor.start();
      const job = await executor.submit({
        name: "full",
        tasks: [{ key: "p", agent: "parent" }, { key: "q", agent: "echo", input: 2 }],
      });
      await untilAdvancing(async () => (await job.status()).status !== "running", "the job to end", clock, 1000);
      const t = byKey(await job.tasks());
      equal(t.q!.status, "completed", "another result of the same commit is stored");
      equal(t.p!.status, "failed");
      equal(t.p!.error?.name, "JobValidationError");
      equal(t.p!.attempts, 1, "not run again: it would spawn the same children");
      equal(t["p/child"], undefined, "no child");
      equal((await job.status()).status, "failed");
      await rejects(() => job.wait(), JobFailedError);
      ok(commits.refused <= 3, `the refused commit was tried ${commits.refused} times`);
      await executor.shutdown();
    },
  },
  {
    name: "a cache or state key a storage refuses for good (too long for its index) fails its task at once, " +
      "with the storage's error: the attempt is not lost and run again until its attempts are used up",
    async run(ctx) {
      // Random text does not compress: PostgreSQL's btree refuses a key of ~3 KB.
      let seed = 11;
      const long = Array.from({ length: 3000 }, () => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return String.fromCharCode(33 + (seed % 90));
      }).join("");
      let calls = 0;
      const { executor, clock } = harness(ctx.storage, [
        agent("cacher", (_i, c) => {
          calls++;
          c.cache.set(long, 1);
          return "cached";
        }),
        agent("stater", (_i, c) => {
          calls++;
          c.state(long).set("k", 1);
          return "stated";
        }),
        echo,
      ]);
      const lost: string[] = [];
      executor.on("task:lost", (e) => lost.push(e.task.key));
      executor.start();
      const job = await executor.submit({
        name: "long-key",
        tasks: [
          { key: "c", agent: "cacher", maxAttempts: 3 },
          { key: "s", agent: "stater", maxAttempts: 3 },
          { key: "q", agent: "echo", input: 2 },
        ],
      });
      await untilAdvancing(async () => (await job.status()).status !== "running", "the job to end", clock, 1000);
      const t = byKey(await job.tasks());
      equal(t.q!.status, "completed", "another result of the same commit is stored");
      deepEqual(lost, [], "no result is lost");
      equal(calls, 2, "each agent ran once");
      for (const key of ["c", "s"]) {
        const task = t[key]!;
        if (task.status === "completed") continue; // a storage that holds such a key
        equal(task.status, "failed", key);
        equal(task.attempts, 1, `${key}: not run again: it would write the same key`);
        equal(task.error?.name, "RangeError", `${key}: ${task.error?.name}: ${task.error?.message}`);
        equal(task.error?.retryable, false);
      }
      if (t.c!.status === "completed") equal(await ctx.storage.getCache(job.id, long), 1);
      if (t.s!.status === "completed") equal(await ctx.storage.getState(long, "k"), 1);
      await executor.shutdown();
    },
  },
  {
    name: "a bad spawn spec fails the attempt with a JobValidationError and writes no child",
    async run(ctx) {
      const parent = agent("parent", (_i, c) => {
        c.spawn({ key: "x", agent: "nobody" });
        return "unreachable";
      });
      const { executor } = harness(ctx.storage, [parent]);
      executor.start();
      const job = await executor.submit({ name: "bad-spawn", tasks: [{ key: "p", agent: "parent" }] });
      await rejects(() => job.wait(), JobFailedError);
      const tasks = await job.tasks();
      equal(tasks.length, 1);
      equal(tasks[0]!.error?.name, "JobValidationError");
      await executor.shutdown();
    },
  },
  {
    name: "the job cache is shared by its tasks with read-your-writes; shared state spans jobs",
    async run(ctx) {
      const writer = agent("writer", async (_i, c) => {
        c.cache.set("token", "abc");
        equal(await c.cache.get("token"), "abc");
        c.state("user:7").set("visits", 1);
        return null;
      });
      const reader = agent("reader", async (_i, c) => {
        return { token: (await c.cache.get("token")) ?? null, visits: (await c.state("user:7").get("visits")) ?? null };
      });
      const { executor } = harness(ctx.storage, [writer, reader]);
      executor.start();
      const one = await executor.submit({
        name: "one",
        tasks: [{ key: "w", agent: "writer" }, { key: "r", agent: "reader", dependsOn: ["w"] }],
      });
      deepEqual((await one.wait()).r, { token: "abc", visits: 1 });
      const two = await executor.submit({ name: "two", tasks: [{ key: "r", agent: "reader" }] });
      deepEqual((await two.wait()).r, { token: null, visits: 1 });
      await executor.shutdown();
    },
  },
  {
    name: "two tasks incrementing one shared-state counter at once both count (no lost update)",
    async run(ctx) {
      const gate = deferred();
      const { inc, seen } = counterAgent(gate.promise);
      const { executor, clock } = harness(ctx.storage, [inc]);
      executor.start();
      const job = await executor.submit({
        name: "inc",
        tasks: [{ key: "a", agent: "inc" }, { key: "b", agent: "inc" }],
      });
      await until(() => seen.reads === 2, "both read", clock);
      gate.resolve(); // both write n = 1, in the same group commit
      const out = await job.wait();
      equal(await ctx.storage.getState("counters", "n"), 2);
      deepEqual([out.a, out.b].sort(), [1, 2]);
      await executor.shutdown();
    },
  },
  {
    name: "two executors incrementing one shared-state counter at once both count (their commits race)",
    async run(ctx) {
      const gate = deferred();
      const { inc, seen } = counterAgent(gate.promise);
      const one = harness(ctx.storage, [inc]);
      const two = harness(ctx.storage, [inc], { clock: one.clock });
      one.executor.start();
      const first = await one.executor.submit({ name: "inc-a", tasks: [{ key: "a", agent: "inc" }] });
      await until(() => seen.reads === 1, "the first read", one.clock);
      // The first executor stops claiming (its running task still commits), so the second
      // runs the next task.
      const stopping = one.executor.shutdown({ graceMs: 60_000 });
      two.executor.start();
      const second = await two.executor.submit({ name: "inc-b", tasks: [{ key: "b", agent: "inc" }] });
      await until(() => seen.reads === 2, "the second read, in the other executor", one.clock);
      gate.resolve(); // both commit at once, each in its own transaction
      await stopping;
      await until(
        async () => (await second.status()).status === "completed" && (await first.status()).status === "completed",
        "both jobs to end",
        one.clock,
      );
      equal(await ctx.storage.getState("counters", "n"), 2);
      await two.executor.shutdown();
    },
  },
  {
    name: "an at-most-once task whose state write lost the race is blocked, not run again, and the other write stays",
    async run(ctx) {
      const gate = deferred();
      const { inc, seen } = counterAgent(gate.promise);
      const { executor, clock } = harness(ctx.storage, [inc]);
      executor.start();
      const job = await executor.submit({
        name: "once",
        tasks: [
          { key: "a", agent: "inc", durability: "at-most-once" },
          { key: "b", agent: "inc", durability: "at-most-once" },
        ],
      });
      await until(() => seen.reads === 2, "both read", clock);
      gate.resolve();
      await until(
        async () => {
          const tasks = await ctx.storage.listTasks({ jobId: job.id });
          return tasks.every((t) => t.status === "completed" || t.status === "blocked");
        },
        "both settled",
        clock,
      );
      const tasks = await ctx.storage.listTasks({ jobId: job.id });
      deepEqual(tasks.map((t) => t.status).sort(), ["blocked", "completed"]);
      const blocked = tasks.find((t) => t.status === "blocked")!;
      ok(blocked.statusReason?.includes("changed since it was read"), String(blocked.statusReason));
      equal(blocked.output, null, "the blocked task's output is not stored");
      equal(seen.calls, 2, "each agent was called once");
      equal(await ctx.storage.getState("counters", "n"), 1, "the write that won stays");
      await executor.shutdown();
    },
  },
  {
    name: "a cache entry read and rewritten by two sibling tasks keeps both updates, across commits",
    async run(ctx) {
      const gates = { a: deferred(), b: deferred() };
      let read = 0;
      const append = agent("append", async (_i, c) => {
        const list = ((await c.cache.get("seen")) as string[] | undefined) ?? [];
        read++;
        await gates[c.task.key as "a" | "b"].promise;
        c.cache.set("seen", [...list, c.task.key]);
        return list.length;
      });
      const { executor, clock } = harness(ctx.storage, [append]);
      executor.start();
      const job = await executor.submit({
        name: "append",
        tasks: [{ key: "a", agent: "append" }, { key: "b", agent: "append" }],
      });
      await until(() => read === 2, "both read", clock);
      gates.a.resolve();
      await until(async () => (await ctx.storage.getCache(job.id, "seen")) !== undefined, "a stored", clock);
      gates.b.resolve(); // b read the cache before a stored its write
      await job.wait();
      deepEqual(await ctx.storage.getCache(job.id, "seen"), ["a", "b"]);
      await executor.shutdown();
    },
  },
  {
    name: "review: a task that asks for review waits; accept lets dependents run",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [echo]);
      const reviews: string[] = [];
      const events: string[] = [];
      executor.on("task:review", (e) => {
        reviews.push(e.task.key);
        events.push(`review ${e.task.key}`);
      });
      executor.on("task:accepted", (e) => events.push(`accepted ${e.task.key} ${e.task.status}`));
      executor.on("task:completed", (e) => events.push(`completed ${e.task.key}`));
      executor.on("job:completed", () => events.push("job:completed"));
      executor.start();
      const job = await executor.submit({
        name: "review",
        tasks: [
          { key: "draft", agent: "echo", input: "v1", review: true },
          { key: "publish", agent: "echo", input: "go", dependsOn: ["draft"] },
        ],
      });
      await until(() => reviews.length === 1, "review requested");
      const t = byKey(await job.tasks());
      equal(t.draft!.status, "completed");
      equal(t.publish!.status, "pending");
      await executor.review(t.draft!.id, "accept");
      deepEqual(await job.wait(), { draft: "v1", publish: "go" });
      equal(byKey(await job.tasks()).draft!.status, "accepted");
      await until(() => events.includes("job:completed"), "job event");
      deepEqual(events, [
        "completed draft",
        "review draft",
        "accepted draft accepted",
        "completed publish",
        "job:completed",
      ]);
      await executor.shutdown();
    },
  },
  {
    name: "review: reject reruns the task with the reason; rejecting its last attempt fails it",
    async run(ctx) {
      const feedback: (string | null)[] = [];
      const writer = agent("writer", (_i, c) => {
        feedback.push(c.reviewFeedback);
        return `draft ${c.task.attempt}`;
      });
      const { executor } = harness(ctx.storage, [writer]);
      const events: string[] = [];
      executor.on("task:rejected", (e) => events.push(`rejected ${e.task.status} rerun=${e.rerun} ${e.reason}`));
      executor.on("job:failed", () => events.push("job:failed"));
      executor.start();
      const job = await executor.submit({
        name: "rev",
        tasks: [{ key: "w", agent: "writer", review: true, maxAttempts: 2 }],
      });
      const waitReview = async (n: number) =>
        await until(async () => {
          const w = byKey(await job.tasks()).w!;
          return w.status === "completed" && feedback.length === n;
        }, `review ${n}`);
      await waitReview(1);
      const first = byKey(await job.tasks()).w!;
      await executor.review(first.id, "reject", "too short");
      await waitReview(2);
      deepEqual(feedback, [null, "too short"]);
      await executor.review(first.id, "reject", "still too short");
      const e = await rejects<JobFailedError>(() => job.wait(), JobFailedError);
      equal(e.failedTasks[0]!.key, "w");
      equal(byKey(await job.tasks()).w!.status, "rejected");
      // Each decision is told, the last before the job's end.
      await until(() => events.includes("job:failed"), "job event");
      deepEqual(events, [
        "rejected ready rerun=true too short",
        "rejected rejected rerun=false still too short",
        "job:failed",
      ]);
      await executor.shutdown();
    },
  },
  {
    name: "a second executor reattaches to a job by id and finishes it",
    async run(ctx) {
      const first = harness(ctx.storage, [echo]);
      const job = await first.executor.submit({
        name: "reattach",
        tasks: [{ key: "a", agent: "echo", input: 1 }, { key: "b", agent: "echo", input: 2, dependsOn: ["a"] }],
      });
      await first.executor.shutdown();
      const second = harness(ctx.storage, [echo]);
      second.executor.start();
      const handle = await second.executor.job(job.id);
      deepEqual(await handle.wait(), { a: 1, b: 2 });
      await second.executor.shutdown();
    },
  },
  {
    name: "delayMs and runAt hold a task back until its time; priority orders ready tasks",
    async run(ctx) {
      const order: string[] = [];
      const rec = agent("rec", (_i, c) => {
        order.push(c.task.key);
        return null;
      });
      const clock = new ManualClock(START);
      const { executor } = harness(ctx.storage, [rec], { clock, maxWorkers: 1 });
      const job = await executor.submit({
        name: "time",
        tasks: [
          { key: "later", agent: "rec", delayMs: 5000 },
          { key: "low", agent: "rec", priority: 10 },
          { key: "high", agent: "rec", priority: -10 },
          { key: "at", agent: "rec", runAt: START + 8000 },
        ],
      });
      executor.start();
      await until(() => order.length === 2, "due tasks", clock);
      deepEqual(order, ["high", "low"]);
      await clock.advance(4999);
      equal(order.length, 2);
      await clock.advance(1);
      await until(() => order.length === 3, "delayed task", clock);
      await clock.advance(3000);
      await job.wait();
      deepEqual(order, ["high", "low", "later", "at"]);
      await executor.shutdown();
    },
  },
  {
    name:
      "cache and state get() with a key that is not a string reject with a TypeError, and progress() with a message that is not a string throws one",
    async run(ctx) {
      const outcomes: string[] = [];
      const settle = (get: () => Promise<unknown>) =>
        get().then(
          (v) => `answered ${JSON.stringify(v)}`,
          (e) => (e instanceof TypeError ? `TypeError: ${(e as Error).message}` : String(e)),
        );
      const { executor } = harness(ctx.storage, [
        agent("bad", async (_i, c) => {
          c.cache.set("1", "one");
          outcomes.push(await settle(() => c.cache.get(1 as never)));
          outcomes.push(await settle(() => c.state("s").get(undefined as never)));
          try {
            c.progress(0.5, 42 as never);
            outcomes.push("progress accepted");
          } catch (e) {
            outcomes.push(e instanceof TypeError ? `TypeError: ${e.message}` : String(e));
          }
          return null;
        }),
      ]);
      const messages: unknown[] = [];
      executor.on("task:progress", (e) => messages.push(e.message));
      executor.start();
      const job = await executor.submit({ name: "bad", tasks: [{ key: "a", agent: "bad" }] });
      await job.wait();
      deepEqual(outcomes, [
        "TypeError: Key must be a string, got number",
        "TypeError: Key must be a string, got undefined",
        'TypeError: progress() "message" must be a string, got number',
      ]);
      deepEqual(messages, [], "a message that is not a string is not emitted");
      await executor.shutdown();
    },
  },
  {
    name: "progress() is emitted as throttled task:progress events",
    async run(ctx) {
      const prog = agent("prog", (_i, c) => {
        for (let i = 1; i <= 10; i++) c.progress(i / 10, `step ${i}`);
        return null;
      });
      const { executor } = harness(ctx.storage, [prog], { progressThrottleMs: 1000 });
      const seen: number[] = [];
      executor.on("task:progress", (e) => seen.push(e.fraction));
      executor.start();
      const job = await executor.submit({ name: "p", tasks: [{ key: "a", agent: "prog" }] });
      await job.wait();
      deepEqual(seen, [0.1, 1]);
      await executor.shutdown();
    },
  },
  {
    name:
      "task:progress tells the task as stored since its start, as task:started does (a task from the ready queue too)",
    async run(ctx) {
      const gate = deferred();
      const prog = agent("prog", async (_i, c) => {
        if (c.task.key === "first") await gate.promise;
        c.progress(0.5, "half");
        return null;
      });
      const { executor, clock } = harness(ctx.storage, [prog], {
        progressThrottleMs: 0,
        maxWorkers: 1,
        prefetch: Infinity,
      });
      const started = new Map<string, Task>();
      const told = new Map<string, Task>();
      executor.on("task:started", (e) => started.set(e.task.key, e.task));
      executor.on("task:progress", (e) => told.set(e.task.key, e.task));
      executor.start();
      const job = await executor.submit({
        name: "p",
        tasks: [{ key: "first", agent: "prog" }, { key: "second", agent: "prog", priority: 1 }],
      });
      await until(() => executor.stats().queued === 1, "the second task waiting in the ready queue", clock);
      gate.resolve();
      await job.wait();
      for (const key of ["first", "second"]) {
        const t = told.get(key)!;
        ok(t.startedAt !== null, `${key}: startedAt is told`);
        equal(t.startedAt, started.get(key)!.startedAt, key);
        equal(t.version, started.get(key)!.version, key);
      }
      await executor.shutdown();
    },
  },
  {
    name: "the last progress held back by the throttle is told when its interval ends, while the task still runs",
    async run(ctx) {
      const gate = deferred<null>();
      let reported = false;
      const prog = agent("prog", (_i, c) => {
        c.progress(0.1, "start");
        c.progress(0.4, "later");
        c.progress(0.5, "halfway"); // held back: then the agent works for a long time
        reported = true;
        return gate.promise;
      });
      const { executor, clock } = harness(ctx.storage, [prog], { progressThrottleMs: 1000 });
      const seen: string[] = [];
      executor.on("task:progress", (e) => seen.push(`${e.fraction} ${e.message}`));
      executor.start();
      const job = await executor.submit({ name: "p", tasks: [{ key: "a", agent: "prog" }] });
      await until(() => reported, "progress reported", clock);
      deepEqual(seen, ["0.1 start"]);
      await clock.advance(999);
      deepEqual(seen, ["0.1 start"]);
      await clock.advance(1);
      deepEqual(seen, ["0.1 start", "0.5 halfway"]);
      gate.resolve(null);
      await job.wait();
      await clock.advance(5000);
      deepEqual(seen, ["0.1 start", "0.5 halfway"]);
      await executor.shutdown();
    },
  },
  {
    name: "progress() after the attempt ended reports nothing",
    async run(ctx) {
      let kept: { progress(f: number, m?: string): void } | undefined;
      const { executor } = harness(ctx.storage, [agent("keep", (_i, c) => {
        kept = c;
        return null;
      })], { progressThrottleMs: 0 });
      const seen: number[] = [];
      executor.on("task:progress", (e) => seen.push(e.fraction));
      executor.start();
      const job = await executor.submit({ name: "p", tasks: [{ key: "a", agent: "keep" }] });
      await job.wait();
      ok(kept);
      kept.progress(0.5, "too late");
      deepEqual(seen, []);
      await executor.shutdown();
    },
  },
  {
    name: "progress() of an attempt whose write lost the race reports nothing while the task runs again",
    async run(ctx) {
      const gate = deferred();
      const rerun = deferred();
      const calls: { key: string; ctx: TaskContext }[] = [];
      const inc = agent("inc", async (_i, c) => {
        calls.push({ key: c.task.key, ctx: c });
        if (calls.length > 2) await rerun.promise;
        const n = ((await c.state("counters").get("n")) as number | undefined) ?? 0;
        await gate.promise;
        c.state("counters").set("n", n + 1);
        return n + 1;
      });
      const { executor, clock } = harness(ctx.storage, [inc], { progressThrottleMs: 0 });
      const seen: string[] = [];
      executor.on("task:progress", (e) => seen.push(`${e.task.key} ${e.message}`));
      executor.start();
      const job = await executor.submit({
        name: "inc",
        tasks: [{ key: "a", agent: "inc" }, { key: "b", agent: "inc" }],
      });
      await until(() => calls.length === 2, "both called", clock);
      gate.resolve(); // both write n = 1: one completion conflicts, and its task runs again
      await until(() => calls.length === 3, "the losing task runs again", clock);
      const again = calls[2]!;
      const first = calls.find((c) => c.key === again.key)!;
      equal(first.ctx.task.attempt, again.ctx.task.attempt, "the attempt is not counted");
      first.ctx.progress(0.5, "stale");
      again.ctx.progress(0.25, "live");
      deepEqual(seen, [`${again.key} live`], "only the running attempt reports");
      rerun.resolve();
      await job.wait();
      equal(await ctx.storage.getState("counters", "n"), 2);
      await executor.shutdown();
    },
  },
  {
    name: "spawn(), cache and state writes after the attempt ended throw instead of being lost",
    async run(ctx) {
      let kept: TaskContext | undefined;
      const { executor } = harness(ctx.storage, [
        agent("keep", (_i, c) => {
          kept = c;
          c.cache.set("early", 1);
          return null;
        }),
        echo,
      ]);
      executor.start();
      const job = await executor.submit({ name: "late", tasks: [{ key: "a", agent: "keep" }] });
      await job.wait();
      ok(kept);
      const k = kept;
      throws(() => k.spawn({ key: "child", agent: "echo" }), Error, "after the attempt ended");
      throws(() => k.cache.set("late", 1), Error, "after the attempt ended");
      throws(() => k.cache.delete("early"), Error, "after the attempt ended");
      throws(() => k.state("s").set("late", 1), Error, "after the attempt ended");
      equal(await ctx.storage.getCache(job.id, "early"), 1, "the write made while running is stored");
      equal((await ctx.storage.listTasks({ jobId: job.id })).length, 1, "no child");
      await executor.shutdown();
    },
  },
  {
    name: "spawn() and cache writes from a timed-out attempt's abort listener throw instead of being lost",
    async run(ctx) {
      const outcomes: string[] = [];
      const { executor, clock } = harness(ctx.storage, [
        agent("slow", (_i, c) =>
          new Promise(() => {
            c.signal.addEventListener("abort", () => {
              for (const write of [() => c.spawn({ key: "late", agent: "echo" }), () => c.cache.set("late", 1)]) {
                try {
                  write();
                  outcomes.push("accepted");
                } catch (e) {
                  outcomes.push((e as Error).message.includes("after the attempt ended") ? "refused" : String(e));
                }
              }
            });
          })),
        echo,
      ]);
      executor.start();
      const job = await executor.submit({
        name: "abort",
        tasks: [{ key: "t", agent: "slow", timeoutMs: 100, maxAttempts: 1 }],
      });
      await untilAdvancing(() => outcomes.length >= 2, "both writes tried", clock, 50);
      deepEqual(outcomes, ["refused", "refused"]);
      await rejects(() => job.wait(), JobFailedError);
      equal((await ctx.storage.listTasks({ jobId: job.id })).length, 1, "no child");
      equal(await ctx.storage.getCache(job.id, "late"), undefined);
      await executor.shutdown({ graceMs: 0 });
    },
  },
  {
    name: "spawn() with a dependsOn that is not an array is a JobValidationError",
    async run(ctx) {
      let error: unknown;
      const { executor } = harness(ctx.storage, [
        agent("kid", (_i, c) => {
          try {
            c.spawn({ key: "x", agent: "echo", dependsOn: "ab" as unknown as string[] });
          } catch (e) {
            error = e;
          }
          return null;
        }),
        echo,
      ]);
      executor.start();
      const job = await executor.submit({ name: "bad", tasks: [{ key: "a", agent: "kid" }] });
      await job.wait();
      ok(error instanceof JobValidationError, String(error));
      ok((error as JobValidationError).message.includes("must be an array"), (error as Error).message);
      await executor.shutdown();
    },
  },
  {
    name: "JobHandle.on() sees only its own job's events",
    async run(ctx) {
      const { executor } = harness(ctx.storage, [echo]);
      executor.start();
      const one = await executor.submit({ name: "1", tasks: [{ key: "a", agent: "echo" }] });
      const keys: string[] = [];
      const two = await executor.submit({ name: "2", tasks: [{ key: "b", agent: "echo" }] });
      two.on("task:completed", (e) => keys.push(e.task.key));
      await one.wait();
      await two.wait();
      await until(() => keys.length === 1, "event");
      deepEqual(keys, ["b"]);
      await executor.shutdown();
    },
  },
  {
    name: "a review() that conflicts because the task was rerun meanwhile is not applied to the new output",
    async run(ctx) {
      // One person accepts draft 1; before the accept is written, another rejects it and the
      // rerun completes with draft 2. The accept was a decision on draft 1: it must not be
      // planned again and accept draft 2, which nobody reviewed (nor may a retryTask() of one
      // blocked episode send on the next one).
      const writer = agent("writer", (_i, c) => `draft ${c.task.attempt}`);
      let id = "";
      let raced = false;
      const storage = intercept(ctx.storage, {
        commit: (commit) => async (ops, now) => {
          if (!raced && ops.some((o) => o.type === "updateTask" && o.id === id && o.set.status === "accepted")) {
            raced = true;
            await executor.review(id, "reject", "redo");
            await until(async () => {
              const t = (await ctx.storage.getTask(id))!;
              return t.status === "completed" && t.attempts === 2;
            }, "the rerun completed");
          }
          return await commit(ops, now);
        },
      });
      const { executor } = harness(storage, [writer]);
      executor.start();
      const job = await executor.submit({
        name: "two reviewers",
        tasks: [{ key: "w", agent: "writer", review: true, maxAttempts: 3 }],
      });
      await until(async () => byKey(await job.tasks()).w!.status === "completed", "draft 1 awaiting review");
      id = byKey(await job.tasks()).w!.id;
      await rejects(() => executor.review(id, "accept"), ConflictError);
      ok(raced, "the task was rerun between the accept's read and its write");
      const w = (await ctx.storage.getTask(id))!;
      equal(w.status, "completed", "draft 2 still awaits review");
      deepEqual(w.output, "draft 2");
      await executor.shutdown();
    },
  },
  {
    name:
      "a retryTask() that conflicts because another retry ran the task and it was blocked again does not send it on",
    async run(ctx) {
      // Two people retry one blocked task at once. The first retry lands, another executor
      // runs the task and it is blocked again, then the second retry's write arrives: it was
      // a decision on the first block, not on this one.
      const block = async (now: number) => {
        const [claimed] = await ctx.storage.claimReady({ limit: 1, now, owner: "other", leaseMs: 10_000 });
        await ctx.storage.commit([{
          type: "updateTask",
          id: claimed!.id,
          expect: { version: claimed!.version, status: "running" },
          set: { status: "blocked", statusReason: "Interrupted", leaseOwner: null, leaseExpiresAt: null },
        }], now);
      };
      let raced = false;
      const storage = intercept(ctx.storage, {
        commit: (commit) => async (ops, now) => {
          const op = ops[0];
          if (!raced && op?.type === "updateTask" && op.set.statusReason === "Retried by a person") {
            raced = true;
            await commit([{ ...op }], now); // the other person's retry
            await block(now!);
          }
          return await commit(ops, now);
        },
      });
      const { executor, clock } = harness(storage, [echo]);
      const job = await executor.submit({
        name: "r",
        tasks: [{ key: "a", agent: "echo", durability: "at-most-once" }],
      });
      await block(clock.now());
      const a = byKey(await job.tasks()).a!;
      await rejects(() => executor.retryTask(a.id), ConflictError);
      ok(raced, "the task was retried and blocked again between the read and the write");
      const after = (await ctx.storage.getTask(a.id))!;
      equal(after.status, "blocked", "sent on once, not twice");
      equal(after.attempts, 2);
      await executor.shutdown();
    },
  },
  {
    name:
      "wait({ signal }) stops waiting when the signal aborts (already, while waiting, or while a failed read backs off)",
    async run(ctx) {
      const reason = new Error("the caller gave up");
      let failReads = false;
      let abortOnRead: AbortController | null = null;
      let failed = 0;
      const storage = intercept(ctx.storage, {
        getJob: (getJob) => (id) => {
          if (!failReads) return getJob(id);
          failed++;
          abortOnRead?.abort(reason);
          return Promise.reject(new StorageError("connection reset"));
        },
      });
      const gate = deferred();
      const { executor, clock } = harness(storage, [agent("held", () => gate.promise.then(() => "done"))]);
      executor.start();
      const job = await executor.submit({ name: "w", tasks: [{ key: "a", agent: "held" }] });
      // Already aborted: at once.
      const before = new AbortController();
      before.abort(reason);
      equal(await job.wait({ signal: before.signal }).catch((e) => e), reason);
      // Aborted while waiting: at once, without time passing; the job goes on.
      const during = new AbortController();
      let outcome: unknown;
      void job.wait({ signal: during.signal }).then((v) => (outcome = v), (e) => (outcome = e));
      await until(() => executor.stats().running === 1, "a running", clock);
      during.abort(reason);
      await until(() => outcome !== undefined, "wait() to stop", clock);
      equal(outcome, reason);
      // Aborted while a failed read waits to be retried: at once, not after the backoff.
      failReads = true;
      const backoff = new AbortController();
      outcome = undefined;
      void job.wait({ signal: backoff.signal }).then((v) => (outcome = v), (e) => (outcome = e));
      await until(() => failed > 0, "a failed read", clock);
      backoff.abort(reason);
      await until(() => outcome !== undefined, "wait() to stop during its backoff", clock);
      equal(outcome, reason);
      // Aborted while the read that then fails is under way: at once too.
      const reading = new AbortController();
      abortOnRead = reading;
      outcome = undefined;
      void job.wait({ signal: reading.signal }).then((v) => (outcome = v), (e) => (outcome = e));
      await until(() => outcome !== undefined, "wait() to stop after the read", clock);
      equal(outcome, reason);
      failReads = false;
      gate.resolve();
      deepEqual(await job.wait(), { a: "done" }, "the job went on");
      await executor.shutdown();
    },
  },
  {
    name: "wait({ signal }) stops when the signal aborts while a read of the storage never answers",
    async run(ctx) {
      const reason = new Error("the caller gave up");
      let hang: "getJob" | "listTasks" | null = null;
      const storage = intercept(ctx.storage, {
        getJob: (getJob) => (id) => hang === "getJob" ? new Promise(() => {}) : getJob(id),
        listTasks: (listTasks) => (q) => hang === "listTasks" ? new Promise(() => {}) : listTasks(q),
      });
      const gate = deferred();
      const { executor, clock } = harness(storage, [agent("held", () => gate.promise.then(() => "done"))]);
      executor.start();
      const job = await executor.submit({ name: "w", tasks: [{ key: "a", agent: "held" }] });
      // The read of the job never answers (a dropped connection no driver noticed).
      hang = "getJob";
      const reading = new AbortController();
      let outcome: unknown;
      void job.wait({ signal: reading.signal }).then((v) => (outcome = v), (e) => (outcome = e));
      await clock.advance(0);
      reading.abort(reason);
      await until(() => outcome !== undefined, "wait() to stop during a read that never answers", clock);
      equal(outcome, reason);
      // The job ended; the list of its outputs never answers.
      hang = null;
      gate.resolve();
      await until(async () => (await ctx.storage.getJob(job.id))?.status === "completed", "the job to end", clock);
      hang = "listTasks";
      const listing = new AbortController();
      outcome = undefined;
      void job.wait({ signal: listing.signal }).then((v) => (outcome = v), (e) => (outcome = e));
      await clock.advance(0);
      listing.abort(reason);
      await until(() => outcome !== undefined, "wait() to stop during a list that never answers", clock);
      equal(outcome, reason);
      hang = null;
      deepEqual(await job.wait(), { a: "done" });
      await executor.shutdown();
    },
  },
  {
    name: "submit() whose createJob was applied with its answer lost returns the job, stored once, " +
      "when the failure is its last retry or every read-back before it failed",
    async run(ctx) {
      // Per submit: which createJob calls fail before reaching storage, which after being applied,
      // and how many reads of the job fail first.
      const scenarios = [
        { name: "lost-last", before: [1, 2, 3, 4, 5], after: [6], failedReads: 0 },
        { name: "reads-fail", before: [], after: [1], failedReads: 5 },
      ];
      let scenario = scenarios[0]!;
      let creates = 0;
      let readsToFail = 0;
      const storage = intercept(ctx.storage, {
        createJob: (createJob) => async (job, tasks) => {
          const call = ++creates;
          if (scenario.before.includes(call)) throw new StorageError("connection reset");
          const result = await createJob(job, tasks);
          if (scenario.after.includes(call)) throw new StorageError("connection reset before the answer");
          return result;
        },
        getJob: (getJob) => (id) =>
          readsToFail-- > 0 ? Promise.reject(new StorageError("connection reset")) : getJob(id),
      });
      const { executor, clock } = harness(storage, [echo]);
      executor.start();
      for (const s of scenarios) {
        scenario = s;
        creates = 0;
        readsToFail = s.failedReads;
        const submitted = executor.submit({ name: s.name, tasks: [{ key: "a", agent: "echo", input: s.name }] });
        const out = await clock.runUntil(submitted.then((h) => h, (e: unknown) => e as Error), { maxMs: 3_600_000 });
        ok(!(out instanceof Error), `${s.name}: submit() threw for a job it stored: ${String(out)}`);
        const stored = (await ctx.storage.listJobs()).filter((j) => j.name === s.name);
        equal(stored.length, 1, `${s.name}: stored once`);
        equal((out as { id: string }).id, stored[0]!.id);
        deepEqual(await clock.runUntil((out as { wait(): Promise<unknown> }).wait()), { a: s.name });
      }
      await executor.shutdown();
    },
  },
  {
    name: "a wait() whose storage.watch() throws leaves no watcher behind once the next wait() ends",
    async run(ctx) {
      let failWatch = true;
      let watching = 0;
      const storage = intercept(ctx.storage, {
        watch: (watch) => (listener) => {
          if (failWatch) throw new Error("watch failed");
          const off = watch(listener);
          watching++;
          return () => {
            watching--;
            off();
          };
        },
      });
      // Never started: its only watcher is the one its wait()s share.
      const client = harness(storage, [echo]);
      const job = await client.executor.submit({ name: "w", tasks: [{ key: "a", agent: "echo", input: 1 }] });
      await rejects(() => job.wait(), Error, "watch failed");
      failWatch = false;
      const worker = harness(ctx.storage, [echo], { clock: client.clock });
      worker.executor.start();
      deepEqual(await job.wait(), { a: 1 });
      equal(watching, 0, "the storage watcher of wait() was taken off");
      await worker.executor.shutdown();
    },
  },
];
