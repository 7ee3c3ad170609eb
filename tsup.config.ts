import { defineConfig } from "tsup";

/** One entry per export; scripts/check-exports.ts checks this list against deno.json and package.json. */
export const entries: Record<string, string> = {
  "mod": "mod.ts",
  "adapters/memory": "adapters/memory.ts",
  "adapters/sqljs": "adapters/sqljs.ts",
  "adapters/sqljs-file": "adapters/sqljs-file.ts",
  "adapters/indexeddb": "adapters/indexeddb.ts",
  "adapters/postgres": "adapters/postgres.ts",
};

export default defineConfig({
  entry: entries,
  format: ["esm"],
  dts: true,
  clean: true,
  platform: "neutral",
  target: "es2022",
  sourcemap: true,
  splitting: true,
  external: ["idb", "sql.js", "ajv", "ajv-formats", /^node:/],
});
