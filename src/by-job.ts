/**
 * A map of an executor's claimed tasks (queued, or running) that also counts them per job,
 * so "does this executor hold a task of job J?" is one lookup, not a walk over the map.
 *
 * @module
 */

/** The number of entries of one job (changed in place: one counter per job, not a map write per change). */
interface Count {
  n: number;
}

/** A `Map` from task id to `V` that keeps how many entries each job has. */
export class ByJob<V> extends Map<string, V> {
  readonly #jobOf: (value: V) => string;
  readonly #counts = new Map<string, Count>();
  /** The job counted last and its counter: entries come and go mostly for one job at a time. */
  #lastJob: string | null = null;
  #last: Count | null = null;

  /** `jobOf` names the job of an entry (it must not change while the entry is held). */
  constructor(jobOf: (value: V) => string) {
    super();
    this.#jobOf = jobOf;
  }

  /** How many entries of `jobId` the map holds. */
  countOf(jobId: string): number {
    return this.#counts.get(jobId)?.n ?? 0;
  }

  /** The jobs the map holds entries of. */
  jobs(): IterableIterator<string> {
    return this.#counts.keys();
  }

  override set(id: string, value: V): this {
    // `Map`'s constructor calls no `set` here (no initial entries), so the fields exist.
    const prev = super.get(id);
    if (prev !== undefined) this.#add(this.#jobOf(prev), -1);
    super.set(id, value);
    this.#add(this.#jobOf(value), 1);
    return this;
  }

  override delete(id: string): boolean {
    const prev = super.get(id);
    if (prev === undefined) return false;
    this.#add(this.#jobOf(prev), -1);
    return super.delete(id);
  }

  /** Delete the entry of `id` when it is `value` (one lookup); whether it was. */
  deleteIf(id: string, value: V): boolean {
    if (super.get(id) !== value || value === undefined) return false;
    this.#add(this.#jobOf(value), -1);
    return super.delete(id);
  }

  override clear(): void {
    super.clear();
    this.#counts.clear();
    this.#lastJob = null;
    this.#last = null;
  }

  #add(jobId: string, n: number): void {
    let count = jobId === this.#lastJob ? this.#last : this.#counts.get(jobId);
    if (count == null) this.#counts.set(jobId, count = { n: 0 });
    this.#lastJob = jobId;
    this.#last = count;
    count.n += n;
    if (count.n <= 0) {
      this.#counts.delete(jobId);
      this.#lastJob = null;
      this.#last = null;
    }
  }
}
