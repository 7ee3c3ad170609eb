/**
 * The data model of task-core.
 *
 * | word | meaning |
 * |---|---|
 * | agent | a named handler that executes one kind of task (`name`, `description`, `execute`) |
 * | task | one unit of work: an agent name + JSON input, producing JSON output |
 * | job | the tasks submitted together: a DAG, the unit of orchestration and of `wait()` |
 * | storage | the source of truth for jobs, tasks, cache and shared state |
 * | ready queue | bounded in-memory buffer between claiming tasks and running them |
 * | lease | a running task's claim: owner id + expiry, renewed by heartbeat |
 * | executor | claims ready tasks (persist-then-run), runs them on a worker pool, stores results |
 * | scheduler | turns finished tasks into newly ready ones; owns job status |
 *
 * @module
 */

/** A value that survives `JSON.stringify` / `JSON.parse` unchanged. */
export type JsonValue =
  | null
  | boolean
  | number
  | string
  | JsonValue[]
  | { [key: string]: JsonValue };

/**
 * A JSON value whose arrays and objects are read-only: what a job spec takes as input and
 * metadata, so a spec declared `as const` is accepted (the executor stores a copy).
 */
export type ReadonlyJsonValue =
  | null
  | boolean
  | number
  | string
  | readonly ReadonlyJsonValue[]
  | { readonly [key: string]: ReadonlyJsonValue };

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/**
 * Where a task is in its life.
 *
 * - `pending`: waits for its dependencies
 * - `ready`: runnable at or after `runAt`
 * - `running`: leased by an executor
 * - `completed`: finished with an output (awaits a review when the task asked for one)
 * - `failed`: failed for good
 * - `cancelled`: will never run (job cancelled, or a dependency failed)
 * - `blocked`: needs a person (an at-most-once task interrupted by a crash, or a failed
 *   dependency with `onDependencyFailure: "block"`)
 * - `paused`: runnable, but its job is paused
 * - `accepted` / `rejected`: a person's review of a completed task that asked for one
 */
export type TaskStatus =
  | "pending"
  | "ready"
  | "running"
  | "completed"
  | "failed"
  | "cancelled"
  | "blocked"
  | "paused"
  | "accepted"
  | "rejected";

/** Where a job is in its life. A job ends once, as `completed`, `failed` or `cancelled`. */
export type JobStatus = "running" | "paused" | "completed" | "failed" | "cancelled";

/** How often a task may run. */
export type Durability = "at-least-once" | "at-most-once";

/** What a task does when one of its dependencies fails for good. */
export type DependencyFailurePolicy = "cancel" | "block";

/** An error as stored on a task record. */
export interface TaskError {
  /** The error's `name` (for example `TaskTimeoutError`). */
  name: string;
  /** The error's message (a name or message past 16 KiB is cut, ending with how much was left out). */
  message: string;
  /** Whether another attempt may succeed. */
  retryable: boolean;
  /** When it happened (epoch milliseconds). */
  at: number;
  /** Extra details, such as validation errors (the first 100 issues). */
  details?: JsonValue;
}

