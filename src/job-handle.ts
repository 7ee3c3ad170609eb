/**
 * A handle on one job: wait for it, read it, control it.
 *
 * @module
 */

import type { Clock } from "./clock.ts";
import { backoffDelay } from "./backoff.ts";
import { isTransientStorageError, JobFailedError, NotFoundError } from "./errors.ts";
import type { ExecutorEventName, ExecutorEvents, Listener } from "./events.ts";
import { isJobFinal, isSatisfied } from "./status.ts";
import { checkOptionNames, checkOptionsObject } from "./options.ts";
import type { Storage } from "./storage.ts";
import type { Job, JsonValue, Task } from "./types.ts";

/** What a handle needs from its executor. */
export interface JobHost {
  /** The storage. */
  readonly storage: Storage;
  /** The executor's clock. */
  readonly clock: Clock;
  /** How often `wait()` re-reads the job when no event arrives (another executor may end it). */
  readonly pollIntervalMs: number;
  /** Listen to executor events. */
  on<K extends ExecutorEventName>(event: K, listener: Listener<K>): () => void;
  /**
   * Listen to the executor events about job `jobId` only. Without it, `JobHandle.on()`
   * listens with `on()` and drops the events of other jobs (each event is then handed to
   * every handle's listener).
   */
  onJob?<K extends ExecutorEventName>(event: K, jobId: string, listener: Listener<K>): () => void;
  /** Move the job to `running`, `paused` or `cancelled`. */
  setJobStatus(jobId: string, status: "running" | "paused" | "cancelled"): Promise<Job>;
  /**
   * Call `wake` when job `jobId` may have changed status; returns a function that stops.
   * Without it, `wait()` listens to the host's job events and to every storage change.
   */
  watchJob?(jobId: string, wake: () => void): () => void;
  /**
   * Run a read for a person, retried with backoff while it fails with an error that may
   * pass (as the executor retries its own calls). Without it, reads are not retried.
   */
  retried?<T>(operation: string, read: () => Promise<T>): Promise<T>;
  /** Report a failed storage call that will be retried (the executor emits `storage:error`). */
  storageError?(operation: string, error: unknown, attempt: number): void;
}

/** The events a {@link JobHandle} tells about its job: those of its tasks and its own end. */
export type JobEventName = Extract<ExecutorEventName, `task:${string}` | `job:${string}`>;

/** An `AbortSignal` (of any realm: one from an iframe is not `instanceof` this one's). */
export function isAbortSignal(v: unknown): v is AbortSignal {
  return typeof v === "object" && v !== null && typeof (v as AbortSignal).aborted === "boolean" &&
    typeof (v as AbortSignal).addEventListener === "function" &&
    typeof (v as AbortSignal).throwIfAborted === "function";
}

/** What callers write for a deadline of `wait()`, which takes a signal instead. */
const WAIT_HINTS: Record<string, string> = {
  timeout: `"signal: AbortSignal.timeout(ms)"`,
  timeoutMs: `"signal: AbortSignal.timeout(ms)"`,
  deadline: `"signal: AbortSignal.timeout(ms)"`,
};

/**
 * `promise`, or a rejection with `signal`'s reason as soon as it aborts (the promise is
 * left to settle unheard).
 */
function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** A handle on one job. */
export class JobHandle {
  /** The job id. */
  readonly id: string;
  readonly #host: JobHost;

  /** Made by `Executor.submit()` and `Executor.job()`. */
  constructor(id: string, host: JobHost) {
    this.id = id;
    this.#host = host;
  }

  /**
   * The job record as stored now. A read that fails with an error that may pass is
   * retried with backoff (five failures in a row; the sixth is thrown: a request, where
   * `wait()` rides out an outage of any length).
   */
  status(): Promise<Job> {
    return this.#retried("getJob", () => this.#job());
  }

