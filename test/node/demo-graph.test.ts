// @vitest-environment happy-dom
import { describe, expect, test } from "vitest";
import { curve, depths, fitLabel, layoutGraph } from "../../demo/src/graph-layout.ts";
import { renderGraph } from "../../demo/src/graph-view.ts";
import { digest, error, task } from "./demo-fixtures.ts";

describe("graph layout", () => {
  test("depths() put a task one column right of its deepest dependency or its parent", () => {
    const tasks = digest(2);
    const d = depths(tasks);
    const at = (key: string) => d.get(tasks.find((t) => t.key === key)!.id);
    expect(at("plan")).toBe(0);
    expect(at("plan/fetch-1")).toBe(1); // spawned by plan, no dependency
    expect(at("plan/parse-1")).toBe(2);
    expect(at("plan/summarize-2")).toBe(3);
    expect(at("plan/report")).toBe(4);
  });

  test("depths() ignore dependencies that are not in the list and survive a cycle", () => {
    const a = task("a", { dependencies: ["id-b", "missing"] });
    const b = task("b", { dependencies: ["id-a"] });
    const d = depths([a, b]);
    expect(d.size).toBe(2);
    expect([...d.values()].every((v) => Number.isInteger(v) && v >= 0)).toBe(true);
  });

  test("layoutGraph() puts columns by depth and lines up each article's chain on one row", () => {
    const layout = layoutGraph(digest(3), { nodeWidth: 100, nodeHeight: 20, columnGap: 40, rowGap: 10, padding: 5 });
    expect(layout.columns).toBe(5);
    const node = (key: string) => layout.nodes.find((n) => n.key === key)!;
    expect(node("plan").x).toBe(5);
    expect(node("plan/fetch-1").x).toBe(5 + 140);
    expect(node("plan/report").x).toBe(5 + 4 * 140);
    for (let i = 1; i <= 3; i++) {
      expect(node(`plan/parse-${i}`).y).toBe(node(`plan/fetch-${i}`).y);
      expect(node(`plan/summarize-${i}`).y).toBe(node(`plan/fetch-${i}`).y);
    }
    // Single-node columns are centred on the tallest column.
    const fetches = [1, 2, 3].map((i) => node(`plan/fetch-${i}`));
    expect(node("plan").y).toBe(fetches[1]!.y);
    expect(layout.width).toBe(5 * 2 + 5 * 100 + 4 * 40);
    expect(layout.height).toBe(5 * 2 + 18 + 3 * 20 + 2 * 10);
  });

  test("columns of one agent get a heading; single-task columns do not", () => {
    const layout = layoutGraph(digest(2));
    expect(layout.headings.map((h) => h.label)).toEqual(["fetch", "parse", "summarize"]);
    const noHeads = layoutGraph([task("a"), task("b", { dependencies: ["id-a"] })], { padding: 4 });
    expect(noHeads.headings).toEqual([]);
    expect(noHeads.nodes[0]!.y).toBe(4);
  });

  test("edges: a dependency per edge, a dashed spawn edge only to children without dependencies", () => {
    const layout = layoutGraph(digest(2));
    const spawn = layout.edges.filter((e) => e.kind === "spawn");
    const deps = layout.edges.filter((e) => e.kind === "depends");
    expect(spawn.map((e) => e.to).sort()).toEqual(["id-plan/fetch-1", "id-plan/fetch-2"]);
    expect(deps).toHaveLength(2 * 2 + 2); // fetch→parse, parse→summarize per article, summaries→report
    for (const e of layout.edges) expect(e.path).toMatch(/^M[\d.]+,[\d.]+ C/);
  });

  test("nodes carry the drawn status: a ready task that failed before is retrying", () => {
    const layout = layoutGraph(
      digest(
        1,
        (key) =>
          key === "plan"
            ? { status: "completed", attempts: 1 }
            : key === "plan/fetch-1"
            ? { status: "ready", attempts: 1, error: error("reset") }
            : {},
      ),
    );
    expect(layout.nodes.map((n) => n.status)).toEqual(["completed", "retrying", "pending", "pending", "pending"]);
  });

  test("fitting a narrow width shrinks nodes and labels them by number under a heading", () => {
    const wide = layoutGraph(digest(8), { nodeWidth: 140, columnGap: 46, fitWidth: 1200 });
    expect(wide.nodes[0]!.width).toBe(140);
    expect(wide.nodes.find((n) => n.key === "plan/summarize-8")!.label).toBe("summarize-8");
    const narrow = layoutGraph(digest(8), { nodeWidth: 140, columnGap: 10, padding: 2, fitWidth: 340 });
    expect(narrow.width).toBeLessThanOrEqual(340);
    expect(narrow.nodes.find((n) => n.key === "plan/summarize-8")!.label).toBe("#8");
    expect(narrow.nodes.find((n) => n.key === "plan")!.label).toBe("plan");
  });

  test("fitLabel() keeps a trailing number when it shortens", () => {
    expect(fitLabel("summarize-12", 8)).toBe("summ…-12");
    expect(fitLabel("fetch-1", 7)).toBe("fetch-1");
    expect(fitLabel("reporting", 5)).toBe("repo…");
    expect(fitLabel("abc", 1)).toBe("a");
  });

  test("curve() leaves and enters horizontally", () => {
    expect(curve(0, 0, 100, 50)).toBe("M0,0 C50,0 50,50 100,50");
  });

  test("an empty job lays out as nothing", () => {
    expect(layoutGraph([])).toEqual({ nodes: [], headings: [], edges: [], width: 0, height: 0, columns: 0 });
  });
});

describe("graph view", () => {
  test("renderGraph() draws one group per task, coloured by status class, with arrows and headings", () => {
    const tasks = digest(
      2,
      (key) =>
        key === "plan"
          ? { status: "completed", attempts: 1 }
          : key === "plan/fetch-1"
          ? { status: "running", attempts: 2 }
          : {},
    );
    const layout = layoutGraph(tasks);
    const svg = renderGraph(document, layout, { progress: new Map([["id-plan/fetch-1", 0.5]]) });
    document.body.replaceChildren(svg);
    expect(svg.namespaceURI).toBe("http://www.w3.org/2000/svg");
    expect(svg.getAttribute("viewBox")).toBe(`0 0 ${layout.width} ${layout.height}`);
    const groups = svg.querySelectorAll("g.node");
    expect(groups).toHaveLength(tasks.length);
    const fetch1 = svg.querySelector('g.node[data-key="plan/fetch-1"]')!;
    expect(fetch1.getAttribute("class")).toBe("node s-running");
    expect(fetch1.querySelector(".node-label")!.textContent).toBe("fetch-1");
    expect(fetch1.querySelector(".node-badge")!.textContent).toBe("×2");
    expect(fetch1.querySelector("title")!.textContent).toContain("attempt 2");
    expect(Number(fetch1.querySelector(".node-progress")!.getAttribute("width"))).toBeGreaterThan(0);
    expect(svg.querySelector('g.node[data-key="plan"] .node-progress')).toBeNull();
    expect(svg.querySelectorAll("path.edge")).toHaveLength(layout.edges.length);
    expect(svg.querySelectorAll("path.edge-spawn")).toHaveLength(2);
    expect([...svg.querySelectorAll(".col-head")].map((t) => t.textContent)).toEqual(["fetch", "parse", "summarize"]);
  });

  test("labels are text, never markup", () => {
    const svg = renderGraph(document, layoutGraph([task("<img src=x onerror=alert(1)>")]));
    expect(svg.querySelector("img")).toBeNull();
    expect(svg.querySelector(".node-label")!.textContent).toContain("<img");
  });
});
