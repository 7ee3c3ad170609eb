import "fake-indexeddb/auto";
import { test } from "bun:test";
import { registerIndexedDbCases } from "../../conformance/indexeddb.ts";
import { registerSuites } from "../../suites.ts";
import { indexedDbTarget } from "../../targets-indexeddb.ts";

// As vitest.config.ts: bun's default of 5 s is less than some cases take (memory+latency: about 6 s).
const TIMEOUT_MS = 30_000;

const registrar = {
  test: (name: string, fn: () => Promise<void>) => test(name, fn, TIMEOUT_MS),
  skip: (name: string) => test.todo(name),
};
registerSuites(registrar, [
  indexedDbTarget("indexeddb-fake"),
  // Every claim stored as a claim record (the default keeps claims of 1-7 tasks in the rows).
  indexedDbTarget("indexeddb-fake-claim-records", { claimRecordFrom: 1 }),
]);
registerIndexedDbCases(registrar, "indexeddb-fake");
