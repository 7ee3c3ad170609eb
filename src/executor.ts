/**
 * The executor: claims ready tasks (persist-then-run), runs them on a worker pool fed by
 * a bounded ready queue, and stores results with group commit.
 *
 * @module
 */

import type { AnyAgent, JobSpecFor } from "./agent.ts";
import { backoffDelay, DEFAULT_RETRY, type RetryOptions } from "./backoff.ts";
import { type Clock, systemClock } from "./clock.ts";
import {
  ConflictError,
  InvalidTransitionError,
  isNonRetryable,
  isTransientStorageError,
  type JobProblem,
  JobValidationError,
  JsonValueError,
  KeyConflictError,
  NotFoundError,
  PayloadTooLargeError,
  StorageClosedError,
  StorageError,
  TaskAbortedError,
  TaskTimeoutError,
  UnknownAgentError,
  ValidationError,
} from "./errors.ts";
import { ByJob } from "./by-job.ts";
import { claimAgents, MAX_ATTEMPTS } from "./commit-rules.ts";
import { Emitter, type ExecutorEventName, type Listener } from "./events.ts";
import { Heap } from "./heap.ts";
import { newId } from "./ids.ts";
import { isAbortSignal, JobHandle, type JobHost } from "./job-handle.ts";
import { textFault, toJson, wellFormed } from "./json.ts";
import { DEFAULT_MAX_PAYLOAD_BYTES, jsonSize } from "./payload.ts";
import { MAX_QUEUE_CAPACITY, type Queue, type QueueFactory, RingQueue } from "./queue.ts";
import { checkOptionNames, checkOptionsObject, shown } from "./options.ts";
import { type AgentSource, buildJob, MAX_TASKS_PER_JOB } from "./scheduler.ts";
import { isJobFinal } from "./status.ts";
import type { CommitOp, CommitResult, Storage, UpdateTaskOp } from "./storage.ts";
import { AttemptContext, type ContextHost, readonlyView } from "./task-context.ts";
import type { Job, JobSpec, JobStatus, Task, TaskError } from "./types.ts";

/**
 * Periodic deletion of ended jobs with their tasks and cache (`storage.prune`). Give
 * `keepLast`, `finishedBeforeMs` or both: a job is deleted when either says so.
 */
export interface RetentionOptions {
  /** Keep at most this many ended jobs, the most recently ended ones. */
  keepLast?: number;
  /** Delete jobs that ended more than this many milliseconds ago. */
  finishedBeforeMs?: number;
  /** How often to prune (default 60000 ms). */
  intervalMs?: number;
}

/**
 * Options of {@link Executor}. Every option is validated: a value out of range is a
 * `RangeError`, one of the wrong type a `TypeError`, each naming the option and the value.
 */
export interface ExecutorOptions {
  /** Where jobs and tasks live. */
  storage: Storage;
  /** The agents (an `AgentRegistry`). */
  registry: AgentSource;
  /**
   * This executor's lease owner id (default: a new id). Give a stable one (per process
   * or per tab) and a restarted executor takes back its interrupted tasks at once
   * instead of waiting for their leases to expire. Two live executors must never share it.
   */
  id?: string;
  /** Tasks run at once (default 4). */
  maxWorkers?: number;
  /**
   * Room of the ready queue, where claimed tasks wait for a worker (default 1000): the
   * bound of `prefetch`. The executor never claims more than the queue has room for.
   */
  queueCapacity?: number;
  /**
   * Claimed tasks this executor may hold waiting in its ready queue, beyond the ones its
   * free workers start (default 0; `Infinity`: as many as `queueCapacity` allows).
   *
   * With 0 it claims only for free workers, as a BullMQ or Temporal worker takes work only
   * for a free slot: the claim itself stores each task's start, priorities hold across all
   * waiting work, several executors on one storage share a burst of work, and a crash
   * leaves no claimed task waiting. Tasks held waiting run in claim order (an urgent task
   * submitted later waits behind them), are handed back by a crash or a shutdown without
   * counting an attempt, and each needs a write of its start when a worker takes it. Hold
   * some when a claim costs much more than a task runs, or for a custom `queue` to order.
   */
  prefetch?: number;
  /**
   * Which tasks this executor claims, by agent (default `"all"`):
   *
   * - `"all"`: any ready task. A task naming an agent this executor's registry lacks fails
   *   with `UnknownAgentError`, so every executor on the storage must register every agent.
   * - `"registered"`: only tasks of the agents registered now (read at each claim, so an
   *   agent registered later is claimed from then on). Executors on one storage may then
   *   run different agents (a worker for the browser-only agents, one for the GPU ones):
   *   each claims its own, and a task of an agent no executor registers waits `ready`. A
   *   task claimed for an agent unregistered before it ran goes back to `ready` uncounted.
   *   A task may spawn a child of an agent this executor lacks (another one runs it; its
   *   input is checked by no schema here).
   * - a list of agent names: only those agents' tasks, of those the registry holds at each
   *   claim (a task of a listed agent not registered waits `ready`).
   *
   * The storage serves the filter from an index per agent: a claim never reads past other
   * agents' tasks.
   */
  claimAgents?: "all" | "registered" | readonly string[];
  /**
   * Builds the ready queue (default: a ring buffer). It holds the tasks `prefetch` lets wait;
   * with the default `prefetch` of 0 each claimed task goes straight to a free worker.
   */
  queue?: QueueFactory<Task>;
  /** Timeout of one attempt unless the task sets one (default 300000 ms). */
  taskTimeoutMs?: number;
  /** Retry backoff (default 1 s, factor 2, capped at 5 min, no jitter). */
  retry?: Partial<RetryOptions>;
  /** Attempts allowed unless the task sets it (default 4: one run and three retries). */
  maxAttempts?: number;
  /** Lease length (default 30000 ms). */
  leaseMs?: number;
  /** Lease renewal interval (default a third of `leaseMs`). */
  heartbeatMs?: number;
  /** Poll interval for work written by other executors (default 1000 ms). */
  pollIntervalMs?: number;
  /** Interval of expired-lease recovery (default `leaseMs`). */
  recoveryIntervalMs?: number;
  /** How long shutdown waits for running tasks before aborting them (default 10000 ms). */
  shutdownGraceMs?: number;
  /** Least time between two progress events of one task (default 100 ms). */
  progressThrottleMs?: number;
  /** Time source (default the system clock); inject a `ManualClock` in tests. */
  clock?: Clock;
  /**
   * Random source for jitter (default `Math.random`), answering in [0, 1) as it does. A draw
   * outside that range, or one that throws, waits the whole (capped) delay.
   */
  random?: () => number;
  /**
   * Largest task input, output, spawned child input, cache or state value, in bytes of
   * JSON text (UTF-8), default 10 MiB; `Infinity` turns the check off. A larger input
   * fails `submit()` with a `JobValidationError` (problem code `payload-too-large`) and
   * writes nothing; a larger output fails the attempt, for good, with a `PayloadTooLargeError`.
   */
  maxPayloadBytes?: number;
  /** Delete ended jobs periodically (default: never). */
  retention?: RetentionOptions;
}

/** Counters of an executor, from its start. */
export interface ExecutorStats {
  /** Tasks claimed. */
  claimed: number;
  /** Attempts started. */
  started: number;
  /** Tasks completed. */
  completed: number;
  /** Tasks failed for good. */
  failed: number;
  /** Attempts that will be retried. */
  retried: number;
  /** Attempts that timed out. */
  timedOut: number;
  /** Timed-out or aborted attempts whose agent had not stopped when the attempt ended (ignored the signal). */
  ignoredAbort: number;
  /** Results not stored because the task changed meanwhile (lease lost, job cancelled). */
  lost: number;
  /** Expired leases recovered. */
  recovered: number;
  /** Commits written. */
  commits: number;
  /**
   * Storage calls that failed, each told as `storage:error`: retried when the error may pass,
   * else given up (a closed storage, an op it refuses).
   */
  storageErrors: number;
  /** Ended jobs deleted by `retention`. */
  pruned: number;
  /** Attempts running now (a worker waiting for its attempt's start to be stored is not counted). */
  running: number;
  /** Claimed tasks waiting in the ready queue. */
  queued: number;
}

/** Failed storage calls made for a caller (`submit()`, `review()`, job control) retried in a row before one is thrown. */
const CALLER_RETRIES = 5;

/** Times a person's change of one task is planned again after the task changed under it, before its `ConflictError` is thrown. */
const CHANGE_CONFLICTS = 20;

/** Expired leases read at a time by recovery (a pass reads pages until they run out). */
const RECOVERY_PAGE = 500;

interface Run {
  task: Task;
  /** The claimed task this attempt started from (`task` moves on when its start is stored). */
  readonly claim: Task;
  ctx: AttemptContext;
  /** When the attempt times out, on the executor's monotonic time (see `#monotonic`). */
  deadline: number;
  timeoutMs: number;
  settled: boolean;
  done: boolean;
  timedOut: boolean;
  lost: boolean;
  /** The attempt waits on its agent's promise: an interruption ends it (see `#interrupt`). */
  waiting: boolean;
  /** An attempt whose start is being stored: its agent is called after (see `#begin`). */
  starting: boolean;
  /** Its job was paused while its start was being stored: it goes back unstarted (`#begin`). */
  held: boolean;
  /** The agent was called. */
  called: boolean;
  /** Why its start could not be stored, if so (the reason `task:lost` gives). */
  lostReason: string | null;
  /** Shutdown hands its task back (not a loss: no `task:lost`, not in `stats().lost`). */
  released: boolean;
}

type Outcome = "completed" | "retry" | "failed" | "lost" | "other";

interface Pending {
  ops: CommitOp[];
  run: Run | null;
  outcome: Outcome;
  error: TaskError | null;
  /** What the attempt threw (for `task:retrying` / `task:failed`), not stored. */
  cause: unknown;
  /** Told the stored task (or `null` when the op was dropped on a conflict). */
  resolve?: ((stored: Task | null) => void) | undefined;
  /** Reports the stored task, before the job ends the same commit caused are reported. */
  report?: ((stored: Task) => void) | undefined;
  /** Its one op sets the lease: from the `now` of each commit attempt, not of the enqueue. */
  lease?: boolean | undefined;
  /** Told why the op was dropped, before `resolve(null)`. */
  dropped?: ((reason: string) => void) | undefined;
  /**
   * The attempt whose start this item stores: `#begin` is called with the stored task (or
   * `null` when dropped) in a microtask after the commit, without a promise of its own.
   */
  start?: Run | undefined;
}

type State = "idle" | "running" | "stopping" | "stopped";

/** A pending item with every field, in one order: one shape where the commit reads them. */
function pendingItem(
  ops: CommitOp[],
  run: Run | null,
  outcome: Outcome,
  error: TaskError | null,
  lease: boolean | undefined,
  start: Run | undefined,
  cause: unknown = undefined,
): Pending {
  return { ops, run, outcome, error, cause, resolve: undefined, report: undefined, lease, dropped: undefined, start };
}

/**
 * The stored record of each item's first op (an update), asked item by item in order, from
 * a commit's `tasks`. The rules write a batch's tasks in the order its ops first read them, so
 * a walk forward finds them without a map per commit; an answer in another order (a storage
 * of its own) is looked up by id from then on. O(1) amortized per item either way.
 */
function firstStored(tasks: readonly Task[]): (item: Pending) => Task | null {
  let at = 0;
  let byId: Map<string, Task> | null = null;
  return (item) => {
    const first = item.ops[0];
    if (!first || first.type !== "updateTask") return null;
    if (byId === null) {
      for (let j = at; j < tasks.length; j++) {
        if (tasks[j]!.id === first.id) {
          at = j + 1;
          return tasks[j]!;
        }
      }
      byId = new Map();
      for (const t of tasks) byId.set(t.id, t);
    }
    return byId.get(first.id) ?? null;
  };
}

/** Refuse an id argument that is not text (a number, an object) with a `TypeError` naming the call. */
function checkId(call: string, name: string, value: unknown): void {
  if (typeof value !== "string") throw new TypeError(`${call} "${name}" must be a string, got ${shown(value)}`);
}

/** The statuses `cancelTask()` cancels: open, and not running. */
const CANCELLABLE_ALONE: ReadonlySet<string> = new Set(["pending", "ready", "paused", "blocked"]);

/** A progress report the throttle held back, and the timer that tells it. */
interface HeldProgress {
  task: Task;
  fraction: number;
  message: string | null;
  timer: unknown;
}

/** Check a numeric option: a number that is not finite, or below its least, is a `RangeError`; another type a `TypeError`. */
function positive(
  name: string,
  value: number | undefined,
  fallback: number,
  integer = false,
  zero = false,
): number {
  if (value === undefined) return fallback;
  const what = `${zero ? "non-negative" : "positive"} ${integer ? "integer" : "number"}`;
  if (typeof value !== "number") {
    throw new TypeError(`Executor option "${name}" must be a ${what}, got ${shown(value)}`);
  }
  if (!Number.isFinite(value) || value < 0 || (value === 0 && !zero) || (integer && !Number.isInteger(value))) {
    throw new RangeError(`Executor option "${name}" must be a ${what}, got ${value}`);
  }
  return value;
}

/** A non-negative numeric option, or `undefined` when not given (see `positive`). */
function nonNegative(name: string, value: number | undefined, integer: boolean): number | undefined {
  return value === undefined ? undefined : positive(name, value, 0, integer, true);
}

/**
 * The option names each options object takes. TypeScript catches a misspelt option at
 * compile time; JavaScript callers (and options built at run time) would see it ignored,
 * so an executor with `concurrency: 3` ran one worker where the user asked for three.
 */
const EXECUTOR_OPTIONS: Record<keyof ExecutorOptions, true> = {
  storage: true,
  registry: true,
  id: true,
  maxWorkers: true,
  queueCapacity: true,
  prefetch: true,
  claimAgents: true,
  queue: true,
  taskTimeoutMs: true,
  retry: true,
  maxAttempts: true,
  leaseMs: true,
  heartbeatMs: true,
  pollIntervalMs: true,
  recoveryIntervalMs: true,
  shutdownGraceMs: true,
  progressThrottleMs: true,
  clock: true,
  random: true,
  maxPayloadBytes: true,
  retention: true,
};
const RETRY_OPTIONS: Record<keyof RetryOptions, true> = { delayMs: true, factor: true, maxDelayMs: true, jitter: true };
const RETENTION_OPTIONS: Record<keyof RetentionOptions, true> = {
  keepLast: true,
  finishedBeforeMs: true,
  intervalMs: true,
};
/** What users of other queues write for an option of the executor. */
const OPTION_HINTS: Record<string, string> = {
  concurrency: `"maxWorkers"`,
  workers: `"maxWorkers"`,
  timeout: `"taskTimeoutMs"`,
  timeoutMs: `"taskTimeoutMs"`,
  attempts: `"maxAttempts"`,
  retries: `"maxAttempts"`,
  maxRetries: `"maxAttempts"`,
  backoff: `"retry"`,
  agents: `"claimAgents"`,
  pollInterval: `"pollIntervalMs"`,
  leaseDuration: `"leaseMs"`,
};

/**
 * Throw a `TypeError` naming the first own key of `given` that `known` lacks; `prefix`
 * names the options object it is in (`""`, `"retry."`, `"retention."`).
 */
function checkNames(prefix: string, given: object, known: Record<string, true>): void {
  checkOptionNames("Executor option", given, Object.keys(known), prefix === "" ? OPTION_HINTS : {}, prefix);
}

/** What callers write for `shutdown()`'s one option. */
const SHUTDOWN_HINTS: Record<string, string> = {
  grace: `"graceMs"`,
  timeout: `"graceMs"`,
  timeoutMs: `"graceMs"`,
  shutdownGraceMs: `"graceMs"`,
};

/**
 * A custom queue behind a guard: the first throw of any of its members is reported to
 * `failed` (which stops the executor), and from then on the queue is not called again: it
 * holds nothing, takes nothing and is closed. Tasks left inside it keep their lease until it
 * ends; their start was not stored, so recovery hands them back uncounted.
 */
