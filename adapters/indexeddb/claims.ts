/**
 * Claims of many tasks, recorded without rewriting the tasks' rows.
 *
 * `claimReady` of n tasks writes one {@link ClaimRecord} (claim time, task ids and the
 * version of each task's row) and one {@link LeaseRecord} (owner, expiry, how many tasks
 * it still holds), instead of n task rows: in Chromium a `put` costs about the same
 * whatever the record, so this takes one of the two writes of a task's lifecycle away.
 *
 * While a claim holds a task, the task's row stays as it was (`ready`, version v) and
 * every read overlays the claim on it: `running`, version v + 1, `attempts + 1`, the
 * lease of the claim, exactly what `claimPatch` made at the claim. A claim holds a task
 * while the task's row has the version the claim recorded; the first write of the task
 * (its completion, a retry, a cancel) changes the row, so the claim lets go of it, and
 * the write counts it off the lease (`left`). The two records go with the last task.
 *
 * Finding a task's claim: the `ids` multiEntry index of `claims`. Tasks read together
 * (a commit's completions) are usually claimed together and dense in id order, so one
 * count and one key read over their id range find every claim involved.
 *
 * @module
 */

import type { IDBPObjectStore, IDBPTransaction, StoreNames } from "idb";
import { claimPatch } from "../../src/commit-rules.ts";
import { newId } from "../../src/ids.ts";
import type { Task } from "../../src/types.ts";
import { fromRow, type TaskRow } from "./rows.ts";
import type { ClaimRecord, LeaseRecord, TaskCoreSchema } from "./schema.ts";
import { quiet, RANGE_READ_MIN } from "./util.ts";

/** A transaction (of any mode) whose scope includes `tasks`, `claims` and `leases`. */
export type ClaimTx = IDBPTransaction<TaskCoreSchema, StoreNames<TaskCoreSchema>[], IDBTransactionMode>;
type WritableTx = IDBPTransaction<TaskCoreSchema, StoreNames<TaskCoreSchema>[], "readwrite">;

/** What {@link readRows} reads from: the `tasks` store in any mode. */
export type RowSource = Pick<
  IDBPObjectStore<TaskCoreSchema, StoreNames<TaskCoreSchema>[], "tasks", IDBTransactionMode>,
  "get" | "getAll"
>;

/** The claim holding a task: its records, and the task's place in the claim. */
export interface ClaimRef {
  /** The claim. */
  readonly claim: ClaimRecord;
  /** Its lease (shared by every ref of the claim in one transaction; changed in place). */
  readonly lease: LeaseRecord;
  /** The task's index in `claim.ids`. */
  readonly index: number;
}

interface Loaded {
  claim: ClaimRecord;
  lease: LeaseRecord;
  /** Task id -> index in `claim.ids`. */
  pos: Map<string, number>;
}

/**
 * Read the rows of `ids` (any order, duplicates allowed). Ids made together sort together,
 * so they are often dense in their key range: one range read of at most twice as many
 * rows replaces a request per id. When the range holds more than that, the ids it did not
 * reach are read one `get` each.
 */
export async function readRows(store: RowSource, ids: Iterable<string>): Promise<Map<string, TaskRow>> {
  const wanted = [...new Set(ids)].sort();
  const out = new Map<string, TaskRow>();
  if (wanted.length === 0) return out;
  let rest = wanted;
  if (wanted.length >= RANGE_READ_MIN) {
    const cap = wanted.length * 2;
    const rows = await store.getAll(IDBKeyRange.bound(wanted[0]!, wanted[wanted.length - 1]!), cap);
    const want = new Set(wanted);
    for (const row of rows) if (want.has(row.id)) out.set(row.id, row);
    // Short of the cap, the range was read to its end: an id not found is not stored.
    if (rows.length < cap) return out;
    const reached = rows[rows.length - 1]!.id;
    rest = wanted.filter((id) => id > reached);
  }
  const rows = await Promise.all(rest.map((id) => quiet(store.get(id))));
  rows.forEach((row, i) => {
    if (row) out.set(rest[i]!, row);
  });
  return out;
}

/** The task a claim makes of a row it holds. */
export function heldTask(task: Task, ref: ClaimRef): Task {
  const { claim, lease } = ref;
  const held = claimPatch(task, lease.owner, claim.at, lease.exp - claim.at, ref.index < (claim.s ?? 0));
  // Own entries only: an id such as "constructor" must not read Object.prototype's.
  const over = lease.over;
  held.leaseExpiresAt = over !== undefined && Object.hasOwn(over, task.id) ? over[task.id]! : lease.exp;
  return held;
}

/** The claims seen through one transaction: which tasks they hold, and changes to their leases. */
export class ClaimBook {
  readonly #tx: ClaimTx;
  readonly #loaded = new Map<string, Promise<Loaded | undefined>>();
  /** Task id -> the claim holding it, or `null` (resolved rows only). */
  readonly #refs = new Map<string, ClaimRef | null>();
  /** Leases changed by this transaction, written by {@link flush}. */
  readonly #dirty = new Set<LeaseRecord>();

  /** Wrap a transaction whose scope includes `tasks`, `claims` and `leases`. */
  constructor(tx: ClaimTx) {
    this.#tx = tx;
  }

  #load(id: string): Promise<Loaded | undefined> {
    let p = this.#loaded.get(id);
    if (!p) {
      p = quiet(
        Promise.all([this.#tx.objectStore("claims").get(id), this.#tx.objectStore("leases").get(id)]).then(
          ([claim, lease]) =>
            claim && lease ? { claim, lease, pos: new Map(claim.ids.map((t, i) => [t, i])) } : undefined,
        ),
      );
      this.#loaded.set(id, p);
    }
    return p;
  }

