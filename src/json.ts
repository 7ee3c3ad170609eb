/**
 * JSON safety: every value a storage keeps goes through `toJson`, which checks it and
 * returns a deep, frozen copy, so stored values can be shared without copying again.
 *
 * @module
 */

import { JsonValueError } from "./errors.ts";
import type { JsonValue } from "./types.ts";

/** Limits applied while checking a value. */
export interface JsonLimits {
  /** Deepest nesting accepted (default 1000). */
  maxDepth?: number;
}

const DEFAULT_MAX_DEPTH = 1000;

/**
 * Values this module already checked and froze, with their height (levels of nesting: 1
 * for an object or array of primitives): passing one again costs a lookup, and nesting it
 * in a new value still counts its levels against `maxDepth`.
 */
const checked = new WeakMap<object, number>();

function heightOf(value: JsonValue): number {
  return value !== null && typeof value === "object" ? checked.get(value) ?? 0 : 0;
}

/**
 * Whether `value` came out of `toJson`: a deep frozen JSON value, which can never change
 * (internal: lets `jsonSize` remember sizes of such values only).
 */
export function isCheckedJson(value: object): boolean {
  return checked.has(value);
}

function escapePointer(key: string): string {
  return key.replace(/~/g, "~0").replace(/\//g, "~1");
}

/** `String.prototype.isWellFormed` where the runtime has it (far faster than a loop over long text). */
const nativeWellFormed = (String.prototype as { isWellFormed?: () => boolean }).isWellFormed;

/** Whether `s` holds a lone surrogate (UTF-16 that is not well formed: no UTF-8 or database text can hold it). */
export function isLoneSurrogate(s: string): boolean {
  if (nativeWellFormed !== undefined) return !nativeWellFormed.call(s);
  // Cheap pre-check keeps the common case fast.
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0xd800 && c <= 0xdfff) {
      if (c <= 0xdbff) {
        const n = s.charCodeAt(i + 1);
        if (n >= 0xdc00 && n <= 0xdfff) {
          i++;
          continue;
        }
      }
      return true;
    }
  }
  return false;
}

/**
 * Why `s` is not text every store keeps as given, or `undefined` when it is: a lone
 * surrogate (UTF-8 databases change it, so two keys could become one) or NUL (PostgreSQL's
 * text cannot hold it). The executor refuses such names and keys alike on every adapter.
 */
export function textFault(s: string): string | undefined {
  if (s.includes("\0")) return "it holds NUL (U+0000)";
  if (isLoneSurrogate(s)) return "it holds a lone surrogate";
  return undefined;
}

/** `s` with every lone surrogate replaced by U+FFFD (as `String.prototype.toWellFormed` does). */
export function wellFormed(s: string): string {
  if (!isLoneSurrogate(s)) return s;
  return s.replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, "\ufffd");
}

/**
 * Check that `value` is JSON-safe and return a deep frozen copy of it.
 * A property whose value is `undefined` is left out, as `JSON.stringify` leaves it out.
 * Throws a `JsonValueError` naming the path of the first offending value: `undefined` in
 * an array or as the value itself, functions, symbols, BigInt, non-finite numbers, cycles, objects that are not plain
 * (Date, Map, class instances), strings with lone surrogates, nesting past `maxDepth` (a
 * value this function returned before counts with its own levels where it is nested).
 * Keys such as `__proto__` are kept as ordinary data.
 */
