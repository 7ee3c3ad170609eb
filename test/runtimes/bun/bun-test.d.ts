// The part of Bun's test runner these shims use, so that `tsc -p tsconfig.test.json` checks
// them against the suites they register (Bun's own type package is not a dependency).
declare module "bun:test" {
  /** Register a test; `timeoutMs` overrides the runner's default. */
  interface TestFunction {
    (name: string, fn: () => unknown, timeoutMs?: number): void;
    /** A test listed as not run yet (its name says why). */
    todo(name: string, fn?: () => unknown): void;
    /** A test not run (its name says why). */
    skip(name: string, fn?: () => unknown): void;
  }
  export const test: TestFunction;
  /** Run `fn` once after every test of the file. */
  export function afterAll(fn: () => unknown): void;
  /** Run `fn` after each test of the file. */
  export function afterEach(fn: () => unknown): void;
  /** Bun's fake timers (they fake `setTimeout`, `Date` and `performance.now()`). */
  export const jest: {
    useFakeTimers(): void;
    useRealTimers(): void;
    /** Move the fake time, firing the due timers (synchronously: no promise settles meanwhile). */
    advanceTimersByTime(ms: number): void;
  };
}
