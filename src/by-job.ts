/**
 * A map of an executor's claimed tasks (queued, or running) that also counts them per job,
 * so "does this executor hold a task of job J?" is one lookup, not a walk over the map.
 *
 * @module
 */

/** A `Map` from task id to `V` that keeps how many entries each job has. */
export class ByJob<V> extends Map<string, V> {
  readonly #jobOf: (value: V) => string;
  readonly #counts = new Map<string, number>();

  /** `jobOf` names the job of an entry (it must not change while the entry is held). */
  constructor(jobOf: (value: V) => string) {
    super();
    this.#jobOf = jobOf;
  }

  /** How many entries of `jobId` the map holds. */
  countOf(jobId: string): number {
    return this.#counts.get(jobId) ?? 0;
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

  override clear(): void {
    super.clear();
    this.#counts.clear();
  }

  #add(jobId: string, n: number): void {
    const count = (this.#counts.get(jobId) ?? 0) + n;
    if (count > 0) this.#counts.set(jobId, count);
    else this.#counts.delete(jobId);
  }
}
