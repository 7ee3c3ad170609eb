/**
 * Typed events with no `node:events`: listeners that throw are isolated.
 *
 * @module
 */

import type { Job, JsonValue, Task, TaskError } from "./types.ts";

/** Every event an executor emits, by name. */
export interface ExecutorEvents {
  /** A task's attempt started (its claim is stored). */
  "task:started": { task: Task };
  /** A task completed; its output is stored. */
  "task:completed": { task: Task };
  /**
   * An attempt failed and the task will run again at `task.runAt`. `error` is what was
   * stored; `cause` is what the attempt threw in this process, stack and all (the
   * `TaskTimeoutError` of a timeout), and `undefined` for a failure found by recovery.
   */
  "task:retrying": { task: Task; error: TaskError; delayMs: number; cause?: unknown };
  /** A task failed for good; `error` and `cause` as for `task:retrying`. */
  "task:failed": { task: Task; error: TaskError; cause?: unknown };
  /** An attempt ran past its timeout; its signal was aborted. */
  "task:timeout": { task: Task; timeoutMs: number };
  /** A result was not stored because the task changed meanwhile (lease lost, job cancelled). */
  "task:lost": { task: Task; reason: string };
  /** An agent reported progress (throttled). */
  "task:progress": { task: Task; fraction: number; message: string | null };
  /** A completed task awaits a person's review. */
  "task:review": { task: Task; output: JsonValue };
  /** A person accepted a reviewed task (`executor.review(id, "accept")`): its dependents may run. */
  "task:accepted": { task: Task };
  /**
   * A person rejected a reviewed task: it runs again with the reason as its review feedback
   * (`rerun`), or, its attempts used up, ends `rejected` and fails its job.
   */
  "task:rejected": { task: Task; reason: string; rerun: boolean };
  /**
   * A task went to `blocked` and needs a person (`executor.retryTask(id)` or a cancel): an
   * at-most-once task interrupted while running, or a dependent of a failed task that asked
   * for `onDependencyFailure: "block"`. Its job stays open meanwhile. The reason is in
   * `task.statusReason`. Not told when the answer of the commit that blocked it was lost
   * to a storage error (the task is blocked all the same: `listTasks({ status: "blocked" })`).
   */
  "task:blocked": { task: Task };
  /** A job ended as completed. */
  "job:completed": { job: Job };
  /** A job ended as failed. */
  "job:failed": { job: Job };
  /** A job was cancelled. */
  "job:cancelled": { job: Job };
  /**
   * A storage call failed (counted in `stats().storageErrors`); the executor retries it with
   * backoff when the error may pass (`isTransientStorageError`).
   */
  "storage:error": { operation: string; error: unknown; attempt: number };
  /** A listener threw; the executor carried on. */
  "listener:error": { event: string; error: unknown };
  /**
   * The custom ready queue (the `queue` option) threw from `operation`: the executor stops
   * as `shutdown()` does (running tasks get the grace period, claimed tasks it could not
   * queue are handed back), and `run()` rejects with `error`.
   */
  "queue:error": { operation: string; error: unknown };
}

/** Name of an executor event. */
export type ExecutorEventName = keyof ExecutorEvents;

/** Every event name, for JavaScript callers: a misspelt one (`"job:complete"`) is refused, not silently never told. */
const EVENT_NAMES: Record<ExecutorEventName, true> = {
  "task:started": true,
  "task:completed": true,
  "task:retrying": true,
  "task:failed": true,
  "task:timeout": true,
  "task:lost": true,
  "task:progress": true,
  "task:review": true,
  "task:accepted": true,
  "task:rejected": true,
  "task:blocked": true,
  "job:completed": true,
  "job:failed": true,
  "job:cancelled": true,
  "storage:error": true,
  "listener:error": true,
  "queue:error": true,
};

function checkEvent(call: string, event: unknown): void {
  if (typeof event !== "string" || !Object.hasOwn(EVENT_NAMES, event)) {
    throw new TypeError(
      `${call}: unknown event ${typeof event === "string" ? `"${event}"` : typeof event}; the events are ` +
        Object.keys(EVENT_NAMES).map((e) => `"${e}"`).join(", "),
    );
  }
}

/** Check a subscription by `call` ("on" or "once"): a known event and a function to call. */
function checkListener(call: "on" | "once", event: unknown, listener: unknown): void {
  checkEvent(`${call}()`, event);
  if (typeof listener !== "function") {
    throw new TypeError(`${call}("${String(event)}") needs a function, got ${typeof listener}`);
  }
}

/** A listener of event `K`. */
export type Listener<K extends ExecutorEventName> = (payload: ExecutorEvents[K]) => void;

/** A listener of one job's events, with the number of its registration. */
interface JobListener {
  readonly listener: (payload: never) => void;
  readonly added: number;
}

/** A minimal typed emitter. */
export class Emitter {
  /** Listeners by event, each with the number of its registration (calls follow it). */
  readonly #listeners = new Map<string, Map<(payload: never) => void, number>>();
  /** The wrappers `once()` registered, by event and by the listener they wrap (so `off()` finds them). */
  readonly #onces = new Map<string, Map<(payload: never) => void, (payload: never) => void>>();
  /**
   * Listeners of one job's events (`onJob()`), by event and job id: an event is handed to
   * its own job's listeners only, so listening to many jobs costs nothing per event of another.
   */
  readonly #byJob = new Map<string, Map<string, Set<JobListener>>>();
  #added = 0;

