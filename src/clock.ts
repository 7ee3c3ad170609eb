/**
 * Time, injectable: the executor reads the time and sets timers only through a
 * {@link Clock}, so tests of backoff, timeouts and leases run in milliseconds.
 *
 * @module
 */

/** A source of time and timers. */
export interface Clock {
  /** Current time in epoch milliseconds. */
  now(): number;
  /**
   * Milliseconds on a clock that never jumps, on the time base of the timers
   * (`performance.now()` for `setTimeout`). Timeouts, grace periods and the progress
   * throttle are measured on it, so that the wall clock stepping forward or back (NTP, a
   * resumed machine) ends no attempt early or late. Without it, `now()` is used.
   */
  monotonic?(): number;
  /** Call `fn` after `ms` milliseconds; returns a handle for `clearTimer`. */
  setTimer(fn: () => void, ms: number): unknown;
  /** Cancel a timer. */
  clearTimer(handle: unknown): void;
}

/**
 * The longest delay `setTimeout` keeps (2^31 - 1 ms, about 24.8 days): a longer one fires
 * at once in every runtime.
 */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** What {@link timerClock} builds a clock from: a time source and `setTimeout`-like timers. */
export interface TimerHost {
  /** Current time in epoch milliseconds. */
  now(): number;
  /** Milliseconds on the timers' clock, which never jumps (see {@link Clock.monotonic}). */
  monotonic?(): number;
  /** Schedule `fn` after `ms`; delays past 2^31 - 1 ms may fire at once, as `setTimeout`'s do. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancel what `setTimeout` returned. */
  clearTimeout(handle: unknown): void;
}

/** A long timer: the host's handle of its current leg. */
class LongTimer {
  id: unknown = undefined;
}

/**
 * A clock on `host`'s time and timers. A delay longer than `setTimeout` keeps (a task due in
 * a month, a timeout of weeks) waits in legs of at most 2^31 - 1 ms instead of firing at once.
 */
export function timerClock(host: TimerHost): Clock {
  const monotonic = host.monotonic;
  // The legs are measured on the timers' own time, so a wall-clock step does not move them.
  const elapsed = typeof monotonic === "function" ? () => monotonic.call(host) : () => host.now();
  // A leg that fired took its whole delay on the timers' time, even when `monotonic()` says
  // less (a test that fakes `setTimeout` and leaves `performance.now()` real): what is left
  // is at most the rest after it.
  const armLeg = (timer: LongTimer, fn: () => void, dueAt: number, most: number): void => {
    const left = Math.min(dueAt - elapsed(), most);
    const leg = Math.min(Math.max(0, left), MAX_TIMEOUT_MS);
    timer.id = host.setTimeout(() => left > MAX_TIMEOUT_MS ? armLeg(timer, fn, dueAt, left - leg) : fn(), leg);
  };
  return {
    now: () => host.now(),
    ...(typeof monotonic === "function" ? { monotonic: () => monotonic.call(host) } : {}),
    setTimer: (fn, ms) => {
      if (!(ms > MAX_TIMEOUT_MS)) return host.setTimeout(fn, ms);
      const timer = new LongTimer();
      armLeg(timer, fn, elapsed() + ms, ms);
      return timer;
    },
    clearTimer: (handle) => host.clearTimeout(handle instanceof LongTimer ? handle.id : handle),
  };
}

/** A timer of a page: armed once its own task runs (see {@link pageTask}). */
class PageTimer {
  id: ReturnType<typeof setTimeout> | undefined = undefined;
  cancelled = false;
}

let pageTaskFn: ((fn: () => void) => void) | null | undefined;

/**
 * In a page (a window, not a worker), what runs `fn` in a task of its own: a message of a
 * `MessageChannel`; elsewhere `null`. A timer armed there is never chained to the timer
 * that asked for it. Chromium wakes a page hidden for five minutes at most once a minute
 * for timers chained five deep (armed in a timer's task, whose own timer was too, and so
 * on: "intensive wake-up throttling"), and the executor's periodic timers chain so while
 * it idles: the lease renewal of a task claimed then came up to a minute late, after the
 * lease (30 s) had lapsed, and an executor in another tab recovered the task and ran it
 * again. Unchained, a hidden page's timers are late by at most about a second. Workers
 * are not throttled so.
 */
