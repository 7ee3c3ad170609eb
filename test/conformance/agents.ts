/**
 * The agents suite: plain and JSON agents, validation, and the registry. Runner-neutral:
 * each runtime registers it from a tiny shim (test/node, test/runtimes/deno, test/runtimes/bun).
 */

import { type Agent, defineAgent, type JsonAgent } from "../../src/agent.ts";
import type { TaskContext } from "../../src/context.ts";
import { NonRetryableError, UnknownAgentError, ValidationError, type ValidationIssue } from "../../src/errors.ts";
import addFormats from "ajv-formats";
import { defineJsonAgent } from "../../src/json-agent.ts";
import { AgentRegistry } from "../../src/registry.ts";
import type { JsonValue } from "../../src/types.ts";
import { createAjvValidator } from "../../src/validation-ajv.ts";
import {
  type AjvStyleValidateFunction,
  type CompiledValidator,
  createPrecompiledValidator,
  NO_ISSUES,
  type Validator,
} from "../../src/validation.ts";
import { deepEqual, equal, ok, rejects, throws } from "./assert.ts";
import { type Case, register, type Registrar } from "./harness.ts";

export interface AgentsContext {
  /** A fresh registry without a validator of its own. */
  registry: AgentRegistry;
}

/** A context good enough for agents that only read their input. */
export function fakeContext(input: JsonValue): TaskContext {
  const none = (): never => {
    throw new Error("not available in this test");
  };
  const kv = { get: () => Promise.resolve(undefined), set: none, delete: none };
  return {
    task: {
      id: "t1",
      jobId: "j1",
      key: "k",
      agent: "a",
      parentId: null,
      dependencies: [],
      attempt: 1,
      maxAttempts: 1,
      durability: "at-least-once",
    },
    input,
    signal: new AbortController().signal,
    reviewFeedback: null,
    dependencyOutputs: () => Promise.resolve({}),
    spawn: none,
    cache: kv,
    state: () => kv,
    storage: {} as TaskContext["storage"],
    progress: () => {},
  };
}

const personSchema = {
  type: "object",
  properties: {
    name: { type: "string", minLength: 1 },
    age: { type: "integer", minimum: 0 },
    role: { enum: ["admin", "user"] },
    nickname: { type: ["string", "null"] },
    address: {
      type: "object",
      properties: { city: { type: "string" }, zip: { type: "string", pattern: "^[0-9]{5}$" } },
      required: ["city"],
    },
    tags: { type: "array", items: { type: "string" } },
  },
  required: ["name", "age"],
  additionalProperties: false,
} as const;

/** A JSON agent that counts its calls and returns `output(input)`. */
function greeter(output: (input: { name: string }) => JsonValue = (i) => ({ greeting: `Hello, ${i.name}` })) {
  const calls = { n: 0 };
  const agent = defineJsonAgent({
    name: "greet",
    description: "Greets a person",
    inputSchema: personSchema,
    outputSchema: {
      type: "object",
      properties: { greeting: { type: "string" } },
      required: ["greeting"],
      additionalProperties: false,
    },
    execute(input) {
      calls.n++;
      // The agent under test may lie about its output type: that is what output validation is for.
      return output(input) as { greeting: string };
    },
  });
  return { agent, calls };
}

const plain: Agent<JsonValue, JsonValue, "echo"> = defineAgent({
  name: "echo",
  description: "Returns its input",
  execute: (input: JsonValue) => input,
});

function paths(issues: readonly ValidationIssue[]): string[] {
  return issues.map((i) => `${i.path} ${i.keyword}`).sort();
}

/** Run `fn` with `Function` and `eval` replaced by throwing stubs, like a page whose CSP has no `unsafe-eval`. */
function withoutCodeGeneration<T>(fn: () => T): T {
  const g = globalThis as unknown as { Function: unknown; eval: unknown };
  const original = { Function: g.Function, eval: g.eval };
  const forbidden = () => {
    throw new EvalError("Refused to evaluate a string as JavaScript (no 'unsafe-eval')");
  };
  g.Function = forbidden;
  g.eval = forbidden;
  try {
    return fn();
  } finally {
    g.Function = original.Function;
    g.eval = original.eval;
  }
}

