/**
 * Sortable unique ids made with `crypto.getRandomValues`, available in every runtime.
 *
 * An id is 26 characters of Crockford base32: 10 for the millisecond time, 16 random.
 * Ids made by one process in the same millisecond increase monotonically, so ids sort
 * in creation order.
 *
 * @module
 */

const ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const CODES: readonly number[] = Array.from(ALPHABET, (c) => c.charCodeAt(0));
let lastTime = -1;
const lastRandom = new Uint8Array(16);
/** The character codes of the last id: only the characters that change are recomputed. */
const chars: number[] = new Array<number>(26).fill(CODES[0]!);

/**
 * Make a new sortable id.
 *
 * @example
 * ```ts
 * import { newId } from "@dagger/task-core";
 * const a = newId();
 * const b = newId();
 * console.assert(a < b);
 * ```
 */
export function newId(time: number = Date.now()): string {
  // Whole milliseconds (a clock may answer fractions, e.g. built on `performance.now()`).
  const now = Math.floor(time);
  if (!(now > lastTime)) {
    // Same (or earlier) millisecond: increment the random part, keep the time.
    let i = 15;
    while (i >= 0 && lastRandom[i] === 31) {
      lastRandom[i] = 0;
      chars[10 + i] = CODES[0]!;
      i--;
    }
    if (i >= 0) {
      const r = lastRandom[i]! + 1;
      lastRandom[i] = r;
      chars[10 + i] = CODES[r]!;
    }
  } else {
    lastTime = now;
    let time = now;
    for (let i = 9; i >= 0; i--) {
      chars[i] = CODES[time % 32]!;
      time = Math.floor(time / 32);
    }
    crypto.getRandomValues(lastRandom);
    for (let i = 0; i < 16; i++) {
      const r = lastRandom[i]! & 31;
      lastRandom[i] = r;
      chars[10 + i] = CODES[r]!;
    }
  }
  // One flat string, not a rope of 26 concatenations that a Map key lookup would flatten.
  return String.fromCharCode.apply(null, chars);
}
