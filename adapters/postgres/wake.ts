/**
 * Wake-ups for `Storage.watch()`: local listeners, plus `LISTEN` on a channel of the
 * schema so that executors in other processes and on other machines wake when this one
 * makes tasks ready (its commits `NOTIFY` in the same transaction, so the message is sent
 * only if the commit is). Polling by the executor stays the floor: a notification lost
 * while a connection was down delays work by one poll interval at most.
 *
 * @module
 */

import type { SqlClient } from "./client.ts";

/** Local listeners plus an optional `LISTEN` subscription. */
export class Wakeup {
  /** The channel (`<schema>_ready`). */
  readonly channel: string;
  /** Sent as the payload of this storage's notifications, so it ignores its own echo. */
  readonly origin: string;
  readonly #client: SqlClient;
  readonly #listen: boolean;
  readonly #listeners = new Set<() => void>();
  #subscription: Promise<(() => Promise<void>) | undefined> | undefined;
  #closed = false;

  /** Wake listeners of `channel`; `listen: false` keeps wake-ups in this process. */
  constructor(client: SqlClient, channel: string, origin: string, listen: boolean) {
    this.#client = client;
    this.channel = channel;
    this.origin = origin;
    this.#listen = listen && typeof client.listen === "function";
  }

  /** Whether other processes' commits wake this one. */
  get crossProcess(): boolean {
    return this.#listen;
  }

  #fire(): void {
    for (const l of this.#listeners) queueMicrotask(l);
  }

  #subscribe(): void {
    if (this.#subscription || !this.#listen || this.#closed) return;
    this.#subscription = this.#client.listen!(this.channel, (payload) => {
      if (payload !== this.origin) this.#fire();
    }).then(
      (stop) => {
        if (this.#closed) return void stop().catch(() => {});
        return stop;
      },
      () => {
        // Not listening (the connection is down): polling finds the work; try again on
        // the next watch().
        this.#subscription = undefined;
        return undefined;
      },
    );
  }

  /** Add a listener; returns a function that removes it. */
  add(listener: () => void): () => void {
    if (typeof listener !== "function") throw new TypeError(`watch() expects a function, got ${typeof listener}`);
    const entry = (): void => listener();
    this.#listeners.add(entry);
    this.#subscribe();
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /** Listen again if an earlier attempt failed (the database was down when the first listener came). */
  ensure(): void {
    if (this.#listeners.size > 0) this.#subscribe();
  }

  /** Tell local listeners that tasks may have become claimable (other processes hear the commit's NOTIFY). */
  notify(): void {
    this.#fire();
  }

  /** Stop listening and drop every listener. */
  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
    const stop = await this.#subscription;
    this.#subscription = undefined;
    await stop?.().catch(() => {});
  }
}