  /**
   * Find which of `rows` a claim holds (only rows stored as `ready` can be held); then
   * {@link ref} and {@link view} answer for them synchronously.
   */
  async resolve(rows: Iterable<TaskRow | undefined>): Promise<void> {
    const want: TaskRow[] = [];
    for (const row of rows) if (row && row.status === "ready" && !this.#refs.has(row.id)) want.push(row);
    if (want.length === 0) return;
    const ids = want.map((r) => r.id).sort();
    const index = this.#tx.objectStore("claims").index("ids");
    const one = (id: string): Promise<string[]> => quiet(index.getAllKeys(IDBKeyRange.only(id)));
    let claimIds: string[];
    if (ids.length >= RANGE_READ_MIN) {
      // One read of the index over the ids' range finds the claims (of a few entries more
      // than the ids); a range crowded with other claimed tasks is read one id at a time.
      const cap = ids.length * 2;
      claimIds = await index.getAllKeys(IDBKeyRange.bound(ids[0]!, ids[ids.length - 1]!), cap);
      if (claimIds.length >= cap) claimIds = (await Promise.all(ids.map(one))).flat();
    } else {
      claimIds = (await Promise.all(ids.map(one))).flat();
    }
    const loaded = (await Promise.all([...new Set(claimIds)].map((id) => this.#load(id)))).filter((l) =>
      l !== undefined
    );
    for (const row of want) {
      let ref: ClaimRef | null = null;
      for (const l of loaded) {
        const i = l.pos.get(row.id);
        if (i !== undefined && l.claim.v[i] === row.version) {
          ref = { claim: l.claim, lease: l.lease, index: i };
          break;
        }
      }
      this.#refs.set(row.id, ref);
    }
  }

  /** The claim holding a resolved task, `null` when none, `undefined` when not resolved. */
  ref(id: string): ClaimRef | null | undefined {
    return this.#refs.get(id);
  }

  /** The task of a resolved row, as the claim holding it (if any) makes it. */
  view(row: TaskRow): Task {
    const task = fromRow(row);
    const ref = this.#refs.get(row.id);
    return ref ? heldTask(task, ref) : task;
  }

  /** The write of a held task lets go of it: count it off its lease. */
  release(id: string): void {
    const ref = this.#refs.get(id);
    if (!ref) return;
    this.#refs.set(id, null);
    ref.lease.left--;
    this.#dirty.add(ref.lease);
  }

  /** Extend the lease of held tasks of one claim to `exp`: the whole lease when they are all it holds. */
  renew(lease: LeaseRecord, ids: ReadonlySet<string>, exp: number): void {
    if (ids.size >= lease.left) {
      lease.exp = exp;
      delete lease.over;
    } else {
      // Without a prototype, an id such as "__proto__" is an entry like any other.
      const over: Record<string, number> = Object.assign(Object.create(null), lease.over);
      for (const id of ids) over[id] = exp;
      lease.over = over;
    }
    this.#dirty.add(lease);
  }

  /** Record a claim of `rows` (stored `ready`, in claim order) for `owner` until `now + leaseMs`. */
  create(rows: readonly TaskRow[], owner: string, now: number, leaseMs: number, started = 0): void {
    const tx = this.#tx as WritableTx;
    const id = newId();
    const claim: ClaimRecord = { id, at: now, ids: rows.map((r) => r.id), v: rows.map((r) => r.version) };
    if (started > 0) claim.s = started;
    quiet(tx.objectStore("claims").put(claim));
    quiet(tx.objectStore("leases").put({ id, owner, exp: now + leaseMs, left: rows.length }));
  }

  /** Write the leases this transaction changed; a lease that holds no task any more goes with its claim. */
  flush(): void {
    const tx = this.#tx as WritableTx;
    for (const lease of this.#dirty) {
      if (lease.left <= 0) {
        quiet(tx.objectStore("claims").delete(lease.id));
        quiet(tx.objectStore("leases").delete(lease.id));
      } else {
        quiet(tx.objectStore("leases").put(lease));
      }
    }
    this.#dirty.clear();
  }

  /**
   * Every task held by a claim whose lease passes `which` (all claims by default), as the
   * claim makes it, in no particular order. Reads every lease: O(claims + tasks held).
   */
  async held(which: (lease: LeaseRecord) => boolean = () => true): Promise<Task[]> {
    const leases = (await this.#tx.objectStore("leases").getAll()).filter(which);
    const claims = await Promise.all(leases.map((l) => quiet(this.#tx.objectStore("claims").get(l.id))));
    const members: { id: string; claim: ClaimRecord; lease: LeaseRecord; index: number }[] = [];
    claims.forEach((claim, i) => {
      if (claim) claim.ids.forEach((id, index) => members.push({ id, claim, lease: leases[i]!, index }));
    });
    const rows = await readRows(this.#tx.objectStore("tasks"), members.map((m) => m.id));
    const out: Task[] = [];
    for (const m of members) {
      const row = rows.get(m.id);
      if (!row || row.status !== "ready" || row.version !== m.claim.v[m.index]) continue;
      out.push(heldTask(fromRow(row), m));
    }
    return out;
  }
}

/** Whether any task of a lease may have expired at `now`. */
export function mayHaveExpired(lease: LeaseRecord, now: number): boolean {
  if (lease.exp <= now) return true;
  for (const exp of Object.values(lease.over ?? {})) if (exp <= now) return true;
  return false;
}
