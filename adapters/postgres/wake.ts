/**
 * Wake-ups for `Storage.watch()`: local listeners, plus `LISTEN` on a channel of the
 * schema so that executors in other processes and on other machines wake when this one
 * makes tasks ready (its commits `NOTIFY` in the same transaction, so the message is sent
 * only if the commit is). Polling by the executor stays the floor: a notification lost
 * while a connection was down delays work by one poll interval at most.
 *
 * @module
 */

import type { StorageChange } from "../../src/storage.ts";
import type { SqlClient } from "./client.ts";

/** Bytes a `NOTIFY` payload may hold (8000), with room to spare. */
const MAX_PAYLOAD = 7000;

/** The change a notification's job list tells (`undefined`: anything may have changed). */
function changeIn(text: string): StorageChange | undefined {
  try {
    const jobs: unknown = JSON.parse(text);
    if (Array.isArray(jobs) && jobs.every((id) => typeof id === "string")) return { jobs };
  } catch {
    // Not ours to read: treat as "anything may have changed".
  }
  return undefined;
}

/** Local listeners plus an optional `LISTEN` subscription. */
export class Wakeup {
  /** The channel (`<schema>_ready`). */
  readonly channel: string;
  /** Sent as the payload of this storage's notifications, so it ignores its own echo. */
  readonly origin: string;
  readonly #client: SqlClient;
  readonly #listen: boolean;
  readonly #listeners = new Set<(change?: StorageChange) => void>();
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

  #fire(change?: StorageChange): void {
    for (const l of this.#listeners) queueMicrotask(() => l(change));
  }

  /**
   * The payload of a commit's `NOTIFY`: this storage's origin (so it ignores its own echo),
   * then the ids of the jobs whose status changed, when they fit in a notification.
   */
  payload(change: StorageChange): string {
    const jobs = JSON.stringify(change.jobs);
    return jobs.length + this.origin.length < MAX_PAYLOAD ? `${this.origin}\n${jobs}` : this.origin;
  }

  #subscribe(): void {
    if (this.#subscription || !this.#listen || this.#closed) return;
    this.#subscription = this.#client.listen!(this.channel, (payload) => {
      // `origin` alone (or an older version's payload): anything may have changed.
      const cut = payload.indexOf("\n");
      if ((cut < 0 ? payload : payload.slice(0, cut)) === this.origin) return;
      this.#fire(cut < 0 ? undefined : changeIn(payload.slice(cut + 1)));
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
  add(listener: (change?: StorageChange) => void): () => void {
    if (typeof listener !== "function") throw new TypeError(`watch() expects a function, got ${typeof listener}`);
    const entry = (change?: StorageChange): void => listener(change);
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
  notify(change?: StorageChange): void {
    this.#fire(change);
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
