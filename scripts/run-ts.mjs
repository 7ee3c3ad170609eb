// Runs a TypeScript file in Node: bundles it with esbuild (ESM, node platform, packages
// left external) into a temporary file next to it, then imports that file.
// Usage: node scripts/run-ts.mjs bench/throughput.ts [args...]
import { build } from "esbuild";
import { rm } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { pathToFileURL } from "node:url";

const entry = resolve(process.argv[2] ?? "");
const out = join(dirname(entry), `.${basename(entry, ".ts")}.${process.pid}.run.mjs`);
await build({
  entryPoints: [entry],
  outfile: out,
  bundle: true,
  format: "esm",
  platform: "node",
  target: "node20",
  packages: "external",
  logLevel: "error",
});
process.argv.splice(2, 1);
try {
  await import(pathToFileURL(out).href);
} finally {
  await rm(out, { force: true });
}
