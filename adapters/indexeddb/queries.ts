/**
 * Task queries of the IndexedDB adapter: each is served by the index that covers most of
 * its filters and pages by key range (every task index ends with the id), or by a job's
 * `members` for a job (see `schema.ts` for why there is no job index), with the claims
 * overlaid on the rows they hold (`claims.ts`): a claimed task is stored as `ready` and
 * read as `running`, so `status: "ready"` leaves the rows a claim holds out and
 * `status: "running"` adds the tasks the claims hold to the rows stored as running.
 *
 * @module
 */

import type { IDBPIndex, IDBPObjectStore, IndexNames, StoreNames } from "idb";
import { TASK_STATUSES } from "../../src/status.ts";
import type { TaskQuery } from "../../src/storage.ts";
import type { Task } from "../../src/types.ts";
import { ClaimBook, type ClaimTx, readRows } from "./claims.ts";
import { IdLeaves } from "./leaves.ts";
import type { TaskRow } from "./rows.ts";
import type { TaskCoreSchema } from "./schema.ts";
import { byId, readCount, UPPER } from "./util.ts";

type Tasks = IDBPObjectStore<TaskCoreSchema, StoreNames<TaskCoreSchema>[], "tasks", IDBTransactionMode>;

type TaskIndex = IDBPIndex<
  TaskCoreSchema,
  StoreNames<TaskCoreSchema>[],
  "tasks",
  IndexNames<TaskCoreSchema, "tasks">,
  IDBTransactionMode
>;

/** A source of rows in id order: an index with a key prefix, or the store itself (`prefix: null`). */
interface Source {
  from: TaskIndex | Tasks;
  prefix: readonly string[] | null;
}

/** Keys `[...prefix, id]` with `id > after` (all ids without `after`); `prefix: null` is the primary key. */
function pageRange(prefix: readonly string[] | null, after: string | undefined): IDBKeyRange | null {
  if (prefix === null) return after === undefined ? null : IDBKeyRange.lowerBound(after, true);
  return after === undefined
    ? IDBKeyRange.bound([...prefix], [...prefix, UPPER])
    : IDBKeyRange.bound([...prefix, after], [...prefix, UPPER], true);
}

/** Merge lists each in id order (a task may be in several), keeping the first `max`. */
function merge(lists: Task[][], max: number): Task[] {
  const all = [...new Map(lists.flat().map((t) => [t.id, t])).values()].sort(byId);
  return max === Infinity ? all : all.slice(0, max);
}

/** Serve a task query from the index that covers most of its filters, paging by key range. */
export async function listTasks(tx: ClaimTx, query: TaskQuery): Promise<Task[]> {
  const { jobId, agent, status, parentId, after, limit } = query;
  for (const v of [jobId, agent, status, parentId, after]) if (v !== undefined && typeof v !== "string") return [];
  if (limit !== undefined && !(limit > 0)) return [];
  const max = limit === undefined ? Infinity : Math.floor(limit);
  const claims = new ClaimBook(tx);
  const keep = (t: Task): boolean =>
    (jobId === undefined || t.jobId === jobId) && (agent === undefined || t.agent === agent) &&
    (status === undefined || t.status === status) && (parentId === undefined || t.parentId === parentId) &&
    (after === undefined || t.id > after);
  // A job's or a parent's tasks are read without a status prefix: the claims are overlaid
  // on what is read, so the tasks they hold are found there, not by reading every claim.
  if (status !== "running" || jobId !== undefined || parentId !== undefined) {
    return await stored(tx, claims, query, max, keep);
  }
  // Running: the rows stored as running, and the tasks claims hold (stored as ready).
  const [rows, held] = await Promise.all([
    stored(tx, claims, query, max, keep),
    claims.held().then((tasks) => tasks.filter(keep).sort(byId)),
  ]);
  return merge([rows, held], max);
}

