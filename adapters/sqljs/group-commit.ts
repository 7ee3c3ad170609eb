/**
 * Group commit: transactions append their changes to a queue; one flush at a time writes
 * every queued transaction with a single `append` (so changes made while a flush is in
 * progress go into the next one), and callers wait until the flush holding their changes
 * is durable. An append is as many frames as its changes need (each at most
 * `maxFrameBytes`), read back whole or not at all: a crash that tears an append, anywhere
 * in it, leaves a torn tail (see `journal.ts`).
 *
 * Now and then a flush compacts instead: it exports the whole database as a snapshot of a
 * new generation and starts an empty journal. The snapshot holds every queued
 * transaction, so those are never appended. Compaction happens when the journal reaches
 * both `minJournalBytes` and `journalRatio` times the snapshot, which keeps the cost of a flush
 * proportional to what changed (export cost, amortised over at least a snapshot's worth
 * of journal, is constant per journaled byte). A persister whose cost grows with the number
 * of appends (OPFS: a file each) sets `maxAppends`, and a snapshot is written once that many
 * were made since the last one.
 *
 * A failed save (an append or a snapshot) fails every call waiting for it, and new frames
 * are not written: the failed append may have left a torn tail, which later frames must
 * not follow. The database in memory still holds every change, so the storage recovers
 * at its next call by writing it whole as a snapshot of a new generation (`recover()`);
 * the changes of the calls that failed are saved with it (their outcome was unknown to
 * their callers, as with any transient storage error). While that keeps failing (a full
 * disk), attempts are spaced out: after the first failed one, calls within a backoff of
 * 200 ms doubling up to 5 s fail at once with the failure, without exporting the database.
 * Each attempt writes the whole database, the write least likely to fit on a full disk;
 * in Chromium, writes that keep taking a disk's last bytes end with the browser closing
 * the database or deleting the origin's IndexedDB.
 *
 * @module
 */

import { isTransientStorageError, StorageError, StorageQuotaError } from "../../src/errors.ts";
import { encodeAppend, encodeRecords, HEADER_BYTES, journalHeader, MAX_FRAME_BYTES } from "./journal.ts";
import type { SqlJsPersister } from "./persister.ts";

/** The first pause between two attempts of `recover()` that fail, doubling up to {@link RECOVERY_MAX_DELAY_MS}. */
const RECOVERY_DELAY_MS = 200;
const RECOVERY_MAX_DELAY_MS = 5000;

/** When the journal is folded into a new snapshot. */
export interface CompactionOptions {
  /** Never compact a journal smaller than this (bytes, default 8 MiB). */
  minJournalBytes?: number;
  /** Compact once the journal is this many times the snapshot's size (default 1). */
  journalRatio?: number;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** The state a group commit starts from. */
export interface GroupCommitStart {
  persister: SqlJsPersister;
  /** Generation of the stored snapshot. */
  generation: number;
  journalBytes: number;
  snapshotBytes: number;
  /** Appends in the stored journal (at most; counted by its frames). */
  appends?: number;
  compaction: CompactionOptions | undefined;
  /** The most payload bytes of one journal frame (default `MAX_FRAME_BYTES`). */
  maxFrameBytes?: number | undefined;
  /**
   * Export the database as a snapshot of `generation`, under the storage's lock (no
   * transaction open, nothing queued meanwhile). `onExported` runs under the same lock.
   */
  exportSnapshot(generation: number, onExported: () => void): Promise<Uint8Array>;
}

/** The journal writer of one storage. */
export class GroupCommit {
  /** Sequence number of the last queued transaction (or compaction). */
  seq = 0;
  #durable = 0;
  #generation: number;
  #pending: Uint8Array[] = [];
  #pendingBytes = 0;
  #journalBytes: number;
  #snapshotBytes: number;
  /** Appends since the last snapshot (see `SqlJsPersister.maxAppends`). */
  #appends: number;
  readonly #maxAppends: number;
  #flushing = false;
  #compactRequested = false;
  #waiters: Waiter[] = [];
  #failure: StorageError | null = null;
  /** Failed `recover()` attempts in a row, and the time before which the next one is not made. */
  #recoveries = 0;
  #retryAt = -Infinity;
  #triedAt = -Infinity;
  readonly #start: GroupCommitStart;
  readonly #minBytes: number;
  readonly #ratio: number;
  readonly #maxFrameBytes: number;
  /** Counters, for tests and benchmarks. */
  readonly stats: { appends: number; appendedBytes: number; compactions: number } = {
    appends: 0,
    appendedBytes: 0,
    compactions: 0,
  };

  constructor(start: GroupCommitStart) {
    this.#start = start;
    this.#generation = start.generation;
    this.#journalBytes = start.journalBytes;
    this.#snapshotBytes = start.snapshotBytes;
    this.#appends = start.appends ?? 0;
    const max = start.persister.maxAppends;
    this.#maxAppends = typeof max === "number" && max >= 1 ? max : Infinity;
    this.#minBytes = start.compaction?.minJournalBytes ?? 8 * 1024 * 1024;
    this.#ratio = start.compaction?.journalRatio ?? 1;
    this.#maxFrameBytes = start.maxFrameBytes ?? MAX_FRAME_BYTES;
  }

  /** The error of the last failed save, until `recover()` succeeds. */
  get failure(): StorageError | null {
    return this.#failure;
  }

