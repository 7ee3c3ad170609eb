/**
 * Submission: turns a {@link JobSpec} into job and task records, checking everything
 * before anything is written and reporting every problem at once. Dependency resolution
 * itself happens inside the storage's commit (see `commit-rules.ts`).
 *
 * @module
 */

import type { Agent } from "./agent.ts";
import { type JobProblem, JobValidationError, thrownMessage, type ValidationIssue } from "./errors.ts";
import { MAX_ATTEMPTS, MAX_TASKS_PER_JOB, sealNewJobTasks } from "./commit-rules.ts";
import { cycleAmong } from "./graph.ts";
import { newId } from "./ids.ts";
import { textFault, toJson } from "./json.ts";
import type { Job, JobSpec, JsonValue, Task, TaskSpec } from "./types.ts";

/** What the executor needs from an agent registry. `AgentRegistry` implements it. */
export interface AgentSource {
  /** The agent of that name, or `undefined`. */
  get(name: string): Agent<JsonValue, unknown> | undefined;
  /** Whether an agent of that name is registered. */
  has(name: string): boolean;
  /** Every problem of `value` against the agent's input schema (`[]` when none or no schema). */
  inputIssues(name: string, value: unknown): ValidationIssue[];
  /** Throw a `ValidationError` when `value` fails the agent's input schema. */
  validateInput(name: string, value: unknown): void;
  /** Throw a `ValidationError` when `value` fails the agent's output schema. */
  validateOutput(name: string, value: unknown): void;
  /** The names of the agents registered now (needed by `claimAgents: "registered"`). */
  names?(): readonly string[];
}

/** Defaults applied to task specs that leave an option out. */
export interface TaskDefaults {
  /** Attempts allowed in all. */
  maxAttempts: number;
}

/** The records a job spec becomes. */
export interface BuiltJob {
  /** The job record. */
  job: Job;
  /**
   * Task records, in spec order, as `createJob` stores them (`ready`, or `pending` with
   * `remainingDeps` counting their dependencies). The list and its records are frozen:
   * `createJob` keeps these records instead of copying them.
   */
  tasks: Task[];
}

const DURABILITIES = new Set(["at-least-once", "at-most-once"]);
const POLICIES = new Set(["cancel", "block"]);

function describeValue(v: unknown): string {
  return typeof v === "string" ? `"${v}"` : typeof v === "number" ? String(v) : v === null ? "null" : typeof v;
}

/** Check the options of one task spec (not its dependencies); push problems. */
const TEXT_OPTIONS = ["description", "taskType", "summary", "acceptanceCriteria"] as const;

/**
 * Whether a key given by a user holds `/` or `#` (the job writes a spawned child's key as
 * `<parent key>/<key>`, or `<parent key>#<attempt>/<key>` when its parent runs again after a
 * rejected review, so keys without them never collide), or a lone surrogate (which text
 * columns would change, so two keys could become one).
 */
export function hasReservedChar(key: string): boolean {
  return key.indexOf("/") >= 0 || key.indexOf("#") >= 0 || textFault(key) !== undefined;
}

/** The problem of a key that {@link hasReservedChar}. */
export function reservedKeyProblem(key: string, what: string): JobProblem {
  const fault = textFault(key);
  return {
    key,
    code: "invalid-key",
    message: fault !== undefined
      ? `${what} must be text every storage keeps: ${fault}`
      : `${what} may not contain "/" or "#" (they separate the keys of spawned children)`,
  };
}

// Most tasks one job may hold (submission, and spawned children at commit): see `commit-rules.ts`.
export { MAX_TASKS_PER_JOB } from "./commit-rules.ts";
/** Problems reported one by one; the rest are counted in one more. */
const MAX_PROBLEMS = 100;

function badOption(problems: JobProblem[], key: string, field: string, value: unknown, want: string): void {
  problems.push({
    key,
    code: "invalid-option",
    message: `Task "${key}": "${field}" must be ${want}, got ${describeValue(value)}`,
  });
}

/** The fields of a task spec: any other is a misspelling, which would silently run with a default. */
const TASK_FIELDS: ReadonlySet<string> = new Set([
  "key",
  "agent",
  "input",
  "dependsOn",
  "priority",
  "runAt",
  "delayMs",
  "maxAttempts",
  "timeoutMs",
  "durability",
  "onDependencyFailure",
  "review",
  ...TEXT_OPTIONS,
]);
/** What users of other queues write for a field of a task spec. */
const TASK_FIELD_HINTS: Readonly<Record<string, string>> = {
  timeout: `"timeoutMs"`,
  attempts: `"maxAttempts"`,
  retries: `"maxAttempts"`,
  maxRetries: `"maxAttempts"`,
  delay: `"delayMs"`,
  dependencies: `"dependsOn"`,
  deps: `"dependsOn"`,
  data: `"input"`,
  payload: `"input"`,
  name: `"agent" (the task's agent) or "key" (its name in the job)`,
  id: `"key"`,
  backoff: `the Executor option "retry"`,
  retry: `the Executor option "retry"`,
};
const JOB_FIELDS: ReadonlySet<string> = new Set(["id", "name", "tasks", "metadata"]);
/** A job id of the caller's: text a person or a URL carries, ordered alike by every storage. */
const JOB_ID = /^[A-Za-z0-9._:-]{1,128}$/;

