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

/** A long timer of the real clock: the `setTimeout` handle of its current leg. */
class SystemTimer {
  id: ReturnType<typeof setTimeout> | undefined = undefined;
}

/** Wait `ms` in legs no longer than `setTimeout` keeps, then call `fn`. */
function armLeg(timer: SystemTimer, fn: () => void, dueAt: number): void {
  const left = dueAt - Date.now();
  timer.id = setTimeout(
    () => left > MAX_TIMEOUT_MS ? armLeg(timer, fn, dueAt) : fn(),
    Math.min(Math.max(0, left), MAX_TIMEOUT_MS),
  );
}

/**
 * The real clock: `Date.now` and `setTimeout`. A delay longer than `setTimeout` keeps (a
 * task due in a month, a timeout of weeks) waits in legs instead of firing at once.
 */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer: (fn, ms) => {
    if (!(ms > MAX_TIMEOUT_MS)) return setTimeout(fn, ms);
    const timer = new SystemTimer();
    armLeg(timer, fn, Date.now() + ms);
    return timer;
  },
  clearTimer: (handle) =>
    clearTimeout(handle instanceof SystemTimer ? handle.id : handle as ReturnType<typeof setTimeout>),
};

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
 * import { ManualClock } from "./clock.ts";
 * const clock = new ManualClock(0);
 * let fired = false;
 * clock.setTimer(() => (fired = true), 1000);
 * await clock.advance(1000);
 * console.assert(fired);
 * ```
 */
export class ManualClock implements Clock {
  #now: number;
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

  /** {@inheritDoc Clock.setTimer} */
  setTimer(fn: () => void, ms: number): unknown {
    const seq = ++this.#seq;
    this.#timers.set(seq, { at: this.#now + Math.max(0, ms), seq, fn });
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

  /** Move time forward by `ms`, firing due timers in order and letting promises settle. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    for (;;) {
      await settle();
      let next: ManualTimer | undefined;
      for (const t of this.#timers.values()) {
        if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t;
      }
      if (!next) break;
      this.#timers.delete(next.seq);
      this.#now = Math.max(this.#now, next.at);
      next.fn();
    }
    this.#now = end;
    await settle();
  }

  /** Set the time (it may go backwards, to test clock jumps). Fires nothing. */
  set(now: number): void {
    this.#now = now;
  }
}

async function settle(): Promise<void> {
  // A macrotask lets every pending promise chain (storage calls included) run.
  await new Promise<void>((resolve) => setTimeout(resolve, 0));
}
