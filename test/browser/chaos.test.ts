// The reliability suites (chaos, hostile input, robustness) on real Chromium IndexedDB.
import { test } from "vitest";
import { registerReliabilitySuites } from "../chaos/suites.ts";
import { indexedDbReliabilityTarget } from "../chaos/targets-indexeddb.ts";

registerReliabilitySuites(
  { test: (name, fn) => test(name, fn), skip: (name) => test.todo(name) },
  [indexedDbReliabilityTarget("indexeddb-chromium")],
);
