/**
 * Agents: named handlers that execute one kind of task.
 *
 * A plain {@link Agent} trusts its input; a {@link JsonAgent} carries JSON Schemas, and
 * the registry checks the input before `execute` runs and the output after it returns.
 * {@link defineAgent} (here) and `defineJsonAgent` (`json-agent.ts`) infer the TypeScript
 * types of input and output, and {@link TaskSpecFor} turns them into typed task specs.
 *
 * @module
 */

import type { TaskContext } from "./context.ts";
import type { DeepReadonly, JsonSchema } from "./json-schema.ts";
import type { JobSpec, JsonValue, TaskSpec } from "./types.ts";
import type { Validator } from "./validation.ts";
import { checkOptionNames } from "./options.ts";

/** A named handler that executes one kind of task. */
export interface Agent<Input = JsonValue, Output = JsonValue, Name extends string = string> {
  /** Unique name; tasks refer to the agent by it. */
  readonly name: Name;
  /** What the agent does, for people and tools. */
  readonly description: string;
  /** Run one task. Returning (or resolving) completes it; throwing fails the attempt. */
  execute(input: Input, ctx: TaskContext<Input>): Output | Promise<Output>;
}

/**
 * An agent whose input and output are described by JSON Schemas. Registering it compiles
 * both schemas (an invalid schema fails the registration); the input is validated before
 * `execute` runs and the output after it returns, and a failure is a non-retryable
 * `ValidationError` listing every problem.
 */
export interface JsonAgent<Input = JsonValue, Output = JsonValue, Name extends string = string>
  extends Agent<Input, Output, Name> {
  /** Schema of the task input. */
  readonly inputSchema: JsonSchema;
  /** Schema of the task output. */
  readonly outputSchema: JsonSchema;
  /**
   * Compiles the schemas when no registry-wide validator is set (`defineJsonAgent` puts
   * ajv here unless told otherwise). Without a validator here or on the registry,
   * registration is a `TypeError`.
   */
  readonly validator?: Validator;
}

/** What {@link defineAgent} takes. */
export interface AgentDefinition<Name extends string, Input, Output> {
  /** Unique name; tasks refer to the agent by it. */
  name: Name;
  /** What the agent does, for people and tools. */
  description: string;
  /** Run one task. Annotate `input` to type the agent's input. */
  execute(input: Input, ctx: TaskContext<Input>): Output | Promise<Output>;
}

/**
 * What callers coming from other queues put on an agent definition; each is an option of
 * the task (or the executor's default), which `defineAgent` would drop.
 */
export const DEFINITION_HINTS: Readonly<Record<string, string>> = {
  timeoutMs: `the task option "timeoutMs" or the Executor option "taskTimeoutMs"`,
  timeout: `the task option "timeoutMs" or the Executor option "taskTimeoutMs"`,
  maxAttempts: `the task option "maxAttempts" or the Executor option "maxAttempts"`,
  attempts: `the task option "maxAttempts" or the Executor option "maxAttempts"`,
  retries: `the task option "maxAttempts" or the Executor option "maxAttempts"`,
  retry: `the Executor option "retry"`,
  backoff: `the Executor option "retry"`,
  concurrency: `the Executor option "maxWorkers"`,
  handler: `"execute"`,
  run: `"execute"`,
  process: `"execute"`,
};

/**
 * Define a plain agent. The input type comes from the annotation of `execute`'s first
 * parameter, the output type from what it returns, and the name stays a literal type, so
 * {@link TaskSpecFor} can check task specs at compile time.
 *
 * @example
 * ```ts
 * import { defineAgent } from "@dagger/task-core";
 * const add = defineAgent({
 *   name: "add",
 *   description: "Adds two numbers",
 *   execute: (input: { a: number; b: number }) => input.a + input.b,
 * });
 * console.assert(add.name === "add");
 * ```
 */
export function defineAgent<const Name extends string, Input = JsonValue, Output = JsonValue>(
  definition: AgentDefinition<Name, Input, Output>,
): Agent<Input, Output, Name> {
  checkOptionNames("defineAgent() field", definition, ["name", "description", "execute"], DEFINITION_HINTS);
  return Object.freeze({
    name: definition.name,
    description: definition.description,
    execute: definition.execute,
  });
}

/** Any agent, whatever its types (for constraints). */
export type AnyAgent = Agent<never, unknown, string>;

/** The input type of an agent. */
export type InputOf<A extends AnyAgent> = A extends Agent<infer Input, unknown, string> ? Input : never;

/** The output type of an agent (what `execute` resolves to). */
export type OutputOf<A extends AnyAgent> = A extends Agent<never, infer Output, string> ? Output : never;

/**
 * The task specs that a set of agents accepts: `TaskSpecFor<typeof a | typeof b>` is a
 * union discriminated by `agent`, so an unknown agent name, a wrong input, or a missing
 * one (an agent whose input type does not admit `null`, which a task without input gets)
 * is a compile error. The input may be read-only (the executor stores a copy), so a spec
 * declared `as const` is accepted.
 */
export type TaskSpecFor<A extends AnyAgent> = A extends Agent<infer Input, unknown, infer Name> ?
    & Omit<TaskSpec<Name, Input>, "input">
    & (null extends Input ? { input?: DeepReadonly<Input> } : { input: DeepReadonly<Input> })
  : never;

/**
 * A {@link JobSpec} whose tasks are checked against a set of agents (see {@link TaskSpecFor}).
 * `executor.submit()` infers the agents from a value of this type; for a spec written
 * inline (or spread from one), name them: `executor.submit<typeof a | typeof b>({ ... })`.
 */
export type JobSpecFor<A extends AnyAgent> = Omit<JobSpec, "tasks"> & {
  /** The tasks: a DAG through `dependsOn`. */
  tasks: readonly TaskSpecFor<A>[];
};