function pageTask(): ((fn: () => void) => void) | null {
  if (pageTaskFn !== undefined) return pageTaskFn;
  const g = globalThis as {
    document?: unknown;
    MessageChannel?: typeof MessageChannel;
    process?: { versions?: { node?: unknown } };
  };
  if (typeof g.document !== "object" || g.document === null || typeof g.MessageChannel !== "function") {
    return (pageTaskFn = null);
  }
  // A DOM emulated in Node, Deno or Bun (jsdom, happy-dom) throttles nothing, and a port
  // listened to there would keep the process alive for good.
  if (typeof g.process?.versions?.node === "string") return (pageTaskFn = null);
  const { port1, port2 } = new g.MessageChannel();
  const due: (() => void)[] = [];
  port1.onmessage = () => due.shift()?.();
  return (pageTaskFn = (fn) => {
    due.push(fn);
    port2.postMessage(null);
  });
}

/**
 * The real clock: `Date.now` and `setTimeout`, with long delays waited in legs (see
 * {@link timerClock}). In a page, each timer is armed from a task of its own, so that a
 * hidden tab's timers are never throttled as chained ones (see {@link pageTask}).
 */
export const systemClock: Clock = timerClock({
  now: () => Date.now(),
  monotonic: () => performance.now(),
  setTimeout: (fn, ms) => {
    const inTask = pageTask();
    if (inTask === null) return setTimeout(fn, ms);
    const timer = new PageTimer();
    inTask(() => {
      if (!timer.cancelled) timer.id = setTimeout(fn, ms);
    });
    return timer;
  },
  clearTimeout: (handle) => {
    if (!(handle instanceof PageTimer)) return clearTimeout(handle as ReturnType<typeof setTimeout>);
    handle.cancelled = true;
    if (handle.id !== undefined) clearTimeout(handle.id);
  },
});

interface ManualTimer {
  at: number;
  seq: number;
  fn: () => void;
}

/**
 * A clock that moves only when told to: `advance(ms)` runs the timers that fall due,
 * in order, letting promises settle between them.
 *
 * @example
 * ```ts
 * import { ManualClock } from "@dagger/task-core";
 * const clock = new ManualClock(0);
 * let fired = false;
 * clock.setTimer(() => (fired = true), 1000);
 * await clock.advance(1000);
 * console.assert(fired);
 * ```
 */
export class ManualClock implements Clock {
  #now: number;
  /** Time passed by `advance()` only: `set()` jumps `now()`, not this. */
  #monotonic = 0;
  #seq = 0;
  #timers = new Map<number, ManualTimer>();

  /** Start at `start` epoch milliseconds. */
  constructor(start: number = 0) {
    this.#now = start;
  }

  /** {@inheritDoc Clock.now} */
  now(): number {
    return this.#now;
  }

  /** {@inheritDoc Clock.monotonic} */
  monotonic(): number {
    return this.#monotonic;
  }

  /** {@inheritDoc Clock.setTimer} */
  setTimer(fn: () => void, ms: number): unknown {
    const seq = ++this.#seq;
    // On the timers' time base, `monotonic()`, as `setTimeout`'s delays are: `set()` moving
    // the wall clock neither fires a timer early nor holds it late.
    this.#timers.set(seq, { at: this.#monotonic + Math.max(0, ms), seq, fn });
    return seq;
  }

  /** {@inheritDoc Clock.clearTimer} */
  clearTimer(handle: unknown): void {
    this.#timers.delete(handle as number);
  }

  /** Number of timers waiting. */
  get pending(): number {
    return this.#timers.size;
  }

  /**
   * Move time forward by `ms`, firing due timers in order and letting promises settle (a
   * negative `ms` steps the wall clock back, as `set()` does). Throws a `RangeError` for a
   * value that is not a finite number: `Infinity` would fire a re-arming timer for good.
   */
  async advance(ms: number): Promise<void> {
    if (typeof ms !== "number" || !Number.isFinite(ms)) {
      throw new RangeError(`advance(): ms must be a finite number, got ${String(ms)}`);
    }
    const end = this.#monotonic + Math.max(0, ms);
    for (;;) {
      await settle();
      const next = this.#nextTimer(end);
      if (!next) break;
      this.#timers.delete(next.seq);
      this.#move(next.at);
      next.fn();
    }
    this.#move(end);
    if (ms < 0) this.#now += ms; // a step back, as set() makes
    await settle();
  }

