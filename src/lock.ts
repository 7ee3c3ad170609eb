/**
 * A FIFO async mutex: adapters run each transaction under it so that two batches of
 * one process never interleave.
 *
 * @module
 */

/** A FIFO async mutex. */
export class Mutex {
  #tail: Promise<unknown> = Promise.resolve();

  /** Run `fn` after every earlier holder finished; its result or error is passed through. */
  run<T>(fn: () => T | Promise<T>): Promise<T> {
    const next = this.#tail.then(fn, fn);
    this.#tail = next.then(noop, noop);
    return next;
  }
}

function noop(): void {}
