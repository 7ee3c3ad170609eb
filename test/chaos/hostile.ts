/**
 * The hostile-input suite: values an attacker or a bug may hand the executor, and
 * records damaged or tampered with in storage. Each one ends in a typed error, and a
 * refused submission writes nothing: `__proto__` / `constructor` keys (kept as data, no
 * prototype pollution), nesting 10,000 levels deep, a 50 MB input and an output over
 * `maxPayloadBytes`, values JSON has no form for, strings that are not valid UTF-16, a
 * schema with a `$ref` to a remote URL (never fetched), and stored records of the wrong
 * shape (a `StorageCorruptError` on read).
 */

import { JobValidationError, JsonValueError, PayloadTooLargeError, StorageCorruptError } from "../../src/errors.ts";
import type { TaskContext } from "../../src/context.ts";
import type { Executor } from "../../src/executor.ts";
import { defineJsonAgent } from "../../src/json-agent.ts";
import { jsonSize } from "../../src/payload.ts";
import type { JsonSchema } from "../../src/json-schema.ts";
import { AgentRegistry } from "../../src/registry.ts";
import type { JobSpec, JsonValue, Task, TaskSpec } from "../../src/types.ts";
import { deepEqual, equal, ok, rejects, throws } from "../conformance/assert.ts";
import { agent } from "../conformance/executor-kit.ts";
import type { Case } from "../conformance/harness.ts";
import { type ReliabilityContext, reportingExecutor, settled, sleep, within } from "./kit.ts";

const hasOwn = (o: unknown, key: string): boolean =>
  o !== null && typeof o === "object" && Object.prototype.hasOwnProperty.call(o, key);

/** Nested arrays `depth` levels deep. */
function nested(depth: number): JsonValue {
  let v: JsonValue = 0;
  for (let i = 0; i < depth; i++) v = [v];
  return v;
}

/** Nested objects `depth` levels deep. */
function nestedObjects(depth: number): JsonValue {
  let v: JsonValue = { leaf: true };
  for (let i = 0; i < depth; i++) v = { next: v };
  return v;
}

/** Submit `spec` and expect a `JobValidationError` with a problem of `code`; nothing may be written. */
async function refused(ctx: ReliabilityContext, executor: Executor, spec: JobSpec, code: string, text?: string) {
  const before = (await ctx.storage.listJobs()).length;
  const e = await rejects<JobValidationError>(() => executor.submit(spec), JobValidationError);
  ok(
    e.problems.some((p) => p.code === code && (text === undefined || p.message.includes(text))),
    `expected a "${code}" problem${text ? ` mentioning "${text}"` : ""}, got ${JSON.stringify(e.problems)}`,
  );
  equal((await ctx.storage.listJobs()).length, before, "nothing was written");
}

/** Run one task whose agent returns `output`; return the stored task. */
async function runOutput(
  ctx: ReliabilityContext,
  output: (c: TaskContext) => unknown,
  options: { maxPayloadBytes?: number } = {},
): Promise<Task> {
  const { executor } = reportingExecutor(ctx.storage, [agent("emit", (_input, c) => output(c))], options);
  executor.start();
  const job = await executor.submit({ name: "emit", tasks: [{ key: "a", agent: "emit" }] });
  await settled(job);
  await executor.shutdown();
  const [t] = await ctx.storage.listTasks({ jobId: job.id });
  ok(t);
  return t;
}

function failedFor(t: Task, name: string, text: string): void {
  equal(t.status, "failed", `status (${t.error?.name}: ${t.error?.message})`);
  equal(t.error?.name, name);
  ok(t.error?.message.includes(text), `error message "${t.error?.message}" mentions "${text}"`);
  equal(t.error?.retryable, false, "not retryable");
  equal(t.attempts, 1, "not retried");
  equal(t.output, null, "no output stored");
}

class Point {
  constructor(readonly x: number) {}
}

