// The IndexedDB adapter's own cases (tabs, wake-ups, typed errors) against Chromium's `indexedDB`,
// and the shared suites with every claim stored as a claim record (conformance.test.ts runs
// them with the default, which keeps claims of 1-7 tasks in the rows).
import { test } from "vitest";
import { registerIndexedDbCases } from "../conformance/indexeddb.ts";
import { registerSuites } from "../suites.ts";
import { indexedDbTarget } from "../targets-indexeddb.ts";

const registrar = {
  test: (name: string, fn: () => Promise<void>) => test(name, fn),
  skip: (name: string) => test.todo(name),
};
registerIndexedDbCases(registrar, "indexeddb-chromium");
registerSuites(registrar, [indexedDbTarget("indexeddb-chromium-claim-records", { claimRecordFrom: 1 })]);