function guardQueue(queue: Queue<Task>, failed: (operation: string, error: unknown) => void): Queue<Task> {
  let broken = false;
  const call = <T>(operation: string, fn: () => T, fallback: T): T => {
    if (broken) return fallback;
    try {
      return fn();
    } catch (e) {
      broken = true;
      failed(operation, e);
      return fallback;
    }
  };
  return {
    get capacity() {
      return call("capacity", () => queue.capacity, 1);
    },
    get size() {
      return call("size", () => queue.size, 0);
    },
    get closed() {
      return call("closed", () => queue.closed, true);
    },
    tryPush: (task) => call("tryPush", () => queue.tryPush(task), false),
    push: (task) => call("push", () => queue.push(task), Promise.resolve()),
    tryPop: () => call("tryPop", () => queue.tryPop(), undefined),
    pop: () => call("pop", () => queue.pop(), Promise.resolve(undefined)),
    drain: () => call("drain", () => queue.drain(), []),
    close: () => call("close", () => queue.close(), undefined),
  };
}

/** The `claimAgents` option, checked (see `ExecutorOptions.claimAgents`). */
function checkClaimAgents(
  value: ExecutorOptions["claimAgents"],
  registry: AgentSource,
): (() => readonly string[]) | null {
  if (value === undefined || value === "all") return null;
  if (value === "registered") {
    const names = registry.names;
    if (typeof names !== "function") {
      throw new TypeError(
        `Executor option "claimAgents" "registered" needs a registry that lists its agents (names()), as AgentRegistry does`,
      );
    }
    return () => names.call(registry);
  }
  if (!Array.isArray(value)) {
    throw new TypeError(
      `Executor option "claimAgents" must be "all", "registered" or an array of agent names, got ${shown(value)}`,
    );
  }
  const listed = claimAgents(value, 'Executor option "claimAgents"')!;
  // Those the registry holds at each claim: a task of a listed agent not registered (yet)
  // waits `ready`, as with "registered", instead of being claimed and handed back in a loop.
  return () => listed.filter((name) => registry.has(name));
}

function checkRetention(
  r: RetentionOptions | undefined,
): { keepLast?: number; finishedBeforeMs?: number; intervalMs: number } | null {
  if (r === undefined) return null;
  if (r === null || typeof r !== "object") {
    throw new TypeError(`Executor option "retention" must be an object, got ${r === null ? "null" : typeof r}`);
  }
  checkNames("retention.", r, RETENTION_OPTIONS);
  const keepLast = nonNegative("retention.keepLast", r.keepLast, true);
  const finishedBeforeMs = nonNegative("retention.finishedBeforeMs", r.finishedBeforeMs, false);
  if (keepLast === undefined && finishedBeforeMs === undefined) {
    throw new TypeError(`Executor option "retention" needs "keepLast" or "finishedBeforeMs", got neither`);
  }
  return {
    ...(keepLast !== undefined ? { keepLast } : {}),
    ...(finishedBeforeMs !== undefined ? { finishedBeforeMs } : {}),
    intervalMs: positive("retention.intervalMs", r.intervalMs, 60_000),
  };
}

/** Whether a stored task shows the write of `op` (its version moved past the expected one and every plain field it set is there). */
function showsWrite(op: UpdateTaskOp, task: Task | undefined): boolean {
  if (!task || task.version <= op.expect.version) return false;
  for (const [key, value] of Object.entries(op.set)) {
    if (value !== null && typeof value === "object") continue; // output, error: the plain fields decide
    // The rules keep a task of a paused job paused where the op asked for ready.
    if (key === "status" && value === "ready" && task.status === "paused") continue;
    // The lease tells nothing: heartbeats renew it, and a start sets it again at each
    // commit attempt (an earlier attempt that landed stored an earlier end).
    if (key === "leaseExpiresAt") continue;
    if ((task as unknown as Record<string, unknown>)[key] !== value) return false;
  }
  return true;
}

/**
 * Whether an update of a task was applied, read back after its commit failed: the task
 * shows the write, or it moved on from it. An update that makes a task ready sets its
 * `runAt`, which the task keeps while the executor runs it again (a claim or a completion
 * does not change it), so the task may already be running or done. When the update wrote
 * back the `runAt` the task had (`before`: a retry with no delay on a clock that has not
 * moved), that `runAt` tells nothing, since any other change (a cancel) keeps it too; the
 * task was then claimed again since (more attempts) only if the update made it ready,
 * as every other way back to `ready` moves `runAt` on.
 */
function landed(op: UpdateTaskOp, task: Task | undefined, before: Task | undefined): boolean {
  if (showsWrite(op, task)) return true;
  if (task === undefined || before === undefined || task.version <= op.expect.version) return false;
  if (op.set.runAt === undefined || task.runAt !== op.set.runAt) return false;
  return op.set.runAt !== before.runAt || task.attempts > before.attempts;
}

/** The change that gives a claimed task back to `ready` without counting its attempt. */
function handBack(task: Task, reason: string): Partial<Task> {
  return { status: "ready", attempts: Math.max(0, task.attempts - 1), statusReason: reason };
}

/**
 * Longest error name or message stored (UTF-16 units). An agent's error is written with each
 * failed attempt and read with its task: a 20 MB message would be stored twice per attempt
 * (the error and the status reason), past any `maxPayloadBytes`.
 */
const MAX_ERROR_TEXT = 16 * 1024;

/** Most validation issues stored in an error's `details` (the first ones). */
const MAX_ERROR_ISSUES = 100;

/** `s` cut to at most `MAX_ERROR_TEXT` units, ending with how much was left out. */
function bounded(s: string): string {
  if (s.length <= MAX_ERROR_TEXT) return s;
  let cut = MAX_ERROR_TEXT - 40;
  const c = s.charCodeAt(cut - 1);
  if (c >= 0xd800 && c <= 0xdbff) cut--; // never half of a surrogate pair
  return `${s.slice(0, cut)}\u2026 (${s.length - cut} more characters)`;
}

/** `v` as storable text (a bounded string with no lone surrogate), or `fallback` when it has none. */
function text(v: unknown, fallback: string): string {
  if (typeof v === "string") return wellFormed(bounded(v));
  if (v === undefined || v === null) return fallback;
  try {
    return wellFormed(bounded(String(v)));
  } catch {
    return fallback;
  }
}

/**
 * `s` as a text column of every store keeps it (a task's status reason): well formed, and
 * NUL, which PostgreSQL's text cannot hold, as U+FFFD. JSON values (an error's message) keep NUL.
 */
function reasonText(s: string): string {
  s = wellFormed(s);
  return s.includes("\0") ? s.replace(/\0/g, "\ufffd") : s;
}

/**
 * What an attempt's error is stored as: string `name` and `message` whatever was thrown (a
 * string, an object without a prototype, an error whose `name` is not text or whose getters
 * throw), so that a stored task always reads back and the executor never trips over it.
 */
function toTaskError(e: unknown, retryable: boolean, at: number): TaskError {
  try {
    if (e instanceof Error) {
      const out: TaskError = { name: text(e.name, "Error"), message: text(e.message, ""), retryable, at };
      if (e instanceof ValidationError) {
        try {
          // The first issues, each bounded: an output of a million bad items must not store a million.
          out.details = toJson(
            e.issues.slice(0, MAX_ERROR_ISSUES).map((i) => ({
              path: text(i.path, ""),
              keyword: text(i.keyword, ""),
              message: text(i.message, ""),
            })),
          );
        } catch {
          // Details that are not JSON are left out; the name and message stay.
        }
      }
      return out;
    }
    if (typeof e === "object" && e !== null) {
      // An error-like object (an error of another realm, a library's `{ message, code }`):
      // its own text, not "[object Object]".
      const o = e as { name?: unknown; message?: unknown };
      if (typeof o.message === "string") {
        return {
          name: typeof o.name === "string" && o.name !== "" ? text(o.name, "Error") : "Error",
          message: text(o.message, ""),
          retryable,
          at,
        };
      }
      const fields = thrownFields(e);
      return { name: "Error", message: fields !== undefined ? text(fields, "") : text(e, String(e)), retryable, at };
    }
    return { name: "Error", message: text(e, String(e)), retryable, at };
  } catch {
    return { name: "Error", message: "The agent threw a value that cannot be read", retryable, at };
  }
}

/** Most fields of a thrown object that is no error told in its message (see `thrownFields`). */
const THROWN_FIELDS = 20;

/** A value in a thrown object's message: a primitive as JSON (a string cut), a nested one by its kind; `undefined` to leave out. */
function toldValue(v: unknown): string | undefined {
  if (typeof v === "string") return JSON.stringify(v.length > 200 ? `${v.slice(0, 200)}\u2026` : v);
  if (typeof v === "number" || typeof v === "boolean" || v === null) return JSON.stringify(v);
  if (typeof v === "bigint") return `${v}n`;
  if (typeof v === "object") return Array.isArray(v) ? "[\u2026]" : "{\u2026}";
  return undefined; // undefined, a function or a symbol: left out, as JSON leaves them
}

/**
 * A thrown object that is no error, told by its first own fields (`Threw {"code":42,"retry":false}`),
 * an array by its first items and length, a typed array by its kind and size; `undefined`
 * when it tells nothing (no field, or a read threw): its own `String()` is tried then.
 * Shallow and bounded whatever was thrown: nested values are named by their kind only,
 * strings cut, and no `toJSON`, `join` or getter past those fields runs: a thrown response
 * holding megabytes of rows must not stall the executor's event loop to make a message it
 * would cut anyway.
 */
function thrownFields(e: object): string | undefined {
  if (ArrayBuffer.isView(e)) return `Threw a ${e.constructor?.name ?? "view"} of ${e.byteLength} bytes`;
  const parts: string[] = [];
  try {
    if (Array.isArray(e)) {
      const n = Math.min(e.length, THROWN_FIELDS);
      for (let i = 0; i < n; i++) parts.push(toldValue(e[i]) ?? "null");
      if (e.length > n) parts.push(`\u2026 (${e.length} items)`);
      return `Threw [${parts.join(",")}]`;
    }
    for (const key in e) {
      if (!Object.hasOwn(e, key)) continue;
      if (parts.length === THROWN_FIELDS) {
        parts.push("\u2026");
        break;
      }
      const told = toldValue((e as Record<string, unknown>)[key]);
      if (told !== undefined) parts.push(`${toldValue(key)}:${told}`);
    }
  } catch {
    return undefined; // a getter or proxy that throws
  }
  return parts.length === 0 ? undefined : `Threw {${parts.join(",")}}`;
}

function isRetryable(e: unknown): boolean {
  try {
    return !(isNonRetryable(e) || e instanceof JobValidationError || e instanceof JsonValueError);
  } catch {
    return true; // a thrown proxy that refuses to tell its prototype: an ordinary failure
  }
}

/**
 * Runs the tasks of jobs stored in a {@link Storage}.
 *
 * @example
 * ```ts
 * import { AgentRegistry, defineAgent, Executor } from "@dagger/task-core";
 * import { createMemoryStorage } from "@dagger/task-core/adapters/memory";
 * const hello = defineAgent({ name: "hello", description: "Greets", execute: (input: string) => `hi ${input}` });
 * const registry = new AgentRegistry().register(hello);
 * const executor = new Executor({ storage: createMemoryStorage(), registry });
 * executor.start();
 * const job = await executor.submit({ name: "demo", tasks: [{ key: "a", agent: "hello", input: "you" }] });
 * console.assert((await job.wait()).a === "hi you");
 * await executor.shutdown();
 * ```
 */
