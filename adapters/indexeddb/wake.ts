/**
 * Wake-ups for `Storage.watch()`: local listeners plus, where the runtime has one, a
 * `BroadcastChannel` named after the database, so executors in other tabs and workers
 * of the same origin wake up when tasks become ready here.
 *
 * @module
 */

import { type StorageChange, tellWatchers, watchClosed } from "../../src/storage.ts";

interface Channel {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  unref?: () => void;
}

type ChannelClass = new (name: string) => Channel;

/** The message posted on the channel: alone when anything may have changed (as older versions post it). */
const READY = "task-core:ready";

/** A change posted on the channel: the ids of the jobs whose status changed. */
interface ChangeMessage {
  kind: typeof READY;
  jobs: string[];
}

/** The change a message from another context tells (`undefined`: anything may have changed). */
function changeIn(data: unknown): StorageChange | undefined {
  const m = data as Partial<ChangeMessage> | null;
  if (typeof m === "object" && m !== null && m.kind === READY && Array.isArray(m.jobs)) {
    if (m.jobs.every((id) => typeof id === "string")) return { jobs: m.jobs };
  }
  return undefined;
}

/** Listeners wake on any message of ours. */
function isOurs(data: unknown): boolean {
  return data === READY || (typeof data === "object" && data !== null && (data as ChangeMessage).kind === READY);
}

/**
 * Let `channel` not keep the process alive: `unref()` in Node and Bun. Deno has no public
 * one: its channels hold the event loop open until closed (a Deno process with a storage left
 * open never exited), and take a ref switch under the symbol its own `node:worker_threads` uses.
 */
function unref(channel: Channel): void {
  if (typeof channel.unref === "function") {
    channel.unref();
    return;
  }
  if ((globalThis as { Deno?: unknown }).Deno === undefined) return;
  const proto: object | null = Object.getPrototypeOf(channel);
  const key = proto && Object.getOwnPropertySymbols(proto).find((s) => s.description === "refBroadcastChannel");
  const ref = key ? (channel as unknown as Record<symbol, unknown>)[key] : undefined;
  if (typeof ref === "function") ref.call(channel, false);
}

/** Local listeners plus an optional cross-context channel. */
export class Wakeup {
  /** The channel name (`task-core:<database name>`). */
  readonly channelName: string;
  readonly #listeners = new Set<(change?: StorageChange) => void>();
  readonly #Channel: ChannelClass | undefined;
  #channel: Channel | undefined;
  #closed = false;

  /** Wake listeners of `database`; `broadcast: false` keeps wake-ups in this context. */
  constructor(database: string, broadcast: boolean) {
    this.channelName = `task-core:${database}`;
    const C = (globalThis as { BroadcastChannel?: ChannelClass }).BroadcastChannel;
    this.#Channel = broadcast && typeof C === "function" ? C : undefined;
  }

  /** Whether wake-ups reach other tabs and workers. */
  get crossContext(): boolean {
    return this.#Channel !== undefined;
  }

  #ensureChannel(): Channel | undefined {
    if (this.#channel || !this.#Channel || this.#closed) return this.#channel;
    try {
      const ch = new this.#Channel(this.channelName);
      ch.onmessage = (event) => {
        if (isOurs(event.data)) this.#fire(changeIn(event.data));
      };
      // An open channel must not keep the process alive (a storage left open is the caller's to close).
      unref(ch);
      this.#channel = ch;
    } catch {
      // A runtime that lists BroadcastChannel but refuses it: wake-ups stay local.
    }
    return this.#channel;
  }

  #fire(change?: StorageChange): void {
    tellWatchers(this.#listeners, change);
  }

  /** Add a listener; returns a function that removes it. */
  add(listener: (change?: StorageChange) => void): () => void {
    if (typeof listener !== "function") {
      throw new TypeError(`watch() expects a function, got ${typeof listener}`);
    }
    if (this.#closed) return watchClosed(listener);
    const entry = (change?: StorageChange): void => listener(change);
    this.#listeners.add(entry);
    this.#ensureChannel();
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /** Tell local listeners and other contexts that tasks may have become claimable or jobs changed status. */
  notify(change?: StorageChange): void {
    this.#fire(change);
    try {
      const message: ChangeMessage | typeof READY = change ? { kind: READY, jobs: [...change.jobs] } : READY;
      if (this.#closed) {
        // A write that finished after `close()`: it is stored, so other contexts are still
        // told, through a channel opened for this one message.
        if (!this.#Channel) return;
        const once = new this.#Channel(this.channelName);
        once.postMessage(message);
        once.close();
        return;
      }
      this.#ensureChannel()?.postMessage(message);
    } catch {
      // The channel was closed under us: other contexts poll.
    }
  }

  /** Tell the listeners once more, then drop them, and close the channel. */
  close(): void {
    if (!this.#closed) tellWatchers(this.#listeners, undefined, true);
    this.#closed = true;
    this.#channel?.close();
    this.#channel = undefined;
  }
}