export const agentCases: Case<AgentsContext>[] = [
  {
    name: "a valid input and a valid output pass validation",
    async run({ registry }) {
      const { agent, calls } = greeter();
      registry.register(agent);
      const input = { name: "Ada", age: 36, role: "admin", nickname: null, tags: ["x"] };
      deepEqual(registry.inputIssues("greet", input), []);
      registry.validateInput("greet", input);
      registry.validateOutput("greet", { greeting: "Hello, Ada" });
      deepEqual(await registry.execute("greet", input, fakeContext(input)), { greeting: "Hello, Ada" });
      equal(calls.n, 1);
    },
  },
  {
    name: "an invalid input never reaches execute()",
    async run({ registry }) {
      const { agent, calls } = greeter();
      registry.register(agent);
      const input = { name: "Ada", age: "36" };
      const e = await rejects<ValidationError>(
        () => registry.execute("greet", input, fakeContext(input)),
        ValidationError,
        'Input of agent "greet" is invalid',
      );
      ok(e instanceof NonRetryableError, "a validation error is non-retryable");
      deepEqual(paths(e.issues), ["/age type"]);
      equal(calls.n, 0, "execute() never ran");
      throws(() => registry.validateInput("greet", input), ValidationError, "/age must be integer");
    },
  },
  {
    name: "an invalid output is a ValidationError even though execute() succeeded",
    async run({ registry }) {
      const { agent, calls } = greeter(() => ({ greeting: 42, extra: true }));
      registry.register(agent);
      const input = { name: "Ada", age: 36 };
      const e = await rejects<ValidationError>(
        () => registry.execute("greet", input, fakeContext(input)),
        ValidationError,
        'Output of agent "greet" is invalid',
      );
      equal(calls.n, 1, "execute() ran once");
      ok(e instanceof NonRetryableError);
      deepEqual(paths(e.issues), ["/extra additionalProperties", "/greeting type"]);
      throws(() => registry.validateOutput("greet", "not an object"), ValidationError, "(root) must be object");
    },
  },
  {
    name: "the error lists every failing path, keyword and message, readably",
    run({ registry }) {
      registry.register(greeter().agent);
      const input = {
        age: -1.5,
        role: "root",
        nickname: 7,
        address: { zip: "1234" },
        tags: ["ok", 3, null],
        extra: 1,
      };
      const e = throws(() => registry.validateInput("greet", input), ValidationError) as ValidationError;
      deepEqual(paths(e.issues), [
        "/address/city required",
        "/address/zip pattern",
        "/age minimum",
        "/age type",
        "/extra additionalProperties",
        "/name required",
        "/nickname type",
        "/role enum",
        "/tags/1 type",
        "/tags/2 type",
      ]);
      for (const issue of e.issues) {
        ok(issue.message.length > 0, `issue at ${issue.path} has a message`);
        ok(e.message.includes(`${issue.path} ${issue.message}`), `message mentions ${issue.path}`);
      }
      ok(e.message.startsWith('Input of agent "greet" is invalid: '), e.message);
      ok(e.message.includes("/name is required"), e.message);
      ok(e.message.includes('/role must be one of "admin", "user"'), e.message);
      deepEqual(registry.inputIssues("greet", input), [...e.issues]);
    },
  },
  {
    name: "plain agents and unknown names are never validated",
    async run({ registry }) {
      registry.register(plain);
      deepEqual(registry.inputIssues("echo", { anything: [1, 2] }), []);
      deepEqual(registry.inputIssues("nobody", 1), []);
      registry.validateInput("echo", undefined);
      registry.validateOutput("echo", Symbol("not json"));
      registry.validateInput("nobody", 1);
      registry.validateOutput("nobody", 1);
      deepEqual(await registry.execute("echo", { a: 1 }, fakeContext({ a: 1 })), { a: 1 });
      await rejects(() => registry.execute("nobody", 1, fakeContext(1)), UnknownAgentError, '"nobody"');
    },
  },
  {
    name: "registering a second agent with the same name is an error",
    run({ registry }) {
      registry.register(plain, { version: "1" });
      const other = defineAgent({ name: "echo", description: "Another echo", execute: () => null });
      throws(() => registry.register(other), TypeError, 'An agent named "echo" is already registered');
      equal(registry.get("echo"), plain, "the first registration stays");
      equal(registry.size, 1);
      ok(registry.unregister("echo"));
      ok(!registry.has("echo"));
      ok(!registry.unregister("echo"), "unregister() of an unknown name returns false");
      registry.register(other);
      equal(registry.get("echo"), other, "the name is free again after unregister()");
    },
  },
  {
    name: "validation follows unregister() and a new registration under the same name",
    run({ registry }) {
      registry.register(defineAgent({ name: "greet", description: "plain", execute: () => null }));
      registry.validateInput("greet", 42);
      registry.validateOutput("greet", 42);
      registry.unregister("greet");
      registry.validateInput("greet", 42);
      registry.register(greeter().agent);
      throws(() => registry.validateInput("greet", 42), ValidationError, "(root) must be object");
      throws(() => registry.validateOutput("greet", 42), ValidationError, "(root) must be object");
      registry.register(plain);
      registry.validateInput("echo", 42);
      throws(() => registry.validateInput("greet", 42), ValidationError);
      registry.unregister("greet");
      registry.validateInput("greet", 42);
    },
  },
  {
    name: "names like __proto__, constructor and 123 are ordinary agent names",
    run({ registry }) {
      equal(registry.get("constructor"), undefined);
      ok(!registry.has("toString") && !registry.has("__proto__"));
      deepEqual(registry.inputIssues("hasOwnProperty", 1), []);
      registry.validateInput("valueOf", 1);
      const names = ["__proto__", "constructor", "toString", "123", "b", "1"];
      for (const name of names) {
        registry.register(
          defineJsonAgent({
            name,
            description: name,
            inputSchema: { type: "string" },
            outputSchema: true,
            execute: () => null,
          }),
        );
      }
      deepEqual(registry.list().map((a) => a.name), names, "list() keeps registration order");
      for (const name of names) {
        ok(registry.has(name), name);
        equal(registry.get(name)?.description, name);
        throws(() => registry.validateInput(name, 1), ValidationError, `Input of agent "${name}"`);
      }
      ok(registry.unregister("__proto__"));
      ok(!registry.has("__proto__"));
      equal(Object.getPrototypeOf({}), Object.prototype, "no prototype was touched");
    },
  },
  {
    name: "metadata and schemas round-trip through list(), and find() selects by tag",
    run({ registry }) {
      const { agent } = greeter();
      const tags = ["people", "text"];
      registry.register(plain, { version: "1.0.0", author: "Ada", tags: ["util"] });
      registry.register(agent, { version: "2.1.0", tags });
      tags.push("mutated later");
      const list = registry.list();
      deepEqual(list.map((a) => a.name), ["echo", "greet"]);
      deepEqual(list[0], {
        name: "echo",
        description: "Returns its input",
        metadata: { version: "1.0.0", author: "Ada", tags: ["util"] },
        inputSchema: null,
        outputSchema: null,
      });
      deepEqual(list[1]?.metadata, { version: "2.1.0", tags: ["people", "text"] }, "metadata is a copy");
      equal(list[1]?.inputSchema, agent.inputSchema);
      equal(list[1]?.outputSchema, agent.outputSchema);
      deepEqual(registry.find({ tag: "people" }).map((a) => a.name), ["greet"]);
      deepEqual(registry.find({ tag: "util" }).map((a) => a.name), ["echo"]);
      deepEqual(registry.find({ tag: "none" }), []);
      deepEqual(registry.find({}).map((a) => a.name), ["echo", "greet"]);
      ok(registry.has("greet") && !registry.has("nobody"));
      equal(registry.get("nobody"), undefined);
      registry.register(defineAgent({ name: "bare", description: "", execute: () => null }));
      deepEqual(registry.list()[2]?.metadata, {}, "no metadata is an empty object");
    },
  },
  {
    name: "malformed agents and metadata are TypeErrors naming the option",
    run({ registry }) {
      throws(() => registry.register(null as unknown as Agent), TypeError, "Agent must be an object");
      throws(() => registry.register({ ...plain, name: "" }), TypeError, '"name" must be a non-empty string');
      throws(
        () => registry.register({ ...plain, execute: 1 } as unknown as Agent),
        TypeError,
        '"execute" must be a function',
      );
      throws(
        () => registry.register(plain, { version: 1 } as unknown as { version: string }),
        TypeError,
        'Option "version" of agent "echo" must be a string, got 1',
      );
      throws(
        () => registry.register(plain, { tags: "util" } as unknown as { tags: string[] }),
        TypeError,
        'Option "tags" of agent "echo" must be an array of strings',
      );
      throws(() => new AgentRegistry({ validator: {} as Validator }), TypeError, 'Option "validator"');
      equal(registry.size, 0, "nothing was registered");
    },
  },
  {
    name: "an agent definition, registration metadata or registry option it does not know is named, not dropped",
    run() {
      // defineAgent() keeps only the fields it knows: a timeout or attempts given there were lost.
      throws(
        () => defineAgent({ name: "a", description: "d", execute: () => null, timeoutMs: 50 } as never),
        TypeError,
        'Unknown defineAgent() field "timeoutMs" (did you mean the task option "timeoutMs" or the Executor option ' +
          '"taskTimeoutMs"?); the options are "name", "description", "execute"',
      );
      throws(
        () => defineAgent({ name: "a", description: "d", execute: () => null, maxAttempts: 1 } as never),
        TypeError,
        '"maxAttempts"',
      );
      throws(
        () =>
          defineJsonAgent({
            name: "j",
            description: "d",
            inputSchema: true,
            outputSchema: true,
            execute: () => null,
            inputScheme: { type: "string" },
          } as never),
        TypeError,
        'Unknown defineJsonAgent() field "inputScheme"',
      );
      const registry = new AgentRegistry();
      const a = defineAgent({ name: "a", description: "d", execute: () => null });
      throws(
        () => registry.register(a, { versoin: "1.0.0" } as never),
        TypeError,
        'Unknown register() metadata "versoin"; the options are "version", "author", "tags"',
      );
      equal(registry.has("a"), false, "nothing registered");
      registry.register(a, { version: "1.0.0" });
      throws(
        () => new AgentRegistry({ validate: () => [] } as never),
        TypeError,
        'Unknown AgentRegistry option "validate"',
      );
      // An agent object of the user's own (a class instance with more members) is no options bag.
      class Counter implements Agent<JsonValue, number> {
        readonly name = "counter";
        readonly description = "counts";
        count = 0;
        execute(): number {
          return ++this.count;
        }
      }
      registry.register(new Counter());
      ok(registry.has("counter"));
    },
  },
  {
    name: "an invalid schema is rejected at registration, not when the first task runs",
    run({ registry }) {
      const make = (name: string, inputSchema: unknown, outputSchema: unknown = true) =>
        defineJsonAgent({
          name,
          description: "broken",
          inputSchema: inputSchema as true,
          outputSchema: outputSchema as true,
          execute: () => null,
        });
      throws(
        () => registry.register(make("bad-type", { type: "strng" })),
        TypeError,
        'Agent "bad-type" has an invalid inputSchema',
      );
      throws(
        () => registry.register(make("typo", { type: "object", requird: ["a"] })),
        TypeError,
        'unknown keyword: "requird"',
      );
      throws(
        () => registry.register(make("bad-output", true, { type: "number", minimum: "3" })),
        TypeError,
        'Agent "bad-output" has an invalid outputSchema',
      );
      throws(() => registry.register(make("format", { type: "string", format: "emial" })), TypeError, "emial");
      throws(() => registry.register(make("not-a-schema", [1, 2])), TypeError, "must be a JSON Schema");
      const e = throws(() => registry.register(make("cause", { type: "strng" })), TypeError);
      ok(e.cause instanceof Error, "the validator's own error is kept as the cause");
      equal(registry.size, 0, "no broken agent was registered");
    },
  },
  {
    name: "a JSON agent with no validator anywhere is a TypeError at registration",
    run({ registry }) {
      const handWritten: JsonAgent = {
        name: "hand",
        description: "A JSON agent written as an object literal",
        inputSchema: { type: "object" },
        outputSchema: true,
        execute: (input) => input,
      };
      throws(() => registry.register(handWritten), TypeError, 'Agent "hand" has a JSON schema but no validator');
      ok(!registry.has("hand"));
      const withValidator = new AgentRegistry({ validator: createAjvValidator() });
      withValidator.register(handWritten);
      throws(() => withValidator.validateInput("hand", []), ValidationError, "(root) must be object");
    },
  },
  {
    name: "schemas are compiled once per agent, not once per task",
    run() {
      let compiles = 0;
      const ajv = createAjvValidator();
      const counting: Validator = {
        name: "counting",
        compile(schema) {
          compiles++;
          return ajv.compile(schema);
        },
      };
      const registry = new AgentRegistry({ validator: counting });
      registry.register(greeter().agent);
      equal(compiles, 2, "input and output schemas compiled at registration");
      for (let i = 0; i < 100; i++) {
        registry.validateInput("greet", { name: "Ada", age: i });
        registry.validateOutput("greet", { greeting: "hi" });
        registry.inputIssues("greet", { name: "Ada", age: i });
      }
      equal(compiles, 2, "no compile per validation");
    },
  },
  {
    name:
      "ajv options that change the value they check are refused; a schema that failed under an $id can be corrected",
    run() {
      // Inputs and outputs are checked frozen, as stored: ajv's writes to them failed
      // silently (useDefaults refused `{}`, coerceTypes let "7" reach an agent typed number).
      for (const name of ["useDefaults", "coerceTypes", "removeAdditional"]) {
        throws(() => createAjvValidator({ options: { [name]: true } }), TypeError, name);
      }
      const validator = createAjvValidator();
      const id = "https://example.com/schemas/fixable";
      throws(() => validator.compile({ $id: id, type: "strin" } as never), Error, "schema is invalid");
      const check = validator.compile({ $id: id, type: "string" });
      deepEqual(check("ok"), []);
      equal(check(1).length, 1);
    },
  },
  {
    name: "registry.execute() answers as the executor stores: no answer is null, checked as JSON",
    async run() {
      const registry = new AgentRegistry();
      registry.register(defineJsonAgent({
        name: "quiet",
        description: "answers nothing",
        inputSchema: true,
        outputSchema: { type: "null" },
        execute: () => undefined as never,
      }));
      registry.register(defineAgent({ name: "dated", description: "a Date", execute: () => new Date(0) as never }));
      equal(await registry.execute("quiet", null, {} as TaskContext), null);
      await rejects(() => registry.execute("dated", null, {} as TaskContext), Error, "not a plain");
    },
  },
  {
    name: "a precompiled validator works where new Function and eval are forbidden (strict CSP)",
    run() {
      const { agent, calls } = greeter();
      // Control: ajv cannot compile without code generation.
      throws(
        () => withoutCodeGeneration(() => new AgentRegistry({ validator: createAjvValidator() }).register(agent)),
        TypeError,
        "invalid inputSchema",
      );

      // A hand-written CompiledValidator for the input ...
      const input: CompiledValidator = (value) => {
        if (typeof value !== "object" || value === null || Array.isArray(value)) {
          return [{ path: "", keyword: "type", message: "must be object" }];
        }
        const v = value as Record<string, unknown>;
        const issues: ValidationIssue[] = [];
        if (typeof v["name"] !== "string") issues.push({ path: "/name", keyword: "required", message: "is required" });
        if (!Number.isInteger(v["age"])) issues.push({ path: "/age", keyword: "type", message: "must be integer" });
        return issues.length === 0 ? NO_ISSUES : issues;
      };
      // ... and an ajv-style function (the shape of ajv's standalone code) for the output, keyed by $id.
      const output: AjvStyleValidateFunction = (value) => {
        const valid = typeof value === "object" && value !== null &&
          typeof (value as { greeting?: unknown }).greeting === "string";
        output.errors = valid ? null : [{
          instancePath: "",
          keyword: "required",
          params: { missingProperty: "greeting" },
          message: "must have required property 'greeting'",
        }];
        return valid;
      };
      const outputAgent = defineJsonAgent({
        name: "by-id",
        description: "Output schema found by $id",
        inputSchema: true,
        outputSchema: { $id: "urn:test:greeting", type: "object" },
        execute: () => ({}),
      });
      const validator = createPrecompiledValidator([
        [agent.inputSchema, input],
        [agent.outputSchema, output],
        [true, () => NO_ISSUES],
        ["urn:test:greeting", output],
      ]);

      withoutCodeGeneration(() => {
        // The registry's validator wins over the ajv default that defineJsonAgent put on the agent.
        const registry = new AgentRegistry({ validator });
        registry.register(agent).register(outputAgent);
        registry.validateInput("greet", { name: "Ada", age: 36 });
        registry.validateOutput("greet", { greeting: "hi" });
        const e = throws(() => registry.validateInput("greet", { age: 1.5 }), ValidationError) as ValidationError;
        deepEqual(paths(e.issues), ["/age type", "/name required"]);
        throws(() => registry.validateOutput("greet", {}), ValidationError, "/greeting is required");
        throws(() => registry.validateOutput("by-id", {}), ValidationError, 'Output of agent "by-id" is invalid');
        throws(
          () =>
            registry.register(
              defineJsonAgent({
                name: "missing",
                description: "",
                inputSchema: { type: "string" },
                outputSchema: true,
                execute: () => null,
              }),
            ),
          TypeError,
          "No precompiled validator",
        );
      });
      equal(calls.n, 0);
    },
  },
  {
    name: "nullable types and nested objects are checked",
    run({ registry }) {
      registry.register(greeter().agent);
      const base = { name: "Ada", age: 1 };
      deepEqual(registry.inputIssues("greet", { ...base, nickname: "A" }), []);
      deepEqual(registry.inputIssues("greet", { ...base, nickname: null }), []);
      deepEqual(paths(registry.inputIssues("greet", { ...base, nickname: 1 })), ["/nickname type"]);
      deepEqual(registry.inputIssues("greet", { ...base, address: { city: "Paris", zip: "75001" } }), []);
      deepEqual(paths(registry.inputIssues("greet", { ...base, address: { zip: 75001 } })), [
        "/address/city required",
        "/address/zip type",
      ]);
    },
  },
  {
    name: "a property named like one of Object.prototype's (constructor, toString) is required as the value's own",
    async run({ registry }) {
      // Racing data has a "constructor" field; the value stored is JSON: it has no such
      // property unless given one, whatever `{}.constructor` answers in JavaScript.
      registry.register(defineJsonAgent({
        name: "standings",
        description: "A driver and the team they drive for",
        inputSchema: { type: "object", required: ["driver", "constructor"] },
        outputSchema: { type: "object", required: ["constructor", "toString"] },
        execute: () => ({}) as never,
      }));
      deepEqual(paths(registry.inputIssues("standings", { driver: "Ada" })), ["/constructor required"]);
      deepEqual(registry.inputIssues("standings", { driver: "Ada", constructor: "Ferrari" }), []);
      deepEqual(paths(registry.inputIssues("standings", { __proto__: null, driver: "Ada" } as JsonValue)), [
        "/constructor required",
      ]);
      const input = { driver: "Ada", constructor: "Ferrari" };
      const e = await rejects<ValidationError>(
        () => registry.execute("standings", input, fakeContext(input)),
        ValidationError,
      );
      deepEqual(paths(e.issues), ["/constructor required", "/toString required"]);
      // `dependencies` on such a name fires only when the value has it.
      const dependent = defineJsonAgent({
        name: "dependent",
        description: "valueOf needs unit",
        inputSchema: { type: "object", dependencies: { valueOf: ["unit"] } },
        outputSchema: {},
        execute: () => null,
      });
      registry.register(dependent);
      deepEqual(registry.inputIssues("dependent", {}), []);
      deepEqual(paths(registry.inputIssues("dependent", { valueOf: 1 })), [" dependencies"]);
    },
  },
  {
    name: "$schema: draft-07 is the default dialect; another one fails registration saying how to get it",
    run({ registry }) {
      const dialect = (name: string, $schema: string) =>
        defineJsonAgent({
          name,
          description: "names its dialect",
          inputSchema: { $schema, type: "string" },
          outputSchema: {},
          execute: () => null,
        });
      registry.register(dialect("seven", "http://json-schema.org/draft-07/schema#"));
      equal(registry.inputIssues("seven", 1).length, 1);
      const e = throws(
        () => registry.register(dialect("twenty", "https://json-schema.org/draft/2020-12/schema")),
        TypeError,
        "invalid inputSchema",
      );
      ok(/draft-07/.test(e.message) && /Ajv2020/.test(e.message), `the error tells the dialects: ${e.message}`);
    },
  },
  {
    name: "formats need a plugin: without one registration fails, with ajv-formats they are checked",
    run({ registry }) {
      const schema = {
        type: "object",
        properties: { email: { type: "string", format: "email" }, at: { type: "string", format: "date-time" } },
      } as const;
      const make = (validator?: Validator) =>
        defineJsonAgent({
          name: "mailer",
          description: "Sends a mail",
          inputSchema: schema,
          outputSchema: true,
          execute: () => null,
          ...(validator ? { validator } : {}),
        });
      throws(() => registry.register(make()), TypeError, "formats need a plugin");
      registry.register(make(createAjvValidator({ plugins: [addFormats] })));
      deepEqual(registry.inputIssues("mailer", { email: "ada@example.com", at: "2024-01-02T03:04:05Z" }), []);
      deepEqual(paths(registry.inputIssues("mailer", { email: "ada", at: "yesterday" })), [
        "/at format",
        "/email format",
      ]);
      throws(() => createAjvValidator({ plugins: [42 as unknown as () => void] }), TypeError, 'Option "plugins"');
    },
  },
  {
    name: "asynchronous schemas ($async) are refused, and a validator answering with a promise is an error, not a pass",
    run() {
      throws(() => createAjvValidator().compile({ $async: true, type: "string" }), TypeError, "$async");
      const promising = (() => Promise.reject(new Error("later"))) as unknown as AjvStyleValidateFunction;
      const check = createPrecompiledValidator([["s", promising]]).compile({ $id: "s" });
      throws(() => check(42), TypeError, "not a verdict");
    },
  },
  {
    name:
      "the same JSON agent (schemas with an $id) can be defined twice on the shared validator; another schema under that $id cannot",
    run({ registry }) {
      const make = (name: string, minLength: number) =>
        defineJsonAgent({
          name,
          description: "Checks a code",
          inputSchema: { $id: "https://example.com/task-core-test/code", type: "string", minLength } as const,
          outputSchema: true,
          execute: () => null,
        });
      registry.register(make("first", 2));
      const again = new AgentRegistry();
      again.register(make("first", 2));
      deepEqual(again.inputIssues("first", "ab"), []);
      equal(again.inputIssues("first", "a").length, 1);
      throws(() => new AgentRegistry().register(make("other", 3)), Error, "already exists");
      // Compiling asks ajv about no id it was not refused for (a lookup may register one).
      const v = createAjvValidator();
      v.compile({ $id: "https://example.com/task-core-test/outer", properties: { p: { type: "string" } } });
      deepEqual(v.compile({ $id: "https://example.com/task-core-test/outer#/properties/p", type: "string" })("x"), []);
    },
  },
];

/** Register the agents suite with one runner. */
export function registerAgentSuite(registrar: Registrar): void {
  register(registrar, "agents", agentCases, () => Promise.resolve({ ctx: { registry: new AgentRegistry() } }));
}
