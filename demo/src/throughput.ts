/**
 * A throughput meter: completions per second over a sliding window, and per-second
 * buckets for a sparkline.
 *
 * @module
 */

/** Options of {@link ThroughputMeter}. */
export interface ThroughputOptions {
  /** Width of the sliding window the rate is measured over (default 5000 ms). */
  windowMs?: number;
  /** How many one-second buckets the history keeps (default 30). */
  historySeconds?: number;
}

/** Counts events and reports their rate. Times are passed in, so it is deterministic to test. */
export class ThroughputMeter {
  readonly windowMs: number;
  readonly historySeconds: number;
  #times: number[] = [];
  #total = 0;

  /** Create a meter. */
  constructor(options: ThroughputOptions = {}) {
    this.windowMs = options.windowMs ?? 5000;
    this.historySeconds = options.historySeconds ?? 30;
    if (!(this.windowMs > 0)) throw new RangeError(`"windowMs" must be positive, got ${this.windowMs}`);
    if (!Number.isInteger(this.historySeconds) || this.historySeconds <= 0) {
      throw new RangeError(`"historySeconds" must be a positive integer, got ${this.historySeconds}`);
    }
  }

  /** Record `count` events at time `at` (epoch milliseconds). */
  record(at: number, count = 1): void {
    for (let i = 0; i < count; i++) this.#times.push(at);
    this.#total += count;
  }

  /** Events recorded since creation or the last `reset()`. */
  get total(): number {
    return this.#total;
  }

  /** Forget everything. */
  reset(): void {
    this.#times = [];
    this.#total = 0;
  }

  #prune(now: number): void {
    const oldest = now - Math.max(this.windowMs, this.historySeconds * 1000);
    let drop = 0;
    while (drop < this.#times.length && this.#times[drop]! <= oldest) drop++;
    if (drop > 0) this.#times = this.#times.slice(drop);
  }

  /** Events per second over the window ending at `now`. */
  rate(now: number): number {
    this.#prune(now);
    const from = now - this.windowMs;
    let n = 0;
    for (const t of this.#times) if (t > from && t <= now) n++;
    return n / (this.windowMs / 1000);
  }

  /** Events per one-second bucket, oldest first, the last bucket ending at `now`. */
  history(now: number): number[] {
    this.#prune(now);
    const buckets = new Array<number>(this.historySeconds).fill(0);
    for (const t of this.#times) {
      const age = now - t;
      if (age < 0) continue;
      const i = this.historySeconds - 1 - Math.floor(age / 1000);
      if (i >= 0) buckets[i]!++;
    }
    return buckets;
  }
}

/** Bars of a sparkline: `x`, `y`, `width`, `height` per value, scaled to the largest. */
export function sparklineBars(
  values: readonly number[],
  width: number,
  height: number,
  gap = 1,
): { x: number; y: number; width: number; height: number }[] {
  if (values.length === 0) return [];
  const max = Math.max(1, ...values);
  const w = width / values.length;
  return values.map((v, i) => {
    const h = v <= 0 ? 0 : Math.max(1, (v / max) * height);
    return { x: i * w, y: height - h, width: Math.max(0.5, w - gap), height: h };
  });
}
