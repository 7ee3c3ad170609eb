/**
 * Dependency graphs by position, shared by job validation (`buildJob`) and the storage
 * rules (`createJob` of a list built elsewhere).
 *
 * @module
 */

/**
 * Find one cycle among tasks by position: `edges[i]` lists the positions task `i` depends on
 * (`undefined` for none). Returns the positions on one cycle, or `[]`.
 */
export function cycleAmong(n: number, edges: readonly (readonly number[] | undefined)[]): number[] {
  const indegree = new Int32Array(n);
  const dependents: number[][] = new Array(n);
  for (let i = 0; i < n; i++) {
    const ds = edges[i];
    if (ds === undefined) continue;
    indegree[i] = ds.length;
    for (const d of ds) (dependents[d] ??= []).push(i);
  }
  const stack: number[] = [];
  for (let i = 0; i < n; i++) if (indegree[i] === 0) stack.push(i);
  let removed = 0;
  while (stack.length > 0) {
    const k = stack.pop()!;
    removed++;
    const next = dependents[k];
    if (next === undefined) continue;
    for (const m of next) if (--indegree[m]! === 0) stack.push(m);
  }
  if (removed === n) return [];
  // Every remaining task has a remaining dependency: walk them until one repeats.
  let cur = indegree.findIndex((d) => d > 0);
  const seenAt = new Map<number, number>();
  const path: number[] = [];
  while (!seenAt.has(cur)) {
    seenAt.set(cur, path.length);
    path.push(cur);
    cur = edges[cur]!.find((d) => indegree[d]! > 0)!;
  }
  return path.slice(seenAt.get(cur)!).reverse();
}
