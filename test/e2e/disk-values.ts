/**
 * Values of `test/e2e/indexeddb-disk.e2e.mjs`, made in the page and again in Node: random
 * text (what fills a disk: Chromium compresses what repeats) that Node checks without
 * holding it, by the digest of the value made again from its seed.
 */

/** `length` characters of random-looking text made from `seed` (xorshift32: the same in Node). */
export function seededText(seed: number, length: number): string {
  let x = (seed | 0) || 1;
  const codes = new Array<number>(length);
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    codes[i] = 33 + ((x >>> 0) % 90);
  }
  let out = "";
  for (let i = 0; i < length; i += 8192) out += String.fromCharCode(...codes.slice(i, i + 8192));
  return out;
}

/** A short digest of a text (FNV-1a), so Node checks a value without reading it whole. */
export function digest(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return `${text.length}:${(h >>> 0).toString(16)}`;
}
