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
export type { Agent } from "./src/agent.ts";
export type { KeyValue, ReadonlyStorage, SpawnSpec, TaskContext, TaskHandle, TaskInfo } from "./src/context.ts";
export { RingQueue } from "./src/queue.ts";
export type { Queue, QueueFactory } from "./src/queue.ts";
export { backoffDelay, DEFAULT_RETRY } from "./src/backoff.ts";
export type { RetryOptions } from "./src/backoff.ts";
export { ManualClock, systemClock, timerClock } from "./src/clock.ts";
export type { Clock, TimerHost } from "./src/clock.ts";
export { Emitter } from "./src/events.ts";
export type { ExecutorEventName, ExecutorEvents, Listener } from "./src/events.ts";
export { Executor } from "./src/executor.ts";
export type { ExecutorOptions, ExecutorStats, RetentionOptions } from "./src/executor.ts";
export { DEFAULT_MAX_PAYLOAD_BYTES, jsonSize } from "./src/payload.ts";
export { checkJobRecord, checkTaskRecord } from "./src/record-check.ts";
export { JobHandle } from "./src/job-handle.ts";
export type { JobEventName, JobHost } from "./src/job-handle.ts";
export { buildJob, findCycle } from "./src/scheduler.ts";
export type { AgentSource, BuiltJob, TaskDefaults } from "./src/scheduler.ts";
export { defineAgent } from "./src/agent.ts";
export type { AgentDefinition, AnyAgent, InputOf, JobSpecFor, JsonAgent, OutputOf, TaskSpecFor } from "./src/agent.ts";
export { defineJsonAgent } from "./src/json-agent.ts";
export type { JsonAgentDefinition } from "./src/json-agent.ts";
export type {
  DeepReadonly,
  FromSchema,
  JsonSchema,
  JsonSchemaObject,
  JsonSchemaTypeName,
  ReadonlyJsonValue,
} from "./src/json-schema.ts";
export { createPrecompiledValidator, fromAjvStyle, issuesFromAjvErrors, NO_ISSUES } from "./src/validation.ts";
export type {
  AjvStyleError,
  AjvStyleValidateFunction,
  CompiledValidator,
  PrecompiledFunction,
  Validator,
} from "./src/validation.ts";
export { createAjvValidator } from "./src/validation-ajv.ts";
export type { AjvPlugin, AjvValidatorOptions } from "./src/validation-ajv.ts";
export { AgentRegistry } from "./src/registry.ts";
export type { AgentInfo, AgentMetadata, AgentQuery, AgentRegistryOptions } from "./src/registry.ts";