  /** Move both times forward to `monotonic` `to` (never back). */
  #move(to: number): void {
    if (to <= this.#monotonic) return;
    this.#now += to - this.#monotonic;
    this.#monotonic = to;
  }

  /**
   * Skip time until `promise` settles, and answer what it did: whenever the pending work has
   * settled and `promise` still waits, time jumps to the next timer and fires it (a retry's
   * backoff, a timeout, a lease renewal, a poll), as a test server that skips time does. A job
   * whose tasks retry for minutes then ends in milliseconds: `await clock.runUntil(job.wait())`.
   *
   * Throws a `RangeError` once the next timer lies more than `maxMs` (default one day) of
   * clock time past the call, and an `Error` when nothing is left to fire and the promise
   * still waits: it can never settle. A started executor always has a timer due (its poll),
   * so a job that never ends is stopped only by `maxMs`, after one settle of the event loop
   * per timer fired (about 9 s of real time per clock hour at a 1 s poll): set `maxMs` to
   * what the test needs. Made for work whose waits are this clock's timers and
   * whose storage answers at once (the memory adapter); an agent that waits on real time or
   * real I/O would see time jump while it waits (`stepMs` bounds each jump).
   */
  async runUntil<T>(promise: PromiseLike<T>, options: { maxMs?: number; stepMs?: number } = {}): Promise<T> {
    // Observed first: refused options must not leave a rejection of `promise` unhandled.
    let outcome: { value: T } | { error: unknown } | undefined;
    Promise.resolve(promise).then((value) => (outcome = { value }), (error) => (outcome = { error }));
    const maxMs = options.maxMs ?? 86_400_000;
    const stepMs = options.stepMs ?? Infinity;
    if (!(maxMs >= 0)) throw new RangeError(`runUntil(): maxMs must be a number >= 0, got ${maxMs}`);
    if (!(stepMs > 0)) throw new RangeError(`runUntil(): stepMs must be a number > 0, got ${stepMs}`);
    const limit = this.#monotonic + maxMs;
    for (let idle = 0;;) {
      await settle();
      if (outcome) {
        if ("error" in outcome) throw outcome.error;
        return outcome.value;
      }
      const next = this.#nextTimer(Infinity);
      if (!next) {
        // Work outside this clock (a storage answering late) may still be under way: give it
        // some turns of the event loop before calling the wait endless.
        if (++idle < IDLE_TURNS) continue;
        throw new Error("runUntil(): the promise still waits and no timer is left to fire, so it can never settle");
      }
      idle = 0;
      const to = Math.min(next.at, this.#monotonic + stepMs);
      if (to > limit) {
        throw new RangeError(`runUntil(): the promise still waits after ${maxMs} ms of clock time (maxMs)`);
      }
      if (to < next.at) {
        this.#move(to);
        continue;
      }
      this.#timers.delete(next.seq);
      this.#move(next.at);
      next.fn();
    }
  }

  /** The timer due first at or before `end` (in order of setting among equals), if any. */
  #nextTimer(end: number): ManualTimer | undefined {
    let next: ManualTimer | undefined;
    for (const t of this.#timers.values()) {
      if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
    }
    return next;
  }

  /** Set the time (it may go backwards, to test clock jumps). Fires nothing, and leaves `monotonic()` as it is. */
  set(now: number): void {
    this.#now = now;
  }
}

/** Turns of the event loop `runUntil()` gives work outside the clock before it calls a wait endless. */
const IDLE_TURNS = 50;

/**
 * The runtime's `setTimeout`, taken when this module loads: a test that then fakes the
 * timers (`vi.useFakeTimers()`, `jest.useFakeTimers()`) to drive its own code would
 * otherwise leave `advance()` and `runUntil()` waiting for a fake timer nobody moves.
 */
const realSetTimeout: (fn: () => void, ms: number) => unknown = globalThis.setTimeout.bind(globalThis);

async function settle(): Promise<void> {
  // A macrotask lets every pending promise chain (storage calls included) run.
  await new Promise<void>((resolve) => realSetTimeout(resolve, 0));
}
