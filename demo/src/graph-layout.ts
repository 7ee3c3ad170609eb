/**
 * Lays out a job's DAG for the live graph, with no graph library: a task's column is its
 * depth (one more than the deepest of its dependencies and of the task that spawned it),
 * and each column is ordered by the average row of what feeds it, so chains line up.
 *
 * @module
 */

import type { Task } from "../../mod.ts";
import { shortKey } from "./format.ts";
import { type VisualStatus, visualStatus } from "./progress.ts";

/** The fields of a task the layout needs. */
export type GraphTask = Pick<
  Task,
  "id" | "key" | "agent" | "status" | "error" | "parentId" | "dependencies" | "attempts"
>;

/** Sizes of the layout, in SVG user units. */
export interface LayoutOptions {
  /** Node width (default 104). */
  nodeWidth?: number;
  /** Node height (default 28). */
  nodeHeight?: number;
  /** Space between columns (default 44). */
  columnGap?: number;
  /** Space between rows (default 8). */
  rowGap?: number;
  /** Margin around the drawing (default 8). */
  padding?: number;
  /** Longest label in characters (default: what fits the node width at `charWidth` per character). */
  maxLabel?: number;
  /** Average width of a label character, to fit labels (default 7, for a 12px font). */
  charWidth?: number;
  /**
   * Fit the drawing into this width: nodes shrink (down to `minNodeWidth`) when the
   * columns would not fit at `nodeWidth`, and labels are shortened to match.
   */
  fitWidth?: number;
  /** Narrowest node when fitting (default 48). */
  minNodeWidth?: number;
  /** Room above the nodes for column headings (default 18; none when no column has one). */
  headerHeight?: number;
}

/** One positioned task. */
export interface GraphNode {
  /** Task id. */
  id: string;
  /** Task key. */
  key: string;
  /** Label drawn in the node. */
  label: string;
  /** Agent name. */
  agent: string;
  /** Status it is drawn with. */
  status: VisualStatus;
  /** Attempts started. */
  attempts: number;
  /** Column (dependency depth), from 0. */
  depth: number;
  /** Row within the column, from 0. */
  row: number;
  /** Left edge. */
  x: number;
  /** Top edge. */
  y: number;
  /** Width. */
  width: number;
  /** Height. */
  height: number;
}

/** One arrow: a dependency (`depends`) or the spawn of a child with no dependency (`spawn`). */
export interface GraphEdge {
  /** Source task id. */
  from: string;
  /** Target task id. */
  to: string;
  /** What the arrow means. */
  kind: "depends" | "spawn";
  /** SVG path data, a cubic curve from the right side of the source to the left side of the target. */
  path: string;
}

/** A column heading: the agent of every task in a column of several tasks. */
export interface ColumnHeading {
  /** The heading text. */
  label: string;
  /** Horizontal centre. */
  x: number;
  /** Baseline. */
  y: number;
}

/** A laid-out graph. */
export interface GraphLayout {
  /** Nodes in task order. */
  nodes: GraphNode[];
  /** Column headings (only for columns of several tasks of one agent). */
  headings: ColumnHeading[];
  /** Edges, spawn edges first. */
  edges: GraphEdge[];
  /** Drawing width. */
  width: number;
  /** Drawing height. */
  height: number;
  /** Number of columns. */
  columns: number;
}

/** The depth of every task: 0 with no dependency and no parent in `tasks`; cycles are cut. */
export function depths(tasks: readonly GraphTask[]): Map<string, number> {
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const out = new Map<string, number>();
  const visiting = new Set<string>();
  const depthOf = (t: GraphTask): number => {
    const known = out.get(t.id);
    if (known !== undefined) return known;
    if (visiting.has(t.id)) return 0;
    visiting.add(t.id);
    let d = 0;
    const feeds = t.parentId === null ? t.dependencies : [...t.dependencies, t.parentId];
    for (const id of feeds) {
      const f = byId.get(id);
      if (f) d = Math.max(d, depthOf(f) + 1);
    }
    visiting.delete(t.id);
    out.set(t.id, d);
    return d;
  };
  for (const t of tasks) depthOf(t);
  return out;
}

/** A cubic curve from (x1, y1) to (x2, y2), leaving and entering horizontally. */
export function curve(x1: number, y1: number, x2: number, y2: number): string {
  const dx = Math.max(12, (x2 - x1) / 2);
  const r = (n: number) => Math.round(n * 10) / 10;
  return `M${r(x1)},${r(y1)} C${r(x1 + dx)},${r(y1)} ${r(x2 - dx)},${r(y2)} ${r(x2)},${r(y2)}`;
}

/**
 * Shorten a label to `max` characters, keeping a trailing number: `summarize-12` → `summ…-12`.
 */
export function fitLabel(label: string, max: number): string {
  if (label.length <= max) return label;
  if (max <= 1) return label.slice(0, Math.max(0, max));
  const m = /^(.*?)([-_ ]?\d+)$/.exec(label);
  if (m && m[1]!.length > 0 && m[2]!.length + 2 <= max) {
    return `${m[1]!.slice(0, max - m[2]!.length - 1)}…${m[2]}`;
  }
  return `${label.slice(0, max - 1)}…`;
}

