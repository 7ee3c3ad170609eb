/**
 * Agents: named handlers that execute one kind of task.
 *
 * @module
 */

import type { TaskContext } from "./context.ts";
import type { JsonValue } from "./types.ts";

/** A named handler that executes one kind of task. */
export interface Agent<Input = JsonValue, Output = JsonValue> {
  /** Unique name; tasks refer to the agent by it. */
  readonly name: string;
  /** What the agent does, for people and tools. */
  readonly description: string;
  /** Run one task. Returning (or resolving) completes it; throwing fails the attempt. */
  execute(input: Input, ctx: TaskContext<Input>): Output | Promise<Output>;
}
