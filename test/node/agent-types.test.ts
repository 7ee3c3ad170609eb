/**
 * Type tests: what `defineAgent`, `defineJsonAgent` and `FromSchema` infer. These
 * assertions are checked by the type checker (`npm run check` runs tsc over test/), and
 * the `@ts-expect-error` lines prove that wrong inputs in job specs do not compile.
 */

import { describe, expectTypeOf, test } from "vitest";
import {
  type Agent,
  AgentRegistry,
  defineAgent,
  defineJsonAgent,
  Executor,
  type FromSchema,
  type InputOf,
  type JobSpec,
  type JobSpecFor,
  type JsonAgent,
  type JsonValue,
  type OutputOf,
  type TaskContext,
  type TaskSpecFor,
} from "../../mod.ts";
import { createMemoryStorage } from "../../adapters/memory.ts";

const add = defineAgent({
  name: "add",
  description: "Adds two numbers",
  execute: (input: { a: number; b: number }) => input.a + input.b,
});

const fetchTitle = defineAgent({
  name: "fetch-title",
  description: "Resolves to a title",
  execute: async (input: { url: string }, ctx) => {
    expectTypeOf(ctx).toEqualTypeOf<TaskContext<{ url: string }>>();
    await Promise.resolve();
    return { title: input.url };
  },
});

const summarize = defineJsonAgent({
  name: "summarize",
  description: "Summarises a text",
  inputSchema: {
    type: "object",
    properties: {
      text: { type: "string" },
      maxWords: { type: "integer" },
      style: { enum: ["short", "long"] },
      language: { type: ["string", "null"] },
      keywords: { type: "array", items: { type: "string" } },
      meta: { type: "object", properties: { source: { type: "string" } }, required: ["source"] },
    },
    required: ["text", "maxWords"],
    additionalProperties: false,
  },
  outputSchema: {
    type: "object",
    properties: { summary: { type: "string" }, words: { type: "number" }, done: { const: true } },
    required: ["summary", "words", "done"],
  },
  execute(input) {
    expectTypeOf(input.text).toEqualTypeOf<string>();
    expectTypeOf(input.style).toEqualTypeOf<"short" | "long" | undefined>();
    return { summary: input.text.slice(0, input.maxWords), words: input.maxWords, done: true };
  },
});

type SummarizeInput = {
  text: string;
  maxWords: number;
  style?: "short" | "long";
  language?: string | null;
  keywords?: string[];
  meta?: { source: string };
};

