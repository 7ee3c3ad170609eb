import { test } from "bun:test";
import { registerAgentSuite } from "../../conformance/agents.ts";

// As vitest.config.ts: bun's default of 5 s is less than some cases take (memory+latency: about 6 s).
const TIMEOUT_MS = 30_000;

registerAgentSuite({ test: (name, fn) => test(name, fn, TIMEOUT_MS), skip: (name) => test.todo(name) });