/** Lay out the tasks of one job. */
export function layoutGraph(tasks: readonly GraphTask[], options: LayoutOptions = {}): GraphLayout {
  const h = options.nodeHeight ?? 28;
  const colGap = options.columnGap ?? 44;
  const rowGap = options.rowGap ?? 8;
  const pad = options.padding ?? 8;
  if (tasks.length === 0) return { nodes: [], headings: [], edges: [], width: 0, height: 0, columns: 0 };

  const depth = depths(tasks);
  const columnCount = Math.max(...depth.values()) + 1;
  let w = options.nodeWidth ?? 104;
  if (options.fitWidth !== undefined) {
    const fits = Math.floor((options.fitWidth - pad * 2 - (columnCount - 1) * colGap) / columnCount);
    w = Math.max(options.minNodeWidth ?? 48, Math.min(w, fits));
  }
  const maxLabel = options.maxLabel ?? Math.max(3, Math.floor((w - 12) / (options.charWidth ?? 7)));
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const columns: GraphTask[][] = [];
  tasks.forEach((t) => (columns[depth.get(t.id)!] ??= []).push(t));
  const order = new Map(tasks.map((t, i) => [t.id, i]));
  const row = new Map<string, number>();
  for (const column of columns) {
    if (!column) continue;
    // Barycentre of the rows that feed each task; creation order breaks ties.
    const weight = (t: GraphTask): number => {
      const feeds = [...t.dependencies, ...(t.parentId === null ? [] : [t.parentId])]
        .filter((id) => row.has(id));
      if (feeds.length === 0) return -1;
      return feeds.reduce((s, id) => s + row.get(id)!, 0) / feeds.length;
    };
    const sorted = [...column].sort((a, b) => weight(a) - weight(b) || order.get(a.id)! - order.get(b.id)!);
    sorted.forEach((t, i) => row.set(t.id, i));
    column.splice(0, column.length, ...sorted);
  }
  // A column of several tasks of one agent gets a heading; its nodes may then be labelled by number alone.
  const agentOf = columns.map((column) => {
    const first = column?.[0];
    return first && column.length > 1 && column.every((t) => t.agent === first.agent) ? first.agent : "";
  });
  const top0 = pad + (agentOf.some((a) => a !== "") ? options.headerHeight ?? 18 : 0);
  const tallest = Math.max(...columns.map((c) => c?.length ?? 0));
  const height = top0 + pad + tallest * h + (tallest - 1) * rowGap;
  const width = pad * 2 + columns.length * w + (columns.length - 1) * colGap;
  const headings: ColumnHeading[] = [];
  agentOf.forEach((agent, d) => {
    if (agent) headings.push({ label: fitLabel(agent, maxLabel + 2), x: pad + d * (w + colGap) + w / 2, y: top0 - 6 });
  });

  const nodes = new Map<string, GraphNode>();
  columns.forEach((column, d) => {
    if (!column) return;
    const used = column.length * h + (column.length - 1) * rowGap;
    const top = top0 + (height - top0 - pad - used) / 2;
    column.forEach((t, i) => {
      const budget = t.attempts > 1 ? maxLabel - 3 : maxLabel;
      const full = shortKey(t.key);
      const number = /(\d+)$/.exec(full)?.[1];
      const label = full.length > budget && agentOf[d] && number ? `#${number}` : fitLabel(full, budget);
      nodes.set(t.id, {
        id: t.id,
        key: t.key,
        label,
        agent: t.agent,
        status: visualStatus(t),
        attempts: t.attempts,
        depth: d,
        row: i,
        x: pad + d * (w + colGap),
        y: top + i * (h + rowGap),
        width: w,
        height: h,
      });
    });
  });

  const spawn: GraphEdge[] = [];
  const deps: GraphEdge[] = [];
  const edge = (from: GraphNode, to: GraphNode, kind: GraphEdge["kind"]): GraphEdge => ({
    from: from.id,
    to: to.id,
    kind,
    path: curve(from.x + from.width, from.y + from.height / 2, to.x, to.y + to.height / 2),
  });
  for (const t of tasks) {
    const to = nodes.get(t.id)!;
    const known = t.dependencies.filter((id) => byId.has(id));
    for (const id of known) deps.push(edge(nodes.get(id)!, to, "depends"));
    // A spawned child that waits for siblings is drawn by its dependencies alone: fewer crossings.
    if (t.parentId !== null && known.length === 0 && nodes.has(t.parentId)) {
      spawn.push(edge(nodes.get(t.parentId)!, to, "spawn"));
    }
  }
  return {
    nodes: tasks.map((t) => nodes.get(t.id)!),
    headings,
    edges: [...spawn, ...deps],
    width,
    height,
    columns: columns.length,
  };
}
