/**
 * Retry delays: exponential, capped, with optional full jitter.
 *
 * @module
 */

/** How retries wait. */
export interface RetryOptions {
  /** Delay before the first retry in milliseconds (default 1000). */
  delayMs: number;
  /** Growth per attempt (default 2). */
  factor: number;
  /** Largest delay (default 300000). */
  maxDelayMs: number;
  /** Full jitter: pick uniformly in [0, delay] (default false). */
  jitter: boolean;
}

/** The defaults: 1 s, doubling, capped at 5 minutes, no jitter. */
export const DEFAULT_RETRY: Readonly<RetryOptions> = Object.freeze({
  delayMs: 1000,
  factor: 2,
  maxDelayMs: 300_000,
  jitter: false,
});

/**
 * Delay before the retry that follows failed attempt number `attempt` (from 1).
 *
 * @example
 * ```ts
 * import { backoffDelay, DEFAULT_RETRY } from "@dagger/task-core";
 * console.assert(backoffDelay(1, DEFAULT_RETRY) === 1000);
 * console.assert(backoffDelay(3, DEFAULT_RETRY) === 4000);
 * ```
 */
export function backoffDelay(attempt: number, options: RetryOptions, random: () => number = Math.random): number {
  // No delay stays no delay, however large the power grows (0 * Infinity would be NaN).
  const raw = options.delayMs === 0 ? 0 : options.delayMs * Math.pow(options.factor, Math.max(0, attempt - 1));
  const capped = Math.min(options.maxDelayMs, raw);
  if (!options.jitter) return capped;
  const r = random();
  // Math.random's range: a source answering outside [0, 1) (NaN, 2, -1, not a number)
  // would make a delay that is NaN, negative or past the cap. Such a draw waits the cap.
  return typeof r === "number" && r >= 0 && r < 1 ? Math.floor(r * capped) : capped;
}
