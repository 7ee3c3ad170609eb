// The reliability suites (chaos, hostile input, robustness, stress) on every adapter in Deno.
import "fake-indexeddb/auto";
import { registerReliabilitySuites } from "../../chaos/suites.ts";
import { memoryReliabilityTarget } from "../../chaos/targets.ts";
import { indexedDbReliabilityTarget } from "../../chaos/targets-indexeddb.ts";
import { sqljsReliabilityTarget } from "../../chaos/targets-sqljs.ts";

registerReliabilitySuites(
  {
    test: (name, fn) => Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false }),
    skip: (name, reason) => Deno.test({ name, ignore: reason.length > 0, fn: () => {} }),
  },
  [memoryReliabilityTarget, sqljsReliabilityTarget, indexedDbReliabilityTarget("indexeddb-fake")],
  { stress: { memory: { tasks: 5000 }, sqljs: { tasks: 5000 } } },
);
