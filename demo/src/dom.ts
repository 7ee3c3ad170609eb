/**
 * A tiny element builder, so the views stay short and never assemble HTML strings.
 *
 * @module
 */

/** Attributes and properties of {@link h}: `class`, `text`, `on<event>` handlers, anything else as an attribute. */
export type Props = Record<string, string | number | boolean | null | undefined | EventListener>;

/** A child: an element, a text, or nothing. */
export type Child = Node | string | number | null | undefined | false;

function apply(el: Element, props: Props): void {
  for (const [name, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "text") el.textContent = String(value);
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else el.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(el: Element, children: readonly Child[]): void {
  const doc = el.ownerDocument;
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    el.append(typeof c === "object" ? c : doc.createTextNode(String(c)));
  }
}

/** Create an HTML element in `doc`. */
export function h<K extends keyof HTMLElementTagNameMap>(
  doc: Document,
  tag: K,
  props: Props = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = doc.createElement(tag);
  apply(el, props);
  append(el, children);
  return el;
}

/** The SVG namespace. */
export const SVG_NS = "http://www.w3.org/2000/svg";

/** Create an SVG element in `doc`. */
export function s<K extends keyof SVGElementTagNameMap>(
  doc: Document,
  tag: K,
  props: Props = {},
  ...children: Child[]
): SVGElementTagNameMap[K] {
  const el = doc.createElementNS(SVG_NS, tag) as SVGElementTagNameMap[K];
  apply(el, props);
  append(el, children);
  return el;
}
