/**
 * Id leaves: sorted sets of task ids kept in records of up to {@link LEAF_SIZE} ids, so a
 * set of n ids costs n / 16 writes to add and one ranged request to read or remove.
 *
 * A leaf belongs to a group (a key prefix) and is keyed by `[...group, last id]`; the
 * leaves of a group never overlap in ids, so reading them in key order yields the group's
 * ids in order, and taking ids from the front of a leaf leaves its key as it was (the
 * rest is written back over it). Two stores hold leaves:
 *
 * - `ready`, grouped by `[priority, runAt]`: the claim queue (`ready.ts`).
 * - `members`, grouped by `[jobId]`: the tasks of each job. A task never changes job, so
 *   this is written when tasks are created, where an index on the task rows would add an
 *   entry to every write of every row.
 *
 * Changes of a transaction are queued with {@link IdLeaves.add} and {@link IdLeaves.remove};
 * {@link IdLeaves.flush} merges them into the leaves they touch: per group, three reads (the
 * leaves ending inside the changed range, the one after them that may span its end, and
 * the one before it, which takes ids appended past the group's end while it has room),
 * then only the leaves whose ids changed are rewritten.
 *
 * @module
 */

import type { IDBPObjectStore, IDBPTransaction, StoreNames } from "idb";
import { LEAF_SIZE, type TaskCoreSchema } from "./schema.ts";
import { quiet, UPPER } from "./util.ts";

/** A group key: `[priority, runAt]` in `ready`, `[jobId]` in `members`. */
export type Group = readonly (string | number)[];

/** The leaf stores. */
export type LeafStoreName = "ready" | "members";

/** A leaf as stored. */
export interface Leaf {
  /** `[...group, last id]`. */
  k: (string | number)[];
  /** The ids, ascending (at least one). */
  ids: string[];
}

/** A transaction whose scope includes the leaf store. */
export type LeafTx = IDBPTransaction<TaskCoreSchema, StoreNames<TaskCoreSchema>[], IDBTransactionMode>;

/** A leaf store, typed loosely: both stores hold `{ k, ids }` records keyed by `k`. */
export type LeafStore = IDBPObjectStore<TaskCoreSchema, StoreNames<TaskCoreSchema>[], LeafStoreName, "readwrite">;

interface Change {
  group: Group;
  /** Id -> whether it ends in the group (the last of its adds and removes wins). */
  ops: Map<string, boolean>;
}

/** One leaf store seen through one transaction. */
export class IdLeaves {
  readonly #tx: LeafTx;
  readonly #name: LeafStoreName;
  /** Pending changes by group (JSON of the group key). */
  readonly #changes = new Map<string, Change>();

  /** Wrap a transaction whose scope includes the store `name`. */
  constructor(tx: LeafTx, name: LeafStoreName) {
    this.#tx = tx;
    this.#name = name;
  }

  /** The store (readwrite operations need a readwrite transaction). */
  get store(): LeafStore {
    return this.#tx.objectStore(this.#name) as unknown as LeafStore;
  }

  #change(group: Group): Change {
    const key = JSON.stringify(group);
    let change = this.#changes.get(key);
    if (!change) this.#changes.set(key, change = { group, ops: new Map() });
    return change;
  }

  /** Queue an id into a group (written by {@link flush}). */
  add(group: Group, id: string): void {
    this.#change(group).ops.set(id, true);
  }

  /** Queue an id out of a group (written by {@link flush}). */
  remove(group: Group, id: string): void {
    this.#change(group).ops.set(id, false);
  }

  /** Write the queued changes, group by group. */
  async flush(): Promise<void> {
    const work = [...this.#changes.values()].map((c) => this.#apply(c));
    this.#changes.clear();
    await Promise.all(work);
  }

  async #apply({ group, ops }: Change): Promise<void> {
    const store = this.store;
    let lo: string | undefined;
    let hi = "";
    for (const id of ops.keys()) {
      if (lo === undefined || id < lo) lo = id;
      if (id > hi) hi = id;
    }
    if (lo === undefined) return;
    // The leaves ending in [lo, hi], the next one (it may span `hi`), and the one before
    // `lo` (new ids past the group's last leaf are appended to it while it has room).
    const [inside, after, before] = await Promise.all([
      quiet(store.getAll(IDBKeyRange.bound([...group, lo], [...group, hi]))),
      quiet(store.openCursor(IDBKeyRange.bound([...group, hi], [...group, UPPER], true))),
      quiet(store.openCursor(IDBKeyRange.bound([...group], [...group, lo], false, true), "prev")),
    ]);
    const leaves = inside as Leaf[];
    const next = after?.value as Leaf | undefined;
    if (next) leaves.push(next);
    const prev = before?.value as Leaf | undefined;
    if (prev) leaves.unshift(prev);
    // Each changed id goes to the first leaf ending at or after it; ids past the last leaf
    // go to the last one (split below when it overflows). Only leaves that change are written.
    const changes: Map<string, boolean>[] = leaves.map(() => new Map());
    const tail = new Map<string, boolean>();
    // One sweep over the ids in order and the leaves in order: O(ids log ids + leaves).
    let i = 0;
    for (const id of [...ops.keys()].sort()) {
      while (i < leaves.length && leaves[i]!.ids[leaves[i]!.ids.length - 1]! < id) i++;
      const add = ops.get(id)!;
      if (i < leaves.length) changes[i]!.set(id, add);
      else if (add) tail.set(id, add);
    }
    if (tail.size > 0) {
      if (leaves.length > 0) { for (const [id, add] of tail) changes[leaves.length - 1]!.set(id, add); }
      else {
        leaves.push({ k: [], ids: [] });
        changes.push(tail);
      }
    }
    leaves.forEach((leaf, i) => {
      const change = changes[i]!;
      const ids = leaf.ids.filter((id) => change.get(id) !== false);
      let grew = false;
      for (const [id, add] of change) {
        if (add && !leaf.ids.includes(id)) {
          ids.push(id);
          grew = true;
        }
      }
      if (!grew && ids.length === leaf.ids.length) return; // unchanged
      if (leaf.k.length > 0) quiet(store.delete(leaf.k as never));
      ids.sort();
      for (let j = 0; j < ids.length; j += LEAF_SIZE) {
        const part = ids.slice(j, j + LEAF_SIZE);
        quiet(store.put({ k: [...group, part[part.length - 1]!], ids: part } as never));
      }
    });
  }

  /** The ids of a group greater than `after` (all without it), ascending: one read of its leaves from there. */
  async ids(group: Group, after?: string): Promise<string[]> {
    const range = after === undefined
      ? IDBKeyRange.bound([...group], [...group, UPPER])
      : IDBKeyRange.bound([...group, after], [...group, UPPER], true);
    const leaves = (await this.#tx.objectStore(this.#name).getAll(range)) as Leaf[];
    const out: string[] = [];
    for (const leaf of leaves) for (const id of leaf.ids) if (after === undefined || id > after) out.push(id);
    return out;
  }

  /** Delete every leaf of a group. */
  clear(group: Group): void {
    quiet(this.store.delete(IDBKeyRange.bound([...group], [...group, UPPER])));
  }
}
