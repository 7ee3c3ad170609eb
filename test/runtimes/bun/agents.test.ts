import { test } from "bun:test";
import { registerAgentSuite } from "../../conformance/agents.ts";

registerAgentSuite({ test: (name, fn) => test(name, fn, 30_000), skip: (name) => test.todo(name) });