  /** Listen to an event; returns a function that stops listening. */
  on<K extends ExecutorEventName>(event: K, listener: Listener<K>): () => void {
    checkListener("on", event, listener);
    let set = this.#listeners.get(event);
    if (!set) this.#listeners.set(event, set = new Map());
    // Added again, a listener keeps its place (and is called once), as in a Set.
    if (!set.has(listener as (payload: never) => void)) set.set(listener as (payload: never) => void, ++this.#added);
    return () => this.off(event, listener);
  }

  /**
   * Listen to the events about job `jobId` only (those whose `task.jobId` or `job.id` is
   * `jobId`); returns a function that stops listening. Listeners are called in the order
   * they were added, among those added with `on()`.
   */
  onJob<K extends ExecutorEventName>(event: K, jobId: string, listener: Listener<K>): () => void {
    checkListener("on", event, listener);
    let jobs = this.#byJob.get(event);
    if (!jobs) this.#byJob.set(event, jobs = new Map());
    let set = jobs.get(jobId);
    if (!set) jobs.set(jobId, set = new Set());
    const entry: JobListener = { listener: listener as (payload: never) => void, added: ++this.#added };
    set.add(entry);
    const own = set;
    return () => {
      own.delete(entry);
      if (own.size === 0 && jobs.get(jobId) === own) jobs.delete(jobId);
    };
  }

  /** Listen to the next occurrence only. */
  once<K extends ExecutorEventName>(event: K, listener: Listener<K>): () => void {
    checkListener("once", event, listener);
    const key = listener as (payload: never) => void;
    const drop = () => {
      this.#listeners.get(event)?.delete(wrapper as (payload: never) => void);
      if (this.#onces.get(event)?.get(key) === wrapper) this.#onces.get(event)!.delete(key);
    };
    const wrapper: Listener<K> = (payload) => {
      drop();
      listener(payload);
    };
    let onces = this.#onces.get(event);
    if (!onces) this.#onces.set(event, onces = new Map());
    // A listener passed to once() again replaces its earlier wrapper (a Set keeps one of each).
    const earlier = onces.get(key);
    if (earlier) this.#listeners.get(event)?.delete(earlier);
    onces.set(key, wrapper as (payload: never) => void);
    this.on(event, wrapper);
    return drop;
  }

  /** Stop listening (to a listener added with `on()` or `once()`). */
  off<K extends ExecutorEventName>(event: K, listener: Listener<K>): void {
    const key = listener as (payload: never) => void;
    const set = this.#listeners.get(event);
    set?.delete(key);
    const onces = this.#onces.get(event);
    const wrapper = onces?.get(key);
    if (wrapper) {
      set?.delete(wrapper);
      onces!.delete(key);
    }
  }

  /** Whether anyone listens to `event` (lets hot paths skip building payloads). */
  has(event: ExecutorEventName): boolean {
    return (this.#listeners.get(event)?.size ?? 0) > 0 || (this.#byJob.get(event)?.size ?? 0) > 0;
  }

  /** The listeners of `event` to call for `payload`, in the order they were added. */
  #listenersOf(event: string, payload: unknown): ((payload: never) => void)[] | null {
    const set = this.#listeners.get(event);
    const jobs = this.#byJob.get(event);
    let own: Set<JobListener> | undefined;
    if (jobs !== undefined && jobs.size > 0) {
      const p = payload as { task?: Task; job?: Job };
      const jobId = p.task?.jobId ?? p.job?.id;
      if (jobId !== undefined) own = jobs.get(jobId);
    }
    if (own === undefined) return set === undefined || set.size === 0 ? null : [...set.keys()];
    if (set === undefined || set.size === 0) return [...own].map((e) => e.listener);
    // Both kinds: merged by the order they were added (each list is in that order already).
    const out: ((payload: never) => void)[] = [];
    const mine = [...own];
    let i = 0;
    for (const [listener, added] of set) {
      while (i < mine.length && mine[i]!.added < added) out.push(mine[i++]!.listener);
      out.push(listener);
    }
    while (i < mine.length) out.push(mine[i++]!.listener);
    return out;
  }

  /** Call every listener of `event`; a throwing listener is reported as `listener:error`. */
  emit<K extends ExecutorEventName>(event: K, payload: ExecutorEvents[K]): void {
    const listeners = this.#listenersOf(event, payload);
    if (listeners === null) return;
    for (const listener of listeners) {
      try {
        const result: unknown = (listener as Listener<K>)(payload);
        // An async listener's rejection is reported the same way (it would be unhandled).
        if (result instanceof Promise) {
          result.catch((error: unknown) => {
            if (event !== "listener:error") this.emit("listener:error", { event, error });
          });
        }
      } catch (error) {
        if (event === "listener:error") continue;
        this.emit("listener:error", { event, error });
      }
    }
  }
}