describe("types", () => {
  test("defineAgent() infers input and output from execute() and keeps the name literal", () => {
    expectTypeOf(add).toEqualTypeOf<Agent<{ a: number; b: number }, number, "add">>();
    expectTypeOf<InputOf<typeof add>>().toEqualTypeOf<{ a: number; b: number }>();
    expectTypeOf<OutputOf<typeof add>>().toEqualTypeOf<number>();
    expectTypeOf<OutputOf<typeof fetchTitle>>().toEqualTypeOf<{ title: string }>();
    expectTypeOf(add.name).toEqualTypeOf<"add">();
  });

  test("defineAgent() without an annotated input defaults to JsonValue", () => {
    const echo = defineAgent({ name: "echo", description: "", execute: (input) => input });
    expectTypeOf<InputOf<typeof echo>>().toEqualTypeOf<JsonValue>();
  });

  test("defineJsonAgent() infers input and output from the schemas", () => {
    expectTypeOf<InputOf<typeof summarize>>().toEqualTypeOf<SummarizeInput>();
    expectTypeOf<OutputOf<typeof summarize>>().toEqualTypeOf<{ summary: string; words: number; done: true }>();
    expectTypeOf(summarize).toExtend<JsonAgent<SummarizeInput, unknown, "summarize">>();
  });

  test("defineJsonAgent() rejects an execute() whose result does not match the output schema", () => {
    defineJsonAgent({
      name: "bad",
      description: "",
      inputSchema: { type: "string" },
      outputSchema: { type: "number" },
      // @ts-expect-error the output schema says number
      execute: (input) => input.toUpperCase(),
    });
  });

  test("execute() may return literals, tuples and arrays that the output schema allows", () => {
    const words: string[] = ["a"];
    const status = defineJsonAgent({
      name: "status",
      description: "",
      inputSchema: true,
      outputSchema: {
        type: "object",
        properties: {
          state: { enum: ["ok", "failed"] },
          words: { type: "array", items: { type: "string" } },
          more: { type: "array", items: { type: "string" } },
        },
        required: ["state", "words"],
      },
      execute: (input) => (input === null ? { state: "failed", words } : { state: "ok", words: ["x", "y"], more: [] }),
    });
    expectTypeOf<OutputOf<typeof status>>().toEqualTypeOf<
      { state: "ok" | "failed"; words: string[]; more?: string[] }
    >();
    expectTypeOf<InputOf<typeof status>>().toEqualTypeOf<JsonValue>();
  });

  test("FromSchema covers scalars, nullable type arrays, enum, const, arrays, objects and anyOf", () => {
    expectTypeOf<FromSchema<{ type: "string" }>>().toEqualTypeOf<string>();
    expectTypeOf<FromSchema<{ type: "integer" }>>().toEqualTypeOf<number>();
    expectTypeOf<FromSchema<{ type: "boolean" }>>().toEqualTypeOf<boolean>();
    expectTypeOf<FromSchema<{ type: "null" }>>().toEqualTypeOf<null>();
    expectTypeOf<FromSchema<{ type: readonly ["string", "null"] }>>().toEqualTypeOf<string | null>();
    expectTypeOf<FromSchema<{ enum: readonly ["a", 1] }>>().toEqualTypeOf<"a" | 1>();
    expectTypeOf<FromSchema<{ const: "x" }>>().toEqualTypeOf<"x">();
    expectTypeOf<FromSchema<{ type: "array"; items: { type: "number" } }>>().toEqualTypeOf<number[]>();
    expectTypeOf<FromSchema<{ type: "array" }>>().toEqualTypeOf<JsonValue[]>();
    expectTypeOf<FromSchema<{ type: "object" }>>().toEqualTypeOf<{ [key: string]: JsonValue }>();
    expectTypeOf<FromSchema<{ anyOf: readonly [{ type: "string" }, { type: "number" }] }>>()
      .toEqualTypeOf<string | number>();
    expectTypeOf<FromSchema<true>>().toEqualTypeOf<JsonValue>();
    expectTypeOf<FromSchema<{ description: "no type" }>>().toEqualTypeOf<JsonValue>();
    expectTypeOf<
      FromSchema<{ type: "object"; properties: { a: { type: "string" } }; additionalProperties: { type: "number" } }>
    >().toEqualTypeOf<{ a?: string; [key: string]: JsonValue }>();
  });

  test("FromSchema admits null where ajv does: nullable: true (which the default validator accepts)", () => {
    // ajv's `nullable` (from OpenAPI) lets null pass a typed schema: the type must say so,
    // or an agent typed `string` receives null.
    expectTypeOf<FromSchema<{ type: "string"; nullable: true }>>().toEqualTypeOf<string | null>();
    expectTypeOf<FromSchema<{ type: "string"; nullable: false }>>().toEqualTypeOf<string>();
    expectTypeOf<
      FromSchema<{ type: "object"; properties: { a: { type: "integer"; nullable: true } }; required: readonly ["a"] }>
    >().toEqualTypeOf<{ a: number | null }>();
  });

  test("FromSchema reads prefixItems (2020-12): items then types only the items after the prefix", () => {
    // For Ajv2020, `items: false` after `prefixItems` forbids items past the prefix; it does
    // not make every item `never` (which refused the valid ["x", 1] at compile time).
    expectTypeOf<
      FromSchema<
        { type: "array"; prefixItems: readonly [{ type: "string" }, { type: "number" }]; items: false; minItems: 2 }
      >
    >().toEqualTypeOf<[string, number]>();
    expectTypeOf<
      FromSchema<{ type: "array"; prefixItems: readonly [{ type: "string" }, { type: "number" }]; items: false }>
    >().toEqualTypeOf<[string?, number?]>();
    expectTypeOf<
      FromSchema<{
        type: "array";
        prefixItems: readonly [{ type: "string" }, { type: "number" }];
        items: { type: "boolean" };
        minItems: 1;
      }>
    >().toEqualTypeOf<[string, number?, ...boolean[]]>();
    expectTypeOf<FromSchema<{ type: "array"; prefixItems: readonly [{ type: "string" }] }>>()
      .toEqualTypeOf<[string?, ...JsonValue[]]>();
  });

  test("defineJsonAgent() takes draft-07 tuples (items as a list) and types them as tuples", () => {
    // The default validator is draft-07, where `items: [...]` checks items by position and
    // `additionalItems` the rest: a schema the validator accepts must compile.
    const move = defineJsonAgent({
      name: "move",
      description: "",
      inputSchema: {
        type: "array",
        items: [{ type: "string" }, { type: "integer" }],
        additionalItems: false,
        minItems: 2,
      },
      outputSchema: { type: "array", items: [{ type: "string" }], additionalItems: { type: "number" } },
      execute: ([direction, steps]) => [direction, steps],
    });
    expectTypeOf<InputOf<typeof move>>().toEqualTypeOf<[string, number]>();
    expectTypeOf<OutputOf<typeof move>>().toEqualTypeOf<[string?, ...number[]]>();
    expectTypeOf<FromSchema<{ type: "array"; items: readonly [{ type: "string" }] }>>()
      .toEqualTypeOf<[string?, ...JsonValue[]]>();
    const tasks: TaskSpecFor<typeof move>[] = [
      { key: "a", agent: "move", input: ["north", 3] },
      // @ts-expect-error the second item is an integer
      { key: "b", agent: "move", input: ["north", "3"] },
      // @ts-expect-error no items past the tuple
      { key: "c", agent: "move", input: ["north", 3, 4] },
    ];
    expectTypeOf(tasks).toExtend<JobSpec["tasks"]>();
  });

  test('anyOf / oneOf branches add to the schema around them ("one of these properties is required")', () => {
    // A branch holds only what it adds (here `required`): the value must also pass the
    // properties around it, so the input is an object, not any JSON value.
    const lookup = defineJsonAgent({
      name: "lookup",
      description: "",
      inputSchema: {
        type: "object",
        properties: { id: { type: "string" }, email: { type: "string" }, limit: { type: "integer" } },
        required: ["limit"],
        anyOf: [{ required: ["id"] }, { required: ["email"] }],
      },
      outputSchema: true,
      execute: (input) => input.limit,
    });
    expectTypeOf<InputOf<typeof lookup>>().toEqualTypeOf<
      { limit: number; id: string; email?: string } | { limit: number; email: string; id?: string }
    >();
    const tasks: TaskSpecFor<typeof lookup>[] = [
      { key: "a", agent: "lookup", input: { limit: 1, email: "a@b.c" } },
      // @ts-expect-error neither id nor email
      { key: "b", agent: "lookup", input: { limit: 1 } },
    ];
    expectTypeOf(tasks).toExtend<JobSpec["tasks"]>();
    expectTypeOf<FromSchema<{ type: "string"; oneOf: readonly [{ minLength: 1 }, { const: "" }] }>>()
      .toEqualTypeOf<string | "">();
  });

  test("a wrong input in a typed job spec is a compile error", () => {
    type Agents = typeof add | typeof summarize;
    const job: JobSpecFor<Agents> = {
      name: "typed",
      tasks: [
        { key: "sum", agent: "add", input: { a: 1, b: 2 } },
        { key: "text", agent: "summarize", input: { text: "hello", maxWords: 3, style: "short" }, dependsOn: ["sum"] },
      ],
    };
    const tasks: TaskSpecFor<Agents>[] = [
      // @ts-expect-error b must be a number
      { key: "x", agent: "add", input: { a: 1, b: "2" } },
      // @ts-expect-error maxWords is required by the input schema
      { key: "y", agent: "summarize", input: { text: "hello" } },
      // @ts-expect-error style is an enum
      { key: "z", agent: "summarize", input: { text: "hello", maxWords: 1, style: "medium" } },
      // @ts-expect-error no agent of that name
      { key: "w", agent: "subtract", input: { a: 1, b: 2 } },
    ];
    // A typed spec is still a plain JobSpec for the executor.
    expectTypeOf(job).toExtend<JobSpec>();
    expectTypeOf(tasks).toExtend<JobSpec["tasks"]>();
  });

  test("a typed job spec needs the input its agent requires, and submit() takes specs of interface-typed agents", async () => {
    interface Point {
      x: number;
      y: number;
    }
    const norm = defineAgent({ name: "norm", description: "Length", execute: (p: Point) => Math.hypot(p.x, p.y) });
    const total = defineAgent({ name: "total", description: "No input", execute: (_i: null) => 1 });
    type Agents = typeof add | typeof norm | typeof total;
    const tasks: TaskSpecFor<Agents>[] = [
      { key: "n", agent: "norm", input: { x: 3, y: 4 } },
      { key: "t", agent: "total" }, // an agent that takes null needs no input
      // @ts-expect-error add needs its input: a task without one would run with null
      { key: "a", agent: "add" },
    ];
    const spec: JobSpecFor<Agents> = { name: "typed", tasks };
    const executor = new Executor({
      storage: createMemoryStorage(),
      registry: new AgentRegistry().register(add).register(norm).register(total),
    });
    // An interface is not a JsonValue (no index signature), yet the typed spec is accepted.
    const job = await executor.submit(spec);
    expectTypeOf(job.id).toBeString();
    await executor.submit({ name: "plain", tasks: [{ key: "a", agent: "add", input: { a: 1, b: 2 } }] });
    // A plain spec still checks that its input is JSON.
    // @ts-expect-error a Date is not JSON
    await executor.submit({ name: "plain", tasks: [{ key: "a", agent: "add", input: new Date() }] }).catch(() => {});
  });

  test("submit() takes a job spec declared as const, typed or not", async () => {
    const tagged = defineJsonAgent({
      name: "tagged",
      description: "",
      inputSchema: { type: "object", properties: { tags: { type: "array", items: { type: "string" } } } },
      outputSchema: true,
      execute: (input) => input.tags ?? [],
    });
    const executor = new Executor({
      storage: createMemoryStorage(),
      registry: new AgentRegistry().register(add).register(tagged),
    });
    // `as const` keeps the agent names literal, and makes every array and object read-only:
    // tasks, dependsOn, input and metadata.
    const spec = {
      name: "frozen",
      metadata: { owners: ["ada"] },
      tasks: [
        { key: "sum", agent: "add", input: { a: 1, b: 2 } },
        { key: "tags", agent: "tagged", input: { tags: ["x", "y"] }, dependsOn: ["sum"] },
      ],
    } as const;
    await executor.submit(spec);
    await executor.submit<typeof add | typeof tagged>(spec);
    const wrong = { name: "wrong", tasks: [{ key: "t", agent: "tagged", input: { tags: [1] } }] } as const;
    // @ts-expect-error tags are strings
    await executor.submit<typeof add | typeof tagged>(wrong).catch(() => {});
    // Read-only input keeps a tuple a tuple: a wrong length is still refused.
    const pair = defineAgent({ name: "pair", description: "", execute: (p: [string, number]) => p[0] });
    const pairs: TaskSpecFor<typeof pair>[] = [
      { key: "p", agent: "pair", input: ["a", 1] as const },
      // @ts-expect-error a pair has two items
      { key: "q", agent: "pair", input: ["a", 1, 2] as const },
    ];
    expectTypeOf(pairs).toExtend<JobSpec["tasks"]>();
  });

  test("typed agents register into an AgentRegistry and come back as Agent", () => {
    const registry = new AgentRegistry().register(add).register(summarize);
    expectTypeOf(registry.get("add")).toEqualTypeOf<Agent | undefined>();
  });
});