/** Values JSON has no form for, each with what the error says. */
function nonJson(): [string, () => unknown, string][] {
  const cyclic: Record<string, unknown> = { a: 1 };
  cyclic["self"] = cyclic;
  return [
    ["a function", () => ({ f: () => 1 }), "function"],
    ["a BigInt", () => ({ n: 10n }), "BigInt"],
    ["a symbol", () => [Symbol("s")], "symbol"],
    ["NaN", () => ({ x: NaN }), "not finite"],
    ["Infinity", () => [Infinity], "not finite"],
    ["a Date", () => ({ when: new Date(0) }), "not a plain object"],
    ["a Map", () => new Map([["a", 1]]), "not a plain object"],
    ["a class instance", () => ({ p: new Point(1) }), "not a plain object"],
    ["undefined in an array", () => [1, undefined], "undefined"],
    ["a cycle", () => cyclic, "cyclic"],
  ];
}

/** Cases that do not depend on the storage: run once per runtime. */
export const hostileOnceCases: Case<ReliabilityContext>[] = [
  {
    name: "a schema with a $ref to a remote URL fails registration with a clear error and fetches nothing",
    async run() {
      const g = globalThis as { fetch?: unknown };
      const original = g.fetch;
      const fetched: string[] = [];
      g.fetch = (url: unknown) => {
        fetched.push(String(url));
        return Promise.reject(new Error("network access in a test"));
      };
      try {
        for (
          const schema of [
            { $ref: "https://schemas.example.invalid/evil.json" },
            { type: "object", properties: { a: { $ref: "http://127.0.0.1:9/x.json#/defs/a" } } },
            { $id: "https://schemas.example.invalid/root.json", $ref: "other.json" },
          ] as JsonSchema[]
        ) {
          const remote = defineJsonAgent({
            name: "remote",
            description: "A schema that points elsewhere",
            inputSchema: schema,
            outputSchema: {},
            execute: () => null,
          });
          const e = throws(() => new AgentRegistry().register(remote), TypeError, "invalid inputSchema");
          ok(/resolve reference/i.test(e.message), `the error says the reference is unresolved: ${e.message}`);
        }
        await sleep(10); // anything fetched asynchronously would show by now
        deepEqual(fetched, [], "no network call");
      } finally {
        g.fetch = original;
      }
    },
  },
];

