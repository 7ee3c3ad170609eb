/**
 * {@link defineJsonAgent}: agents whose input and output are JSON Schemas, with types
 * inferred from the schemas. This is the only module of the core that brings in ajv (as
 * the default validator); a bundle that never calls it contains no ajv.
 *
 * @module
 */

import { DEFINITION_HINTS, type JsonAgent } from "./agent.ts";
import type { TaskContext } from "./context.ts";
import type { DeepReadonly, FromSchema, JsonSchema } from "./json-schema.ts";
import { checkOptionNames } from "./options.ts";
import { createAjvValidator } from "./validation-ajv.ts";
import type { Validator } from "./validation.ts";

/**
 * What {@link defineJsonAgent} takes. `Output` is what `execute` actually returns, inferred
 * and checked against a read-only form of the output schema's type, so literal results
 * (`"ok"` for an `enum`, a tuple for an array) need no `as const`.
 */
export interface JsonAgentDefinition<
  Name extends string,
  InputSchema extends JsonSchema,
  OutputSchema extends JsonSchema,
  Output extends DeepReadonly<FromSchema<OutputSchema>> = DeepReadonly<FromSchema<OutputSchema>>,
> {
  /** Unique name; tasks refer to the agent by it. */
  name: Name;
  /** What the agent does, for people and tools. */
  description: string;
  /** Schema of the task input; the input type is inferred from it. */
  inputSchema: InputSchema;
  /** Schema of the task output; the output type is inferred from it. */
  outputSchema: OutputSchema;
  /**
   * Compiles the schemas (default: one shared ajv validator without formats, see
   * `createAjvValidator`; for `format` pass `createAjvValidator({ plugins: [addFormats] })`).
   * A registry made with its own `validator` uses that one instead.
   */
  validator?: Validator;
  /** Run one task; `input` has already passed `inputSchema`. */
  execute(
    input: FromSchema<InputSchema>,
    ctx: TaskContext<FromSchema<InputSchema>>,
  ): Output | Promise<Output>;
}

let sharedAjv: Validator | undefined;

/** The validator JSON agents get when none is given: one ajv instance, made on first use. */
function defaultValidator(): Validator {
  return (sharedAjv ??= createAjvValidator());
}

/**
 * Define a JSON agent. Write the schemas inline (or `as const`): the input and output
 * types are inferred from them, so a wrong input in a typed job spec is a compile error.
 * The schemas are compiled when the agent is registered, so an invalid schema fails
 * there, not when the first task runs.
 *
 * @example
 * ```ts
 * import { defineJsonAgent } from "@dagger/task-core";
 * const greet = defineJsonAgent({
 *   name: "greet",
 *   description: "Greets a person",
 *   inputSchema: { type: "object", properties: { name: { type: "string" } }, required: ["name"] },
 *   outputSchema: { type: "string" },
 *   execute: (input) => `Hello, ${input.name}`,
 * });
 * console.assert(greet.name === "greet");
 * ```
 */
export function defineJsonAgent<
  const Name extends string,
  const InputSchema extends JsonSchema,
  const OutputSchema extends JsonSchema,
  const Output extends DeepReadonly<FromSchema<OutputSchema>>,
>(
  definition: JsonAgentDefinition<Name, InputSchema, OutputSchema, Output>,
): JsonAgent<FromSchema<InputSchema>, FromSchema<OutputSchema>, Name> {
  type Agent = JsonAgent<FromSchema<InputSchema>, FromSchema<OutputSchema>, Name>;
  checkOptionNames(
    "defineJsonAgent() field",
    definition,
    ["name", "description", "inputSchema", "outputSchema", "execute", "validator"],
    DEFINITION_HINTS,
  );
  return Object.freeze({
    name: definition.name,
    description: definition.description,
    inputSchema: definition.inputSchema,
    outputSchema: definition.outputSchema,
    validator: definition.validator ?? defaultValidator(),
    // `Output` is the read-only view of the same JSON data: only the compile-time type differs.
    execute: definition.execute as unknown as Agent["execute"],
  });
}
