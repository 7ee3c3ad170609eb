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
}
