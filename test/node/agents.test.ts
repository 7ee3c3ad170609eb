import { test } from "vitest";
import { registerAgentSuite } from "../conformance/agents.ts";

registerAgentSuite({ test: (name, fn) => test(name, fn), skip: (name) => test.todo(name) });
