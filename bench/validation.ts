/**
 * What task-core's validation wrapper costs over calling ajv directly, for a typical
 * 10-field schema compiled once. Run with one of:
 *
 *   node_modules/.bin/bun bench/validation.ts          (npm run bench:validation)
 *   node_modules/.bin/deno run -A bench/validation.ts
 *
 * Variants, interleaved round by round so that they share the machine's state:
 * - `ajv direct`: the function `new Ajv(...).compile(schema)` returns, called on the value;
 * - `compiled validator`: what `createAjvValidator().compile(schema)` returns;
 * - `registry.validateInput`: the executor's hot path (lookup by name + compiled validator);
 * - the same with two agents alternating, against two ajv functions alternating.
 * The same ajv options are used everywhere. Prints a table and the ratio, and writes
 * `bench/results/validation-<runtime>.json`.
 */

import { Ajv } from "ajv";
import { mkdirSync, writeFileSync } from "node:fs";
import { defineJsonAgent } from "../src/json-agent.ts";
import { AgentRegistry } from "../src/registry.ts";
import { createAjvValidator } from "../src/validation-ajv.ts";

const schema = {
  type: "object",
  properties: {
    id: { type: "string", pattern: "^[0-9a-z]{8,32}$" },
    name: { type: "string", minLength: 1, maxLength: 200 },
    email: { type: "string", maxLength: 320 },
    age: { type: "integer", minimum: 0, maximum: 150 },
    active: { type: "boolean" },
    score: { type: "number", minimum: 0, maximum: 1 },
    role: { enum: ["admin", "editor", "viewer"] },
    tags: { type: "array", items: { type: "string" }, maxItems: 20 },
    nickname: { type: ["string", "null"] },
    address: {
      type: "object",
      properties: { city: { type: "string" }, zip: { type: "string" } },
      required: ["city"],
    },
  },
  required: ["id", "name", "email", "age", "active", "role"],
  additionalProperties: false,
} as const;

const valid = {
  id: "01hx3k9v2m",
  name: "Ada Lovelace",
  email: "ada@example.com",
  age: 36,
  active: true,
  score: 0.75,
  role: "admin",
  tags: ["math", "engines"],
  nickname: null,
  address: { city: "London", zip: "W1" },
};

/** The options createAjvValidator uses by default. */
const ajv = new Ajv({
  allErrors: true,
  allowUnionTypes: true,
  strictSchema: true,
  strictNumbers: true,
  strictTypes: false,
  strictTuples: false,
  strictRequired: false,
  logger: false,
});
const ajvValidate = ajv.compile(schema);
// The wrapper compiles with the same ajv instance, so every variant calls the very same
// generated function (ajv caches compilations by schema object).
const validator = createAjvValidator({ ajv });
const compiled = validator.compile(schema);
const registry = new AgentRegistry({ validator });
for (const name of ["user", "member"]) {
  registry.register(
    defineJsonAgent({
      name,
      description: "Stores a user",
      inputSchema: { ...schema },
      outputSchema: true,
      execute: () => null,
    }),
  );
}
// A second schema object, compiled separately, for the interleaved baseline.
const ajvValidate2 = ajv.compile({ ...schema });

// Agent names as the executor has them: read from stored task records, not literals.
const [userName, memberName] = JSON.parse('["user", "member"]') as [string, string];

let sink = 0;
const variants: Record<string, (n: number) => void> = {
  "ajv direct": (n) => {
    for (let i = 0; i < n; i++) if (ajvValidate(valid)) sink++;
  },
  "compiled validator": (n) => {
    for (let i = 0; i < n; i++) if (compiled(valid).length === 0) sink++;
  },
  "registry.validateInput": (n) => {
    for (let i = 0; i < n; i++) {
      registry.validateInput(userName, valid);
      sink++;
    }
  },
  "ajv direct, 2 schemas alternating": (n) => {
    for (let i = 0; i < n; i++) if ((i & 1 ? ajvValidate2 : ajvValidate)(valid)) sink++;
  },
  "registry.validateInput, 2 agents alternating": (n) => {
    for (let i = 0; i < n; i++) {
      registry.validateInput(i & 1 ? memberName : userName, valid);
      sink++;
    }
  },
};
/** Which variant each one is compared with. */
const baseline: Record<string, string> = {
  "registry.validateInput, 2 agents alternating": "ajv direct, 2 schemas alternating",
};

const ROUNDS = 40;
const BATCH = 100_000;
const runtime = "Deno" in globalThis ? "deno" : "Bun" in globalThis ? "bun" : "node";

// Warm up every variant (JIT) before measuring.
for (const run of Object.values(variants)) run(BATCH);

const names = Object.keys(variants);
const samples: Record<string, number[]> = {};
for (let round = 0; round < ROUNDS; round++) {
  // Rotate the order each round so no variant always runs first.
  for (let k = 0; k < names.length; k++) {
    const name = names[(round + k) % names.length] as string;
    const start = performance.now();
    variants[name]?.(BATCH);
    const ms = performance.now() - start;
    (samples[name] ??= []).push(BATCH / (ms / 1000));
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid] as number : ((s[mid - 1] as number) + (s[mid] as number)) / 2;
}

// Ratios are paired by round (both variants ran back to back), which cancels most of the
// drift of a shared machine; the reported ratio is the median of the per-round ratios.
const rows = names.map((name) => {
  const xs = samples[name] ?? [];
  const base = baseline[name] ?? (name.includes("alternating") ? name : "ajv direct");
  const ys = samples[base] ?? [];
  return {
    variant: name,
    "validations/s (median)": Math.round(median(xs)),
    "vs": base,
    "ratio (median of rounds)": Number(median(xs.map((x, i) => x / (ys[i] ?? x))).toFixed(3)),
  };
});
console.log(`validation benchmark (${runtime}, ${ROUNDS} rounds x ${BATCH} valid values, 10-field schema)`);
console.table(rows);
const ratioOf = (name: string): number => rows.find((r) => r.variant === name)?.["ratio (median of rounds)"] ?? 0;
const ratio = ratioOf("registry.validateInput");
const interleaved = ratioOf("registry.validateInput, 2 agents alternating");
for (const [label, r] of [["one agent", ratio], ["2 agents alternating", interleaved]] as const) {
  const overhead = (1 - r) * 100;
  console.log(
    `registry.validateInput / ajv direct (${label}) = ${r.toFixed(3)} ` +
      `(wrapper cost ${overhead.toFixed(1)}%, budget 10%): ${overhead < 10 ? "OK" : "OVER BUDGET"}`,
  );
}

mkdirSync(new URL("./results/", import.meta.url), { recursive: true });
writeFileSync(
  new URL(`./results/validation-${runtime}.json`, import.meta.url),
  JSON.stringify(
    { benchmark: "validation", runtime, rounds: ROUNDS, batch: BATCH, rows, ratio, interleaved, sink },
    null,
    2,
  ) +
    "\n",
);
