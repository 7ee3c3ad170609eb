/**
 * `npm run stress`: the reliability suites at full size in Node, outside the test runner
 * (CI runs them at 5,000 tasks and one seed through the shims). Stress: 20,000 tasks on
 * memory and on sql.js, 50,000 on memory with 8 executors; chaos: 20 seeds on every target. Prints one line per case
 * and a summary; exits with 1 when a case fails.
 *
 * Usage: node scripts/run-ts.mjs test/chaos/run-stress.ts [seeds] [filter]
 */

import "fake-indexeddb/auto";
import process from "node:process";
import type { Registrar } from "../conformance/harness.ts";
import { registerReliabilitySuites } from "./suites.ts";
import { memoryReliabilityTarget } from "./targets.ts";
import { indexedDbReliabilityTarget } from "./targets-indexeddb.ts";
import { sqljsReliabilityTarget } from "./targets-sqljs.ts";

const seedCount = Number(process.argv[2] ?? 20);
const filter = process.argv[3] ?? "";
const tests: { name: string; fn: () => Promise<void> }[] = [];
const registrar: Registrar = {
  test: (name, fn) => {
    if (name.includes(filter)) tests.push({ name, fn });
  },
  skip: () => {},
};

const targets = [memoryReliabilityTarget, sqljsReliabilityTarget, indexedDbReliabilityTarget("indexeddb-fake")];
registerReliabilitySuites(registrar, targets, {
  only: ["stress"],
  stress: { memory: { tasks: 20_000, perJob: 100 }, sqljs: { tasks: 20_000, perJob: 100 } },
});
registerReliabilitySuites(registrar, [{ ...memoryReliabilityTarget, name: "memory-8" }], {
  only: ["stress"],
  stress: { "memory-8": { tasks: 50_000, executors: 8, perJob: 200, seed: 11 } },
});
registerReliabilitySuites(registrar, targets, {
  only: ["chaos"],
  seeds: Array.from({ length: seedCount }, (_, i) => i + 1),
});

let failed = 0;
const started = performance.now();
for (const t of tests) {
  const t0 = performance.now();
  try {
    await t.fn();
    console.log(`ok   ${(performance.now() - t0).toFixed(0).padStart(6)} ms  ${t.name}`);
  } catch (e) {
    failed++;
    console.log(
      `FAIL ${(performance.now() - t0).toFixed(0).padStart(6)} ms  ${t.name}\n     ${(e as Error)?.stack ?? e}`,
    );
  }
}
const seconds = ((performance.now() - started) / 1000).toFixed(1);
console.log(`\n${tests.length - failed} passed, ${failed} failed, in ${seconds} s`);
process.exit(failed > 0 ? 1 : 0);
