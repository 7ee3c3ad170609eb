/**
 * The claim queue of the IndexedDB adapter: the ids of ready tasks, in claim order
 * (priority, then runAt, then id), packed into leaves of up to {@link LEAF_SIZE} ids.
 *
 * A leaf holds ids of one `[priority, runAt]` group, ascending, and is keyed by
 * `[priority, runAt, last id]`; the leaves of a group never overlap in ids, so reading
 * leaves in key order yields the tasks in exact claim order. Why leaves and not one
 * record per task: a claim of n tasks reads n / 16 leaves and removes them with one
 * ranged `delete`, and a job of n ready tasks adds n / 16 records, where one record per
 * task costs one request per task at creation.
 *
 * Every change of a task's readiness in a transaction goes through {@link ReadyQueue.add}
 * and {@link ReadyQueue.remove}; {@link ReadyQueue.flush} merges them into the leaves they
 * touch (`leaves.ts`: two reads and a few writes per `[priority, runAt]` group).
 *
 * @module
 */

import { IdLeaves, type LeafTx } from "./leaves.ts";
import { LEAF_SIZE, type ReadyLeaf } from "./schema.ts";
import { quiet, readCount, UPPER } from "./util.ts";

/** The ready queue seen through one readwrite transaction. */
export class ReadyQueue {
  readonly #leaves: IdLeaves;

  /** Wrap a transaction whose scope includes `ready`. */
  constructor(tx: LeafTx) {
    this.#leaves = new IdLeaves(tx, "ready");
  }

  /** Queue a task that became ready (written by {@link flush}). */
  add(priority: number, runAt: number, id: string): void {
    // A priority or runAt that is not a valid key is refused by the rules before any write.
    if (Number.isFinite(priority) && Number.isFinite(runAt)) this.#leaves.add([priority, runAt], id);
  }

  /** Take out a ready task that stops being ready, unclaimed (written by {@link flush}). */
  remove(priority: number, runAt: number, id: string): void {
    if (Number.isFinite(priority) && Number.isFinite(runAt)) this.#leaves.remove([priority, runAt], id);
  }

  /** Write the queued changes: per `[priority, runAt]` group, read the leaves they touch and rewrite them. */
  flush(): Promise<void> {
    return this.#leaves.flush();
  }

  /**
   * Take up to `limit` ids from the head of the queue, of tasks with `runAt <= now`, in
   * claim order, and remove them. Per priority (lowest first, found by a skip-scan) one
   * read takes the due leaves (a second, sized by the fill of the first, when leaves are
   * partly filled) and one ranged `delete` removes the ones used up; a leaf
   * used in part is written back with the rest, under the same key (its last id).
   * Tasks of a later runAt are never read.
   */
  async take(limit: number, now: number): Promise<string[]> {
    const store = this.#leaves.store;
    const out: string[] = [];
    let from: IDBKeyRange | null = null;
    while (out.length < limit) {
      const head = await store.openKeyCursor(from);
      if (!head) break;
      const priority = (head.key as ReadyLeaf["k"])[0];
      const upper = [priority, now, UPPER];
      let range = IDBKeyRange.bound([priority, -Infinity], upper);
      let first: ReadyLeaf["k"] | undefined;
      let lastUsed: ReadyLeaf["k"] | undefined;
      let last: ReadyLeaf["k"] | undefined;
      let rest: string[] | undefined;
      let perLeaf = LEAF_SIZE;
      for (;;) {
        // One leaf more than needed at the fill seen so far (full leaves to begin with): a
        // short answer tells the range ended. Leaves filled in part (ids readied one
        // commit at a time) make the next read larger, not the reads more.
        const count = readCount(Math.ceil((limit - out.length) / perLeaf) + 1);
        const leaves = (await store.getAll(range, count)) as ReadyLeaf[];
        let seen = 0;
        for (const leaf of leaves) seen += leaf.ids.length;
        if (leaves.length > 0) perLeaf = Math.max(1, Math.floor(seen / leaves.length));
        for (const leaf of leaves) {
          last = leaf.k;
          const room = limit - out.length;
          if (leaf.ids.length > room) {
            out.push(...leaf.ids.slice(0, room));
            rest = leaf.ids.slice(room);
            break;
          }
          first ??= leaf.k;
          lastUsed = leaf.k;
          out.push(...leaf.ids);
          if (out.length === limit) break;
        }
        if (out.length >= limit || count === undefined || leaves.length < count) break;
        range = IDBKeyRange.bound(last!, upper, true);
      }
      if (first && lastUsed) quiet(store.delete(IDBKeyRange.bound(first, lastUsed)));
      if (rest) quiet(store.put({ k: last!, ids: rest } as never));
      from = IDBKeyRange.lowerBound([priority, Infinity], true);
    }
    return out;
  }
}
