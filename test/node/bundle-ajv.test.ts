/**
 * ajv stays out of bundles that never define a JSON agent: a browser bundle of the
 * memory adapter plus plain agents must not contain it, from the sources (`mod.ts`) and
 * from the published build (`dist/`, emulated here with the same esbuild settings as tsup).
 */

import { build, type Metafile } from "esbuild";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, test } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const AJV = /node_modules\/(ajv|ajv-formats|fast-uri|json-schema-traverse|fast-deep-equal)\//;

/** Bundle `entry` for the browser; returns the files that put bytes in the output, and the output. */
async function bundle(entry: { path: string } | { contents: string; dir: string }) {
  const result = await build({
    ...("path" in entry
      ? { entryPoints: [entry.path] }
      : { stdin: { contents: entry.contents, resolveDir: entry.dir, loader: "ts" as const } }),
    bundle: true,
    write: false,
    format: "esm",
    platform: "browser",
    target: "es2022",
    metafile: true,
    logLevel: "silent",
    outfile: join(root, "out.js"),
  });
  const meta: Metafile = result.metafile;
  const output = Object.values(meta.outputs)[0];
  const files = Object.entries(output?.inputs ?? {}).filter(([, v]) => v.bytesInOutput > 0).map(([k]) => k);
  return { files, text: result.outputFiles[0]?.text ?? "" };
}

describe("bundles", () => {
  const temp: string[] = [];
  afterAll(() => {
    for (const dir of temp) rmSync(dir, { recursive: true, force: true });
  });

  test("a plain-agent bundle of mod.ts and adapters/memory.ts contains no ajv", async () => {
    const { files, text } = await bundle({ path: join(root, "examples/plain-agents.ts") });
    expect(files.some((f) => f.endsWith("src/registry.ts")), "the registry is in the bundle").toBe(true);
    expect(files.filter((f) => AJV.test(f))).toEqual([]);
    expect(files.filter((f) => /src\/(validation-ajv|json-agent)\.ts$/.test(f))).toEqual([]);
    expect(text).not.toMatch(/ajv/i);
  });

  test("a bundle that defines a JSON agent does contain ajv (the check above can fail)", async () => {
    const { files } = await bundle({
      dir: root,
      contents: `import { AgentRegistry, defineJsonAgent } from "./mod.ts";
        new AgentRegistry().register(defineJsonAgent({
          name: "j", description: "", inputSchema: { type: "string" }, outputSchema: true, execute: () => null,
        }));`,
    });
    expect(files.some((f) => /node_modules\/ajv\//.test(f))).toBe(true);
  });

  test("a plain-agent bundle of the published build (dist/) contains no ajv", async () => {
    // Build like tsup.config.ts: one entry per export, dependencies external, code splitting.
    mkdirSync(join(root, "node_modules/.cache"), { recursive: true });
    const dir = mkdtempSync(join(root, "node_modules/.cache/task-core-bundle-"));
    temp.push(dir);
    const deno = JSON.parse(readFileSync(join(root, "deno.json"), "utf8")) as { exports: Record<string, string> };
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
      sideEffects: boolean;
    };
    const entryPoints: Record<string, string> = {};
    for (const [key, src] of Object.entries(deno.exports)) {
      entryPoints[key === "." ? "mod" : key.replace(/^\.\//, "")] = join(root, src);
    }
    await build({
      entryPoints,
      bundle: true,
      splitting: true,
      format: "esm",
      platform: "neutral",
      target: "es2022",
      outdir: join(dir, "dist"),
      external: [...Object.keys(pkg.dependencies), "node:*"],
      logLevel: "silent",
    });
    writeFileSync(join(dir, "package.json"), JSON.stringify({ type: "module", sideEffects: pkg.sideEffects }));
    const { files, text } = await bundle({
      dir,
      contents: `import { AgentRegistry, defineAgent } from "./dist/mod.js";
        import { createMemoryStorage } from "./dist/adapters/memory.js";
        const registry = new AgentRegistry().register(defineAgent({ name: "a", description: "", execute: (x) => x }));
        console.log(registry.list(), createMemoryStorage());`,
    });
    expect(files.some((f) => f.endsWith("dist/mod.js")), "the build is in the bundle").toBe(true);
    expect(files.filter((f) => AJV.test(f))).toEqual([]);
    expect(text).not.toMatch(/ajv/i);
  });
});