/** Cases run on every target. */
export const hostileCases: Case<ReliabilityContext>[] = [
  {
    name: "__proto__ and constructor keys in inputs, outputs and task keys round-trip as data and pollute nothing",
    async run(ctx) {
      const input = JSON.parse(
        '{"__proto__":{"polluted":"yes"},"constructor":{"prototype":{"polluted":"yes"}},"list":[{"__proto__":{"x":1}}]}',
      ) as JsonValue;
      const output = JSON.parse('{"__proto__":{"isAdmin":true},"constructor":{"prototype":{"isAdmin":true}}}');
      let seenDeps: Record<string, JsonValue> = {};
      const { executor } = reportingExecutor(ctx.storage, [
        agent("echo", (i) => i),
        agent("emit", () => output),
        agent("join", async (_i, c) => {
          seenDeps = await c.dependencyOutputs();
          return Object.keys(seenDeps).length;
        }),
      ]);
      executor.start();
      const job = await executor.submit({
        name: "proto",
        metadata: input,
        tasks: [
          { key: "__proto__", agent: "echo", input },
          { key: "constructor", agent: "emit" },
          { key: "join", agent: "join", dependsOn: ["__proto__", "constructor"] },
        ],
      });
      const out = await settled(job);
      await executor.shutdown();
      ok(!(out instanceof Error), `job failed: ${(out as Error).message}`);
      const probe = {} as Record<string, unknown>;
      equal(probe["polluted"], undefined, "Object.prototype is clean");
      equal(probe["isAdmin"], undefined, "Object.prototype is clean");
      equal(Object.getPrototypeOf(out), Object.prototype, "the outputs object kept its prototype");
      ok(hasOwn(out, "__proto__") && hasOwn(out, "constructor"), "task keys are own keys of the outputs");
      deepEqual(out["__proto__"], input);
      ok(hasOwn(out["__proto__"], "__proto__"), "the echoed input keeps __proto__ as data");
      ok(hasOwn(out["constructor"], "__proto__"), "the output keeps __proto__ as data");
      equal(out["join"], 2);
      ok(hasOwn(seenDeps, "__proto__") && hasOwn(seenDeps, "constructor"), "dependencyOutputs() keeps both keys");
      const stored = await ctx.storage.listTasks({ jobId: job.id });
      const first = stored.find((t) => t.key === "__proto__")!;
      ok(hasOwn(first.input, "__proto__"), "stored input keeps __proto__ as data");
      equal(Object.getPrototypeOf(first.input), Object.prototype, "stored input has a plain prototype");
      deepEqual((first.input as Record<string, JsonValue>)["__proto__"], { polluted: "yes" });
      ok(hasOwn((await ctx.storage.getJob(job.id))!.metadata, "__proto__"), "metadata keeps __proto__ as data");
      equal(({} as Record<string, unknown>)["polluted"], undefined, "still clean after reading back");
    },
  },
  {
    name: "nesting 10,000 levels deep is refused at submission with nothing written, and fails an attempt for good",
    async run(ctx) {
      const { executor } = reportingExecutor(ctx.storage, [agent("echo", (i) => i)]);
      await refused(
        ctx,
        executor,
        {
          name: "deep",
          tasks: [{ key: "a", agent: "echo", input: nested(10_000) }],
        },
        "invalid-input",
        "deeper than 1000",
      );
      await refused(
        ctx,
        executor,
        {
          name: "deep",
          tasks: [{ key: "a", agent: "echo", input: nestedObjects(10_000) }],
        },
        "invalid-input",
        "deeper than 1000",
      );
      const t = await runOutput(ctx, () => nested(10_000));
      failedFor(t, "JsonValueError", "deeper than 1000");
    },
  },
  {
    name: "nesting values already checked (a cache value, a job's output) still counts their levels against the limit",
    async run(ctx) {
      // Each write wraps the value read back: the executor's own frozen copy. Left
      // unchecked, 5,000 levels pass every check, then no storage can write them (the
      // JSON text of sql.js or PostgreSQL overflows the stack) or they read back as a value
      // the limit forbids.
      const t = await runOutput(ctx, async (c) => {
        let v: JsonValue = 0;
        for (let i = 0; i < 5_000; i++) {
          c.cache.set("deep", [v]);
          v = (await c.cache.get("deep"))!;
        }
        return v;
      });
      failedFor(t, "JsonValueError", "deeper than 1000");
      // A job's output at the limit, wrapped once more in a new input: refused, as the
      // same value read back from a durable storage would be.
      const { executor } = reportingExecutor(ctx.storage, [agent("deep", () => nested(1_000))]);
      executor.start();
      const job = await executor.submit({ name: "deep", tasks: [{ key: "a", agent: "deep" }] });
      const out = await job.wait();
      await refused(
        ctx,
        executor,
        { name: "deeper", tasks: [{ key: "b", agent: "deep", input: [out["a"]!] }] },
        "invalid-input",
        "deeper than 1000",
      );
      await executor.shutdown();
    },
  },
  {
    name: "a 50 MB input is refused at submission with a typed error and nothing written",
    async run(ctx) {
      const { executor } = reportingExecutor(ctx.storage, [agent("echo", (i) => i)]);
      const mb = 1024 * 1024;
      await refused(
        ctx,
        executor,
        {
          name: "big",
          tasks: [{ key: "a", agent: "echo", input: "x".repeat(50 * mb) }],
        },
        "payload-too-large",
        "maxPayloadBytes",
      );
      const chunk = "y".repeat(mb);
      await refused(
        ctx,
        executor,
        {
          name: "big",
          tasks: [
            { key: "ok", agent: "echo", input: 1 },
            { key: "a", agent: "echo", input: { parts: Array.from({ length: 50 }, () => chunk) } },
          ],
        },
        "payload-too-large",
        '"a"',
      );
      await refused(
        ctx,
        executor,
        {
          name: "big",
          metadata: { blob: "z".repeat(11 * mb) },
          tasks: [{ key: "a", agent: "echo", input: 1 }],
        },
        "payload-too-large",
        "metadata",
      );
    },
  },
  {
    name: "maxPayloadBytes is configurable and counts UTF-8 bytes of JSON",
    async run(ctx) {
      const { executor } = reportingExecutor(ctx.storage, [agent("echo", (i) => i)], { maxPayloadBytes: 100 });
      // 49 two-byte characters plus quotes: 100 bytes, just fits; one more does not.
      executor.start();
      const job = await executor.submit({ name: "fits", tasks: [{ key: "a", agent: "echo", input: "é".repeat(49) }] });
      deepEqual(await settled(job), { a: "é".repeat(49) });
      await executor.shutdown();
      await refused(
        ctx,
        executor,
        {
          name: "over",
          tasks: [{ key: "a", agent: "echo", input: "é".repeat(50) }],
        },
        "payload-too-large",
        "maxPayloadBytes (100)",
      );
      throws(
        () => reportingExecutor(ctx.storage, [], { maxPayloadBytes: 0 }),
        RangeError,
        '"maxPayloadBytes"',
      );
    },
  },
  {
    name: "an output over maxPayloadBytes fails the attempt for good with PayloadTooLargeError",
    async run(ctx) {
      const t = await runOutput(ctx, () => ({ text: "y".repeat(5000) }), { maxPayloadBytes: 1024 });
      failedFor(t, "PayloadTooLargeError", "over maxPayloadBytes (1024)");
      ok(new PayloadTooLargeError("x", 2, 1) instanceof Error);
      // Spawned children's inputs and cache values are held to the same limit.
      const { executor } = reportingExecutor(ctx.storage, [
        agent("spawner", (_i, c) => {
          c.spawn({ key: "child", agent: "spawner", input: "z".repeat(2000) });
          return "small";
        }),
        agent("cacher", (_i, c) => {
          c.cache.set("big", "z".repeat(2000));
          return "small";
        }),
        // The limit is met where the agent can still react: spawn() and set() throw at once.
        agent("careful", (_i, c) => {
          const refused: string[] = [];
          for (
            const write of [
              () => c.spawn({ key: "child", agent: "spawner", input: "z".repeat(2000) }),
              () => c.cache.set("big", "z".repeat(2000)),
              () => c.state("s").set("big", "z".repeat(2000)),
            ]
          ) {
            try {
              write();
            } catch (e) {
              refused.push((e as Error).name);
            }
          }
          return refused;
        }),
      ], { maxPayloadBytes: 1024 });
      executor.start();
      const job = await executor.submit({
        name: "effects",
        tasks: [{ key: "s", agent: "spawner" }, { key: "c", agent: "cacher" }],
      });
      await settled(job);
      const careful = await executor.submit({ name: "careful", tasks: [{ key: "k", agent: "careful" }] });
      deepEqual(await careful.wait(), {
        k: ["PayloadTooLargeError", "PayloadTooLargeError", "PayloadTooLargeError"],
      });
      await executor.shutdown();
      const stored = await ctx.storage.listTasks({ jobId: job.id });
      equal(stored.length, 2, "no child was written");
      for (const s of stored) failedFor(s, "PayloadTooLargeError", "over maxPayloadBytes");
      equal(await ctx.storage.getCache(job.id, "big"), undefined, "no cache value was written");
      equal(await ctx.storage.getState("s", "big"), undefined, "no state value was written");
    },
  },
  {
    name: "jsonSize is the UTF-8 length of JSON.stringify for primitives and trees; small outputs meet tiny limits",
    async run(ctx) {
      const utf8 = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)).length;
      const values: JsonValue[] = [null, true, false, 0, -1.5, 1e21, 123456789, "", 'é\n"x', [], {}, [null, 1], {
        a: [true, { b: "ü" }],
      }];
      for (const v of values) equal(jsonSize(v), utf8(v), `jsonSize(${JSON.stringify(v)})`);
      equal(jsonSize(NaN), 4, "NaN is written as null");
      // A frozen object whose inner object still changes is measured again, not remembered.
      const inner: { text: string } = { text: "" };
      const outer = Object.freeze({ inner });
      equal(jsonSize(outer), utf8(outer));
      inner.text = "x".repeat(1000);
      equal(jsonSize(outer), utf8(outer), "measured after the inner change");
      // Output limits on values measured without walking: null and true are 4 bytes, false 5.
      for (const fits of [null, true, 1234]) {
        equal((await runOutput(ctx, () => fits, { maxPayloadBytes: 4 })).status, "completed");
      }
      failedFor(
        await runOutput(ctx, () => false, { maxPayloadBytes: 4 }),
        "PayloadTooLargeError",
        'output of task "a"',
      );
      failedFor(await runOutput(ctx, () => 12345, { maxPayloadBytes: 4 }), "PayloadTooLargeError", "(4)");
    },
  },
  {
    name: "values JSON has no form for are refused at submission, and fail an attempt for good as output",
    async run(ctx) {
      const { executor } = reportingExecutor(ctx.storage, [agent("echo", (i) => i)]);
      for (const [what, make, text] of nonJson()) {
        const before = (await ctx.storage.listJobs()).length;
        const e = await rejects<JobValidationError>(
          () => executor.submit({ name: what, tasks: [{ key: "a", agent: "echo", input: make() as JsonValue }] }),
          JobValidationError,
        );
        ok(e.problems.some((p) => p.code === "invalid-input" && p.message.includes(text)), `${what}: ${e.message}`);
        equal((await ctx.storage.listJobs()).length, before, `${what}: nothing written`);
      }
      for (const [what, make, text] of nonJson().slice(0, 4)) {
        const t = await runOutput(ctx, make);
        ok(t.error?.message.includes(text), `${what}: ${t.error?.message}`);
        failedFor(t, "JsonValueError", text);
      }
    },
  },
  {
    name: "a property whose value is undefined is left out of inputs and outputs, as JSON.stringify leaves it out",
    async run(ctx) {
      // TypeScript's optional properties make `{ note: undefined }` common: it is not an error.
      const t = await runOutput(ctx, () => ({ text: "hi", note: undefined, nested: { gone: undefined, kept: 1 } }));
      equal(t.status, "completed", t.error?.message);
      deepEqual(t.output, { text: "hi", nested: { kept: 1 } });
      ok(!Object.hasOwn(t.output as object, "note"));
      const { executor } = reportingExecutor(ctx.storage, [agent("echo", (i) => i)]);
      executor.start();
      const job = await executor.submit({
        name: "undef",
        tasks: [{ key: "a", agent: "echo", input: { a: 1, b: undefined } as unknown as JsonValue }],
      });
      deepEqual(await job.wait(), { a: { a: 1 } });
      await executor.shutdown();
    },
  },
  {
    name: "strings that are not valid UTF-16 are refused as input, as key and as output",
    async run(ctx) {
      const { executor } = reportingExecutor(ctx.storage, [agent("echo", (i) => i)]);
      for (const bad of ["\ud800", "a\udc00b", "\udbff\ud800", "ok\ud83d"]) {
        await refused(
          ctx,
          executor,
          {
            name: "utf16",
            tasks: [{ key: "a", agent: "echo", input: { text: bad } }],
          },
          "invalid-input",
          "lone surrogate",
        );
        await refused(
          ctx,
          executor,
          {
            name: "utf16",
            tasks: [{ key: "a", agent: "echo", input: { [bad]: 1 } }],
          },
          "invalid-input",
          "lone surrogate",
        );
      }
      const t = await runOutput(ctx, () => ["fine", "\udfff"]);
      failedFor(t, "JsonValueError", "lone surrogate");
      ok(new JsonValueError("", "x") instanceof Error);
      // A task key or job name that is not well formed would be changed by a store's text.
      await refused(ctx, executor, { name: "utf16", tasks: [{ key: "a\ud800", agent: "echo" }] }, "invalid-key", "");
      await refused(ctx, executor, { name: "x\udc00", tasks: [{ key: "a", agent: "echo" }] }, "invalid-job", "");
      await refused(
        ctx,
        executor,
        { name: "utf16", tasks: [{ key: "a", agent: "echo", description: "cut \ud83d" }] },
        "invalid-option",
        "description",
      );
      // A cache or state key is refused where the agent writes it (the commit would refuse it
      // and drop the whole result); the agent can go on without it.
      const refusedKeys: string[] = [];
      const writes = await runOutput(ctx, (c) => {
        for (const kv of [c.cache, c.state("s")]) {
          for (const write of [() => kv.set("k\ud800", 1), () => kv.delete("\udc00")]) {
            try {
              write();
            } catch (e) {
              if (e instanceof TypeError && e.message.includes("lone surrogate")) refusedKeys.push("refused");
            }
          }
        }
        // A state scope too, where the agent names it.
        try {
          c.state("s\udc00");
        } catch (e) {
          if (e instanceof TypeError && e.message.includes("lone surrogate")) refusedKeys.push("refused");
        }
        c.cache.set("fine", 1);
        return "done";
      });
      equal(writes.status, "completed", writes.statusReason ?? "");
      equal(refusedKeys.length, 5);
      equal(await ctx.storage.getCache(writes.jobId, "fine"), 1);
      // An agent's name is stored with its tasks: refused where it is registered.
      throws(() => new AgentRegistry().register(agent("echo\ud800", (i) => i)), TypeError, "lone surrogate");
      // A reviewer's reason is stored as text the storage takes, as cancelTask()'s is.
      executor.start();
      const rj = await executor.submit({
        name: "review",
        tasks: [{ key: "r", agent: "echo", input: 1, review: true }],
      });
      let r: Task | undefined;
      for (let i = 0; i < 4000; i++) {
        r = (await ctx.storage.listTasks({ jobId: rj.id }))[0];
        if (r?.status === "completed") break;
        await sleep(5);
      }
      equal(r?.status, "completed");
      const rejected = await within(5000, "review()", executor.review(r!.id, "reject", "no \ud800"));
      equal(rejected.reviewFeedback, "no \ufffd");
      await executor.shutdown({ graceMs: 0 });
    },
  },
  {
    name: "a huge or sparse task list is refused quickly with a bounded list of problems",
    async run(ctx) {
      const { executor } = reportingExecutor(ctx.storage, [agent("echo", (i) => i)]);
      const huge: TaskSpec[] = [];
      huge.length = 2 ** 32 - 1;
      await refused(ctx, executor, { name: "huge", tasks: huge }, "too-many-tasks", "at most");
      const holes: TaskSpec[] = [];
      holes.length = 50_000;
      const e = await rejects<JobValidationError>(
        () => executor.submit({ name: "holes", tasks: holes }),
        JobValidationError,
      );
      ok(e.problems.length <= 101, `${e.problems.length} problems`);
      ok(e.problems.at(-1)!.message.includes("49900 more tasks"), e.problems.at(-1)!.message);
      equal((await ctx.storage.listJobs()).length, 0);
    },
  },
  {
    name: "whatever an agent throws is stored as a readable error, and the storage and executor go on",
    async run(ctx) {
      const throwers: Record<string, () => unknown> = {
        "no-prototype": () => Object.create(null),
        "name-null": () => Object.assign(new Error("named null"), { name: null }),
        "odd-fields": () => Object.assign(new Error("x"), { name: 42, message: { not: "text" } }),
        "cut-emoji": () => new Error("cut \ud83d"),
        "hostile-proxy": () =>
          new Proxy({}, {
            get() {
              throw new Error("trap");
            },
            getPrototypeOf() {
              throw new Error("trap");
            },
          }),
        "undefined": () => undefined,
        // Error-like objects (a library's plain `{ message, code }`, an error of another realm)
        // and plain objects are told by their own text, not "[object Object]".
        "error-like": () => ({ name: "ApiError", message: "quota exceeded", code: 429 }),
        "plain-object": () => ({ code: 42, retry: false }),
        "bare-object": () => Object.assign(Object.create(null), { code: 7 }),
        "cyclic": () => {
          const o: Record<string, unknown> = { code: 1 };
          o.self = o;
          return o;
        },
        // Told in bounded time and length, whatever they hold: no walk of their contents.
        "rows": () => ({ status: 500, rows: Array.from({ length: 200_000 }, (_, i) => ({ i })) }),
        "many-fields": () => {
          const o: Record<string, unknown> = {};
          for (let i = 0; i < 1000; i++) {
            Object.defineProperty(o, `f${i}`, {
              enumerable: true,
              get: () => {
                fieldsRead++;
                return i;
              },
            });
          }
          return o;
        },
        "bytes": () => new Uint8Array(1_000_000),
        "array": () => Array.from({ length: 1_000_000 }, (_, i) => i),
        "small-array": () => ["timeout", 3, undefined, { at: 1 }],
      };
      let fieldsRead = 0;
      const agents = Object.entries(throwers).flatMap(([name, make]) => [
        agent(`${name}-sync`, () => {
          throw make();
        }),
        agent(`${name}-async`, async () => {
          await Promise.resolve();
          throw make();
        }),
      ]);
      const { executor } = reportingExecutor(ctx.storage, [...agents, agent("echo", (i) => i)]);
      executor.start();
      const job = await executor.submit({
        name: "throwers",
        tasks: agents.map((a) => ({ key: a.name, agent: a.name, maxAttempts: 1 })),
      });
      await settled(job);
      const tasks = await ctx.storage.listTasks({ jobId: job.id });
      equal(tasks.length, agents.length);
      for (const t of tasks) {
        equal(t.status, "failed", t.key);
        ok(typeof t.error?.name === "string" && typeof t.error.message === "string", `${t.key}: ${t.error}`);
      }
      const byKey = Object.fromEntries(tasks.map((t) => [t.key, t.error!]));
      equal(byKey["name-null-sync"]!.message, "named null");
      equal(byKey["cut-emoji-async"]!.message, "cut \ufffd");
      deepEqual([byKey["error-like-sync"]!.name, byKey["error-like-sync"]!.message], ["ApiError", "quota exceeded"]);
      equal(byKey["plain-object-async"]!.message, 'Threw {"code":42,"retry":false}');
      equal(byKey["bare-object-sync"]!.message, 'Threw {"code":7}');
      equal(byKey["cyclic-sync"]!.message, 'Threw {"code":1,"self":{\u2026}}');
      equal(byKey["rows-async"]!.message, 'Threw {"status":500,"rows":[\u2026]}');
      ok(byKey["many-fields-sync"]!.message.startsWith('Threw {"f0":0,"f1":1,'), byKey["many-fields-sync"]!.message);
      ok(byKey["many-fields-sync"]!.message.endsWith('"f19":19,\u2026}'), byKey["many-fields-sync"]!.message);
      ok(fieldsRead <= 2 * 20, `${fieldsRead} fields read for two messages of 20`);
      equal(byKey["bytes-sync"]!.message, "Threw a Uint8Array of 1000000 bytes");
      equal(
        byKey["array-async"]!.message,
        "Threw [0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,\u2026 (1000000 items)]",
      );
      equal(byKey["small-array-sync"]!.message, 'Threw ["timeout",3,null,{\u2026}]');
      // The storage still claims, and the executor still runs work.
      const after = await executor.submit({ name: "after", tasks: [{ key: "a", agent: "echo", input: 1 }] });
      deepEqual(await settled(after), { a: 1 });
      await executor.shutdown();
    },
  },
  {
    name: "a commit refuses an error that is not { name, message, retryable, at }: stored tasks stay readable",
    async run(ctx) {
      const { executor } = reportingExecutor(ctx.storage, [agent("echo", (i) => i)]);
      const job = await executor.submit({ name: "e", tasks: [{ key: "a", agent: "echo" }] });
      const [t] = await ctx.storage.listTasks({ jobId: job.id });
      for (const error of ["text", { name: null, message: "m", retryable: true, at: 1 }, { name: "E", message: "m" }]) {
        await rejects(
          () =>
            ctx.storage.commit([{
              type: "updateTask",
              id: t!.id,
              expect: { version: t!.version },
              set: { error } as never,
            }]),
          TypeError,
          '"error"',
        );
      }
      equal((await ctx.storage.getTask(t!.id))!.version, t!.version);
      await executor.shutdown();
    },
  },
];