  /**
   * One transaction's records, encoded for {@link enqueue}. Call before the transaction's
   * `COMMIT`: encoding may fail (out of memory), and a change applied in memory but not
   * queued would be missing from the journal while later ones follow it.
   */
  encode(records: readonly string[]): Uint8Array[] {
    return encodeRecords(records, this.#maxFrameBytes);
  }

  /** Queue one transaction's encoded records; returns its sequence number. Call under the storage's lock. */
  enqueue(parts: readonly Uint8Array[]): number {
    for (const part of parts) {
      this.#pending.push(part);
      this.#pendingBytes += part.length + 1;
    }
    this.seq++;
    this.#kick();
    return this.seq;
  }

  /** Resolves once everything queued up to `seq` is durable; rejects when persisting failed. */
  whenDurable(seq: number): Promise<void> {
    // What was saved before a later save failed is durable: its caller is answered.
    if (seq <= this.#durable) return Promise.resolve();
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => this.#waiters.push({ seq, resolve, reject }));
  }

  /** Write a snapshot now (and everything queued with it). */
  compact(): Promise<void> {
    this.#compactRequested = true;
    this.seq++; // a compaction is a durable event callers can wait for
    const seq = this.seq;
    this.#kick();
    return this.whenDurable(seq);
  }

  #kick(): void {
    if (this.#flushing || this.#failure) return;
    this.#flushing = true;
    void this.#loop();
  }

  async #loop(): Promise<void> {
    try {
      while (this.#pending.length > 0 || this.#compactRequested) {
        const limit = Math.max(this.#minBytes, this.#ratio * this.#snapshotBytes);
        if (
          this.#compactRequested || this.#journalBytes + this.#pendingBytes >= limit ||
          this.#appends >= this.#maxAppends
        ) {
          await this.#compact();
          continue;
        }
        const parts = this.#pending;
        const seq = this.seq;
        this.#pending = [];
        this.#pendingBytes = 0;
        const bytes = encodeAppend(this.#generation, parts, this.#maxFrameBytes);
        await this.#start.persister.append(bytes);
        this.#journalBytes += bytes.length;
        this.#appends++;
        this.stats.appends++;
        this.stats.appendedBytes += bytes.length;
        this.#advance(seq);
      }
      this.#flushing = false;
    } catch (e) {
      this.#flushing = false;
      this.#fail(e);
    }
  }

  async #compact(): Promise<void> {
    const generation = this.#generation + 1;
    let seq = 0;
    const snapshot = await this.#start.exportSnapshot(generation, () => {
      // Under the lock: everything queued is in this snapshot; later changes go to the new journal.
      seq = this.seq;
      this.#compactRequested = false;
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#generation = generation;
    });
    await this.#start.persister.replace(snapshot, journalHeader(generation));
    this.#snapshotWritten(snapshot.length);
    this.#advance(seq);
  }

  /** A snapshot of `bytes` replaced the journal: the counts start again from it. */
  #snapshotWritten(bytes: number): void {
    this.#snapshotBytes = bytes;
    this.#journalBytes = HEADER_BYTES;
    this.#appends = 0;
    this.stats.compactions++;
  }

  #advance(seq: number): void {
    this.#durable = seq;
    const waiting = this.#waiters;
    this.#waiters = [];
    for (const w of waiting) {
      if (w.seq <= seq) w.resolve();
      else this.#waiters.push(w);
    }
  }

  #fail(cause: unknown): void {
    this.#failure = failure(cause);
    for (const w of this.#waiters) w.reject(this.#failure);
    this.#waiters = [];
  }

  /**
   * After a failed save, write the whole database as a snapshot of a new generation with an
   * empty journal; once that is durable, everything in memory is, and work goes on. Throws
   * the failure while saving still fails (then the next call tries again), or at once when
   * it will not pass by trying again (such as a database deleted under the persister).
   * After a failed attempt, a call before the backoff ends (`now`, on the storage's clock)
   * throws the failure without trying. Call under the storage's lock; `exportNow` exports
   * the database (the lock is held).
   */
  async recover(exportNow: (generation: number) => Uint8Array, now: number): Promise<void> {
    if (!this.#failure) return;
    if (!isTransientStorageError(this.#failure)) throw this.#failure;
    // Within the backoff (a clock set back since the last attempt does not hold it up).
    if (now < this.#retryAt && now >= this.#triedAt) throw this.#failure;
    this.#triedAt = now;
    const generation = this.#generation + 1;
    const seq = this.seq;
    let snapshot: Uint8Array;
    try {
      // The export is part of the save: when it fails (the WASM heap cannot hold the
      // image), the call fails as when writing fails, and the next call tries again.
      snapshot = exportNow(generation);
      await this.#start.persister.replace(snapshot, journalHeader(generation));
    } catch (e) {
      this.#recoveries++;
      this.#retryAt = now + Math.min(RECOVERY_MAX_DELAY_MS, RECOVERY_DELAY_MS * 2 ** (this.#recoveries - 1));
      throw this.#failure = failure(e);
    }
    this.#recoveries = 0;
    this.#retryAt = -Infinity;
    this.#generation = generation;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#compactRequested = false;
    this.#snapshotWritten(snapshot.length);
    this.#durable = seq;
    this.#failure = null;
  }

  /** Resolves when everything queued so far is durable (or persisting failed). */
  async settle(): Promise<void> {
    try {
      await this.whenDurable(this.seq);
    } catch {
      // the failure is reported to the callers that waited
    }
  }
}

/**
 * The error of a failed save, for the calls that waited for it and the calls made until
 * the storage recovers: the persister's own error when it will not pass (a database
 * deleted or corrupt), else a `StorageError` (a `StorageQuotaError` when the disk or quota
 * is full) saying what happens next.
 */
function failure(cause: unknown): StorageError {
  if (cause instanceof StorageError && !isTransientStorageError(cause)) return cause;
  const message = "Saving the database failed; its changes stay in memory, and the next call saves it whole " +
    `before going on: ${(cause as Error)?.message ?? String(cause)}`;
  return cause instanceof StorageQuotaError
    ? new StorageQuotaError(message, { cause })
    : new StorageError(message, { cause });
}
