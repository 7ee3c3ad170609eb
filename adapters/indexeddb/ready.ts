/**
 * The claim queue of the IndexedDB adapter: the ids of ready tasks, per agent in claim
 * order (priority, then runAt, then id), packed into leaves of up to {@link LEAF_SIZE} ids.
 *
 * A leaf holds ids of one `[agent, priority, runAt]` group, ascending, and is keyed by
 * `[agent, priority, runAt, last id]`; the leaves of a group never overlap in ids, so
 * reading an agent's leaves in key order yields its tasks in exact claim order. Why leaves
 * and not one record per task: a claim of n tasks reads n / 16 leaves and removes them with
 * one ranged `delete`, and a job of n ready tasks adds n / 16 records, where one record per
 * task costs one request per task at creation. Why per agent: a claim limited to some
 * agents (`claimReady({ agents })`) reads only theirs; a claim of any agent merges the
 * agents' queues.
 *
 * Every change of a task's readiness in a transaction goes through {@link ReadyQueue.add}
 * and {@link ReadyQueue.remove}; {@link ReadyQueue.flush} merges them into the leaves they
 * touch (`leaves.ts`: two reads and a few writes per `[agent, priority, runAt]` group).
 *
 * @module
 */

import { claimOrder } from "../../src/commit-rules.ts";
import { IdLeaves, type LeafStore, type LeafTx } from "./leaves.ts";
import { LEAF_SIZE, type ReadyLeaf } from "./schema.ts";
import { quiet, readCount, UPPER } from "./util.ts";

/** The due ids read from one priority of one agent, with the leaves they came from. */
interface Run {
  /** The leaves read, in key order. */
  leaves: ReadyLeaf[];
  /** How many of their ids (in order) the claim takes. */
  taken: number;
}

/** One agent's due ids, in claim order, up to the claim's limit. */
interface Stream {
  runs: Run[];
  /** `[priority, runAt, id]` of each id read, in order. */
  ids: { priority: number; runAt: number; id: string; run: Run }[];
}

/** The ready queue seen through one readwrite transaction. */
export class ReadyQueue {
  readonly #leaves: IdLeaves;

  /** Wrap a transaction whose scope includes `ready`. */
  constructor(tx: LeafTx) {
    this.#leaves = new IdLeaves(tx, "ready");
  }

  /** Queue a task that became ready (written by {@link flush}). */
  add(agent: string, priority: number, runAt: number, id: string): void {
    // A priority or runAt that is not a valid key is refused by the rules before any write.
    if (Number.isFinite(priority) && Number.isFinite(runAt)) this.#leaves.add([agent, priority, runAt], id);
  }

  /** Take out a ready task that stops being ready, unclaimed (written by {@link flush}). */
  remove(agent: string, priority: number, runAt: number, id: string): void {
    if (Number.isFinite(priority) && Number.isFinite(runAt)) this.#leaves.remove([agent, priority, runAt], id);
  }

  /** Write the queued changes: per `[agent, priority, runAt]` group, read the leaves they touch and rewrite them. */
  flush(): Promise<void> {
    return this.#leaves.flush();
  }

  /**
   * Take up to `limit` ids from the head of the queue, of tasks with `runAt <= now`, in
   * claim order, and remove them: of the given `agents` only, or (`null`) of every agent
   * that has ready tasks (found by a skip-scan over the agents). Each agent's due ids are
   * read up to the limit, per priority (lowest first, found by a skip-scan) one read of
   * the due leaves (a second, sized by the fill of the first, when leaves are partly
   * filled); the agents' ids are merged in claim order, and the leaves used up are removed
   * with one ranged `delete` per priority, a leaf used in part written back with the rest
   * under the same key (its last id). Tasks of a later runAt are never read.
   */
  async take(limit: number, now: number, agents: readonly string[] | null): Promise<string[]> {
    const store = this.#leaves.store;
    const streams: Stream[] = [];
    if (agents !== null) {
      for (const agent of agents) streams.push(await this.#stream(store, agent, limit, now));
    } else {
      for (let from: IDBKeyRange | null = null;;) {
        const head = await store.openKeyCursor(from);
        if (!head) break;
        const agent = (head.key as ReadyLeaf["k"])[0];
        streams.push(await this.#stream(store, agent, limit, now));
        from = IDBKeyRange.lowerBound([agent, UPPER], true);
      }
    }
    const out: string[] = [];
    if (streams.length === 1) {
      for (const entry of streams[0]!.ids) {
        entry.run.taken++;
        out.push(entry.id);
      }
    } else {
      const all = streams.flatMap((s) => s.ids);
      all.sort(claimOrder);
      for (const entry of all) {
        if (out.length >= limit) break;
        entry.run.taken++;
        out.push(entry.id);
      }
    }
    for (const stream of streams) for (const run of stream.runs) remove(store, run);
    return out;
  }

  /** Up to `limit` due ids of `agent` in claim order (read, not removed). */
  async #stream(store: LeafStore, agent: string, limit: number, now: number): Promise<Stream> {
    const stream: Stream = { runs: [], ids: [] };
    let from = IDBKeyRange.bound([agent], [agent, UPPER]);
    while (stream.ids.length < limit) {
      const head = await store.openKeyCursor(from);
      if (!head) break;
      const priority = (head.key as ReadyLeaf["k"])[1];
      const upper = [agent, priority, now, UPPER];
      let range = IDBKeyRange.bound([agent, priority, -Infinity], upper);
      const run: Run = { leaves: [], taken: 0 };
      stream.runs.push(run);
      let perLeaf = LEAF_SIZE;
      for (;;) {
        // One leaf more than needed at the fill seen so far (full leaves to begin with): a
        // short answer tells the range ended. Leaves filled in part (ids readied one
        // commit at a time) make the next read larger, not the reads more.
        const count = readCount(Math.ceil((limit - stream.ids.length) / perLeaf) + 1);
        const leaves = (await store.getAll(range, count)) as ReadyLeaf[];
        let seen = 0;
        for (const leaf of leaves) seen += leaf.ids.length;
        if (leaves.length > 0) perLeaf = Math.max(1, Math.floor(seen / leaves.length));
        let last: ReadyLeaf["k"] | undefined;
        for (const leaf of leaves) {
          if (stream.ids.length >= limit) break;
          last = leaf.k;
          run.leaves.push(leaf);
          for (const id of leaf.ids) {
            if (stream.ids.length >= limit) break;
            stream.ids.push({ priority, runAt: leaf.k[2], id, run });
          }
        }
        if (stream.ids.length >= limit || count === undefined || leaves.length < count || !last) break;
        range = IDBKeyRange.bound(last, upper, true);
      }
      from = IDBKeyRange.bound([agent, priority, Infinity], [agent, UPPER], true);
    }
    return stream;
  }
}

/**
 * Remove the ids a claim took from one run of leaves (a prefix of its ids): the leaves
 * used up with one ranged `delete`, a leaf used in part written back with the rest.
 */
function remove(store: LeafStore, run: Run): void {
  let left = run.taken;
  let first: ReadyLeaf["k"] | undefined;
  let lastUsed: ReadyLeaf["k"] | undefined;
  for (const leaf of run.leaves) {
    if (left === 0) break;
    if (leaf.ids.length > left) {
      quiet(store.put({ k: leaf.k, ids: leaf.ids.slice(left) } as never));
      left = 0;
      break;
    }
    first ??= leaf.k;
    lastUsed = leaf.k;
    left -= leaf.ids.length;
  }
  if (first && lastUsed) quiet(store.delete(IDBKeyRange.bound(first, lastUsed)));
}
