/**
 * Payload size: how many bytes of JSON a value takes, measured by a walk that stops as
 * soon as it passes a limit. The executor uses it for `maxPayloadBytes` (task inputs at
 * submission, outputs and the other values an attempt stores at completion).
 *
 * Why a walk and not `JSON.stringify(value).length`: stringifying a 50 MB value builds a
 * 50 MB string before it can be compared with anything; the walk gives up after `limit`
 * bytes, so rejecting an oversized value costs O(limit) at most, and a single huge string
 * costs O(1) (its length alone already exceeds the limit). Sizes of the values `toJson`
 * returns (deep frozen: what the executor and the storages hand out) are remembered, so
 * measuring the same value again is a lookup.
 *
 * The size is the UTF-8 length of the value's `JSON.stringify` text, escapes included:
 * what a storage that keeps JSON text (sql.js) writes, and close to what any other keeps.
 *
 * @module
 */

import { isCheckedJson } from "./json.ts";

/** The default `maxPayloadBytes` of an executor: 10 MiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES: number = 10 * 1024 * 1024;

/** Deepest nesting the walk follows; deeper values are left to `toJson`, which rejects them. */
const MAX_DEPTH = 1000;

const sizes = new WeakMap<object, number>();

/** Printable ASCII other than `"` and `\`: one byte per character, no escape. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

class Over {
  constructor(readonly at: number) {}
}

function stringBytes(s: string, budget: number): number {
  // Every UTF-16 unit takes at least one byte: a string longer than the budget is over it.
  if (s.length + 2 > budget) return s.length + 2;
  if (PLAIN.test(s)) return s.length + 2;
  let n = 2;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20) n += c === 8 || c === 9 || c === 10 || c === 12 || c === 13 ? 2 : 6;
    else if (c === 0x22 || c === 0x5c) n += 2;
    else if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 4;
        i++;
      } else n += 6; // a lone surrogate is written as \udxxx
    } else if (c >= 0xdc00 && c <= 0xdfff) n += 6;
    else n += 3;
  }
  return n;
}

/**
 * The number of UTF-8 bytes of `JSON.stringify(value)`, or, once that passes `limit`, some
 * number above `limit` (the walk stops there). Values that are not JSON (functions,
 * cycles, nesting past 1000 levels) are measured as far as they go; `toJson` reports them.
 *
 * @example
 * ```ts
 * import { jsonSize } from "@dagger/task-core";
 * console.assert(jsonSize({ a: "é" }) === JSON.stringify({ a: "é" }).length + 1);
 * console.assert(jsonSize("x".repeat(50_000_000), 1024) > 1024);
 * ```
 */
export function jsonSize(value: unknown, limit: number = Infinity): number {
  // Without allocating: the values most agents return.
  if (value === null) return 4;
  if (typeof value === "boolean") return value ? 4 : 5;
  if (typeof value === "number" && Number.isFinite(value)) return String(value).length;
  let total = 0;
  const ancestors = new Set<object>();
  const add = (n: number): void => {
    total += n;
    if (total > limit) throw new Over(total);
  };
  const walk = (v: unknown, depth: number): void => {
    switch (typeof v) {
      case "string":
        add(stringBytes(v, limit - total));
        return;
      case "number":
        add(Number.isFinite(v) ? String(v).length : 4);
        return;
      case "boolean":
        add(v ? 4 : 5);
        return;
      case "object": {
        if (v === null) return add(4);
        const known = sizes.get(v);
        if (known !== undefined) return add(known);
        if (depth >= MAX_DEPTH || ancestors.has(v)) return;
        ancestors.add(v);
        const start = total;
        if (Array.isArray(v)) {
          add(v.length === 0 ? 2 : 1 + v.length); // brackets and commas
          for (let i = 0; i < v.length; i++) {
            const item: unknown = v[i];
            if (item === undefined || typeof item === "function" || typeof item === "symbol") add(4);
            else walk(item, depth + 1);
          }
        } else {
          add(2);
          let first = true;
          for (const key of Object.keys(v)) {
            const item = (v as Record<string, unknown>)[key];
            if (item === undefined || typeof item === "function" || typeof item === "symbol") continue;
            add((first ? 0 : 1) + stringBytes(key, limit - total) + 1);
            first = false;
            walk(item, depth + 1);
          }
        }
        ancestors.delete(v);
        // Only a value `toJson` made is frozen all the way down: a merely frozen object may
        // hold objects that still change, so its size is not remembered.
        if (isCheckedJson(v)) sizes.set(v, total - start);
        return;
      }
      default:
        return; // undefined, functions, symbols, BigInt: not JSON; toJson says so
    }
  };
  try {
    walk(value, 0);
  } catch (e) {
    if (e instanceof Over) return e.at;
    throw e;
  }
  return total;
}