  /**
   * Every task of the job (spawned children included), in creation order; retried as
   * `status()` is. A job that is not stored (deleted by retention) is a `NotFoundError`,
   * as in `status()`, not an empty list.
   */
  tasks(): Promise<Task[]> {
    return this.#retried("listTasks", async () => {
      const tasks = await this.#tasks();
      // A stored job holds at least one task: none means the job is gone (one read more, then).
      if (tasks.length === 0 && !(await this.#host.storage.getJob(this.id))) throw new NotFoundError("job", this.id);
      return tasks;
    });
  }

  /** A read for the caller, retried as the host retries its own (not at all without `retried`). */
  #retried<T>(operation: string, read: () => Promise<T>): Promise<T> {
    const host = this.#host;
    return host.retried ? host.retried(operation, read) : read();
  }

  async #job(): Promise<Job> {
    const job = await this.#host.storage.getJob(this.id);
    if (!job) throw new NotFoundError("job", this.id);
    return job;
  }

  #tasks(): Promise<Task[]> {
    return this.#host.storage.listTasks({ jobId: this.id });
  }

  /**
   * Wait until the job ends. Resolves with the outputs of its completed tasks by key;
   * rejects with a `JobFailedError` naming the failed tasks when it failed or was cancelled.
   * A storage read that fails with an error that may pass is retried with backoff (capped
   * at `pollIntervalMs`) for as long as it fails, as the executor rides out an outage, and
   * each failure is reported as `storage:error`; other errors are thrown. To stop waiting
   * at a deadline, give a `signal` (`AbortSignal.timeout(ms)`): when it aborts, `wait()`
   * rejects with its reason at once, also while a read is under way (left to settle).
   * Called by an agent of the job itself, it cannot resolve before that agent returns:
   * it waits until the task's timeout (pass `ctx.signal`).
   */
  async wait(options: { signal?: AbortSignal } = {}): Promise<Record<string, JsonValue>> {
    // A deadline or a signal in place of the options object would wait for good as well.
    if (isAbortSignal(options)) throw new TypeError("wait() takes its signal as an option: wait({ signal })");
    checkOptionsObject("wait()", options, "{ signal }");
    checkOptionNames("wait() option", options, ["signal"], WAIT_HINTS);
    const signal = options?.signal ?? undefined;
    if (signal !== undefined && !isAbortSignal(signal)) {
      throw new TypeError(`wait() "signal" must be an AbortSignal, got ${typeof signal}`);
    }
    let failures = 0;
    let reading = "getJob";
    for (;;) {
      signal?.throwIfAborted();
      let wake: () => void = () => {};
      const woken = new Promise<void>((resolve) => (wake = resolve));
      let offs: (() => void)[];
      if (this.#host.watchJob) offs = [this.#host.watchJob(this.id, () => wake())];
      else {
        const matches = (p: { job: Job }) => p.job.id === this.id && wake();
        offs = [
          this.#host.on("job:completed", matches),
          this.#host.on("job:failed", matches),
          this.#host.on("job:cancelled", matches),
          this.#host.storage.watch(() => wake()),
        ];
      }
      const timer = this.#host.clock.setTimer(wake, this.#host.pollIntervalMs);
      const onAbort = () => wake();
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        // Reads of its own, retried by this loop (which also watches the signal). A read
        // that never answers (a connection dropped without the driver noticing) must not
        // outlast the signal: the caller gave it to stop waiting.
        reading = "getJob";
        const job = await untilAborted(this.#job(), signal);
        reading = "listTasks";
        if (isJobFinal(job.status)) return await untilAborted(this.#outcome(job), signal);
        failures = 0;
        await woken;
      } catch (e) {
        // An outage of any length is ridden out (a failover takes seconds), as Temporal's
        // result() and the executor itself do; an error that will not pass is thrown.
        if (!isTransientStorageError(e)) throw e;
        this.#host.storageError?.(reading, e, ++failures);
        const delayMs = backoffDelay(failures, {
          delayMs: 20,
          factor: 2,
          maxDelayMs: this.#host.pollIntervalMs,
          jitter: true,
        });
        // A change told meanwhile (this executor's commit that ends the job, another
        // process's notice, a storage listening again after the outage) ends the pause: the
        // storage answers again, and the caller should not wait out the backoff.
        await this.#pause(delayMs, signal, woken);
      } finally {
        for (const off of offs) off();
        this.#host.clock.clearTimer(timer);
        signal?.removeEventListener("abort", onAbort);
      }
    }
  }

  /**
   * Sleep `ms` on the executor's clock, or less when `signal` aborts or `woken` resolves;
   * the timer is cleared whichever ends it (left armed, it would keep a process alive).
   */
  #pause(ms: number, signal: AbortSignal | undefined, woken: Promise<void>): Promise<void> {
    // Aborted during the read that failed: an abort listener added now would never be called.
    if (signal?.aborted) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        this.#host.clock.clearTimer(timer);
        signal?.removeEventListener("abort", done);
        resolve();
      };
      const timer = this.#host.clock.setTimer(done, ms);
      signal?.addEventListener("abort", done, { once: true });
      void woken.then(done);
    });
  }

  async #outcome(job: Job): Promise<Record<string, JsonValue>> {
    const tasks = await this.#tasks();
    // A job's tasks are only ever deleted with the job (retention): fewer tasks than it
    // counted means it was pruned between the two reads, and its outcome is gone with it,
    // not an empty success.
    if (tasks.length < job.taskCount && !(await this.#host.storage.getJob(this.id))) {
      throw new NotFoundError("job", this.id);
    }
    if (job.status === "completed") {
      const out: Record<string, JsonValue> = {};
      // Keys that name a property of Object.prototype ("__proto__", "toString") are
      // defined, not assigned: they are data, never the prototype or its setters (and an
      // assignment would throw where the prototype is frozen). One set per call, not an
      // `in` lookup per key.
      const reserved = new Set(Object.getOwnPropertyNames(Object.prototype));
      for (let i = 0; i < tasks.length; i++) {
        const t = tasks[i]!;
        if (!isSatisfied(t)) continue;
        if (reserved.has(t.key)) {
          Object.defineProperty(out, t.key, { value: t.output, enumerable: true, writable: true, configurable: true });
        } else out[t.key] = t.output;
      }
      return out;
    }
    const failed = tasks
      .filter((t) => t.status === "failed" || t.status === "rejected")
      .map((t) => ({ key: t.key, error: t.error?.message ?? t.statusReason }));
    throw new JobFailedError(this.id, job.status === "cancelled" ? "cancelled" : "failed", failed);
  }

  /**
   * Cancel the job: running tasks' signals are aborted, every open task is cancelled.
   * Like `pause()` and `resume()`, it retries a storage call that fails with an error that
   * may pass (five failures in a row, the sixth is thrown) and is applied once. Resolves
   * with the job as stored; a job that has ended is left as it ended (`completed`,
   * `failed` or `cancelled`) and resolved with, as `pause()` and `resume()` do.
   */
  async cancel(): Promise<Job> {
    return await this.#host.setJobStatus(this.id, "cancelled");
  }

  /**
   * Pause the job: no task of it is claimed until `resume()`; running tasks finish. The
   * pause is stored: executors started later (after a restart) start nothing of it either.
   */
  async pause(): Promise<Job> {
    return await this.#host.setJobStatus(this.id, "paused");
  }

  /**
   * Resume a paused job. A job that has ended does not reopen: it is resolved with as it
   * ended (check `status`).
   */
  async resume(): Promise<Job> {
    return await this.#host.setJobStatus(this.id, "running");
  }

  /**
   * Listen to an executor event about this job only; returns a function that stops
   * listening. Like `Executor.on()`, it tells what this handle's executor did: a job run by
   * another executor is followed with `wait()`.
   */
  on<K extends JobEventName>(event: K, listener: Listener<K>): () => void {
    // Checked here: the host is given a wrapper, which is always a function.
    if (typeof listener !== "function") {
      throw new TypeError(`on("${String(event)}") needs a function, got ${typeof listener}`);
    }
    if (this.#host.onJob) return this.#host.onJob(event, this.id, listener);
    return this.#host.on(event, (payload: ExecutorEvents[K]) => {
      const p = payload as { task?: Task; job?: Job };
      if ((p.task?.jobId ?? p.job?.id) === this.id) listener(payload);
    });
  }
}