/**
 * Report each own key of `given` that `known` lacks and that holds a value: a key set to
 * `undefined` is no field given, as in every options object (`checkOptionNames`).
 */
function unknownFields(given: object, known: ReadonlySet<string>, report: (field: string) => void): void {
  const fields = Object.keys(given);
  for (let i = 0; i < fields.length; i++) {
    const field = fields[i]!;
    if (!known.has(field) && (given as Record<string, unknown>)[field] !== undefined) report(field);
  }
}

export function checkTaskOptions(spec: TaskSpec, problems: JobProblem[], key: string): void {
  unknownFields(spec, TASK_FIELDS, (field) => {
    const hint = Object.hasOwn(TASK_FIELD_HINTS, field) ? ` (did you mean ${TASK_FIELD_HINTS[field]}?)` : "";
    problems.push({ key, code: "invalid-option", message: `Task "${key}": unknown field "${field}"${hint}` });
  });
  if (spec.priority !== undefined && !Number.isFinite(spec.priority)) {
    badOption(problems, key, "priority", spec.priority, "a finite number");
  }
  if (spec.runAt !== undefined && !Number.isFinite(spec.runAt)) {
    badOption(problems, key, "runAt", spec.runAt, "a finite number");
  }
  if (spec.delayMs !== undefined && !(Number.isFinite(spec.delayMs) && spec.delayMs >= 0)) {
    badOption(problems, key, "delayMs", spec.delayMs, "a non-negative number");
  }
  if (spec.runAt !== undefined && spec.delayMs !== undefined) {
    // Two start times: which one was meant cannot be known (one would silently win).
    problems.push({
      key,
      code: "invalid-option",
      message: `Task "${key}": give "runAt" or "delayMs", not both`,
    });
  }
  if (
    spec.maxAttempts !== undefined &&
    !(Number.isInteger(spec.maxAttempts) && spec.maxAttempts >= 1 && spec.maxAttempts <= MAX_ATTEMPTS)
  ) {
    badOption(problems, key, "maxAttempts", spec.maxAttempts, `an integer from 1 to ${MAX_ATTEMPTS}`);
  }
  if (spec.timeoutMs !== undefined && !(Number.isFinite(spec.timeoutMs) && spec.timeoutMs > 0)) {
    badOption(problems, key, "timeoutMs", spec.timeoutMs, "a positive number");
  }
  if (spec.durability !== undefined && !DURABILITIES.has(spec.durability)) {
    badOption(problems, key, "durability", spec.durability, `"at-least-once" or "at-most-once"`);
  }
  if (spec.onDependencyFailure !== undefined && !POLICIES.has(spec.onDependencyFailure)) {
    badOption(problems, key, "onDependencyFailure", spec.onDependencyFailure, `"cancel" or "block"`);
  }
  if (spec.review !== undefined && typeof spec.review !== "boolean") {
    badOption(problems, key, "review", spec.review, "a boolean");
  }
  for (let i = 0; i < TEXT_OPTIONS.length; i++) {
    const f = TEXT_OPTIONS[i]!;
    const v = spec[f];
    if (v !== undefined && (typeof v !== "string" || textFault(v) !== undefined)) {
      badOption(problems, key, f, v, "a string (well-formed text, no NUL)");
    }
  }
}

/** Check an input: JSON-safe, and valid for the agent's schema. Returns the frozen copy. */
export function checkInput(
  agents: AgentSource,
  spec: TaskSpec,
  key: string,
  problems: JobProblem[],
): JsonValue | undefined {
  let input: JsonValue;
  try {
    input = toJson(spec.input === undefined ? null : spec.input);
  } catch (e) {
    problems.push({ key, code: "invalid-input", message: `Task "${key}": ${(e as Error).message}` });
    return undefined;
  }
  if (agents.has(spec.agent)) {
    let issues: readonly ValidationIssue[];
    try {
      issues = agents.inputIssues(spec.agent, input);
    } catch (e) {
      // A validator that throws (a bug in it, an async schema) is this task's problem, reported
      // with the others: not a raw error without the task's key.
      problems.push({
        key,
        code: "invalid-input",
        message: `Task "${key}": the input schema of agent "${spec.agent}" could not be checked: ${thrownMessage(e)}`,
      });
      return input;
    }
    if (issues.length > 0) {
      problems.push({
        key,
        code: "invalid-input",
        message: `Task "${key}": input fails the schema of agent "${spec.agent}": ` +
          issues.map((i) => `${i.path || "(root)"} ${i.message}`).join(", "),
      });
    }
  }
  return input;
}

