// What the browser end-to-end tests share: a TypeScript entry bundled for the page, and a
// loopback server of one page (`/`, any query), its scripts and sql.js's WASM files.
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const root = fileURLToPath(new URL("../..", import.meta.url));

/** `entry` (a path from the repository root) bundled as one ES module for `platform`. */
export async function bundle(entry, platform = "browser") {
  const { build } = await import("esbuild");
  const out = await build({
    entryPoints: [join(root, entry)],
    bundle: true,
    format: "esm",
    platform,
    target: "es2022",
    write: false,
    logLevel: "error",
  });
  return out.outputFiles[0].text;
}

/**
 * Serve a page titled `title` that loads `/page.js`, on a free loopback port. `scripts`
 * maps paths (`/page.js`, `/worker.js`) to module text; `/sqljs/<file>.wasm` serves sql.js's
 * WASM builds. Answers `{ origin, close }`.
 */
export async function servePage(title, scripts) {
  const html = `<!doctype html><meta charset="utf-8"><title>${title}</title>
<script type="module" src="/page.js"></script>`;
  const server = createServer((req, res) => {
    const url = req.url ?? "";
    if (Object.hasOwn(scripts, url)) res.writeHead(200, { "content-type": "text/javascript" }).end(scripts[url]);
    else if (/^\/sqljs\/[\w.-]+\.wasm$/.test(url)) {
      const file = join(root, "node_modules/sql.js/dist", url.slice("/sqljs/".length));
      res.writeHead(200, { "content-type": "application/wasm" }).end(readFileSync(file));
    } else if (url === "/" || url.startsWith("/?")) res.writeHead(200, { "content-type": "text/html" }).end(html);
    else if (url === "/favicon.ico") res.writeHead(204).end();
    else res.writeHead(404).end();
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}
