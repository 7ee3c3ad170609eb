/**
 * Wake-ups for `Storage.watch()`: local listeners plus, where the runtime has one, a
 * `BroadcastChannel` named after the database, so executors in other tabs and workers
 * of the same origin wake up when tasks become ready here.
 *
 * @module
 */

interface Channel {
  postMessage(message: unknown): void;
  close(): void;
  onmessage: ((event: { data: unknown }) => void) | null;
  unref?: () => void;
}

type ChannelClass = new (name: string) => Channel;

/** The message posted on the channel. */
const READY = "task-core:ready";

/** Local listeners plus an optional cross-context channel. */
export class Wakeup {
  /** The channel name (`task-core:<database name>`). */
  readonly channelName: string;
  readonly #listeners = new Set<() => void>();
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
        if (event.data === READY) this.#fire();
      };
      // Node and Bun: an open channel must not keep the process alive.
      ch.unref?.();
      this.#channel = ch;
    } catch {
      // A runtime that lists BroadcastChannel but refuses it: wake-ups stay local.
    }
    return this.#channel;
  }

  #fire(): void {
    for (const l of this.#listeners) queueMicrotask(l);
  }

  /** Add a listener; returns a function that removes it. */
  add(listener: () => void): () => void {
    if (typeof listener !== "function") {
      throw new TypeError(`watch() expects a function, got ${typeof listener}`);
    }
    const entry = (): void => listener();
    this.#listeners.add(entry);
    this.#ensureChannel();
    return () => {
      this.#listeners.delete(entry);
    };
  }

  /** Tell local listeners and other contexts that tasks may have become claimable. */
  notify(): void {
    this.#fire();
    try {
      this.#ensureChannel()?.postMessage(READY);
    } catch {
      // The channel was closed under us: other contexts poll.
    }
  }

  /** Remove every listener and close the channel; `wake` first calls the listeners once more. */
  close(wake = false): void {
    if (wake && !this.#closed) this.#fire();
    this.#closed = true;
    this.#listeners.clear();
    this.#channel?.close();
    this.#channel = undefined;
  }
}
