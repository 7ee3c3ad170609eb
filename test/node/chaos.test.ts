// The reliability suites (chaos, hostile input, robustness, stress) on every adapter in Node.
import "fake-indexeddb/auto";
import { test } from "vitest";
import { registerReliabilitySuites } from "../chaos/suites.ts";
import { memoryReliabilityTarget } from "../chaos/targets.ts";
import { indexedDbReliabilityTarget } from "../chaos/targets-indexeddb.ts";
import { sqljsReliabilityTarget } from "../chaos/targets-sqljs.ts";

registerReliabilitySuites(
  { test: (name, fn) => test(name, fn), skip: (name) => test.todo(name) },
  [memoryReliabilityTarget, sqljsReliabilityTarget, indexedDbReliabilityTarget("indexeddb-fake")],
  { stress: { memory: { tasks: 5000 }, sqljs: { tasks: 5000 } } },
);
