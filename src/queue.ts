/**
 * The ready queue: a bounded FIFO between claiming tasks and running them.
 *
 * @module
 */

/** A bounded FIFO. The executor never claims more than `capacity - size` tasks. */
export interface Queue<T> {
  /** Most items the queue holds. */
  readonly capacity: number;
  /** Items held now. */
  readonly size: number;
  /** Whether `close()` was called. */
  readonly closed: boolean;
  /** Add an item if there is room; `false` when full or closed. O(1). */
  tryPush(item: T): boolean;
  /** Add an item, waiting for room (backpressure). Rejects with `QueueClosedError`-like `Error` when closed. */
  push(item: T): Promise<void>;
  /** Take the oldest item, or `undefined` when empty. O(1). */
  tryPop(): T | undefined;
  /** Take the oldest item, waiting for one; resolves `undefined` once closed and empty. */
  pop(): Promise<T | undefined>;
  /** Take every item out (used at shutdown to release claimed, unstarted tasks). */
  drain(): T[];
  /** Close: pending `pop`s resolve `undefined` once empty, pending `push`es reject. */
  close(): void;
}

/** Builds the executor's ready queue (like p-queue's `queueClass`). */
export type QueueFactory<T> = (capacity: number) => Queue<T>;

/**
 * A first-in first-out list of waiters: O(1) amortized per operation. `Array#shift` is
 * O(length) once an array is large, so thousands of waiting pops or pushes made each
 * wake-up cost as much as all of them.
 */
class Waiters<W> {
  #items: (W | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(w: W): void {
    this.#items.push(w);
  }

  shift(): W | undefined {
    if (this.#head === this.#items.length) return undefined;
    const w = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      // Drop the taken front once it is most of the array: each item is copied O(1) times.
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return w;
  }

  /** Take every waiter out, oldest first. */
  takeAll(): W[] {
    const all = this.#items.slice(this.#head) as W[];
    this.#items = [];
    this.#head = 0;
    return all;
  }
}

/** Largest queue capacity: the length of the ring buffer's array (at most 2^32 - 1 slots). */
export const MAX_QUEUE_CAPACITY: number = 2 ** 32 - 1;

/**
 * A bounded ring buffer: O(1) per operation, no array shifting.
 *
 * @example
 * ```ts
 * import { RingQueue } from "@dagger/task-core";
 * const q = new RingQueue<number>(2);
 * q.tryPush(1);
 * q.tryPush(2);
 * console.assert(q.tryPush(3) === false);
 * console.assert(q.tryPop() === 1);
 * ```
 */
export class RingQueue<T> implements Queue<T> {
  readonly #items: (T | undefined)[];
  #head = 0;
  #size = 0;
  #closed = false;
  readonly #poppers = new Waiters<(item: T | undefined) => void>();
  readonly #pushers = new Waiters<{ item: T; resolve: () => void; reject: (e: Error) => void }>();

  /** Create a queue holding at most `capacity` items. */
  constructor(capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 1 || capacity > MAX_QUEUE_CAPACITY) {
      throw new RangeError(
        `Queue "capacity" must be a positive integer of at most ${MAX_QUEUE_CAPACITY}, got ${capacity}`,
      );
    }
    this.#items = new Array(capacity);
  }

  /** {@inheritDoc Queue.capacity} */
  get capacity(): number {
    return this.#items.length;
  }

  /** {@inheritDoc Queue.size} */
  get size(): number {
    return this.#size;
  }

  /** {@inheritDoc Queue.closed} */
  get closed(): boolean {
    return this.#closed;
  }

  /** {@inheritDoc Queue.tryPush} */
  tryPush(item: T): boolean {
    if (this.#closed) return false;
    const popper = this.#poppers.shift();
    if (popper) {
      popper(item);
      return true;
    }
    if (this.#size === this.#items.length) return false;
    this.#items[(this.#head + this.#size) % this.#items.length] = item;
    this.#size++;
    return true;
  }

  /** {@inheritDoc Queue.push} */
  push(item: T): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("Queue is closed"));
    if (this.tryPush(item)) return Promise.resolve();
    return new Promise((resolve, reject) => this.#pushers.push({ item, resolve, reject }));
  }

  /** {@inheritDoc Queue.tryPop} */
  tryPop(): T | undefined {
    if (this.#size === 0) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#items.length;
    this.#size--;
    const pusher = this.#pushers.shift();
    if (pusher) {
      this.#items[(this.#head + this.#size) % this.#items.length] = pusher.item;
      this.#size++;
      pusher.resolve();
    }
    return item;
  }

  /** {@inheritDoc Queue.pop} */
  pop(): Promise<T | undefined> {
    if (this.#size > 0) return Promise.resolve(this.tryPop());
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#poppers.push(resolve));
  }

  /** {@inheritDoc Queue.drain} */
  drain(): T[] {
    const out: T[] = [];
    for (let item = this.tryPop(); item !== undefined; item = this.tryPop()) out.push(item);
    return out;
  }

  /** {@inheritDoc Queue.close} */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const p of this.#poppers.takeAll()) p(undefined);
    for (const p of this.#pushers.takeAll()) p.reject(new Error("Queue is closed"));
  }
}