/** Make one task record from a checked spec. */
export function taskFromSpec(
  spec: TaskSpec,
  ids: { id: string; jobId: string; parentId: string | null; dependencies: string[] },
  input: JsonValue,
  defaults: TaskDefaults,
  now: number,
  key: string = spec.key,
): Task {
  return {
    id: ids.id,
    jobId: ids.jobId,
    key,
    agent: spec.agent,
    input,
    output: null,
    error: null,
    status: "pending",
    statusReason: null,
    parentId: ids.parentId,
    dependencies: ids.dependencies,
    remainingDeps: 0,
    attempts: 0,
    maxAttempts: spec.maxAttempts ?? defaults.maxAttempts,
    timeoutMs: spec.timeoutMs ?? null,
    durability: spec.durability ?? "at-least-once",
    onDependencyFailure: spec.onDependencyFailure ?? "cancel",
    priority: (spec.priority ?? 0) + 0, // + 0: -0 is stored as 0 (a database column keeps no sign of zero)
    runAt: (spec.runAt ?? now + (spec.delayMs ?? 0)) + 0,
    review: spec.review ?? false,
    reviewFeedback: null,
    leaseOwner: null,
    leaseExpiresAt: null,
    version: 1,
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
    description: spec.description ?? null,
    taskType: spec.taskType ?? null,
    summary: spec.summary ?? null,
    acceptanceCriteria: spec.acceptanceCriteria ?? null,
  };
}

/**
 * Find the tasks on a cycle, in O(V + E): Kahn's algorithm removes every task that is
 * not on or behind a cycle; a walk through what remains names one cycle.
 * Returns `[]` when the graph is acyclic.
 */
export function findCycle(keys: readonly string[], deps: ReadonlyMap<string, readonly string[]>): string[] {
  const index = new Map<string, number>();
  keys.forEach((k, i) => index.set(k, i));
  const edges = keys.map((k) => {
    const out: number[] = [];
    for (const d of deps.get(k) ?? []) {
      const j = index.get(d);
      if (j !== undefined) out.push(j);
    }
    return out;
  });
  return cycleAmong(keys.length, edges).map((i) => keys[i]!);
}

const NO_DEPENDENCIES: string[] = Object.freeze([]) as unknown as string[];

/**
 * Check a job spec and build its records. Throws a `JobValidationError` listing every
 * problem: empty job, duplicate keys, unknown agents, unknown dependencies, a cycle
 * (naming its keys), input that is not JSON-safe or fails a JSON agent's schema, bad options.
 *
 * Linear in tasks plus dependency edges, with one map lookup per key and per edge: a
 * job of 100,000 tasks is checked and built in one pass over positions.
 */
