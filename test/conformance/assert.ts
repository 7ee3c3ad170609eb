/**
 * Runner-neutral assertions: the shared suites run under vitest, `deno test`, `bun test`
 * and vitest browser mode, so they depend on none of them.
 */

export class AssertionError extends Error {
  override name = "AssertionError";
}

function show(v: unknown): string {
  try {
    return JSON.stringify(v, (_k, x) => (typeof x === "bigint" ? `${x}n` : x));
  } catch {
    return String(v);
  }
}

export function ok(value: unknown, message = "expected a truthy value"): asserts value {
  if (!value) throw new AssertionError(message);
}

export function equal<T>(actual: T, expected: T, message?: string): void {
  if (!Object.is(actual, expected)) {
    throw new AssertionError(message ?? `expected ${show(expected)}, got ${show(actual)}`);
  }
}

export function notEqual<T>(actual: T, expected: T, message?: string): void {
  if (Object.is(actual, expected)) throw new AssertionError(message ?? `expected a value other than ${show(expected)}`);
}

export function isDeepEqual(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const k of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, k)) return false;
    if (!isDeepEqual((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

export function deepEqual(actual: unknown, expected: unknown, message?: string): void {
  if (!isDeepEqual(actual, expected)) {
    throw new AssertionError(message ?? `expected ${show(expected)}, got ${show(actual)}`);
  }
}

// deno-lint-ignore no-explicit-any
type ErrorClass = abstract new (...args: any[]) => Error;

export async function rejects<E extends Error>(
  fn: () => unknown,
  type: ErrorClass,
  includes?: string,
): Promise<E> {
  try {
    await fn();
  } catch (e) {
    if (!(e instanceof type)) {
      throw new AssertionError(`expected ${type.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    }
    if (includes !== undefined && !(e as Error).message.includes(includes)) {
      throw new AssertionError(`expected message to include ${show(includes)}, got ${show((e as Error).message)}`);
    }
    return e as E;
  }
  throw new AssertionError(`expected ${type.name} to be thrown, nothing was`);
}

export function throws(fn: () => unknown, type: ErrorClass, includes?: string): Error {
  try {
    fn();
  } catch (e) {
    if (!(e instanceof type)) {
      throw new AssertionError(`expected ${type.name}, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    }
    if (includes !== undefined && !(e as Error).message.includes(includes)) {
      throw new AssertionError(`expected message to include ${show(includes)}, got ${show((e as Error).message)}`);
    }
    return e as Error;
  }
  throw new AssertionError(`expected ${type.name} to be thrown, nothing was`);
}
