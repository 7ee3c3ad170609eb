/**
 * A neutral case list plus one tiny registration shim per runner.
 */

/** One test case of a shared suite. */
export interface Case<C> {
  name: string;
  /** When set, the case is skipped and this says why. */
  skip?: string;
  run(ctx: C): Promise<void> | void;
}

/** How a runner registers one test. */
export interface Registrar {
  test(name: string, fn: () => Promise<void>): void;
  skip(name: string, reason: string): void;
}

/** Register every case of a suite with a runner; `setup` makes a fresh context per case. */
export function register<C>(
  registrar: Registrar,
  prefix: string,
  cases: readonly Case<C>[],
  setup: () => Promise<{ ctx: C; teardown?: () => Promise<void> | void }>,
): void {
  for (const c of cases) {
    const name = `${prefix}: ${c.name}`;
    if (c.skip) {
      registrar.skip(`${name} (skipped: ${c.skip})`, c.skip);
      continue;
    }
    registrar.test(name, async () => {
      const { ctx, teardown } = await setup();
      try {
        await c.run(ctx);
      } finally {
        await teardown?.();
      }
    });
  }
}