export function buildJob(spec: JobSpec, agents: AgentSource, defaults: TaskDefaults, now: number): BuiltJob {
  const problems: JobProblem[] = [];
  if (spec === null || typeof spec !== "object") {
    throw new JobValidationError([{
      code: "invalid-job",
      message: `Job spec must be an object, got ${spec === null ? "null" : typeof spec}`,
    }]);
  }
  if (typeof spec.name !== "string" || spec.name.length === 0 || textFault(spec.name) !== undefined) {
    problems.push({
      code: "invalid-job",
      message: `Job "name" must be a non-empty string of well-formed text without NUL, got ${describeValue(spec.name)}`,
    });
  }
  unknownFields(spec, JOB_FIELDS, (field) => {
    const hint = field === "priority" || field === "delayMs" || field === "runAt"
      ? " (it is an option of each task)"
      : "";
    problems.push({
      code: "invalid-job",
      message: `Job spec: unknown field "${field}"${hint}; the fields are ${
        [...JOB_FIELDS].map((f) => `"${f}"`).join(", ")
      }`,
    });
  });
  if (!Array.isArray(spec.tasks) || spec.tasks.length === 0) {
    problems.push({ code: "empty-job", message: "Job has no tasks" });
    throw new JobValidationError(problems);
  }
  let metadata: JsonValue = null;
  try {
    metadata = toJson(spec.metadata ?? null);
  } catch (e) {
    problems.push({ code: "invalid-job", message: `Job metadata: ${(e as Error).message}` });
  }
  const specs: readonly TaskSpec[] = spec.tasks;
  const n = specs.length;
  let jobId = newId(now);
  if (spec.id !== undefined) {
    if (typeof spec.id === "string" && JOB_ID.test(spec.id)) jobId = spec.id;
    else {
      problems.push({
        code: "invalid-job",
        message: `Job "id" must be 1 to 128 ASCII letters, digits, ".", "_", ":" or "-", got ${describeValue(spec.id)}`,
      });
    }
  }
  // Position of each key's first task; later tasks with the same key are duplicates.
  const position = new Map<string, number>();
  const ids: string[] = new Array(n);
  if (n > MAX_TASKS_PER_JOB) {
    problems.push({
      code: "too-many-tasks",
      message: `Job has ${n} tasks; one job holds at most ${MAX_TASKS_PER_JOB} (split the work into several jobs)`,
    });
    throw new JobValidationError(problems);
  }
  let unreported = 0;
  for (let i = 0; i < n; i++) {
    const t = specs[i];
    if (t === null || typeof t !== "object" || typeof t.key !== "string" || t.key.length === 0) {
      if (problems.length < MAX_PROBLEMS) {
        problems.push({ code: "invalid-task", message: `Task #${i} needs a non-empty string "key"` });
      } else unreported++;
      continue;
    }
    if (position.has(t.key)) {
      problems.push({ key: t.key, code: "duplicate-key", message: `Task key "${t.key}" is used twice` });
      continue;
    }
    if (hasReservedChar(t.key)) problems.push(reservedKeyProblem(t.key, `Task key "${t.key}"`));
    position.set(t.key, i);
    ids[i] = newId(now);
  }
  if (unreported > 0) {
    problems.push({ code: "invalid-task", message: `${unreported} more tasks have no non-empty string "key"` });
  }
  const inputs: (JsonValue | undefined)[] = new Array(n);
  const edges: (number[] | undefined)[] = new Array(n);
  let anyEdge = false;
  for (let i = 0; i < n; i++) {
    const t = specs[i]!;
    if (ids[i] === undefined) continue; // invalid, or a duplicate key
    if (typeof t.agent !== "string" || !agents.has(t.agent)) {
      problems.push({
        key: t.key,
        code: "unknown-agent",
        message: `Task "${t.key}": no agent named ${describeValue(t.agent)}`,
      });
    }
    const deps = t.dependsOn ?? NO_DEPENDENCIES;
    if (!Array.isArray(deps)) {
      problems.push({
        key: t.key,
        code: "invalid-option",
        message: `Task "${t.key}": "dependsOn" must be an array of keys`,
      });
    } else if (deps.length > 0) {
      const out: number[] = [];
      for (const d of deps) {
        const j = typeof d === "string" ? position.get(d) : undefined;
        if (d === t.key) {
          problems.push({ key: t.key, code: "cycle", message: `Task "${t.key}" depends on itself` });
        } else if (j === undefined) {
          problems.push({
            key: t.key,
            code: "unknown-dependency",
            message: `Task "${t.key}" depends on unknown task ${describeValue(d)}`,
          });
        } else out.push(j);
      }
      if (out.length > 0) {
        edges[i] = out;
        anyEdge = true;
      }
    }
    checkTaskOptions(t, problems, t.key);
    inputs[i] = checkInput(agents, t, t.key, problems);
  }
  if (anyEdge) {
    const cycle = cycleAmong(n, edges).map((i) => specs[i]!.key);
    if (cycle.length > 0) {
      problems.push({
        code: "cycle",
        message: `Dependencies form a cycle: ${[...cycle, cycle[0]].map((k) => `"${k}"`).join(" -> ")}`,
      });
    }
  }
  if (problems.length > 0) throw new JobValidationError(problems);
  const job: Job = {
    id: jobId,
    name: spec.name,
    status: "running",
    metadata,
    taskCount: 0,
    openCount: 0,
    failedCount: 0,
    version: 1,
    createdAt: now,
    updatedAt: now,
    finishedAt: null,
  };
  const tasks: Task[] = new Array(n);
  for (let i = 0; i < n; i++) {
    const e = edges[i];
    let dependencies = NO_DEPENDENCIES;
    if (e !== undefined) {
      dependencies = [];
      for (const j of e.length === 1 ? e : new Set(e)) dependencies.push(ids[j]!);
    }
    const task = taskFromSpec(
      specs[i]!,
      { id: ids[i]!, jobId, parentId: null, dependencies },
      inputs[i]!,
      defaults,
      now,
    );
    // As `createJob` stores it: waiting for each dependency, or ready.
    task.remainingDeps = dependencies.length;
    if (dependencies.length === 0) task.status = "ready";
    tasks[i] = task;
  }
  return { job, tasks: sealNewJobTasks(tasks) };
}
