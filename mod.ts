/**
 * task-core: a durable task executor for browsers, Deno, Bun and Node.
 *
 * Describe a workflow as a job (a DAG of tasks, each run by a named agent); the
 * executor stores every state change before it has effects, so a crash, a reload or a
 * killed process loses nothing. Storage adapters live in their own entry points
 * (`@dagger/task-core/adapters/memory`, ...).
 *
 * @module
 */

export * from "./src/types.ts";
export * from "./src/errors.ts";
export * from "./src/status.ts";
export * from "./src/storage.ts";
export { newId } from "./src/ids.ts";
export { toJson } from "./src/json.ts";
export type { JsonLimits } from "./src/json.ts";
export { applyCommit, applyCreateJob, checkClaimOptions, claimPatch, sanitizeTask } from "./src/commit-rules.ts";
export type { MaybePromise, RuleTx } from "./src/commit-rules.ts";
