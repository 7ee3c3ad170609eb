/**
 * Renders the task table. Rows are keyed by task id and updated in place, so the table
 * does not flicker or lose its scroll position on every refresh.
 *
 * @module
 */

import { h } from "./dom.ts";
import type { TaskRow } from "./task-rows.ts";

const COLUMNS = ["Task", "Agent", "Status", "Attempts", "Duration", "Error"] as const;

/** Create an empty task table. */
export function createTaskTable(doc: Document): HTMLTableElement {
  return h(
    doc,
    "table",
    { class: "tasks" },
    h(
      doc,
      "thead",
      {},
      h(doc, "tr", {}, ...COLUMNS.map((c) => h(doc, "th", { scope: "col", class: `col-${c.toLowerCase()}`, text: c }))),
    ),
    h(doc, "tbody"),
  );
}

function setText(cell: Element, text: string): void {
  if (cell.textContent !== text) cell.textContent = text;
}

/** Show `rows` in `table`, reusing the row elements of tasks already shown. */
export function updateTaskTable(table: HTMLTableElement, rows: readonly TaskRow[]): void {
  const doc = table.ownerDocument;
  // Plain children, not `rows`/`cells`: those collections are missing in some DOMs (happy-dom).
  const body = table.querySelector("tbody") ?? table.appendChild(doc.createElement("tbody"));
  const existing = new Map<string, HTMLTableRowElement>();
  for (const tr of Array.from(body.children) as HTMLTableRowElement[]) existing.set(tr.dataset.id ?? "", tr);
  let previous: HTMLTableRowElement | null = null;
  for (const row of rows) {
    let tr = existing.get(row.id);
    existing.delete(row.id);
    if (!tr) {
      tr = h(
        doc,
        "tr",
        { "data-id": row.id },
        h(doc, "td", { class: "col-task" }),
        h(doc, "td", { class: "col-agent" }),
        h(doc, "td", { class: "col-status" }, h(doc, "span", { class: "pill" }), h(doc, "span", { class: "note" })),
        h(doc, "td", { class: "col-attempts num" }),
        h(doc, "td", { class: "col-duration num" }),
        h(doc, "td", { class: "col-error" }),
      );
    }
    const [key, agent, status, attempts, duration, error] = Array.from(tr.children);
    if (tr.dataset.key !== row.key) {
      const cut = row.key.lastIndexOf("/") + 1;
      key!.replaceChildren(
        h(doc, "span", { class: "key-parent", text: row.key.slice(0, cut) }),
        h(doc, "span", { class: "key-own", text: row.key.slice(cut) }),
      );
      key!.setAttribute("title", row.key);
    }
    setText(agent!, row.agent);
    const pill = status!.firstElementChild!;
    pill.className = `pill s-${row.status}`;
    setText(pill, row.status);
    setText(status!.lastElementChild!, row.note ? ` ${row.note}` : "");
    setText(attempts!, row.attempts);
    setText(duration!, row.duration);
    setText(error!, row.error);
    error!.setAttribute("title", row.error);
    tr.dataset.status = row.status;
    tr.dataset.key = row.key;
    const next: ChildNode | null = previous ? previous.nextSibling : body.firstChild;
    if (next !== tr) body.insertBefore(tr, next);
    previous = tr;
  }
  for (const tr of existing.values()) tr.remove();
}
