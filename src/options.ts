/**
 * Unknown option names. TypeScript catches a misspelt option in an inline literal; a
 * JavaScript caller, or options built at run time, would see it ignored and the default
 * used: `wait({ timeout: 5000 })` waited for good, `shutdown({ grace: 0 })` waited the
 * whole default grace. Every options object of the public API names such a key instead.
 *
 * @module
 */

/**
 * Throw a `TypeError` naming the first own key of `given` that `known` lacks (and that
 * holds a value: `undefined` is no option given), with the
 * option meant when `hints` knows the key. `what` names the options object for the
 * message (`Executor option`, `wait() option`); `prefix` a nested one (`"retry."`).
 * Anything but a plain object is left to the caller's own type checks.
 */
export function checkOptionNames(
  what: string,
  given: unknown,
  known: readonly string[],
  hints: Readonly<Record<string, string>> = {},
  prefix = "",
): void {
  if (given === null || typeof given !== "object") return;
  for (const key of Object.keys(given)) {
    // A key set to `undefined` says "not given", whatever its name.
    if (known.includes(key) || (given as Record<string, unknown>)[key] === undefined) continue;
    const hint = Object.hasOwn(hints, key) ? ` (did you mean ${hints[key]}?)` : "";
    const names = known.length === 0 ? "none" : known.map((k) => `"${prefix}${k}"`).join(", ");
    throw new TypeError(`Unknown ${what} "${prefix}${key}"${hint}; the options are ${names}`);
  }
}

/** A value as an error message shows it: text quoted, a function named so, others as `String()` gives them. */
export function shown(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "function") return "a function";
  try {
    return String(value);
  } catch {
    return typeof value; // an object without a prototype
  }
}

/**
 * Throw a `TypeError` when `given` is neither an options object nor left out (`undefined`,
 * `null`): `wait(5000)` or `shutdown(0)` would otherwise run with the defaults. `form`
 * shows the object meant (`{ signal }`).
 */
export function checkOptionsObject(call: string, given: unknown, form: string): void {
  if (given !== undefined && given !== null && typeof given !== "object") {
    throw new TypeError(`${call} expects an options object (${form}), got ${shown(given)}`);
  }
}