export function toJson(value: unknown, limits?: JsonLimits): JsonValue {
  // Fast paths, without allocating: null, finite numbers, booleans, and
  // values this module already checked (a task's input on its way to storage).
  if (value === null || typeof value === "boolean") return value;
  // -0 is 0: JSON has no negative zero, and a store that keeps the text would lose it.
  if (typeof value === "number" && Number.isFinite(value)) return value === 0 ? 0 : value;
  const maxDepth = limits?.maxDepth ?? DEFAULT_MAX_DEPTH;
  if (typeof value === "object" && value !== null) {
    const height = checked.get(value);
    if (height !== undefined) {
      if (height > maxDepth) throw new JsonValueError("", `nesting is deeper than ${maxDepth} levels`);
      return value as JsonValue;
    }
  }
  const seen = new Set<object>();
  const walk = (v: unknown, path: string, depth: number): JsonValue => {
    switch (typeof v) {
      case "string":
        if (isLoneSurrogate(v)) throw new JsonValueError(path, "string holds a lone surrogate");
        return v;
      case "boolean":
        return v;
      case "number":
        if (!Number.isFinite(v)) throw new JsonValueError(path, `number ${v} is not finite`);
        return v === 0 ? 0 : v;
      case "object": {
        if (v === null) return null;
        const known = checked.get(v);
        if (known !== undefined) {
          // Checked already, but its own levels count here too: nesting checked values
          // (an output wrapping a dependency's, a cache value wrapping the last one) must
          // not build a value deeper than any storage could write or read back.
          if (depth + known > maxDepth) throw new JsonValueError(path, `nesting is deeper than ${maxDepth} levels`);
          return v as JsonValue;
        }
        if (depth >= maxDepth) {
          throw new JsonValueError(path, `nesting is deeper than ${maxDepth} levels`);
        }
        if (seen.has(v)) throw new JsonValueError(path, "value is cyclic");
        seen.add(v);
        let out: JsonValue;
        let height = 1;
        if (Array.isArray(v)) {
          const arr: JsonValue[] = new Array(v.length);
          for (let i = 0; i < v.length; i++) {
            const item = walk(v[i], `${path}/${i}`, depth + 1);
            const h = heightOf(item) + 1;
            if (h > height) height = h;
            arr[i] = item;
          }
          out = arr;
        } else {
          const proto = Object.getPrototypeOf(v);
          if (proto !== Object.prototype && proto !== null) {
            const ctor = (v as { constructor?: { name?: string } }).constructor?.name ?? "object";
            throw new JsonValueError(path, `${ctor} is not a plain object`);
          }
          const obj: { [key: string]: JsonValue } = {};
          for (const key of Object.keys(v)) {
            const field = (v as Record<string, unknown>)[key];
            // Left out, as `JSON.stringify` leaves it out (an optional property set to undefined).
            if (field === undefined) continue;
            if (isLoneSurrogate(key)) {
              throw new JsonValueError(`${path}/${escapePointer(key)}`, "key holds a lone surrogate");
            }
            const item = walk(field, `${path}/${escapePointer(key)}`, depth + 1);
            const h = heightOf(item) + 1;
            if (h > height) height = h;
            if (key === "__proto__") {
              Object.defineProperty(obj, key, { value: item, enumerable: true, writable: true, configurable: true });
            } else {
              obj[key] = item;
            }
          }
          out = obj;
        }
        seen.delete(v);
        Object.freeze(out);
        checked.set(out, height);
        return out;
      }
      case "undefined":
        throw new JsonValueError(path, "undefined is not JSON");
      case "bigint":
        throw new JsonValueError(path, "BigInt is not JSON");
      case "function":
        throw new JsonValueError(path, "a function is not JSON");
      default:
        throw new JsonValueError(path, `${typeof v} is not JSON`);
    }
  };
  return walk(value, "", 0);
}

/** Parse JSON text into a frozen value (used by adapters that store JSON as text). */
export function parseJson(text: string): JsonValue {
  return deepFreeze(JSON.parse(text) as JsonValue);
}

/** Freeze a freshly parsed JSON value in place and return it. */
export function deepFreeze<T extends JsonValue>(value: T): T {
  if (value !== null && typeof value === "object" && !Object.isFrozen(value)) {
    if (Array.isArray(value)) { for (const item of value) deepFreeze(item); }
    else for (const key of Object.keys(value)) deepFreeze((value as Record<string, JsonValue>)[key]!);
    Object.freeze(value);
  }
  return value;
}
