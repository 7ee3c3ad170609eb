/**
 * Draws a {@link GraphLayout} as plain SVG: one group per task (a rounded box coloured by
 * status through the CSS class `s-<status>`, its label, an attempt badge after a retry and
 * a progress bar while it runs), and curved arrows for dependencies and spawns.
 *
 * @module
 */

import { s } from "./dom.ts";
import type { GraphLayout } from "./graph-layout.ts";

/** What the graph shows besides the layout. */
export interface GraphViewState {
  /** Progress (0..1) of running tasks, by task id. */
  progress?: ReadonlyMap<string, number>;
}

/** Build the SVG of a laid-out graph. */
export function renderGraph(doc: Document, layout: GraphLayout, state: GraphViewState = {}): SVGSVGElement {
  const width = Math.max(layout.width, 1);
  const height = Math.max(layout.height, 1);
  const svg = s(doc, "svg", {
    class: "graph",
    viewBox: `0 0 ${width} ${height}`,
    width,
    height,
    role: "img",
    "aria-label": `Task graph: ${layout.nodes.length} tasks in ${layout.columns} columns`,
  });
  const defs = s(
    doc,
    "defs",
    {},
    s(
      doc,
      "marker",
      {
        id: "arrow",
        viewBox: "0 0 8 8",
        refX: 7,
        refY: 4,
        markerWidth: 6,
        markerHeight: 6,
        orient: "auto-start-reverse",
      },
      s(doc, "path", { d: "M0,0 L8,4 L0,8 z", class: "arrow-head" }),
    ),
  );
  svg.append(defs);
  if (layout.headings.length > 0) {
    svg.append(
      s(
        doc,
        "g",
        { class: "headings" },
        ...layout.headings.map((c) =>
          s(doc, "text", { class: "col-head", x: c.x, y: c.y, "text-anchor": "middle", text: c.label })
        ),
      ),
    );
  }
  const edges = s(doc, "g", { class: "edges" });
  for (const e of layout.edges) {
    edges.append(s(doc, "path", {
      d: e.path,
      class: `edge edge-${e.kind}`,
      "marker-end": "url(#arrow)",
      "data-from": e.from,
      "data-to": e.to,
    }));
  }
  svg.append(edges);
  const nodes = s(doc, "g", { class: "nodes" });
  for (const n of layout.nodes) {
    const title = `${n.key} — ${n.agent}, ${n.status}${n.attempts > 1 ? `, attempt ${n.attempts}` : ""}`;
    const g = s(
      doc,
      "g",
      {
        class: `node s-${n.status}`,
        transform: `translate(${n.x},${n.y})`,
        "data-key": n.key,
        "data-status": n.status,
      },
      s(doc, "title", { text: title }),
      s(doc, "rect", { class: "node-box", width: n.width, height: n.height, rx: 6, ry: 6 }),
      s(doc, "text", { class: "node-label", x: 8, y: n.height / 2, "dominant-baseline": "central", text: n.label }),
    );
    if (n.attempts > 1) {
      g.append(
        s(doc, "text", {
          class: "node-badge",
          x: n.width - 6,
          y: n.height / 2,
          "text-anchor": "end",
          "dominant-baseline": "central",
          text: `×${n.attempts}`,
        }),
      );
    }
    const fraction = state.progress?.get(n.id);
    if (n.status === "running" && fraction !== undefined) {
      g.append(s(doc, "rect", {
        class: "node-progress",
        x: 4,
        y: n.height - 5,
        width: Math.max(0, (n.width - 8) * Math.min(1, fraction)),
        height: 2,
        rx: 1,
      }));
    }
    nodes.append(g);
  }
  svg.append(nodes);
  return svg;
}
