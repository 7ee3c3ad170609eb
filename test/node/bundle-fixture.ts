/**
 * Bundle a TypeScript fixture into one ESM file a plain `node` child can run (as
 * `scripts/run-ts.mjs` does for commands): packages stay external, so the output must sit
 * where it resolves them from the repository's node_modules (or pass `nodePaths`).
 */
import { build } from "esbuild";

export async function bundleFixture(entry: string, outfile: string, nodePaths?: string[]): Promise<void> {
  await build({
    entryPoints: [entry],
    outfile,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    logLevel: "error",
    ...(nodePaths ? { nodePaths } : {}),
  });
}