/** Stored records damaged behind the adapter's back: each read is a `StorageCorruptError`. */
export function tamperCases(): Case<ReliabilityContext>[] {
  async function stored(ctx: ReliabilityContext): Promise<{ job: string; task: string; other: string }> {
    const { executor } = reportingExecutor(ctx.storage, [agent("echo", (i) => i)]);
    const job = await executor.submit({
      name: "victim",
      tasks: [{ key: "a", agent: "echo", input: { n: 1 } }, { key: "b", agent: "echo", input: 2 }],
    });
    const [a, b] = await ctx.storage.listTasks({ jobId: job.id });
    return { job: job.id, task: a!.id, other: b!.id };
  }
  const corrupt = (field: string) => async (fn: () => Promise<unknown>) => {
    const e = await rejects<StorageCorruptError>(fn, StorageCorruptError, `"${field}"`);
    ok(e.message.includes("unreadable"), e.message);
  };
  return [
    {
      name: "a stored task with an unknown status is a StorageCorruptError on read",
      async run(ctx) {
        const ids = await stored(ctx);
        await ctx.tamper!.task(ids.task, { status: "exploded" });
        const check = corrupt("status");
        await check(() => ctx.storage.getTask(ids.task));
        await check(() => ctx.storage.getTasks([ids.other, ids.task]));
        await check(() => ctx.storage.listTasks({ jobId: ids.job }));
        deepEqual((await ctx.storage.getTask(ids.other))?.input, 2, "the other task still reads fine");
      },
    },
    {
      name: "a stored task with fields of the wrong type is a StorageCorruptError on read",
      async run(ctx) {
        for (
          const [field, value] of [
            ["attempts", "three"],
            ["review", "yes"],
            ["dependencies", "t1"],
            ["runAt", "soon"],
            ["durability", "sometimes"],
            ["error", { message: 42 }],
          ] as const
        ) {
          const ids = await stored(ctx);
          await ctx.tamper!.task(ids.task, { [field]: value });
          await corrupt(field)(() => ctx.storage.getTask(ids.task));
        }
      },
    },
    {
      name: "a stored task whose input is not JSON is a StorageCorruptError on read",
      async run(ctx) {
        const ids = await stored(ctx);
        await ctx.tamper!.taskText(ids.task, "input", "{not json");
        const e = await rejects<StorageCorruptError>(() => ctx.storage.getTask(ids.task), StorageCorruptError);
        ok(e.message.includes(ids.task), `names the task: ${e.message}`);
      },
    },
    {
      name: "a stored job with an unknown status or a wrong count is a StorageCorruptError on read",
      async run(ctx) {
        const ids = await stored(ctx);
        await ctx.tamper!.job(ids.job, { status: "exploded" });
        await corrupt("status")(() => ctx.storage.getJob(ids.job));
        await corrupt("status")(() => ctx.storage.listJobs());
        const again = await stored(ctx);
        await ctx.tamper!.job(again.job, { openCount: -1 });
        await corrupt("openCount")(() => ctx.storage.getJob(again.job));
      },
    },
    {
      name:
        "a tampered ready task makes claims fail: the executor reports it, keeps running, and goes on once repaired",
      async run(ctx) {
        const { executor, report } = reportingExecutor(ctx.storage, [agent("echo", (i) => i)], { pollIntervalMs: 20 });
        const job = await executor.submit({ name: "claim", tasks: [{ key: "a", agent: "echo", input: 5 }] });
        const [t] = await ctx.storage.listTasks({ jobId: job.id });
        await ctx.tamper!.task(t!.id, { attempts: "three" });
        executor.start();
        await within(
          5000,
          "a storage:error",
          (async () => {
            while (!report.storageErrors.some((e) => e.error instanceof StorageCorruptError)) await sleep(5);
          })(),
        );
        const seen = report.storageErrors.find((e) => e.error instanceof StorageCorruptError)!;
        equal(seen.operation, "claimReady");
        ok(executor.running, "the executor is still running");
        await ctx.tamper!.task(t!.id, { attempts: 0 });
        deepEqual(await settled(job), { a: 5 });
        await executor.shutdown();
      },
    },
  ];
}
