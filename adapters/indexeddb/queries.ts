/**
 * Task queries of the IndexedDB adapter: each is served by the index that covers most of
 * its filters and pages by key range (every task index ends with the id).
 *
 * @module
 */

import type { IDBPIndex, IDBPObjectStore, IndexNames, StoreNames } from "idb";
import { TASK_STATUSES } from "../../src/status.ts";
import type { TaskQuery } from "../../src/storage.ts";
import type { Task } from "../../src/types.ts";
import { quiet } from "./rule-tx.ts";
import { fromRow, type TaskRow } from "./rows.ts";
import type { TaskCoreSchema } from "./schema.ts";

/** The tasks store in a readonly transaction. */
export type Tasks = IDBPObjectStore<TaskCoreSchema, StoreNames<TaskCoreSchema>[], "tasks", "readonly">;
type TaskIndex = IDBPIndex<
  TaskCoreSchema,
  StoreNames<TaskCoreSchema>[],
  "tasks",
  IndexNames<TaskCoreSchema, "tasks">,
  "readonly"
>;

/** Keys sort as number < string < array: `[...prefix, UPPER]` is above every `[...prefix, id]`. */
export const UPPER: never[] = [];

/** Order records by id. */
export function byId<T extends { id: string }>(a: T, b: T): number {
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

/** Serve a task query from the index that covers most of its filters, paging by key range. */
export async function listTasks(store: Tasks, query: TaskQuery): Promise<Task[]> {
  const { jobId, agent, status, parentId, after, limit } = query;
  for (const v of [jobId, agent, status, parentId, after]) if (v !== undefined && typeof v !== "string") return [];
  if (limit !== undefined && !(limit > 0)) return [];
  const max = limit === undefined ? Infinity : Math.floor(limit);
  const keep = (t: Task): boolean =>
    (jobId === undefined || t.jobId === jobId) && (agent === undefined || t.agent === agent) &&
    (status === undefined || t.status === status) && (parentId === undefined || t.parentId === parentId);
  if (jobId !== undefined && status === undefined && parentId === undefined) {
    return await jobTasks(store, jobId, after, max, agent === undefined ? null : keep);
  }
  let source: TaskIndex | Tasks = store;
  let prefix: string[] = [];
  if (parentId !== undefined) [source, prefix] = [store.index("parentId"), [parentId]];
  else if (jobId !== undefined) [source, prefix] = [store.index("job"), [jobId, status!]];
  else if (agent !== undefined) [source, prefix] = [store.index("agent"), [agent]];
  else if (status !== undefined) [source, prefix] = [store.index("status"), [status]];
  const filtered = [jobId, agent, status, parentId].filter((v) => v !== undefined).length > prefix.length;
  const out: Task[] = [];
  let from = after;
  for (;;) {
    const want = max - out.length;
    // Without a filter to apply, ask for exactly what is missing; with one, read in chunks.
    const count = want === Infinity ? undefined : filtered ? Math.max(want * 2, 100) : want;
    const chunk = await source.getAll(pageRange(source === store ? null : prefix, from), count);
    for (const row of chunk) {
      if (out.length >= max) break;
      if (keep(row)) out.push(fromRow(row));
    }
    if (count === undefined || chunk.length < count || out.length >= max) return out;
    from = chunk[chunk.length - 1]!.id;
  }
}

/** Keys `[...prefix, id]` with `id > after` (all ids without `after`); `prefix: null` is the primary key. */
function pageRange(prefix: readonly string[] | null, after: string | undefined): IDBKeyRange | null {
  if (prefix === null) return after === undefined ? null : IDBKeyRange.lowerBound(after, true);
  return after === undefined
    ? IDBKeyRange.bound([...prefix], [...prefix, UPPER])
    : IDBKeyRange.bound([...prefix, after], [...prefix, UPPER], true);
}

/**
 * A job's tasks in id order from the `[jobId, status, id]` index: a page of `limit` reads
 * one range per status (each in id order) of at most `limit` rows and merges them; with
 * no limit, or another filter to apply, it reads the job's whole range.
 */
async function jobTasks(
  store: Tasks,
  jobId: string,
  after: string | undefined,
  max: number,
  keep: ((t: Task) => boolean) | null,
): Promise<Task[]> {
  const index = store.index("job");
  const count = max === Infinity ? undefined : max;
  let rows: TaskRow[];
  if (count === undefined || keep !== null) {
    rows = await index.getAll(IDBKeyRange.bound([jobId], [jobId, UPPER]));
    if (after !== undefined) rows = rows.filter((r) => r.id > after);
  } else {
    const lists = await Promise.all(
      TASK_STATUSES.map((s) => quiet(index.getAll(pageRange([jobId, s], after), count))),
    );
    rows = lists.flat();
  }
  rows.sort(byId);
  const out: Task[] = [];
  for (const row of rows) {
    if (out.length >= max) break;
    if (!keep || keep(row)) out.push(fromRow(row));
  }
  return out;
}