/** One stored task. Records handed out by a storage are copies: mutating one changes nothing. */
export interface Task {
  /** Sortable unique id. */
  id: string;
  /** The job this task belongs to. */
  jobId: string;
  /** Key, unique within the job. */
  key: string;
  /** Name of the agent that executes the task. */
  agent: string;
  /** The task's input. */
  input: JsonValue;
  /** The output once completed, else `null`. */
  output: JsonValue;
  /** The error of the last failed attempt, else `null`; a completion clears it (`task:retrying` tells each one). */
  error: TaskError | null;
  /** Current status. */
  status: TaskStatus;
  /** Why the task is in its status, when that needs saying (for example which dependency failed). */
  statusReason: string | null;
  /** The task that spawned this one, else `null`. */
  parentId: string | null;
  /** Ids of the tasks this one waits for. */
  dependencies: string[];
  /** How many dependencies are not yet satisfied (completed or accepted). */
  remainingDeps: number;
  /** Attempts started so far. */
  attempts: number;
  /** Attempts allowed in all. */
  maxAttempts: number;
  /** Timeout of one attempt in milliseconds, or `null` for the executor's default. */
  timeoutMs: number | null;
  /** At-least-once (default) or at-most-once. */
  durability: Durability;
  /** What to do when a dependency fails. */
  onDependencyFailure: DependencyFailurePolicy;
  /** Lower runs first (default 0). */
  priority: number;
  /** Earliest time the task may run (epoch milliseconds). */
  runAt: number;
  /** Whether a person must accept the output before dependents run. */
  review: boolean;
  /** The reason given by the last rejection, else `null`. */
  reviewFeedback: string | null;
  /** Owner of the current lease, else `null`. */
  leaseOwner: string | null;
  /** When the current lease expires, else `null`. */
  leaseExpiresAt: number | null;
  /** Incremented by every change; used for compare-and-swap. */
  version: number;
  /** Creation time (epoch milliseconds). */
  createdAt: number;
  /** Last change (epoch milliseconds). */
  updatedAt: number;
  /**
   * Start of the current or last attempt, else `null`. The claim clears it and the executor
   * stores the start just before calling the agent, so a claimed task whose agent was never
   * called has none (after a crash it goes back to `ready`, its attempt not counted).
   */
  startedAt: number | null;
  /** When the task reached a final status, else `null`. */
  finishedAt: number | null;
  /** Free text for people. */
  description: string | null;
  /** A category for people and tools. */
  taskType: string | null;
  /** A short summary for people. */
  summary: string | null;
  /** What a reviewer checks. */
  acceptanceCriteria: string | null;
}

/** One stored job. */
export interface Job {
  /** Sortable unique id. */
  id: string;
  /** A name for people. */
  name: string;
  /** Current status. */
  status: JobStatus;
  /** Free-form metadata given at submission. */
  metadata: JsonValue;
  /** How many tasks the job holds (spawned children included). */
  taskCount: number;
  /** How many of them have not reached a final status. */
  openCount: number;
  /** How many failed for good (or were rejected). */
  failedCount: number;
  /** Incremented by every change; used for compare-and-swap. */
  version: number;
  /** Creation time (epoch milliseconds). */
  createdAt: number;
  /** Last change (epoch milliseconds). */
  updatedAt: number;
  /** When the job ended, else `null`. */
  finishedAt: number | null;
}

/** One task as a user describes it in a job. A field not listed here is refused at submission (`invalid-option`). */
export interface TaskSpec<Agent extends string = string, Input = ReadonlyJsonValue> {
  /** Key, unique within the job. */
  key: string;
  /** Name of a registered agent. */
  agent: Agent;
  /** The task's input (JSON). */
  input?: Input;
  /** Keys of tasks in the same job that must finish first. */
  dependsOn?: readonly string[];
  /** Lower runs first (default 0). */
  priority?: number;
  /** Earliest start (epoch milliseconds). */
  runAt?: number;
  /** Earliest start relative to submission (milliseconds). */
  delayMs?: number;
  /** Attempts allowed in all (default: the executor's `maxAttempts`). */
  maxAttempts?: number;
  /** Timeout of one attempt (default: the executor's `taskTimeoutMs`). */
  timeoutMs?: number;
  /** At-least-once (default) or at-most-once. */
  durability?: Durability;
  /** What to do when a dependency fails (default `"cancel"`). */
  onDependencyFailure?: DependencyFailurePolicy;
  /** Ask a person to accept the output before dependents run. */
  review?: boolean;
  /** Free text for people. */
  description?: string;
  /** A category for people and tools. */
  taskType?: string;
  /** A short summary for people. */
  summary?: string;
  /** What a reviewer checks. */
  acceptanceCriteria?: string;
}

/** A job as a user submits it. A field not listed here is refused at submission (`invalid-job`). */
export interface JobSpec {
  /**
   * The job's id, of the caller's choosing (else a new sortable id): 1 to 128 ASCII letters,
   * digits and `.`, `_`, `:`, `-`. It makes `submit()` idempotent: when a job with this id is
   * stored (and not yet deleted by retention), `submit()` stores nothing and returns that
   * job's handle, whatever its spec. Jobs are listed by id, so such a job is listed by its
   * id rather than by when it was created.
   */
  id?: string;
  /** A name for people. */
  name: string;
  /** The tasks: a DAG through `dependsOn`. */
  tasks: readonly TaskSpec[];
  /** Free-form metadata kept on the job. */
  metadata?: ReadonlyJsonValue;
}
