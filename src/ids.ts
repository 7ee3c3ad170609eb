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
let lastTime = -1;
const lastRandom = new Uint8Array(16);

/**
 * Make a new sortable id.
 *
 * @example
 * ```ts
 * import { newId } from "./ids.ts";
 * const a = newId();
 * const b = newId();
 * console.assert(a < b);
 * ```
 */
export function newId(now: number = Date.now()): string {
  if (now <= lastTime) {
    // Same (or earlier) millisecond: increment the random part, keep the time.
    let i = 15;
    while (i >= 0 && lastRandom[i] === 31) lastRandom[i--] = 0;
    if (i >= 0) lastRandom[i]! += 1;
  } else {
    lastTime = now;
    crypto.getRandomValues(lastRandom);
    for (let i = 0; i < 16; i++) lastRandom[i]! &= 31;
  }
  let time = lastTime;
  let out = "";
  for (let i = 0; i < 10; i++) {
    out = ALPHABET[time % 32]! + out;
    time = Math.floor(time / 32);
  }
  for (let i = 0; i < 16; i++) out += ALPHABET[lastRandom[i]!]!;
  return out;
}