export class Executor {
  /** This executor's lease owner id. */
  readonly id: string;
  /** The storage it runs against. */
  readonly storage: Storage;
  /** The agents it runs. */
  readonly agents: AgentSource;
  readonly #clock: Clock;
  readonly #random: () => number;
  readonly #maxWorkers: number;
  /** Claimed tasks to hold waiting beyond the free workers (see `ExecutorOptions.prefetch`). */
  readonly #prefetch: number;
  /** The agents a claim is limited to (`ExecutorOptions.claimAgents`), read at each claim: `null` for all. */
  readonly #claimAgents: (() => readonly string[]) | null;
  readonly #queue: Queue<Task>;
  readonly #taskTimeoutMs: number;
  readonly #retry: RetryOptions;
  readonly #maxAttempts: number;
  readonly #leaseMs: number;
  readonly #heartbeatMs: number;
  readonly #pollIntervalMs: number;
  readonly #recoveryIntervalMs: number;
  readonly #graceMs: number;
  readonly #progressMs: number;
  readonly #events = new Emitter();
  readonly #runs = new ByJob<Run>((run) => run.task.jobId);
  readonly #lostIds = new Set<string>();
  /**
   * Tasks whose agent ran but whose result could not be stored: they stay claimed under
   * this executor's lease until recovery, which counts the attempt (and blocks an
   * at-most-once task). `#releaseOrphans` must not take them for unstarted claims. By id:
   * the version of the claim that ran (a later claim of the task is a new one) and the
   * time its lease ends at the latest (nothing renews it once its result is dropped;
   * after that time the entry is dropped, as `#releaseOrphans` leaves expired leases to
   * recovery). In order of that time, so that expired entries leave from the front.
   */
  readonly #ranUnstored = new Map<string, { version: number; until: number }>();
  /**
   * While a claim is in flight: the jobs cancelled (ended, deleted) or paused meanwhile. A
   * claim stored before such a change may answer after it; its tasks of those jobs must
   * not start (see `#claimLoop`).
   */
  #stoppedWhileClaiming: Map<string, "ended" | "paused"> | null = null;
  /**
   * Reads of the jobs named by a change notice while a claim was in flight (another
   * executor, tab or process may have paused or cancelled them), the latest per job: each
   * starts when its notice comes, alongside the claim, and the claim's tasks of those jobs
   * wait for it (see `#checkClaimedJobs`). One read per notice and named job, held or not
   * (the claim may bring tasks of any job): job status changes are few next to tasks.
   */
  readonly #claimReads = new Map<string, Promise<void>>();
  /** The `now` of the claim in flight, if any: the leases it sets end at this plus `leaseMs`. */
  #claimNow: number | null = null;
  /** A notice that names no jobs came while a claim was in flight: its tasks' jobs are read before they start. */
  #claimVague = false;
  /** Claimed tasks waiting in the ready queue, by id: the record of the attempt queued. */
  readonly #queued = new ByJob<Task>((task) => task.jobId);
  /**
   * Time on the clock's timers (`clock.monotonic()`, else `now()`): what timeouts, grace
   * periods and the progress throttle measure, since the wall clock may jump meanwhile.
   */
  readonly #monotonic: () => number;
  readonly #deadlines = new Heap<Run>((a, b) => a.deadline < b.deadline);
  #deadlineTimer: unknown = null;
  #deadlineAt = Infinity;
  #active = 0;
  /** Of `#active`, the attempts whose start is being stored (their agent is not called yet). */
  #starting = 0;
  /** Shutdown waits for the starts being stored (`#starting` back at 0). */
  #startsStored: (() => void) | null = null;
  /** Periodic work (heartbeat, recovery, pruning) in progress. */
  readonly #periodic = new Set<Promise<unknown>>();
  /** Checks, a macrotask after an abort, whether the agent settled (`stats().ignoredAbort`). */
  readonly #abortChecks = new Map<Run, ReturnType<typeof setTimeout>>();
  /** `#pump` is running (a nested call asks it to loop again instead of recursing). */
  #pumping = false;
  #pumpAgain = false;
  #state: State = "idle";
  #pending: Pending[] = [];
  #flushing: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  #wakeRequested = false;
  #roomWaiter: (() => void) | null = null;
  /** Tasks taken out of the ready queue so far (by `#pump`). */
  #taken = 0;
  /**
   * Ends the claim loop's timed wait, for shutdown: its backoff after a failed storage call
   * (`#claimPause`) or its wait for the reads of a claim's jobs (`#checkClaimedJobs`).
   */
  #endClaimWait: (() => void) | null = null;
  /**
   * Ends the claim loop's backoff after a failed storage call early: the storage told of a
   * change (a commit of this executor's, another process's notice, a `LISTEN` listening
   * again), so it answers again and the work it tells of should not wait out the backoff.
   */
  #endClaimBackoff: (() => void) | null = null;
  /** While the claim loop waits after the queue refused tasks: `#taken` then (else -1). */
  #roomAfterTake = -1;
  #wakeTimer: unknown = null;
  #wakeAt = Infinity;
  readonly #wakeTimes = new Heap<number>((a, b) => a < b);
  /** The latest time pushed on `#wakeTimes` while it is there (a job's tasks share one runAt: kept once). */
  #lastWakeTime = -Infinity;
  #timers: unknown[] = [];
  #unwatch: (() => void) | null = null;
  /** `wait()`ers by job id, and the storage subscription that wakes them (while there are any). */
  readonly #jobWaiters = new Map<string, Set<() => void>>();
  /** The last status change under way per job (see `#setJobStatus`). */
  readonly #statusChanges = new Map<string, Promise<void>>();
  #unwatchJobs: (() => void) | null = null;
  /** A check of every held job: 0 none, 1 running, 2 running and another one asked for. */
  #checkingAll: 0 | 1 | 2 = 0;
  #loop: Promise<void> | null = null;
  /** The first throw of a custom queue, which stopped the executor (`run()` rejects with it). */
  #queueFault: { error: unknown } | null = null;
  #shutdown: Promise<void> | null = null;
  #stopped: (() => void) | null = null;
  readonly #stoppedPromise: Promise<void>;
  readonly #lastProgress = new Map<string, number>();
  /** Shutdown's grace period is over: commits that keep failing are given up (see `#commitBatch`). */
  #graceEnded = false;
  /** Progress reports held back by the throttle, told when its interval ends. */
  readonly #heldProgress = new Map<string, HeldProgress>();
  readonly #contextHost: ContextHost;
  readonly #stableId: boolean;
  readonly #maxPayload: number;
  readonly #retention: { keepLast?: number; finishedBeforeMs?: number; intervalMs: number } | null;
  /** Commits being written now (their tasks are still `running` in storage, but no longer this executor's runs). */
  #inflight: Pending[] = [];
  /** Jobs whose end this executor reported (recent ones), so an end is never reported twice. */
  readonly #endedJobs = new Set<string>();
  readonly #stats: Omit<ExecutorStats, "running" | "queued"> = {
    claimed: 0,
    started: 0,
    completed: 0,
    failed: 0,
    retried: 0,
    timedOut: 0,
    ignoredAbort: 0,
    lost: 0,
    recovered: 0,
    commits: 0,
    storageErrors: 0,
    pruned: 0,
  };

  /** Create an executor; it does nothing until `start()` or `run()`. */
  constructor(options: ExecutorOptions) {
    if (!options || typeof options !== "object") throw new TypeError("Executor options must be an object");
    checkNames("", options, EXECUTOR_OPTIONS);
    if (!options.storage || typeof options.storage.claimReady !== "function") {
      throw new TypeError(`Executor option "storage" must be a Storage, got ${typeof options.storage}`);
    }
    if (!options.registry || typeof options.registry.get !== "function") {
      throw new TypeError(`Executor option "registry" must be an agent registry, got ${typeof options.registry}`);
    }
    this.storage = options.storage;
    this.agents = options.registry;
    if (options.id !== undefined && (typeof options.id !== "string" || options.id === "")) {
      throw new TypeError(`Executor option "id" must be a non-empty string, got ${typeof options.id}`);
    }
    // The id is stored as the owner of its leases: a UTF-8 database would store U+FFFD in
    // place of a lone surrogate, and the executor would no longer know its own leases;
    // PostgreSQL refuses NUL, and every claim of the executor would fail there.
    const idFault = options.id === undefined ? undefined : textFault(options.id);
    if (idFault !== undefined) throw new TypeError(`Executor option "id" must be text every storage keeps: ${idFault}`);
    this.id = options.id ?? `executor-${newId()}`;
    this.#stableId = options.id !== undefined;
    const clock = options.clock ?? systemClock;
    if (
      typeof clock !== "object" || clock === null || typeof clock.now !== "function" ||
      typeof clock.setTimer !== "function" || typeof clock.clearTimer !== "function"
    ) {
      throw new TypeError(`Executor option "clock" must have now(), setTimer() and clearTimer(), got ${shown(clock)}`);
    }
    if (clock.monotonic !== undefined && typeof clock.monotonic !== "function") {
      throw new TypeError(
        `Executor option "clock": monotonic must be a function when given, got ${shown(clock.monotonic)}`,
      );
    }
    this.#clock = clock;
    this.#monotonic = clock.monotonic ? () => clock.monotonic!() : () => clock.now();
    const random = options.random ?? Math.random;
    if (typeof random !== "function") {
      throw new TypeError(`Executor option "random" must be a function, got ${shown(random)}`);
    }
    // A source that throws would throw out of the code storing a result (the claim loop):
    // its draw counts as out of range (see `backoffDelay`).
    this.#random = () => {
      try {
        return random();
      } catch {
        return Number.NaN;
      }
    };
    this.#maxWorkers = positive("maxWorkers", options.maxWorkers, 4, true);
    this.#prefetch = options.prefetch === Infinity ? Infinity : positive("prefetch", options.prefetch, 0, true, true);
    this.#claimAgents = checkClaimAgents(options.claimAgents, this.agents);
    const capacity = positive("queueCapacity", options.queueCapacity, 1000, true);
    if (capacity > MAX_QUEUE_CAPACITY) {
      // The ring buffer is an array (at most 2^32 - 1 slots): past that its constructor
      // failed with "Invalid array length", naming no option.
      throw new RangeError(
        `Executor option "queueCapacity" must be a positive integer of at most ${MAX_QUEUE_CAPACITY}, got ${capacity}`,
      );
    }
    this.#taskTimeoutMs = positive("taskTimeoutMs", options.taskTimeoutMs, 300_000);
    const r = options.retry ?? {};
    if (typeof r !== "object" || r === null || Array.isArray(r)) {
      throw new TypeError(`Executor option "retry" must be an object, got ${shown(r)}`);
    }
    checkNames("retry.", r, RETRY_OPTIONS);
    this.#retry = {
      delayMs: positive("retry.delayMs", r.delayMs, DEFAULT_RETRY.delayMs, false, true),
      factor: positive("retry.factor", r.factor, DEFAULT_RETRY.factor),
      maxDelayMs: positive("retry.maxDelayMs", r.maxDelayMs, DEFAULT_RETRY.maxDelayMs, false, true),
      jitter: r.jitter ?? DEFAULT_RETRY.jitter,
    };
    if (this.#retry.factor < 1) {
      throw new RangeError(
        `Executor option "retry.factor" must be at least 1 (delays grow), got ${this.#retry.factor}`,
      );
    }
    if (typeof this.#retry.jitter !== "boolean") {
      throw new TypeError(`Executor option "retry.jitter" must be a boolean, got ${typeof this.#retry.jitter}`);
    }
    this.#maxAttempts = positive("maxAttempts", options.maxAttempts, 4, true);
    if (this.#maxAttempts > MAX_ATTEMPTS) {
      throw new RangeError(`Executor option "maxAttempts" must be at most ${MAX_ATTEMPTS}, got ${this.#maxAttempts}`);
    }
    this.#leaseMs = positive("leaseMs", options.leaseMs, 30_000);
    this.#heartbeatMs = positive("heartbeatMs", options.heartbeatMs, this.#leaseMs / 3);
    if (this.#heartbeatMs >= this.#leaseMs) {
      throw new RangeError(
        `Executor option "heartbeatMs" must be shorter than "leaseMs" (${this.#leaseMs}), got ${this.#heartbeatMs}`,
      );
    }
    this.#pollIntervalMs = positive("pollIntervalMs", options.pollIntervalMs, 1000);
    this.#recoveryIntervalMs = positive("recoveryIntervalMs", options.recoveryIntervalMs, this.#leaseMs);
    this.#graceMs = positive("shutdownGraceMs", options.shutdownGraceMs, 10_000, false, true);
    this.#progressMs = positive("progressThrottleMs", options.progressThrottleMs, 100, false, true);
    this.#maxPayload = options.maxPayloadBytes === Infinity
      ? Infinity
      : positive("maxPayloadBytes", options.maxPayloadBytes, DEFAULT_MAX_PAYLOAD_BYTES, true);
    this.#retention = checkRetention(options.retention);
    const queueFactory = options.queue ?? ((n: number) => new RingQueue<Task>(n));
    if (typeof queueFactory !== "function") {
      throw new TypeError(`Executor option "queue" must be a function building a queue, got ${shown(queueFactory)}`);
    }
    const queue = queueFactory(capacity);
    const methods = ["tryPush", "tryPop", "drain", "close"] as const;
    if (
      typeof queue !== "object" || queue === null || methods.some((m) => typeof queue[m] !== "function") ||
      !(Number.isSafeInteger(queue.capacity) && queue.capacity >= 1) ||
      queue.size !== 0
    ) {
      // The claim loop asks the storage for `capacity - size` tasks: a claim limit must be an
      // integer, so an unbounded (`Infinity`), fractional or missing one would never claim.
      // A new queue holds nothing: one that says it holds more than its capacity left no
      // room to claim into for good, and items the executor did not claim are not its to run.
      throw new TypeError(
        `Executor option "queue" must build an empty Queue (integer capacity >= 1, size 0, tryPush, tryPop, drain, ` +
          `close), got capacity ${shown(queue?.capacity)} and size ${shown(queue?.size)}`,
      );
    }
    // The default queue is this package's; a custom one is guarded: a throw from it stops the
    // executor with `queue:error` instead of killing the claim loop (or a completion) unseen.
    this.#queue = options.queue === undefined ? queue : guardQueue(queue, (op, e) => this.#queueFailed(op, e));
    this.#stoppedPromise = new Promise((resolve) => (this.#stopped = resolve));
    this.#contextHost = {
      storage: this.storage,
      readonlyStorage: readonlyView(this.storage),
      agents: this.agents,
      spawnsForOthers: this.#claimAgents !== null,
      defaults: { maxAttempts: this.#maxAttempts },
      now: () => this.#clock.now(),
      progress: (t, f, m) => this.#progress(t, f, m),
      checkSize: (value, what, key) => this.#checkSize(value, what, key),
    };
  }

  // ---------------------------------------------------------------- public API

  /**
   * Listen to an event; returns a function that stops listening. Events tell what this
   * executor did: a task another executor, tab or process ran (or a job it ended) is not
   * told here. To follow a job run elsewhere, `wait()` on its handle, which reads the
   * storage.
   */
  on<K extends ExecutorEventName>(event: K, listener: Listener<K>): () => void {
    return this.#events.on(event, listener);
  }

  /** Stop listening. */
  off<K extends ExecutorEventName>(event: K, listener: Listener<K>): void {
    this.#events.off(event, listener);
  }

  /** Counters since start. */
  stats(): ExecutorStats {
    return { ...this.#stats, running: this.#active - this.#starting, queued: this.#queue.size };
  }

  /** Whether the executor is claiming and running tasks. */
  get running(): boolean {
    return this.#state === "running";
  }

  /** The executor's clock (for callers that compute `runAt`). */
  get clock(): Clock {
    return this.#clock;
  }

  /**
   * Start claiming and running tasks in the background. Calling it again while it runs does
   * nothing; after `shutdown()` it throws (an executor does not restart: make a new one).
   */
  start(): void {
    if (this.#state === "stopping" || this.#state === "stopped") {
      throw new Error("The executor was shut down and does not start again: create a new Executor");
    }
    if (this.#state !== "idle") return;
    // Subscribe before anything else: a `watch()` that throws leaves the executor idle (a
    // later `start()` starts it), not `running` with nothing claiming.
    const unwatch = this.storage.watch((change) => {
      this.#poke();
      this.#endClaimBackoff?.();
      this.#checkJobs(change?.jobs);
    });
    this.#state = "running";
    this.#unwatch = unwatch;
    this.#every(this.#heartbeatMs, () => this.#heartbeat());
    this.#every(this.#recoveryIntervalMs, () => this.#recover());
    const retention = this.#retention;
    if (retention) this.#every(retention.intervalMs, () => this.#prune(retention));
    this.#loop = this.#recoverOwn().then(() => this.#recover()).then(() => this.#claimLoop());
    const next = this.#wakeTimes.peek();
    if (next !== undefined) this.#armWake(next);
  }

  /**
   * Start, and resolve after a graceful shutdown (when `signal` aborts or `shutdown()` is
   * called). Rejects when the executor was shut down before.
   */
  async run(signal?: AbortSignal): Promise<void> {
    if (signal != null && !isAbortSignal(signal)) {
      throw new TypeError(`run() "signal" must be an AbortSignal, got ${shown(signal)}`);
    }
    this.start();
    const onAbort = () => void this.shutdown();
    if (signal) {
      if (signal.aborted) void this.shutdown();
      else signal.addEventListener("abort", onAbort, { once: true });
    }
    try {
      await this.#stoppedPromise;
      if (this.#queueFault !== null) throw this.#queueFault.error;
    } finally {
      // The signal may outlive this executor (a process-wide one): it must not keep it.
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Stop claiming, wait up to `graceMs` for running tasks, then abort the rest and
   * release their leases without counting the attempt (an at-most-once task whose agent
   * was called goes to `blocked` instead); every result is stored before the promise
   * resolves. An agent that awaits it waits for itself: it is aborted once the grace period
   * is over, and its task is handed back to run again. From an agent, call it without
   * awaiting and return.
   */
  shutdown(options: { graceMs?: number } = {}): Promise<void> {
    try {
      checkOptionsObject("shutdown()", options, "{ graceMs }");
      checkOptionNames("shutdown() option", options, ["graceMs"], SHUTDOWN_HINTS);
    } catch (e) {
      return Promise.reject(e);
    }
    const graceMs = options?.graceMs;
    if (graceMs !== undefined && (typeof graceMs !== "number" || !Number.isFinite(graceMs) || graceMs < 0)) {
      return Promise.reject(
        new RangeError(`shutdown() option "graceMs" must be a number of milliseconds >= 0, got ${shown(graceMs)}`),
      );
    }
    // A later call with a shorter grace period cuts the first one short (a second Ctrl-C).
    if (this.#shutdown) this.#shortenGrace?.(graceMs ?? Infinity);
    else this.#shutdown = this.#doShutdown(graceMs ?? this.#graceMs);
    return this.#shutdown;
  }

  /**
   * Check a job spec, store it (nothing is written when it is invalid) and return its handle.
   * A `createJob` that fails with a storage error that may pass is retried with backoff, up
   * to five times in a row, each retry (and the error thrown after the last) after reading
   * back whether the failed call was applied after all (then the job is not stored twice,
   * and the handle is returned: the job keeps its ids).
   */
  submit<A extends AnyAgent>(spec: JobSpecFor<A>): Promise<JobHandle>;
  /** A job spec without agent types. */
  submit(spec: JobSpec): Promise<JobHandle>;
  async submit(spec: JobSpec): Promise<JobHandle> {
    this.#checkInputSizes(spec);
    const built = buildJob(spec, this.agents, { maxAttempts: this.#maxAttempts }, this.#clock.now());
    const id = built.job.id;
    // A job id of the caller's makes the submit idempotent: a job stored under it is the job.
    const chosen = spec.id !== undefined;
    if (chosen && await this.#retried("getJob", () => this.storage.getJob(id))) return new JobHandle(id, this.#host());
    for (let failures = 0;;) {
      try {
        this.#afterCommit(await this.storage.createJob(built.job, built.tasks));
        break;
      } catch (error) {
        if (chosen && await this.storage.getJob(id).catch(() => undefined)) {
          // Stored meanwhile: by another submit of the same id (a storage refuses a second
          // job of one id), or by this one with only its answer lost, whose delayed tasks
          // this executor wakes for below (for another's job, a wake-up that finds nothing).
          this.#poke();
          break;
        }
        // A failure that may pass may also have been applied with only its answer lost: read
        // back whether the job is stored, also before giving up (the last retry, applied, is
        // no failure: a caller that submits again would store the job twice), and on every
        // retry even when the reads failed so far (a retry of an applied call then fails
        // with "already exists" until a read answers).
        const transient = isTransientStorageError(error);
        const giveUp = !transient || ++failures > CALLER_RETRIES;
        if (!giveUp) await this.#callerCallFailed("createJob", error, failures);
        const stored = transient ? await this.storage.getJob(built.job.id).catch(() => undefined) : undefined;
        if (stored) {
          this.#poke(); // applied, with only its answer lost
          break;
        }
        if (giveUp) throw error;
      }
    }
    const now = this.#clock.now();
    const tasks = built.tasks;
    for (let i = 0; i < tasks.length; i++) if (tasks[i]!.runAt > now) this.#wakeAtTime(tasks[i]!.runAt);
    return new JobHandle(built.job.id, this.#host());
  }

  /**
   * Reject inputs (and job metadata) over `maxPayloadBytes` before anything else looks at
   * them: the measure stops at the limit, so an oversized input costs O(limit), not a copy
   * of it. The job's other problems are not reported with these.
   */
  #checkInputSizes(spec: JobSpec): void {
    const limit = this.#maxPayload;
    if (limit === Infinity || spec === null || typeof spec !== "object" || !Array.isArray(spec.tasks)) return;
    // Too many tasks (or a huge sparse array): the job check refuses it without a walk.
    if (spec.tasks.length > MAX_TASKS_PER_JOB) return;
    const problems: JobProblem[] = [];
    const check = (value: unknown, what: string, key?: string) => {
      let size: number;
      try {
        size = jsonSize(value, limit);
      } catch {
        return; // not JSON (a getter that throws...): the job check reports it as invalid input
      }
      if (size <= limit) return;
      problems.push({
        ...(key !== undefined ? { key } : {}),
        code: "payload-too-large",
        message: `${what} is too large: at least ${size} bytes of JSON, over maxPayloadBytes (${limit})`,
      });
    };
    if (spec.metadata !== undefined) check(spec.metadata, "Job metadata");
    for (let i = 0; i < spec.tasks.length; i++) {
      const t = spec.tasks[i];
      if (t !== null && typeof t === "object" && t.input !== undefined) {
        check(t.input, `Task "${String(t.key)}": input`, typeof t.key === "string" ? t.key : undefined);
      }
    }
    if (problems.length > 0) throw new JobValidationError(problems);
  }

  /**
   * A handle on a stored job, to wait on or control it (for example after a restart). A
   * read that fails with an error that may pass is retried, as the handle's reads are.
   */
  async job(id: string): Promise<JobHandle> {
    checkId("job()", "id", id);
    if (!(await this.#retried("getJob", () => this.storage.getJob(id)))) throw new NotFoundError("job", id);
    return new JobHandle(id, this.#host());
  }

  /**
   * Review a completed task that asked for review: `accept` satisfies its dependents;
   * `reject` runs it again with `reason` as `ctx.reviewFeedback`, or fails it when its
   * attempts are used up. A storage call that fails with an error that may pass is retried
   * as in `submit()`, and the decision is stored once.
   */
  async review(taskId: string, decision: "accept" | "reject", reason: string = ""): Promise<Task> {
    checkId("review()", "taskId", taskId);
    if (decision !== "accept" && decision !== "reject") {
      throw new TypeError(`review() "decision" must be "accept" or "reject", got ${shown(decision)}`);
    }
    if (typeof reason !== "string") throw new TypeError(`review() "reason" must be a string, got ${shown(reason)}`);
    // Stored as the task's feedback and reason: text every storage takes (as `cancelTask()`).
    reason = reasonText(reason);
    return await this.#changeTask(taskId, (task) => {
      if (!task.review) {
        throw new InvalidTransitionError(
          taskId,
          task.status,
          decision === "accept" ? "accepted" : "rejected",
          `Task "${task.key}" did not ask for review`,
        );
      }
      if (task.status !== "completed") {
        throw new InvalidTransitionError(
          taskId,
          task.status,
          decision === "accept" ? "accepted" : "rejected",
          `Task "${task.key}" is ${task.status}: only a completed task awaiting review can be reviewed`,
        );
      }
      const now = this.#clock.now();
      const set: Partial<Task> = decision === "accept"
        ? { status: "accepted", statusReason: reason || null }
        : task.attempts < task.maxAttempts
        ? { status: "ready", reviewFeedback: reason || "Rejected", runAt: now, statusReason: "Review rejected" }
        : { status: "rejected", reviewFeedback: reason || "Rejected", statusReason: reason || "Rejected" };
      return {
        set,
        expect: { version: task.version },
        report: (stored) => {
          if (decision === "accept") this.#events.emit("task:accepted", { task: stored });
          else {this.#events.emit("task:rejected", {
              task: stored,
              reason: reason || "Rejected",
              rerun: set.status === "ready",
            });}
        },
      };
    }, true);
  }

  /**
   * Send a `blocked` task (it needs a person) back to `ready`. A task blocked by a failed
   * dependency goes on without it, once its dependencies that are still open have
   * finished (until then it is `pending`); in a paused job it waits `paused`. Resolves with the stored
   * task; when a failed commit turns out to have been applied, that is the task as read
   * back, which may already be running again.
   */
  async retryTask(taskId: string): Promise<Task> {
    checkId("retryTask()", "taskId", taskId);
    return await this.#changeTask(taskId, (task) => {
      if (task.status !== "blocked") {
        throw new InvalidTransitionError(
          taskId,
          task.status,
          "ready",
          `Task "${task.key}" is ${task.status}: retryTask() sends on a blocked task only`,
        );
      }
      return {
        expect: { version: task.version, status: "blocked" },
        set: { status: "ready", runAt: this.#clock.now(), statusReason: "Retried by a person" },
      };
    }, true);
  }

  /**
   * Cancel one task that is not running (`pending`, `ready`, `paused` or `blocked`: for
   * example a blocked task a person decides not to run again). Its dependents are cancelled
   * (or blocked, as they asked) as for any cancelled dependency, and its job ends once
   * nothing is left open; a cancelled task is no failure. A running task is stopped by
   * cancelling its job. Resolves with the stored task.
   */
  async cancelTask(taskId: string, reason: string = "Cancelled by a person"): Promise<Task> {
    checkId("cancelTask()", "taskId", taskId);
    if (typeof reason !== "string") throw new TypeError(`cancelTask() "reason" must be a string, got ${shown(reason)}`);
    return await this.#changeTask(taskId, (task) => {
      if (!CANCELLABLE_ALONE.has(task.status)) {
        throw new InvalidTransitionError(
          taskId,
          task.status,
          "cancelled",
          task.status === "running"
            ? `Task "${task.key}" is running: cancel its job to stop it`
            : task.status === "completed" && task.review
            ? `Task "${task.key}" awaits review: reject it with review()`
            : `Task "${task.key}" has ended`,
        );
      }
      return {
        expect: { version: task.version, status: task.status },
        set: { status: "cancelled", statusReason: reasonText(reason) || "Cancelled by a person" },
      };
      // Cancelling is final: the task as it is now is as much the person's to cancel.
    }, false);
  }

  /**
   * A person's change of one task: `plan` checks the task as read and says what to write
   * (or throws). The task may change between the read and the write (a dependency
   * finished, its job was paused or resumed, another executor claimed it): the commit's
   * compare-and-swap then refuses it, and the change is planned again on the task as it is
   * now, so the caller gets the answer for the task's present state (done, or a clear
   * `InvalidTransitionError`), not a `ConflictError` for a race it could not see.
   *
   * A commit that failed with an error that may pass is retried after reading the task
   * back: when the task shows the write, the failed call was applied with only its answer
   * lost, and it is not written again (a second write would conflict, or apply the change
   * twice). A conflict after such a failure is thrown, not planned again: the write may
   * have landed and the task moved on since (a retried task run and blocked again must
   * not be retried a second time).
   *
   * With `sameAttempt`, a conflict is planned again only while the task is at the attempt
   * the person decided on: a decision on one output (`review()`) or one blocked attempt
   * (`retryTask()`) is not a decision on the next one, which another caller's decision
   * sent the task on to meanwhile; its `ConflictError` is thrown.
   */
  async #changeTask(
    taskId: string,
    plan: (task: Task) => {
      expect: UpdateTaskOp["expect"];
      set: UpdateTaskOp["set"];
      report?: (stored: Task) => void;
    },
    sameAttempt: boolean,
  ): Promise<Task> {
    let conflicts = 0;
    let first: Task | undefined;
    let conflict: ConflictError | undefined;
    for (;;) {
      const before = await this.#retried("getTask", () => this.storage.getTask(taskId));
      if (!before) throw new NotFoundError("task", taskId);
      if (first === undefined) first = before;
      else if (sameAttempt && before.attempts !== first.attempts) throw conflict!;
      const { expect, set, report } = plan(before);
      const op: UpdateTaskOp = { type: "updateTask", id: taskId, expect, set };
      // The `now` of each failed attempt: a job that ended at one of them ended by it.
      const unsure: number[] = [];
      for (let failures = 0;;) {
        const now = this.#clock.now();
        try {
          const result = await this.storage.commit([op], now);
          const stored = result.tasks.find((t) => t.id === op.id)!;
          report?.(stored);
          this.#afterCommit(result);
          return stored;
        } catch (error) {
          // Nothing of this call was applied: plan again (each refusal means the task moved
          // on; one moving on this often is a bug elsewhere, and its conflict is thrown).
          if (error instanceof ConflictError && unsure.length === 0 && ++conflicts <= CHANGE_CONFLICTS) {
            conflict = error;
            break;
          }
          await this.#callerCallFailed("commit", error, ++failures);
          unsure.push(now);
        }
        const stored = await this.#retried("getTask", () => this.storage.getTask(op.id));
        if (stored && landed(op, stored, before)) {
          // Applied: report what the lost answer would have (the job's end, readied tasks).
          const job = await this.#retried("getJob", () => this.storage.getJob(stored.jobId));
          const ended = job && isJobFinal(job.status) && job.finishedAt !== null && unsure.includes(job.finishedAt);
          report?.(stored);
          this.#afterCommit({ tasks: [stored], jobs: ended ? [job] : [], readied: 1 });
          return stored;
        }
      }
    }
  }

  /**
   * A storage failure of a call made for a caller (`review()`, `retryTask()`, job control):
   * report it and wait before the retry, or throw it when it will not pass (not transient,
   * or the sixth in a row), as `submit()` does.
   */
  async #callerCallFailed(operation: string, error: unknown, failures: number): Promise<void> {
    if (!isTransientStorageError(error) || failures > CALLER_RETRIES) throw error;
    this.#stats.storageErrors++;
    this.#events.emit("storage:error", { operation, error, attempt: failures });
    await this.#sleep(this.#claimBackoff(failures));
  }

  /** A read for a caller, retried while it fails with an error that may pass. */
  async #retried<T>(operation: string, read: () => Promise<T>): Promise<T> {
    for (let failures = 0;;) {
      try {
        return await read();
      } catch (error) {
        await this.#callerCallFailed(operation, error, ++failures);
      }
    }
  }

  // ---------------------------------------------------------------- job control (via JobHandle)

  #host(): JobHost {
    return {
      storage: this.storage,
      clock: this.#clock,
      pollIntervalMs: this.#pollIntervalMs,
      on: (event, listener) => this.#events.on(event, listener),
      onJob: (event, jobId, listener) => this.#events.onJob(event, jobId, listener),
      setJobStatus: (jobId, status) => this.#setJobStatus(jobId, status),
      watchJob: (jobId, wake) => this.#watchJob(jobId, wake),
      retried: (operation, read) => this.#retried(operation, read),
      storageError: (operation, error, attempt) => {
        this.#stats.storageErrors++;
        this.#events.emit("storage:error", { operation, error, attempt });
      },
    };
  }

  /**
   * Wake `wake` when job `jobId` may have changed status: at once for this executor's own
   * commits, and on the storage's notifications, which name the jobs they changed when
   * the backend knows them. Waiters of other jobs are not woken, so many `wait()`s cost
   * one read per change of their own job, not one per change of any job.
   */
  #watchJob(jobId: string, wake: () => void): () => void {
    let set = this.#jobWaiters.get(jobId);
    if (!set) this.#jobWaiters.set(jobId, set = new Set());
    set.add(wake);
    const waiters = set;
    try {
      this.#unwatchJobs ??= this.storage.watch((change) => this.#wakeJobs(change?.jobs));
    } catch (error) {
      // The caller's `wait()` fails with it: it waits for nothing, and must not stay counted.
      waiters.delete(wake);
      if (waiters.size === 0 && this.#jobWaiters.get(jobId) === waiters) this.#jobWaiters.delete(jobId);
      throw error;
    }
    return () => {
      waiters.delete(wake);
      if (waiters.size === 0 && this.#jobWaiters.get(jobId) === waiters) this.#jobWaiters.delete(jobId);
      if (this.#jobWaiters.size === 0 && this.#unwatchJobs) {
        this.#unwatchJobs();
        this.#unwatchJobs = null;
      }
    };
  }

  /** Wake the waiters of `jobs` (`undefined`: of every job, as anything may have changed). */
  #wakeJobs(jobs: readonly string[] | undefined): void {
    if (this.#jobWaiters.size === 0) return;
    if (jobs === undefined) {
      for (const set of [...this.#jobWaiters.values()]) for (const wake of [...set]) wake();
      return;
    }
    for (const id of jobs) {
      const set = this.#jobWaiters.get(id);
      if (set) { for (const wake of [...set]) wake(); }
    }
  }

  /**
   * Status changes of one job made through this executor, applied one after another in the
   * order they were called: `pause(); resume();` without awaiting ends `running`, as
   * called. Each read the job before the other wrote, so the later write won otherwise.
   */
  #setJobStatus(jobId: string, status: "running" | "paused" | "cancelled"): Promise<Job> {
    const before = this.#statusChanges.get(jobId);
    const change = before
      ? before.then(() => this.#applyJobStatus(jobId, status))
      : this.#applyJobStatus(jobId, status);
    const settled = change.then(() => {}, () => {});
    this.#statusChanges.set(jobId, settled);
    void settled.then(() => {
      if (this.#statusChanges.get(jobId) === settled) this.#statusChanges.delete(jobId);
    });
    return change;
  }

  async #applyJobStatus(jobId: string, status: "running" | "paused" | "cancelled"): Promise<Job> {
    // A commit that failed with an error that may pass is retried from the read: when it
    // was applied after all, the job already shows the status.
    let failures = 0;
    // The `now` of each failed attempt: a cancel stored by one of them ended the job at it.
    const unsure: number[] = [];
    for (;;) {
      const job = await this.#retried("getJob", () => this.storage.getJob(jobId));
      if (!job) throw new NotFoundError("job", jobId);
      if (job.status === status || isJobFinal(job.status)) {
        // Already so (set elsewhere, or applied with its answer lost): this executor's
        // tasks of the job stop all the same, as the success of the call would stop them.
        this.#followJob(jobId, job.status);
        if (failures > 0 && job.status === status) {
          // Its end is reported only when a failed attempt of this call stored it: a job
          // another executor cancelled meanwhile was ended (and reported) by that one.
          const ended = status === "cancelled" && job.finishedAt !== null && unsure.includes(job.finishedAt);
          this.#afterCommit({ tasks: [], jobs: ended ? [job] : [], readied: 1 });
        }
        return job;
      }
      const now = this.#clock.now();
      try {
        const result = await this.storage.commit(
          [{ type: "updateJob", id: jobId, expect: { version: job.version }, set: { status } }],
          now,
        );
        this.#followJob(jobId, status);
        this.#afterCommit(result);
        return result.jobs.find((j) => j.id === jobId) ??
          (await this.#retried("getJob", () => this.storage.getJob(jobId)))!;
      } catch (e) {
        if (e instanceof ConflictError) continue;
        await this.#callerCallFailed("commit", e, ++failures);
        unsure.push(now);
      }
    }
  }

  /**
   * A paused job starts nothing new: its tasks this executor claimed but has not started
   * go back to storage (where they wait `paused`) without counting an attempt.
   */
  #holdJob(jobId: string): void {
    const stops = this.#stoppedWhileClaiming;
    if (stops && stops.get(jobId) !== "ended") stops.set(jobId, "paused");
    // At-most-once attempts whose start is being stored have not called their agent yet.
    for (const run of this.#runs.values()) if (run.starting && run.task.jobId === jobId) run.held = true;
    const held: Task[] = [];
    for (const task of this.#queued.values()) if (task.jobId === jobId) held.push(task);
    if (held.length === 0) return;
    for (const task of held) this.#dropQueued(task);
    this.#compactQueue();
    void this.#release(held, "Released: its job was paused");
  }

  /**
   * The storage says jobs changed status (another executor, tab or process may have
   * paused or cancelled them): stop this executor's tasks of those that ended or paused,
   * rather than at the next heartbeat. A failed read leaves it to the heartbeat. A notice
   * that names no jobs (`undefined`: anything may have changed, e.g. a commit that changed
   * too many jobs to list, or notices missed while a connection was down) checks every job
   * this executor holds tasks of.
   */
  #checkJobs(jobs: readonly string[] | undefined): void {
    if (this.#state !== "running") return;
    if (jobs === undefined) {
      if (this.#stoppedWhileClaiming !== null) this.#claimVague = true;
      return this.#checkAllJobs();
    }
    const claiming = this.#stoppedWhileClaiming !== null;
    for (const jobId of jobs) {
      if (claiming) this.#claimReads.set(jobId, this.#checkJob(jobId, true));
      else void this.#checkJob(jobId);
    }
  }

  /**
   * Check every job this executor holds tasks of, one such check at a time: notices that
   * name no jobs while one runs make one more check after it (its reads may have come
   * before their changes), not one read per held job per notice.
   */
  #checkAllJobs(): void {
    if (this.#checkingAll !== 0) {
      this.#checkingAll = 2;
      return;
    }
    this.#checkingAll = 1;
    const jobs = new Set([...this.#queued.jobs(), ...this.#runs.jobs()]);
    void Promise.all([...jobs].map((jobId) => this.#checkJob(jobId))).then(() => {
      const again = this.#checkingAll === 2;
      this.#checkingAll = 0;
      if (again && this.#state === "running") this.#checkAllJobs();
    });
  }

  /**
   * Read job `jobId` and stop this executor's tasks of it if it ended or paused (a failed read: the heartbeat will).
   * With `forClaim`, a job this executor holds nothing of yet is read too: a claim in flight
   * may have been stored before the change, and its answer brought tasks of the job (see
   * `#checkClaimedJobs`).
   */
  #checkJob(jobId: string, forClaim = false): Promise<void> {
    if (!forClaim && !this.#holdsJob(jobId)) return Promise.resolve();
    let read: Promise<Job | undefined>;
    try {
      read = this.storage.getJob(jobId);
    } catch {
      return Promise.resolve(); // a storage that throws instead of rejecting: the heartbeat will
    }
    return read.then((job) => {
      if (this.#state !== "running") return;
      if (!job) this.#abortJob(jobId, "Job deleted");
      else if (isJobFinal(job.status)) this.#abortJob(jobId, `Job ${job.status}`);
      else this.#followJob(jobId, job.status);
    }, () => {});
  }

  /** Stop, hold or let go on this executor's tasks of a job whose status is now `status` (an ended one: nothing). */
  #followJob(jobId: string, status: JobStatus): void {
    if (status === "cancelled") this.#abortJob(jobId);
    else if (status === "paused") this.#holdJob(jobId);
    else if (status === "running") this.#unholdJob(jobId);
  }

  /** The job runs again: attempts whose start is being stored are called after all, not handed back. */
  #unholdJob(jobId: string): void {
    if (this.#runs.countOf(jobId) === 0) return;
    for (const run of this.#runs.values()) if (run.starting && run.task.jobId === jobId) run.held = false;
  }

  /** Whether this executor has tasks of the job queued or running (O(1): a count per job). */
  #holdsJob(jobId: string): boolean {
    return this.#queued.countOf(jobId) > 0 || this.#runs.countOf(jobId) > 0;
  }

  #abortJob(jobId: string, reason = "Job cancelled"): void {
    this.#stoppedWhileClaiming?.set(jobId, "ended");
    // Claimed tasks still waiting in the ready queue were cancelled with the job: they
    // are not started (their stored status already says cancelled).
    for (const task of this.#queued.values()) {
      if (task.jobId === jobId) this.#dropQueued(task);
    }
    this.#compactQueue();
    for (const run of this.#runs.values()) {
      if (run.task.jobId !== jobId || run.settled) continue;
      this.#abandon(run, reason);
    }
  }

  // ---------------------------------------------------------------- claim loop

  #poke(): void {
    this.#wakeRequested = true;
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Wake the claim loop at `at` (a retry's or a delayed task's `runAt`); every such time is kept. */
  #wakeAtTime(at: number): void {
    if (this.#state !== "running" && this.#state !== "idle") return;
    // Times already due wake nothing more: drop them first. A never-started executor (a
    // process that only submits) has no timer to pop them, and would keep them for good.
    this.#dropDueWakes(this.#clock.now());
    // A job of 100k tasks delayed alike keeps one time, not 100k.
    if (at === this.#lastWakeTime) return;
    this.#lastWakeTime = at;
    this.#wakeTimes.push(at);
    // A never-started executor (a client that submits, reviews, resumes) keeps the times
    // for `start()` and arms no timer: it must not keep its process alive.
    if (this.#state === "running" && at < this.#wakeAt) this.#armWake(at);
  }

  /** Drop the wake-up times due by `now`. */
  #dropDueWakes(now: number): void {
    while ((this.#wakeTimes.peek() ?? Infinity) <= now) {
      if (this.#wakeTimes.pop() === this.#lastWakeTime) this.#lastWakeTime = -Infinity;
    }
  }

  #disarmWake(): void {
    if (this.#wakeTimer !== null) this.#clock.clearTimer(this.#wakeTimer);
    this.#wakeTimer = null;
    this.#wakeAt = Infinity;
  }

  #armWake(at: number): void {
    if (this.#wakeTimer !== null) this.#clock.clearTimer(this.#wakeTimer);
    this.#wakeAt = at;
    this.#wakeTimer = this.#clock.setTimer(() => {
      this.#wakeTimer = null;
      this.#wakeAt = Infinity;
      this.#dropDueWakes(this.#clock.now());
      const next = this.#wakeTimes.peek();
      if (next !== undefined && this.#state === "running") this.#armWake(next);
      this.#poke();
    }, Math.max(0, at - this.#clock.now()));
  }

  /**
   * When `error` says the storage is closed, nothing can be claimed or stored again: stop,
   * as `shutdown({ graceMs: 0 })` does (`run()` resolves), instead of polling a closed
   * storage for good. Whether it stopped (the claim loop then ends).
   */
  #stopWhenClosed(error: unknown): boolean {
    if (!(error instanceof StorageClosedError)) return false;
    void this.shutdown({ graceMs: 0 });
    return true;
  }

  async #claimLoop(): Promise<void> {
    let failures = 0;
    // A claim that failed with a storage error may have been applied with only its answer
    // lost: its tasks would sit `running` under this executor's lease, never run, until the
    // lease expired (and an at-most-once task would then be blocked). Hand them back first.
    let orphans = false;
    while (this.#state === "running") {
      if (orphans) {
        try {
          await this.#releaseOrphans();
          orphans = false;
        } catch (error) {
          if (this.#state !== "running") break;
          failures++;
          this.#stats.storageErrors++;
          this.#events.emit("storage:error", { operation: "listTasks", error, attempt: failures });
          // Closed after the claim failed: stop, as a claim that meets a closed storage does.
          if (this.#stopWhenClosed(error)) {
            orphans = false;
            break;
          }
          await this.#claimPause(this.#claimBackoff(failures));
          continue;
        }
      }
      // Tasks for the free workers, plus what `prefetch` lets wait in the queue's room.
      const free = Math.max(0, this.#maxWorkers - this.#active);
      const inQueue = this.#queue.size;
      const room = Math.min(this.#queue.capacity - inQueue, free + this.#prefetch - inQueue);
      if (room <= 0) {
        // Woken when a worker frees or the queue hands a task out (`#pump`).
        await new Promise<void>((resolve) => (this.#roomWaiter = resolve));
        continue;
      }
      this.#wakeRequested = false;
      let claimed: Task[];
      const stops = this.#stoppedWhileClaiming = new Map();
      this.#claimReads.clear();
      this.#claimVague = false;
      // The claim starts the tasks that workers free now take at once (the first ones out of
      // an empty queue), so their start needs no commit of its own; the rest wait unstarted.
      const start = inQueue === 0 ? Math.min(room, free) : 0;
      const now = this.#claimNow = this.#clock.now();
      try {
        const agents = this.#claimAgents;
        claimed = await this.storage.claimReady({
          limit: room,
          now,
          owner: this.id,
          leaseMs: this.#leaseMs,
          ...(start > 0 ? { start } : {}),
          ...(agents === null ? {} : { agents: agents() }),
        });
        failures = 0;
        // (Only when a notice came meanwhile: a claim on the hot path waits for nothing more.)
        if (this.#claimReads.size > 0 || this.#claimVague) await this.#checkClaimedJobs(claimed);
      } catch (error) {
        this.#claimEnded();
        orphans = true;
        if (this.#state !== "running") break;
        failures++;
        this.#stats.storageErrors++;
        this.#events.emit("storage:error", { operation: "claimReady", error, attempt: failures });
        if (this.#stopWhenClosed(error)) {
          orphans = false; // nothing to hand back to a closed storage
          break;
        }
        await this.#claimPause(this.#claimBackoff(failures));
        continue;
      }
      this.#claimEnded();
      if (this.#state !== "running") {
        // Shutdown began while claiming: hand the tasks back at once.
        await this.#release(claimed);
        break;
      }
      this.#stats.claimed += claimed.length;
      if (stops.size > 0) claimed = this.#screenClaimed(claimed, stops);
      // A storage that answers more than `limit` (against its contract) must not strand
      // the surplus as running with nobody to run it: it goes back at once.
      const { surplus, accepted, unstarted } = this.#dispatch(claimed);
      this.#pump();
      if (unstarted) {
        await this.#release(unstarted);
        if (surplus) await this.#release(surplus, "Released: claimed past the ready queue's room");
        break;
      }
      if (surplus) {
        const taken = this.#taken;
        await this.#release(surplus, "Released: claimed past the ready queue's room");
        // The queue refused tasks (it takes fewer than it reports room for, or the storage
        // answered more than asked): claiming again at once would claim and hand back the
        // same tasks in a loop. Claim again once a task left the queue; a queue that
        // refuses while empty is asked again when the executor would poll.
        if (this.#taken !== taken || this.#state !== "running") continue;
        if (this.#queue.size > 0) {
          this.#roomAfterTake = taken;
          await new Promise<void>((resolve) => (this.#roomWaiter = resolve));
          this.#roomAfterTake = -1;
          continue;
        }
        if (accepted > 0) continue;
      } else if (claimed.length >= room || this.#wakeRequested) continue;
      // An idle executor keeps no task it ran reachable (with its input) while it waits.
      claimed = [];
      await new Promise<void>((resolve) => {
        const timer = this.#clock.setTimer(() => this.#poke(), this.#pollIntervalMs);
        this.#wake = () => {
          this.#clock.clearTimer(timer);
          resolve();
        };
      });
    }
    if (orphans) await this.#releaseOrphans().catch(() => {});
  }

  /**
   * Hand claimed tasks to free workers (those the claim started) and to the ready queue;
   * returns how many the queue took, those it refused and those it left unstarted as
   * shutdown began meanwhile, if any. A method of its own, so
   * that the claim loop's frame holds none of them while it waits.
   */
  #dispatch(claimed: readonly Task[]): { surplus: Task[] | null; accepted: number; unstarted: Task[] | null } {
    let surplus: Task[] | null = null;
    let unstarted: Task[] | null = null;
    let accepted = 0;
    for (const t of claimed) {
      if (this.#state !== "running") {
        // Shutdown began while the claim was handed out (a `task:started` listener or a
        // synchronous agent called it): what was not started yet goes back unstarted, as
        // the tasks waiting in the ready queue do.
        (unstarted ??= []).push(t);
        continue;
      }
      if (t.startedAt !== null && this.#active < this.#maxWorkers) {
        // Started by the claim for a free worker: it runs now, whatever order a custom
        // queue would hand it out in (one left waiting there would be charged by a crash).
        this.#active++;
        this.#execute(t);
        continue;
      }
      if (this.#queue.tryPush(t)) {
        this.#queued.set(t.id, t);
        accepted++;
      } else (surplus ??= []).push(t);
    }
    return { surplus, accepted, unstarted };
  }

  /** A custom queue threw: tell it once and stop, as `shutdown()` does. */
  #queueFailed(operation: string, error: unknown): void {
    if (this.#queueFault !== null) return;
    this.#queueFault = { error };
    this.#events.emit("queue:error", { operation, error });
    // (Also before `start()`: an executor whose queue is broken does not start.)
    if (this.#state === "running" || this.#state === "idle") void this.shutdown().catch(() => {});
  }

  /** The claim answered (or failed): what was noted while it was in flight no longer applies. */
  #claimEnded(): void {
    this.#stoppedWhileClaiming = null;
    this.#claimNow = null;
    this.#claimReads.clear();
  }

  /**
   * The checks of the claim's jobs that a change notice named while it was in flight (after
   * one that named no jobs: every job of the claim, read now) land (in `stops`) before the
   * claim's tasks start; so do those of notices that come while they are read. Reads of
   * jobs the claim brought nothing of are not waited for. A read that does not answer
   * within `pollIntervalMs` is not waited for longer (the tasks start; its answer stops
   * them if it comes), nor once shutdown begins.
   */
  async #checkClaimedJobs(claimed: readonly Task[]): Promise<void> {
    const jobs = new Set(claimed.map((t) => t.jobId));
    let over = false;
    let end!: () => void;
    // In real time, not on the executor's clock: it bounds a storage read, which takes real
    // time whatever clock a test drives the executor with (a manual clock moved on to this
    // timer would start the tasks early and shift every later time of the test).
    const limit = new Promise<void>((resolve) => (end = resolve)).then(() => void (over = true));
    // setTimeout keeps at most 2^31 - 1 ms (about 24.8 days): a longer delay fires at once.
    const timer = setTimeout(end, Math.min(this.#pollIntervalMs, 2 ** 31 - 1));
    this.#endClaimWait = end;
    try {
      while (!over && this.#state === "running") {
        const checks: Promise<void>[] = [];
        if (this.#claimVague) { for (const jobId of jobs) checks.push(this.#checkJob(jobId, true)); }
        else for (const [jobId, read] of this.#claimReads) if (jobs.has(jobId)) checks.push(read);
        this.#claimVague = false;
        this.#claimReads.clear();
        if (checks.length === 0) break;
        await Promise.race([Promise.all(checks), limit]);
      }
    } finally {
      clearTimeout(timer);
      this.#endClaimWait = null;
    }
  }

  /**
   * The claim was stored before its jobs in `stops` were cancelled or paused, and answered
   * after: tasks of an ended job are not started (the cancel ended them in storage too),
   * and those of a paused job go back unstarted, to wait with their job.
   */
  #screenClaimed(claimed: Task[], stops: ReadonlyMap<string, "ended" | "paused">): Task[] {
    const keep: Task[] = [];
    const back: Task[] = [];
    for (const t of claimed) {
      const stop = stops.get(t.jobId);
      if (stop === undefined) keep.push(t);
      else if (stop === "paused") back.push(t);
    }
    if (back.length > 0) void this.#release(back, "Released: its job was paused");
    return keep;
  }

  /**
   * The claim loop's wait after a failed storage call: `ms`, or until shutdown begins (which
   * must not wait out a backoff of up to `pollIntervalMs` first). New work does not end it,
   * or a busy app would call a failing storage as fast as it submits.
   */
  #claimPause(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = this.#clock.setTimer(() => {
        this.#endClaimWait = this.#endClaimBackoff = null;
        resolve();
      }, ms);
      // Ended by shutdown, and by a change the storage tells of (see `#endClaimBackoff`):
      // the failure count stays, so a claim that fails again backs off longer. A storage
      // that fails claims while it tells of changes is claimed from once per change, as
      // when it answers.
      this.#endClaimWait = this.#endClaimBackoff = () => {
        this.#endClaimWait = this.#endClaimBackoff = null;
        this.#clock.clearTimer(timer);
        resolve();
      };
    });
  }

  #claimBackoff(failures: number): number {
    return backoffDelay(failures, { delayMs: 50, factor: 2, maxDelayMs: this.#pollIntervalMs, jitter: false });
  }

  /** Whether this executor holds the task: queued, running, or its result being committed. */
  #holds(id: string): boolean {
    if (this.#runs.has(id) || this.#queued.has(id)) return true;
    for (const list of [this.#pending, this.#inflight]) {
      for (const item of list) {
        if (item.run?.task.id === id) return true;
        for (const op of item.ops) if (op.type === "updateTask" && op.id === id) return true;
      }
    }
    return false;
  }

  /** Give back tasks stored as claimed by this executor that it does not hold (see `#claimLoop`). */
  async #releaseOrphans(): Promise<void> {
    const running = await this.storage.listTasks({ status: "running" });
    const now = this.#clock.now();
    this.#forgetExpiredRuns();
    // Only claims never started go back uncounted: a task whose agent ran (its result was
    // dropped, or an at-most-once start is stored) waits for recovery, as after a crash,
    // and so does a claim whose lease has ended.
    const orphans = running.filter((t) => {
      if (t.leaseOwner !== this.id || (t.leaseExpiresAt ?? -Infinity) <= now || this.#holds(t.id)) return false;
      if (t.durability === "at-most-once" && t.startedAt !== null) return false;
      return this.#ranUnstored.get(t.id)?.version !== t.version;
    });
    if (orphans.length > 0) await this.#release(orphans, "Released: the claim's answer was lost");
  }

  /** Drop the entries of `#ranUnstored` whose leases have ended (from the front: O(1) each). */
  #forgetExpiredRuns(): void {
    const now = this.#clock.now();
    for (const [id, { until }] of this.#ranUnstored) {
      if (until > now) break;
      this.#ranUnstored.delete(id);
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.#clock.setTimer(resolve, ms));
  }

  #every(ms: number, fn: () => Promise<unknown> | void): void {
    const tick = () => {
      if (this.#state !== "running" && this.#state !== "stopping") return;
      const handle = this.#clock.setTimer(async () => {
        this.#timers = this.#timers.filter((t) => t !== handle);
        const work = Promise.resolve().then(fn);
        this.#periodic.add(work);
        try {
          await work;
        } finally {
          this.#periodic.delete(work);
          tick();
        }
      }, ms);
      this.#timers.push(handle);
    };
    tick();
  }

  // ---------------------------------------------------------------- workers

  #pump(): void {
    // A synchronous agent settles inside `#execute`, whose end calls `#pump` again: that
    // inner call only asks this loop to go on, so the stack stays flat however many
    // queued tasks run synchronously one after another.
    if (this.#pumping) {
      this.#pumpAgain = true;
      return;
    }
    this.#pumping = true;
    try {
      do {
        this.#pumpAgain = false;
        // Once shutting down, queued tasks stay queued: shutdown hands them back unstarted.
        while (this.#active < this.#maxWorkers && this.#state === "running") {
          const task = this.#queue.tryPop();
          if (task === undefined) break;
          this.#taken++;
          // Only a claim this executor queued and has neither started nor dropped: a custom
          // queue that hands a task out twice must not start its attempt twice. Known by its
          // claim (id and version), not by identity: a queue may hand out a copy, and the
          // executor runs its own record of the claim.
          const mine = this.#queuedClaim(task);
          if (mine === undefined || !this.#queued.deleteIf(mine.id, mine)) {
            if (task !== null && typeof task === "object") this.#lostIds.delete(task.id);
            continue;
          }
          this.#active++;
          this.#execute(mine);
        }
      } while (this.#pumpAgain);
    } finally {
      this.#pumping = false;
    }
    const size = this.#queue.size;
    if (
      this.#roomWaiter && size < this.#queue.capacity &&
      (this.#roomAfterTake < 0 || this.#taken !== this.#roomAfterTake || size === 0)
    ) {
      const w = this.#roomWaiter;
      this.#roomWaiter = null;
      w();
    }
  }

  /** The claim this executor queued that `task` (as the queue handed it out) stands for. */
  #queuedClaim(task: Task): Task | undefined {
    if (task === null || typeof task !== "object") return undefined;
    const mine = this.#queued.get(task.id);
    return mine !== undefined && mine.version === task.version ? mine : undefined;
  }

  #progress(task: Task, fraction: number, message: string | null): void {
    // From an attempt that ended (timed out, aborted, or an agent that went on after
    // returning): nothing to report, and nothing to remember.
    const run = this.#runs.get(task.id);
    if (run === undefined || run.done || run.task.attempts !== task.attempts) return;
    // The task as stored since its start (`task` is the claim the context was made from:
    // one that waited in the ready queue has no `startedAt` there), as `task:started` tells it.
    task = run.task;
    const now = this.#monotonic();
    const last = this.#lastProgress.get(task.id);
    // (`now < last`: a clock without `monotonic()` went back; the report is told, not held for the jump.)
    if (last !== undefined && now >= last && now - last < this.#progressMs && fraction < 1) {
      // Held back, and told when the interval ends unless a later report replaces it: the
      // last word of an agent that then works for long is not lost.
      const held = this.#heldProgress.get(task.id);
      if (held) {
        held.fraction = fraction;
        held.message = message;
        return;
      }
      const entry: HeldProgress = {
        task,
        fraction,
        message,
        timer: this.#clock.setTimer(() => {
          this.#heldProgress.delete(task.id);
          const current = this.#runs.get(task.id);
          if (current !== run || run.done) return;
          this.#lastProgress.set(task.id, this.#monotonic());
          this.#events.emit("task:progress", { task: entry.task, fraction: entry.fraction, message: entry.message });
        }, last + this.#progressMs - now),
      };
      this.#heldProgress.set(task.id, entry);
      return;
    }
    this.#dropHeldProgress(task.id);
    this.#lastProgress.set(task.id, now);
    this.#events.emit("task:progress", { task, fraction, message });
  }

  #dropHeldProgress(id: string): void {
    const held = this.#heldProgress.get(id);
    if (!held) return;
    this.#clock.clearTimer(held.timer);
    this.#heldProgress.delete(id);
  }

  #execute(task: Task): void {
    const timeoutMs = task.timeoutMs ?? this.#taskTimeoutMs;
    const run: Run = {
      task,
      claim: task,
      ctx: new AttemptContext(task, this.#contextHost),
      deadline: 0,
      timeoutMs,
      settled: false,
      done: false,
      timedOut: false,
      lost: false,
      waiting: false,
      starting: false,
      held: false,
      called: false,
      lostReason: null,
      released: false,
    };
    const earlier = this.#runs.get(task.id);
    if (earlier && !earlier.done) {
      // Claimed again while an attempt of it still runs here: its lease was lost (renewals
      // failed past it) and another executor recovered the task. That attempt's result can
      // no longer be stored; give it up, so that this attempt is the one tracked.
      this.#abandon(earlier, "Lease lost: the task was recovered and claimed again");
    }
    this.#runs.set(task.id, run);
    if (task.startedAt === null) {
      // Store the start before the agent runs: after a crash, a task whose start is not
      // stored never ran and goes back to ready uncounted (a crash spends no attempt of the
      // tasks waiting in the ready queue); one whose start is stored may have run, and its
      // attempt counts (an at-most-once task is blocked). In a busy pool the start rides in
      // the commit of the result that freed the worker.
      // The start renews the lease, from the time of the commit attempt that stores it
      // (`lease`): a start stored late (slow storage, retries) still leaves the attempt its
      // whole lease, so no recovery takes the task while its agent runs.
      const now = this.#clock.now();
      this.#starting++;
      run.starting = true;
      this.#enqueue(pendingItem(
        [{
          type: "updateTask",
          id: task.id,
          expect: { version: task.version, status: "running" },
          set: { startedAt: now, leaseExpiresAt: now + this.#leaseMs },
        }],
        null,
        "other",
        null,
        true,
        run,
      ));
      return;
    }
    this.#call(run);
  }

  /** The start of an attempt was stored (`null`: the task changed meanwhile). */
  #begin(run: Run, stored: Task | null): void {
    run.starting = false;
    if (--this.#starting === 0 && this.#startsStored) {
      const w = this.#startsStored;
      this.#startsStored = null;
      w();
    }
    if (
      stored &&
      (stored.status !== "running" || stored.leaseOwner !== this.id || stored.version !== run.claim.version + 1)
    ) {
      // A start whose answer was lost, found applied after the task moved on (its lease
      // ended and recovery took it, or another claim holds it): no longer this attempt's.
      if (!run.lost) run.lostReason = "Its start was stored, but the task was recovered meanwhile";
      stored = null;
    }
    if (stored) run.task = stored;
    if (run.done) return;
    if (!stored || run.lost || run.held || this.#state !== "running") {
      // Its agent was never called: when shutting down or when its job was paused
      // meanwhile, hand the task back now (a paused job's waits `paused`).
      if (stored && run.held && !run.lost && this.#state === "running") {
        void this.#release([stored], "Released: its job was paused");
        return this.#endUnstarted(run);
      } else if (stored && this.#state !== "running") {
        run.released = !run.lost;
        void this.#release([stored]);
      }
      run.lost = true;
      this.#settle(run, false, new TaskAbortedError("Ended before its agent was called"));
      return;
    }
    this.#call(run);
  }

  /** Call the agent of an attempt. */
  #call(run: Run): void {
    const { task } = run;
    if (this.#claimAgents !== null && !this.agents.has(task.agent)) {
      // Claimed for an agent unregistered since: an executor claiming by agent hands it
      // back (uncounted) for one that runs the agent, rather than failing it as unknown.
      void this.#release([task], `Released: agent "${task.agent}" is no longer registered in executor "${this.id}"`);
      return this.#endUnstarted(run);
    }
    run.called = true;
    run.deadline = this.#monotonic() + run.timeoutMs;
    this.#stats.started++;
    if (this.#events.has("task:started")) this.#events.emit("task:started", { task });
    // Most agents answer synchronously or with an already-settled promise: stay off the
    // promise machinery unless the agent really is asynchronous.
    let result: unknown;
    let then: unknown;
    try {
      const agent = this.agents.get(task.agent);
      if (!agent) throw new UnknownAgentError(task.agent);
      this.agents.validateInput(task.agent, task.input);
      result = agent.execute(task.input, run.ctx);
      // Read once, as a promise's resolution does (a getter may answer differently or throw).
      if (result !== null && (typeof result === "object" || typeof result === "function")) {
        then = (result as { then?: unknown }).then;
      }
    } catch (e) {
      run.settled = true;
      this.#settle(run, false, e);
      return;
    }
    if (typeof then !== "function") {
      run.settled = true;
      this.#settle(run, true, result);
      return;
    }
    this.#trackDeadline(run);
    run.waiting = true;
    try {
      then.call(
        result,
        (value: unknown) => this.#agentSettled(run, true, value),
        (error: unknown) => this.#agentSettled(run, false, error),
      );
    } catch (e) {
      // A `then` that throws before settling fails the attempt, as awaiting it would.
      this.#agentSettled(run, false, e);
    }
  }

  /**
   * End an attempt whose agent was never called and whose task is being handed back (its
   * job was paused, its agent unregistered): as for a claimed task leaving the ready
   * queue, no result was lost, so no `task:lost` is told.
   */
  #endUnstarted(run: Run): void {
    run.lost = true;
    this.#finishRun(run);
  }

  #agentSettled(run: Run, ok: boolean, value: unknown): void {
    if (run.settled) return; // a thenable may call back more than once
    run.settled = true;
    if (!run.waiting) return; // timed out or aborted: a late result is discarded
    run.waiting = false;
    this.#settle(run, ok, value);
  }

  /** Timeout, lease loss, cancellation or shutdown: end a waiting attempt now, whatever its agent does. */
  #interrupt(run: Run, error: unknown): void {
    if (!run.waiting) return;
    run.waiting = false;
    this.#settle(run, false, error);
  }

  /** Give up an attempt whose task is no longer this executor's to finish: abort its signal, end it as lost. */
  #abandon(run: Run, reason: string): void {
    run.lost = true;
    run.ctx.abort(new TaskAbortedError(reason));
    this.#interrupt(run, new TaskAbortedError(reason));
  }

  /** A claimed task waiting in the ready queue is not to be started (`#pump` skips it). */
  #dropQueued(task: Task): void {
    this.#queued.delete(task.id);
    this.#lostIds.add(task.id);
  }

  /**
   * Take dropped tasks out of the ready queue now rather than when `#pump` reaches them:
   * they would count in `stats().queued` and take the room of tasks to claim. O(queue
   * size), after a cancel or a lost lease, not per task.
   */
  #compactQueue(): void {
    if (this.#lostIds.size === 0 || this.#state !== "running" || this.#queue.closed) return;
    const keep: Task[] = [];
    for (const task of this.#queue.drain()) {
      const mine = this.#queuedClaim(task);
      if (mine !== undefined) keep.push(mine);
      else if (task !== null && typeof task === "object") this.#lostIds.delete(task.id);
    }
    const refused: Task[] = [];
    for (const task of keep) {
      if (this.#queue.tryPush(task)) continue;
      // A queue that takes nothing back after `drain()`: hand the task back to storage
      // instead of holding (and renewing) its lease with nothing to run it.
      this.#queued.delete(task.id);
      refused.push(task);
    }
    if (refused.length > 0) void this.#release(refused, "Released: the ready queue refused it back");
    this.#poke();
    this.#pump(); // wakes a claim loop waiting for room
  }

  /** A result that will not be stored: report its attempt as lost and tell whoever waits. */
  #dropResult(item: Pending, reason: string): void {
    if (item.run) {
      if (item.run.called) {
        const { id, version } = item.run.task;
        this.#ranUnstored.delete(id); // re-entered at the back, in order of `until`
        this.#ranUnstored.set(id, { version, until: this.#clock.now() + this.#leaseMs });
        this.#forgetExpiredRuns();
      }
      this.#stats.lost++;
      this.#events.emit("task:lost", { task: item.run.task, reason });
    }
    item.dropped?.(reason);
    item.resolve?.(null);
    const run = item.start;
    if (run) {
      if (!run.lost) run.lostReason = `Its start could not be stored: ${reason}`;
      this.#beginLater([run, null]);
    }
  }

  /**
   * Tell the items of a stored commit what was stored for them (`storedOf`, called once per
   * item in order); answers the starts stored, as pairs of run and stored task, for
   * `#beginLater` once the commit's job ends are reported.
   */
  #tell(items: readonly Pending[], storedOf: (item: Pending) => Task | null): (Run | Task | null)[] | null {
    let begun: (Run | Task | null)[] | null = null;
    for (const item of items) {
      const stored = storedOf(item);
      if (stored && item.outcome !== "other") this.#reportStored(stored, item.outcome, item.error, item.cause);
      if (stored) item.report?.(stored);
      item.resolve?.(stored);
      if (item.start) (begun ??= []).push(item.start, stored);
    }
    return begun;
  }

  /**
   * Call `#begin` for stored (or dropped) starts, given as pairs of run and stored task, in
   * one microtask: after the commit's answer is fully handled, as a promise per start would.
   */
  #beginLater(begun: (Run | Task | null)[]): void {
    void Promise.resolve().then(() => {
      for (let i = 0; i < begun.length; i += 2) {
        try {
          this.#begin(begun[i] as Run, begun[i + 1] as Task | null);
        } catch (e) {
          // Reported as a failed promise per start would be; the other starts go on.
          void Promise.reject(e);
        }
      }
    });
  }

  /** The attempt ended (once): build its ops, free the worker slot, and commit. */
  #settle(run: Run, ok: boolean, value: unknown): void {
    if (run.done) return;
    const { task } = run;
    let ops: CommitOp[] | null = null;
    let outcome: "completed" | "retry" | "failed" | "lost";
    let error: TaskError | null = null;
    let cause: unknown;
    if (ok && !run.lost && !run.timedOut) {
      try {
        const raw = value === undefined ? null : value;
        this.#checkSize(raw, "output of task", task.key);
        const output = toJson(raw);
        this.agents.validateOutput(task.agent, output);
        const done: CommitOp[] = [{
          type: "updateTask",
          id: task.id,
          expect: { version: task.version, status: "running" },
          set: { status: "completed", output, error: null, statusReason: null, finishedAt: this.#clock.now() },
        }];
        run.ctx.effectOps(done);
        for (const op of done) {
          if (op.type === "insertTask") this.#checkSize(op.task.input, "input of spawned task", op.task.key);
          else if (op.type === "setCache" || op.type === "setState") {
            this.#checkSize(op.value, op.type === "setCache" ? "cache value" : "state value", op.key);
          }
        }
        ops = done;
      } catch (e) {
        ok = false;
        value = e;
      }
    }
    if (ops) outcome = "completed";
    else if (run.lost) outcome = "lost";
    else {
      const now = this.#clock.now();
      cause = run.timedOut ? new TaskTimeoutError(run.timeoutMs) : value;
      const retryable = run.timedOut ? task.durability === "at-least-once" : isRetryable(value);
      error = toTaskError(cause, retryable, now);
      if (retryable && task.attempts < task.maxAttempts) {
        const delayMs = backoffDelay(task.attempts, this.#retry, this.#random);
        ops = [{
          type: "updateTask",
          id: task.id,
          expect: { version: task.version, status: "running" },
          set: { status: "ready", runAt: now + delayMs, error, statusReason: reasonText(`Retrying: ${error.message}`) },
        }];
        outcome = "retry";
      } else {
        ops = [{
          type: "updateTask",
          id: task.id,
          expect: { version: task.version, status: "running" },
          set: { status: "failed", error, statusReason: reasonText(error.message) },
        }];
        outcome = "failed";
      }
    }
    this.#finishRun(run);
    if (outcome === "lost") {
      // Handed back by shutdown. An attempt lost for another reason meanwhile (its job
      // cancelled, its lease lost during the grace period) is reported as at any time.
      if (run.released) return;
      this.#stats.lost++;
      this.#events.emit("task:lost", {
        task,
        reason: run.lostReason ?? "Aborted after its lease was lost or its job was cancelled",
      });
      return;
    }
    this.#enqueue(pendingItem(ops!, run, outcome, error, undefined, undefined, cause));
  }

  /** Throw a `PayloadTooLargeError` naming `what "key"` when `value` is over `maxPayloadBytes`. */
  #checkSize(value: unknown, what: string, key: string): void {
    if (this.#maxPayload === Infinity || value === undefined) return;
    const size = jsonSize(value, this.#maxPayload);
    if (size > this.#maxPayload) throw new PayloadTooLargeError(`${what} "${key}"`, size, this.#maxPayload);
  }

  /** Report what a stored result means, once its commit succeeded. */
  #reportStored(stored: Task, outcome: Outcome, error: TaskError | null, cause: unknown): void {
    if (outcome === "completed") {
      this.#stats.completed++;
      if (this.#events.has("task:completed")) this.#events.emit("task:completed", { task: stored });
      if (stored.review) this.#events.emit("task:review", { task: stored, output: stored.output });
    } else if (outcome === "retry") {
      this.#stats.retried++; // its wake-up at `runAt` is armed by `#afterCommit`, as every ready task's
      this.#events.emit("task:retrying", { task: stored, error: error!, delayMs: stored.runAt - error!.at, cause });
    } else if (outcome === "failed") {
      this.#stats.failed++;
      this.#events.emit("task:failed", { task: stored, error: error!, cause });
    }
  }

  #finishRun(run: Run): void {
    run.done = true;
    run.ctx.seal();
    run.waiting = false;
    // A later attempt of the same task may hold the entry by now (see `#execute`).
    if (this.#runs.deleteIf(run.task.id, run)) {
      // (Most agents report no progress: nothing to look up then.)
      if (this.#lastProgress.size > 0) this.#lastProgress.delete(run.task.id);
      if (this.#heldProgress.size > 0) this.#dropHeldProgress(run.task.id);
    }
    if ((run.timedOut || run.lost) && run.called && !run.settled) {
      // An agent that honours its signal settles within a few microtasks of the abort
      // (`shutdown()` waits for these checks, so its stats are final when it resolves).
      this.#abortChecks.set(
        run,
        setTimeout(() => {
          this.#abortChecks.delete(run);
          if (!run.settled) this.#stats.ignoredAbort++;
        }, 0),
      );
    }
    this.#active--;
    this.#pump();
    if (this.#runs.size === 0) this.#idleWaiter?.();
  }

  // ---------------------------------------------------------------- timeouts

  #trackDeadline(run: Run): void {
    this.#deadlines.push(run);
    if (this.#deadlines.size > 64 && this.#deadlines.size > 4 * (this.#runs.size + 16)) this.#compactDeadlines();
    if (run.deadline < this.#deadlineAt) this.#armDeadline(run.deadline);
  }

  #compactDeadlines(): void {
    const live: Run[] = [];
    for (let r = this.#deadlines.pop(); r; r = this.#deadlines.pop()) if (!r.done) live.push(r);
    for (const r of live) this.#deadlines.push(r);
  }

  #armDeadline(at: number): void {
    if (this.#deadlineTimer !== null) this.#clock.clearTimer(this.#deadlineTimer);
    this.#deadlineAt = at;
    this.#deadlineTimer = this.#clock.setTimer(() => this.#onDeadline(at), Math.max(0, at - this.#monotonic()));
  }

  /**
   * The deadline timer armed for `at` fired: on the timers' own time, `at` has come. It is
   * taken at its word when `monotonic()` lags it, as when a test fakes `setTimeout` and
   * leaves `performance.now()` real (vitest 2's default): re-armed on the real time, the
   * timeout would never come.
   */
  #onDeadline(at: number): void {
    this.#deadlineTimer = null;
    this.#deadlineAt = Infinity;
    const now = Math.max(this.#monotonic(), at);
    for (let r = this.#deadlines.peek(); r; r = this.#deadlines.peek()) {
      if (r.done || r.settled) {
        this.#deadlines.pop();
        continue;
      }
      if (r.deadline > now) {
        this.#armDeadline(r.deadline);
        break;
      }
      this.#deadlines.pop();
      r.timedOut = true;
      this.#stats.timedOut++;
      const err = new TaskTimeoutError(r.timeoutMs);
      this.#events.emit("task:timeout", { task: r.task, timeoutMs: r.timeoutMs });
      r.ctx.abort(err);
      this.#interrupt(r, err);
    }
  }

  // ---------------------------------------------------------------- group commit

  /** Commit ops with the next group; resolves with the stored task of the first op, or `null` if dropped. */
  #enqueueCommit(
    ops: CommitOp[],
    run: Run | null,
    { report, lease, dropped }: Pick<Pending, "report" | "lease" | "dropped"> = {},
  ): Promise<Task | null> {
    return new Promise((resolve) => {
      const item = pendingItem(ops, run, "other", null, lease, undefined);
      item.resolve = resolve;
      item.report = report;
      item.dropped = dropped;
      this.#enqueue(item);
    });
  }

  /** Add an item to the next group commit, starting a flush when none runs. */
  #enqueue(item: Pending): void {
    this.#pending.push(item);
    if (!this.#flushing) this.#flushing = this.#flush();
  }

  async #flush(): Promise<void> {
    await Promise.resolve();
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending;
        this.#pending = [];
        this.#inflight = batch;
        await this.#commitBatch(batch);
      }
    } finally {
      this.#inflight = [];
      this.#flushing = null;
    }
  }

  /** Commit a batch in one transaction; a conflict drops only the op group that caused it. */
  async #commitBatch(batch: Pending[]): Promise<void> {
    let items = batch;
    let failures = 0;
    // The `now` of each attempt that failed with a storage error: such an attempt may have
    // been applied with only its answer lost, and then its retry conflicts with itself.
    const unsure: number[] = [];
    let screened = false;
    while (items.length > 0) {
      const ops: CommitOp[] = [];
      const owner: number[] = [];
      const now = this.#clock.now();
      for (let i = 0; i < items.length; i++) {
        const item = items[i]!;
        if (item.lease) (item.ops[0] as UpdateTaskOp).set.leaseExpiresAt = now + this.#leaseMs;
        for (const op of item.ops) {
          ops.push(op);
          owner.push(i);
        }
      }
      try {
        const result = await this.storage.commit(ops, now);
        this.#stats.commits++;
        const begun = this.#tell(items, firstStored(result.tasks));
        this.#afterCommit(result);
        if (begun) this.#beginLater(begun);
        return;
      } catch (e) {
        let culprit = -1;
        if (e instanceof ConflictError || e instanceof KeyConflictError) culprit = owner[e.opIndex] ?? -1;
        else if (e instanceof InvalidTransitionError) {
          culprit = items.findIndex((it) => it.ops.some((op) => op.type === "updateTask" && op.id === e.id));
        }
        if (culprit >= 0 && unsure.length > 0) {
          let applied: boolean;
          try {
            applied = await this.#appliedEarlier(
              items,
              ops,
              e as ConflictError | InvalidTransitionError | KeyConflictError,
              unsure,
              culprit,
            );
          } catch (readError) {
            failures++;
            this.#stats.storageErrors++;
            this.#events.emit("storage:error", { operation: "getTasks", error: readError, attempt: failures });
            if (this.#graceEnded && this.#state !== "running" && failures > CALLER_RETRIES) {
              // As below: past the grace period, an outage of reads must not hang `shutdown()`.
              for (const item of items) {
                this.#dropResult(item, `Result not known to be stored: ${(readError as Error).message} (at shutdown)`);
              }
              return;
            }
            await this.#sleep(this.#commitBackoff(failures));
            continue;
          }
          if (applied) return;
        }
        if (e instanceof KeyConflictError && culprit >= 0) {
          const redo = this.#afterKeyConflict(items[culprit]!, e, now);
          if (redo) {
            items = items.slice();
            items[culprit] = redo;
            continue;
          }
        }
        if (culprit >= 0) {
          this.#dropResult(items[culprit]!, (e as Error).message);
          items = items.filter((_, i) => i !== culprit);
          if (!screened && items.length > 1 && unsure.length === 0) {
            // Where one result went stale, others often did too (their job was cancelled
            // or their leases were recovered elsewhere): one read finds them all, instead
            // of one failed commit of the whole batch per stale result. Not after an attempt
            // whose answer was lost: what looks stale may be its own write, which the next
            // conflict recognises (`#appliedEarlier`).
            screened = true;
            try {
              items = await this.#dropStale(items);
            } catch {
              // The read failed: the next commit attempt finds the stale results one by one.
            }
          }
          continue;
        }
        if (
          e instanceof TypeError || e instanceof RangeError || e instanceof JsonValueError ||
          e instanceof NotFoundError || e instanceof JobValidationError
        ) {
          // A malformed op (a bug or bad data), or children its job cannot take (more than
          // it may hold): isolate it by committing items one by one.
          if (items.length > 1) {
            for (const item of items) await this.#commitBatch([item]);
            return;
          }
          const failed = e instanceof NotFoundError ? null : this.#afterRefusedEffects(items[0]!, e as Error, now);
          if (failed) {
            // Run again, the attempt would spawn the same children or write the same keys:
            // its task fails for good (dropped, it would be lost and run again at each
            // lease expiry until its attempts ran out, its error saying nothing of why).
            items = [failed];
            continue;
          }
          this.#stats.storageErrors++;
          this.#events.emit("storage:error", { operation: "commit", error: e, attempt: 1 });
          this.#dropResult(items[0]!, `Result not stored: ${(e as Error).message}`);
          return;
        }
        failures++;
        unsure.push(now);
        this.#stats.storageErrors++;
        this.#events.emit("storage:error", { operation: "commit", error: e, attempt: failures });
        if (this.#graceEnded && this.#state !== "running" && failures > CALLER_RETRIES) {
          // Shutting down, its grace period over, and the storage still fails: waiting on
          // would hang `shutdown()` for as long as the outage lasts. The results are not
          // stored; their tasks stay claimed until their leases expire, and recovery runs
          // them again (or blocks them, when at-most-once), as after a crash.
          for (const item of items) {
            this.#dropResult(item, `Result not stored: ${(e as Error).message} (still failing at shutdown)`);
          }
          return;
        }
        if (e instanceof StorageError && !isTransientStorageError(e)) {
          // It will not pass (closed, corrupt, a newer schema): the results are not stored,
          // and the tasks stay claimed until their leases expire and recovery runs them
          // again (or blocks them, when at-most-once). Errors that may pass, and errors an
          // adapter does not classify, are retried with backoff.
          for (const item of items) this.#dropResult(item, `Result not stored: ${(e as Error).message}`);
          return;
        }
        await this.#sleep(this.#commitBackoff(failures));
      }
    }
  }

  /**
   * Drop the items whose compare-and-swap can no longer match the stored tasks (one read
   * for the whole batch); answer the rest.
   */
  async #dropStale(items: Pending[]): Promise<Pending[]> {
    const ids = new Set<string>();
    for (const item of items) for (const op of item.ops) if (op.type === "updateTask") ids.add(op.id);
    const stored = new Map<string, Task>();
    for (const t of await this.storage.getTasks([...ids])) stored.set(t.id, t);
    return items.filter((item) => {
      for (const op of item.ops) {
        if (op.type !== "updateTask") continue;
        const found = stored.get(op.id);
        const { version, status, leaseExpiresAt: lease } = op.expect;
        if (
          found && found.version === version && (status === undefined || found.status === status) &&
          (lease === undefined || found.leaseExpiresAt === lease)
        ) continue;
        const conflict = new ConflictError(item.ops.indexOf(op), op.id, op.expect, {
          status: found?.status ?? null,
          version: found?.version ?? null,
          ...(lease !== undefined ? { leaseExpiresAt: found?.leaseExpiresAt ?? null } : {}),
        });
        this.#dropResult(item, conflict.message);
        return false;
      }
      return true;
    });
  }

  #commitBackoff(failures: number): number {
    return backoffDelay(failures, { delayMs: 50, factor: 2, maxDelayMs: 5000, jitter: true }, this.#random);
  }

  /**
   * A commit attempt failed with a storage error, and its retry now conflicts: was the
   * failed attempt applied after all, with only its answer lost? A commit is atomic, so
   * the op the retry conflicts on tells for the whole batch: the batch was applied when
   * that task shows exactly the fields the op wrote. Then every item is reported as
   * stored (instead of as lost), and the job ends that attempt caused (a job whose
   * `finishedAt` is the `now` of a failed attempt) are reported, once.
   */
  async #appliedEarlier(
    items: Pending[],
    ops: readonly CommitOp[],
    e: ConflictError | InvalidTransitionError | KeyConflictError,
    unsure: readonly number[],
    culprit: number,
  ): Promise<boolean> {
    // A cache or state write that conflicts may conflict with its own earlier write: judge
    // by the task update of its result.
    const op = e instanceof KeyConflictError
      ? items[culprit]?.ops[0]
      : e instanceof ConflictError
      ? ops[e.opIndex]
      : ops.find((o) => o.type === "updateTask" && o.id === e.id);
    if (!op || op.type !== "updateTask") return false;
    const firstIds = items.map((item) => {
      const first = item.ops[0];
      return first && first.type === "updateTask" ? first.id : null;
    });
    const wanted = [...new Set([op.id, ...firstIds.filter((id): id is string => id !== null)])];
    const byId = new Map<string, Task>();
    for (const t of await this.storage.getTasks(wanted)) byId.set(t.id, t);
    // The task as the op's item had it: its `runAt` before the op.
    const before = items.find((item) => item.run?.task.id === op.id && item.run.task.version === op.expect.version);
    if (!landed(op, byId.get(op.id), before?.run?.task)) return false;
    const ended: Job[] = [];
    for (const jobId of new Set([...byId.values()].map((t) => t.jobId))) {
      const job = await this.storage.getJob(jobId);
      if (job && isJobFinal(job.status) && job.finishedAt !== null && unsure.includes(job.finishedAt)) ended.push(job);
    }
    this.#stats.commits++;
    let i = 0;
    const begun = this.#tell(items, () => {
      const id = firstIds[i++];
      return id === null || id === undefined ? null : byId.get(id) ?? null;
    });
    this.#afterCommit({ tasks: [...byId.values()], jobs: ended, readied: 1 });
    if (begun) this.#beginLater(begun);
    return true;
  }

  /**
   * A result whose cache or state write conflicted: an entry its attempt read was changed by
   * another commit since, and storing the write would lose that one. An at-least-once task
   * runs again, the attempt not counted (its agent did not fail), and reads the new value;
   * an at-most-once task is not run again: it is blocked for a person, its output unstored.
   * `null` for a result that is not a completion (dropped as any conflicting result is).
   */
  #afterKeyConflict(item: Pending, e: KeyConflictError, now: number): Pending | null {
    const first = item.ops[0];
    if (!item.run || item.outcome !== "completed" || first?.type !== "updateTask") return null;
    const task = item.run.task;
    const atMostOnce = task.durability === "at-most-once";
    const error = toTaskError(e, !atMostOnce, now);
    const set: UpdateTaskOp["set"] = atMostOnce
      ? {
        status: "blocked",
        error,
        statusReason: reasonText(`Blocked: ${error.message}; at-most-once tasks are not run again`),
      }
      : {
        status: "ready",
        runAt: now,
        attempts: Math.max(0, task.attempts - 1),
        error,
        statusReason: reasonText(`Running again: ${error.message}`),
      };
    return {
      ...item,
      ops: [{ type: "updateTask", id: task.id, expect: first.expect, set }],
      outcome: atMostOnce ? "other" : "retry",
      error,
    };
  }

  /**
   * A completion whose effects the storage refused for good (its spawned children would take
   * its job past `MAX_TASKS_PER_JOB`, a cache or state key is too long for a store's index):
   * the task fails, not retryable, with nothing of the attempt written. `null` for a result
   * that is not a completion or has no such effects (dropped as before).
   */
  #afterRefusedEffects(item: Pending, e: Error, now: number): Pending | null {
    const first = item.ops[0];
    if (!item.run || item.outcome !== "completed" || first?.type !== "updateTask") return null;
    const effect = e instanceof JobValidationError
      ? (op: CommitOp) => op.type === "insertTask"
      : (op: CommitOp) => op.type === "insertTask" || op.type === "setCache" || op.type === "setState";
    if (!item.ops.some(effect)) return null;
    const error = toTaskError(e, false, now);
    return {
      ...item,
      ops: [{
        type: "updateTask",
        id: first.id,
        expect: first.expect,
        set: { status: "failed", error, statusReason: reasonText(error.message) },
      }],
      outcome: "failed",
      error,
      cause: e,
    };
  }

  #afterCommit(result: CommitResult): void {
    if (this.#jobWaiters.size > 0 && result.jobs.length > 0) this.#wakeJobs(result.jobs.map((j) => j.id));
    if (this.#events.has("task:blocked")) {
      for (const t of result.tasks) if (t.status === "blocked") this.#events.emit("task:blocked", { task: t });
    }
    if (result.readied > 0) {
      this.#poke();
      this.#endClaimBackoff?.();
      // A task made ready to run later (a spawned child, a dependent with a `runAt`).
      const now = this.#clock.now();
      const tasks = result.tasks;
      for (let i = 0; i < tasks.length; i++) {
        if (tasks[i]!.status === "ready" && tasks[i]!.runAt > now) this.#wakeAtTime(tasks[i]!.runAt);
      }
    }
    for (const job of result.jobs) {
      if (isJobFinal(job.status)) {
        if (this.#endedJobs.has(job.id)) continue;
        this.#endedJobs.add(job.id);
        if (this.#endedJobs.size > 1024) this.#endedJobs.delete(this.#endedJobs.values().next().value!);
      }
      if (job.status === "completed") this.#events.emit("job:completed", { job });
      else if (job.status === "failed") this.#events.emit("job:failed", { job });
      else if (job.status === "cancelled") this.#events.emit("job:cancelled", { job });
    }
  }

  // ---------------------------------------------------------------- leases and recovery

  async #heartbeat(): Promise<void> {
    // What this executor holds now, attempt by attempt: the answer comes later, and says
    // nothing about an attempt of the same task that started meanwhile.
    const runs = [...this.#runs.values()];
    const queued = [...this.#queued.values()];
    const held: string[] = [];
    for (const run of runs) held.push(run.task.id);
    for (const task of queued) held.push(task.id);
    // Results waiting for their commit keep their lease too, however slow the commit.
    for (const list of [this.#pending, this.#inflight]) {
      for (const item of list) if (item.run) held.push(item.run.task.id);
    }
    if (held.length === 0) return;
    let renewed: string[];
    try {
      renewed = await this.storage.renewLeases({
        ids: held,
        owner: this.id,
        now: this.#clock.now(),
        leaseMs: this.#leaseMs,
      });
    } catch (error) {
      this.#stats.storageErrors++;
      this.#events.emit("storage:error", { operation: "renewLeases", error, attempt: 1 });
      return;
    }
    if (renewed.length === held.length) return;
    const ok = new Set(renewed);
    for (const task of queued) {
      if (ok.has(task.id)) continue;
      if (this.#queued.get(task.id) !== task) {
        // Started from this claim while the renewal was under way: that attempt lost its
        // lease. Not a later attempt of the same task (a claim handed back and claimed
        // again has the same attempt count): it holds a lease of its own.
        const run = this.#runs.get(task.id);
        if (run && run.claim === task && !run.settled) runs.push(run);
        continue;
      }
      this.#dropQueued(task);
      this.#stats.lost++;
      this.#events.emit("task:lost", { task, reason: "Lease lost while waiting in the ready queue" });
    }
    this.#compactQueue();
    for (const run of runs) {
      if (ok.has(run.task.id) || this.#runs.get(run.task.id) !== run || run.settled) continue;
      this.#abandon(run, "Lease lost");
    }
    // A result whose lease was lost is refused by its commit's compare-and-swap.
  }

  /** Send expired leases back to `ready` (at-least-once) or to `blocked` (at-most-once). */
  async #recover(): Promise<void> {
    // A page at a time, until the expired leases run out: crashed executors that held more
    // than a page (with `prefetch`, or many of them) are recovered now, not a page per
    // `recoveryIntervalMs`. A page that recovers nothing (leases this executor still holds,
    // or taken by another recovery) ends the pass, as does shutdown.
    for (;;) {
      let expired: Task[];
      try {
        expired = await this.storage.expiredLeases(this.#clock.now(), RECOVERY_PAGE);
      } catch (error) {
        this.#stats.storageErrors++;
        this.#events.emit("storage:error", { operation: "expiredLeases", error, attempt: 1 });
        return;
      }
      const recovered = await this.#recoverTasks(expired);
      if (expired.length < RECOVERY_PAGE || recovered === 0 || this.#state !== "running") return;
    }
  }

  /** Delete ended jobs as `retention` says. */
  async #prune(retention: { keepLast?: number; finishedBeforeMs?: number }): Promise<void> {
    try {
      this.#stats.pruned += await this.storage.prune({
        ...(retention.keepLast !== undefined ? { keepLast: retention.keepLast } : {}),
        ...(retention.finishedBeforeMs !== undefined
          ? { finishedBefore: this.#clock.now() - retention.finishedBeforeMs }
          : {}),
      });
    } catch (error) {
      this.#stats.storageErrors++;
      this.#events.emit("storage:error", { operation: "prune", error, attempt: 1 });
    }
  }

  /**
   * At start, an executor given a stable `id` takes back what its previous incarnation
   * (a crashed process, a reloaded page) left running, without waiting for the leases
   * to expire: nothing else can be holding them.
   */
  async #recoverOwn(): Promise<void> {
    if (!this.#stableId) return;
    let own: Task[];
    try {
      own = (await this.storage.listTasks({ status: "running" })).filter((t) => t.leaseOwner === this.id);
    } catch (error) {
      this.#stats.storageErrors++;
      this.#events.emit("storage:error", { operation: "listTasks", error, attempt: 1 });
      return;
    }
    await this.#recoverTasks(own);
  }

  /** Recover `found` (but this executor's own live leases); how many recoveries were stored. */
  async #recoverTasks(found: readonly Task[]): Promise<number> {
    // A lease of this executor's that expired while it still holds the task (renewals
    // failed for a while) is not a crash: the next renewal extends it. Recovering it would
    // run the task a second time alongside the first (or block an at-most-once task).
    // Nor is one its claim still in flight set (a claim slower than the lease): the claim's
    // answer brings the task, or, if lost, the claim loop hands back what it claimed unheld.
    // Only those: a claim sets `now + leaseMs` exactly, and a later lease of this executor
    // (renewed or started after the claim was made, its result then dropped) is recovered
    // as any other, however long the claim stays in flight.
    const claimed = this.#claimNow === null ? null : this.#claimNow + this.#leaseMs;
    const expired = found.filter((t) =>
      t.leaseOwner !== this.id || (!this.#holds(t.id) && (claimed === null || t.leaseExpiresAt !== claimed))
    );
    if (expired.length === 0) return 0;
    const now = this.#clock.now();
    // Reported as an attempt's end would be (the attempt that crashed ended here), and
    // before the end of the job this commit may cause.
    const report = (stored: Task): void => {
      this.#stats.recovered++;
      if (stored.status === "failed" && stored.error) {
        this.#stats.failed++;
        this.#events.emit("task:failed", { task: stored, error: stored.error });
      } else if ((stored.status === "ready" || stored.status === "paused") && stored.error?.at === now) {
        this.#stats.retried++;
        this.#events.emit("task:retrying", { task: stored, error: stored.error, delayMs: 0 });
      }
    };
    // Each expects the expired lease it read: an owner that renewed it since (a slow
    // heartbeat, not a crash) keeps its task, which would otherwise run twice at once.
    const stored = await this.#updateRunning(
      expired,
      (t) => {
        const error: TaskError = {
          name: "LeaseExpiredError",
          message: `Lease of "${t.leaseOwner}" ended while the task was running (the executor stopped or crashed)`,
          retryable: t.durability === "at-least-once",
          at: now,
        };
        return t.startedAt === null
          ? { ...handBack(t, "Recovered after its lease expired; its agent had not been called"), runAt: now }
          : t.durability === "at-most-once"
          ? {
            status: "blocked",
            error,
            statusReason: "Interrupted while running; at-most-once tasks are not run again",
          }
          : t.attempts >= t.maxAttempts
          ? { status: "failed", error, statusReason: reasonText(error.message) }
          : { status: "ready", runAt: now, error, statusReason: "Recovered after its lease expired" };
      },
      report,
      true,
    );
    return stored.filter((t) => t !== null).length;
  }

  /**
   * Commit `set(task)` for each task this executor read as `running`, each with the next
   * group; resolves with the stored tasks (`null` where the task changed meanwhile).
   */
  #updateRunning(
    tasks: readonly Task[],
    set: (t: Task) => Partial<Task>,
    report?: (stored: Task) => void,
    sameLease = false,
  ): Promise<(Task | null)[]> {
    return Promise.all(tasks.map((t) =>
      this.#enqueueCommit(
        [{
          type: "updateTask",
          id: t.id,
          expect: sameLease
            ? { version: t.version, status: "running", leaseExpiresAt: t.leaseExpiresAt }
            : { version: t.version, status: "running" },
          set: set(t),
        }],
        null,
        { report },
      )
    ));
  }

  /** Give claimed tasks back without counting the attempt. */
  async #release(tasks: readonly Task[], reason = "Released at shutdown"): Promise<void> {
    await this.#updateRunning(tasks, (t) => handBack(t, reason));
  }

  // ---------------------------------------------------------------- shutdown

  async #doShutdown(graceMs: number): Promise<void> {
    if (this.#state === "idle") {
      // Never started: it armed no timer (wake-up times wait for `start()`).
      this.#state = "stopped";
      this.#disarmWake();
      this.#stopped?.();
      return;
    }
    this.#state = "stopping";
    // The grace period counts from the shutdown call.
    let graceOver = graceMs <= 0;
    this.#graceEnded = graceOver;
    let onGraceOver: (() => void) | null = null;
    const endGrace = () => {
      graceTimer = null;
      graceOver = true;
      this.#graceEnded = true;
      onGraceOver?.();
    };
    let graceEnds = this.#monotonic() + graceMs;
    let graceTimer = graceOver ? null : this.#clock.setTimer(endGrace, graceMs);
    this.#shortenGrace = (ms) => {
      if (graceOver || this.#monotonic() + ms >= graceEnds) return;
      graceEnds = this.#monotonic() + ms;
      if (graceTimer !== null) this.#clock.clearTimer(graceTimer);
      if (ms <= 0) endGrace();
      else graceTimer = this.#clock.setTimer(endGrace, ms);
    };
    this.#poke();
    this.#endClaimWait?.();
    const w = this.#roomWaiter;
    this.#roomWaiter = null;
    w?.();
    this.#disarmWake();
    await this.#loop;
    // (A custom queue that threw is asked nothing more: the claims it held are known here.)
    const queued = (this.#queueFault === null ? this.#queue.drain() : [...this.#queued.values()])
      .filter((t) => !this.#lostIds.has(t.id));
    this.#queued.clear();
    await this.#release(queued);
    this.#queue.close();
    if (this.#runs.size > 0) {
      if (!graceOver) {
        await new Promise<void>((resolve) => {
          onGraceOver = resolve;
          this.#idleWaiter = resolve;
        });
        this.#idleWaiter = null;
      }
      // Starts being stored end first (an attempt whose start was stored is handed back
      // with its new version, see `#begin`).
      // (Awaited even when none is: attempts that settle meanwhile are not abandoned.)
      await new Promise<void>((resolve) => {
        if (this.#starting === 0) resolve();
        else this.#startsStored = resolve;
      });
      const left = [...this.#runs.values()].filter((r) => !r.settled);
      for (const run of left) {
        run.released = true;
        this.#abandon(run, "Executor shut down");
      }
      // An at-most-once task whose agent was running may have had its effect: blocked, as
      // after a crash, not handed back to run again.
      const once = (r: Run) => r.called && r.task.durability === "at-most-once";
      const now = this.#clock.now();
      await Promise.all([
        this.#release(left.filter((r) => !once(r)).map((r) => r.task)),
        this.#updateRunning(left.filter(once).map((r) => r.task), () => ({
          status: "blocked",
          error: { name: "TaskAbortedError", message: "Executor shut down", retryable: false, at: now },
          statusReason: "Interrupted by shutdown while running; at-most-once tasks are not run again",
        })),
      ]);
    }
    // The grace period still runs while the last commits are made: once it is over, a
    // commit that keeps failing gives up (`#commitBatch`) instead of holding `shutdown()`
    // for as long as the storage is down, and a later call can still cut it short.
    while (this.#flushing) await this.#flushing;
    this.#state = "stopped";
    for (const t of this.#timers) this.#clock.clearTimer(t);
    this.#timers = [];
    // A heartbeat, recovery or pruning that had begun ends before shutdown does: nothing
    // of this executor touches the storage once `shutdown()` resolved.
    while (this.#periodic.size > 0) await Promise.allSettled([...this.#periodic]);
    while (this.#flushing) await this.#flushing;
    this.#shortenGrace = null;
    if (graceTimer !== null) this.#clock.clearTimer(graceTimer);
    if (this.#deadlineTimer !== null) this.#clock.clearTimer(this.#deadlineTimer);
    this.#unwatch?.();
    // Checks still pending are made now (every abort is many turns old by this point), so
    // the stats are final when `shutdown()` resolves, whatever runs the timers.
    for (const [run, timer] of this.#abortChecks) {
      clearTimeout(timer);
      if (!run.settled) this.#stats.ignoredAbort++;
    }
    this.#abortChecks.clear();
    this.#stopped?.();
  }

  #idleWaiter: (() => void) | null = null;
  /** While a shutdown waits out its grace period: end it sooner (a later `shutdown()` call). */
  #shortenGrace: ((ms: number) => void) | null = null;
}