/** The query over the rows as stored (the claims overlaid on what is read). */
async function stored(
  tx: ClaimTx,
  claims: ClaimBook,
  query: TaskQuery,
  max: number,
  keep: (t: Task) => boolean,
): Promise<Task[]> {
  const { jobId, agent, status, parentId, after } = query;
  const store = tx.objectStore("tasks");
  const filters = [jobId, agent, status, parentId].filter((v) => v !== undefined).length;
  const read = (source: Source): Promise<Task[]> => {
    // A filter the key prefix does not cover (or claims taking rows out of "ready") makes
    // the source yield fewer matches than rows.
    const exact = source.prefix !== null && source.prefix.length >= filters && status !== "ready";
    return page(claims, source, after, max, !exact && filters > 0, keep);
  };
  if (parentId !== undefined) return await read({ from: store.index("parentId"), prefix: [parentId] });
  if (jobId !== undefined) return await jobTasks(tx, claims, jobId, after, max, filters > 1, keep);
  const index = store.index("status");
  if (status !== undefined) {
    if (agent !== undefined) return await read({ from: index, prefix: [status, agent] });
    if (max === Infinity) return await wholeRange(claims, index, [status], keep);
    // The index holds [status, agent, id]: one id-ordered range per agent with this status.
    const agents = await agentsWith(index, status);
    return merge(await Promise.all(agents.map((a) => read({ from: index, prefix: [status, a] }))), max);
  }
  if (agent !== undefined) {
    // One id-ordered range per status.
    return merge(await Promise.all(TASK_STATUSES.map((s) => read({ from: index, prefix: [s, agent] }))), max);
  }
  return await read({ from: store, prefix: null });
}

/**
 * Up to `max` tasks of one source that pass `keep`, in id order. Without a filter to
 * apply (`keep` passes every row of the source), it asks for exactly what is missing;
 * with one, it reads in chunks.
 */
async function page(
  claims: ClaimBook,
  source: Source,
  after: string | undefined,
  max: number,
  filtered: boolean,
  keep: (t: Task) => boolean,
): Promise<Task[]> {
  const out: Task[] = [];
  let from = after;
  for (;;) {
    const want = max - out.length;
    const count = readCount(filtered ? Math.max(want * 2, 100) : want);
    const chunk: TaskRow[] = await source.from.getAll(pageRange(source.prefix, from), count);
    await claims.resolve(chunk);
    for (const row of chunk) {
      if (out.length >= max) break;
      const task = claims.view(row);
      if (keep(task)) out.push(task);
    }
    if (count === undefined || chunk.length < count || out.length >= max) return out;
    from = chunk[chunk.length - 1]!.id;
  }
}

/** Every row of one index range that passes `keep`, sorted by id. */
async function wholeRange(
  claims: ClaimBook,
  index: TaskIndex,
  prefix: readonly string[],
  keep: (t: Task) => boolean,
): Promise<Task[]> {
  const rows = await index.getAll(pageRange(prefix, undefined));
  await claims.resolve(rows);
  return rows.map((r) => claims.view(r)).filter(keep).sort(byId);
}

/** The agents with tasks stored in `status`: a skip-scan over `[status, agent, id]`, one request per agent. */
async function agentsWith(index: TaskIndex, status: string): Promise<string[]> {
  const out: string[] = [];
  let range = IDBKeyRange.bound([status], [status, UPPER]);
  for (;;) {
    const cursor = await index.openKeyCursor(range);
    if (!cursor) return out;
    const agent = (cursor.key as [string, string, string])[1];
    out.push(agent);
    range = IDBKeyRange.bound([status, agent, UPPER], [status, UPPER], true);
  }
}

/**
 * A job's tasks in id order: its ids from `members` (from `after` on), then their rows in
 * chunks until `max` pass `keep`. Without another filter a chunk is exactly what is
 * missing; with one (status, agent), the rows of the job are read until enough match.
 */
async function jobTasks(
  tx: ClaimTx,
  claims: ClaimBook,
  jobId: string,
  after: string | undefined,
  max: number,
  filtered: boolean,
  keep: (t: Task) => boolean,
): Promise<Task[]> {
  const ids = await new IdLeaves(tx, "members").ids([jobId], after);
  const store = tx.objectStore("tasks");
  const out: Task[] = [];
  for (let i = 0; i < ids.length && out.length < max;) {
    const want = max - out.length;
    const step = want === Infinity ? ids.length : filtered ? Math.max(want * 2, 100) : want;
    const part = ids.slice(i, i + step);
    i += part.length;
    const rows = await readRows(store, part);
    await claims.resolve(rows.values());
    for (const id of part) {
      const row = rows.get(id);
      if (!row) continue;
      const task = claims.view(row);
      if (keep(task) && out.push(task) >= max) break;
    }
  }
  return out;
}
