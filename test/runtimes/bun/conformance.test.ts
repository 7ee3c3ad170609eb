import { test } from "bun:test";
import { registerCoreSuites, registerSuites } from "../../suites.ts";
import { latencyTarget, memoryTarget } from "../../targets.ts";

// As vitest.config.ts: bun's default of 5 s is less than some cases take (memory+latency: about 6 s).
const TIMEOUT_MS = 30_000;

registerSuites({ test: (name, fn) => test(name, fn, TIMEOUT_MS), skip: (name) => test.todo(name) }, [
  memoryTarget,
  latencyTarget,
]);
registerCoreSuites({ test: (name, fn) => test(name, fn, TIMEOUT_MS), skip: (name) => test.todo(name) });
