/**
 * Wake-ups for `Storage.watch()`: local listeners, plus `LISTEN` on a channel of the
 * schema so that executors in other processes and on other machines wake when this one
 * makes tasks ready (its commits `NOTIFY` in the same transaction, so the message is sent
 * only if the commit is). Polling by the executor stays the floor: a notification lost
 * while a connection was down delays work by one poll interval at most.
 *
 * @module
 */

import { type StorageChange, tellWatchers, watchClosed } from "../../src/storage.ts";
import type { SqlClient } from "./client.ts";

/** Bytes a `NOTIFY` payload may hold (8000, in the server's encoding), with room to spare. */
const MAX_PAYLOAD = 7000;

/**
 * Bytes of `text` in UTF-8 (the most a server encoding takes per character of the ids it
 * stores), counted without encoding it: a non-ASCII id takes 2-4 bytes per character.
 */
function utf8Bytes(text: string): number {
  let n = text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) continue;
    // Two bytes up to U+07FF, three up to U+FFFF; a surrogate pair (two code units) is four.
    n += c < 0x800 ? 1 : c >= 0xd800 && c < 0xe000 ? 1 : 2;
  }
  return n;
}

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
  /** A `LISTEN` was refused while listeners waited: notices may have been missed until one succeeds. */
  #missed = false;
  /** `LISTEN` attempts made: the callbacks of the latest one are the live ones. */
  #attempts = 0;
  /** The latest `LISTEN` took effect: a notice sent from now on reaches the listeners. */
  #listening = false;

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
    tellWatchers(this.#listeners, change);
  }

  /**
   * The payload of a commit's `NOTIFY`: this storage's origin (so it ignores its own echo),
   * then the ids of the jobs whose status changed, when they fit in a notification.
   */
  payload(change: StorageChange): string {
    const jobs = JSON.stringify(change.jobs);
    return utf8Bytes(jobs) + utf8Bytes(this.origin) < MAX_PAYLOAD ? `${this.origin}\n${jobs}` : this.origin;
  }

  #subscribe(): void {
    if (this.#subscription || !this.#listen || this.#closed) return;
    let listened = false;
    // A driver may keep the callbacks of a refused `LISTEN` and call them all once one
    // succeeds (postgres.js does): only the latest attempt's callbacks tell the listeners,
    // or each refused attempt of an outage would wake them once more per notice.
    const attempt = ++this.#attempts;
    this.#subscription = this.#client.listen!(this.channel, (payload) => {
      if (attempt !== this.#attempts) return;
      // `origin` alone (or an older version's payload): anything may have changed.
      const cut = payload.indexOf("\n");
      if ((cut < 0 ? payload : payload.slice(0, cut)) === this.origin) return;
      this.#fire(cut < 0 ? undefined : changeIn(payload.slice(cut + 1)));
    }, () => {
      // Listening again after a lost connection: notices sent meanwhile were missed, so
      // anything may have changed (a job paused or cancelled elsewhere, tasks made ready).
      if (attempt !== this.#attempts) return;
      if (listened && !this.#closed) this.#fire();
      listened = true;
    }).then(
      (stop) => {
        if (this.#closed) return void stop().catch(() => {});
        this.#listening = true;
        if (this.#missed) {
          // Listening at last, after a refused attempt: what was sent before is unknown.
          this.#missed = false;
          this.#fire();
        }
        return stop;
      },
      () => {
        // Not listening (the connection is down): polling finds the work; try again on
        // the next watch() or call (`ensure()`), and then tell the listeners that notices
        // may have been missed meanwhile.
        this.#subscription = undefined;
        this.#missed = true;
        return undefined;
      },
    );
  }

  /** Add a listener; returns a function that removes it. */
  add(listener: (change?: StorageChange) => void): () => void {
    if (typeof listener !== "function") throw new TypeError(`watch() expects a function, got ${typeof listener}`);
    if (this.#closed) return watchClosed(listener);
    const entry = (change?: StorageChange): void => listener(change);
    this.#listeners.add(entry);
    this.#subscribe();
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /**
   * While a `LISTEN` is under way (not yet in effect), a promise that resolves once it took
   * effect or failed; `undefined` otherwise. Never rejects.
   */
  settled(): Promise<void> | undefined {
    return this.#subscription && !this.#listening ? this.#subscription.then(() => {}) : undefined;
  }

  /** Listen again if an earlier attempt failed (the database was down when the first listener came). */
  ensure(): void {
    if (this.#listeners.size > 0) this.#subscribe();
  }

  /** Tell local listeners that tasks may have become claimable (other processes hear the commit's NOTIFY). */
  notify(change?: StorageChange): void {
    this.#fire(change);
  }

  /** Tell the listeners once more, then drop them, and stop listening. Never rejects. */
  async close(): Promise<void> {
    if (!this.#closed) tellWatchers(this.#listeners, undefined, true);
    this.#closed = true;
    try {
      const stop = await this.#subscription;
      this.#subscription = undefined;
      await stop?.();
    } catch {
      // An UNLISTEN that fails (or a client's stop that throws) leaves nothing to undo.
    }
  }
}
