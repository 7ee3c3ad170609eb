/**
 * A binary min-heap: O(log n) push and pop, O(1) peek.
 *
 * @module
 */

/** A binary min-heap ordered by `less`. */
export class Heap<T> {
  #items: T[] = [];
  readonly #less: (a: T, b: T) => boolean;

  /** Create an empty heap ordered by `less(a, b)` (true when `a` comes first). */
  constructor(less: (a: T, b: T) => boolean) {
    this.#less = less;
  }

  /** Number of items. */
  get size(): number {
    return this.#items.length;
  }

  /** The first item, or `undefined`. */
  peek(): T | undefined {
    return this.#items[0];
  }

  /** Add an item. */
  push(item: T): void {
    const a = this.#items;
    const less = this.#less;
    let i = a.length;
    a.push(item);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = a[p]!;
      if (!less(item, parent)) break;
      a[i] = parent;
      i = p;
    }
    a[i] = item;
  }

  /** Remove and return the first item, or `undefined`. */
  pop(): T | undefined {
    const a = this.#items;
    if (a.length === 0) return undefined;
    const top = a[0];
    const last = a.pop()!;
    const n = a.length;
    if (n > 0) {
      const less = this.#less;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const m = r < n && less(a[r]!, a[l]!) ? r : l;
        if (!less(a[m]!, last)) break;
        a[i] = a[m]!;
        i = m;
      }
      a[i] = last;
    }
    return top;
  }

  /** Keep only the items `keep` accepts (called once per item, in no particular order). O(n log n). */
  retain(keep: (item: T) => boolean): void {
    const kept = this.#items.filter(keep);
    this.#items = [];
    for (const item of kept) this.push(item);
  }

  /** Remove every item. */
  clear(): void {
    this.#items = [];
  }
}
