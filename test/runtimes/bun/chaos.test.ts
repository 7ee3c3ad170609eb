// The reliability suites (chaos, hostile input, robustness, stress) on every adapter in Bun.
import "fake-indexeddb/auto";
import { test } from "bun:test";
import { registerReliabilitySuites } from "../../chaos/suites.ts";
import { memoryReliabilityTarget } from "../../chaos/targets.ts";
import { indexedDbReliabilityTarget } from "../../chaos/targets-indexeddb.ts";
import { sqljsReliabilityTarget } from "../../chaos/targets-sqljs.ts";

registerReliabilitySuites(
  // bun's default timeout is 5 s; a case waits for jobs for up to 20 s under faults.
  { test: (name, fn) => test(name, fn, 30_000), skip: (name) => test.todo(name) },
  [memoryReliabilityTarget, sqljsReliabilityTarget, indexedDbReliabilityTarget("indexeddb-fake")],
  { stress: { memory: { tasks: 5000 }, sqljs: { tasks: 5000 } } },
);
