import "fake-indexeddb/auto";
import { test } from "bun:test";
import { registerIndexedDbCases } from "../../conformance/indexeddb.ts";
import { registerSuites } from "../../suites.ts";
import { indexedDbTarget } from "../../targets-indexeddb.ts";

const registrar = {
  // The 30 s vitest gives every case (Bun's default is 5 s: the 3,000-task queue case takes
  // 3-4 s on fake-indexeddb alone, more on a busy machine).
  test: (name: string, fn: () => Promise<void>) => test(name, fn, 30_000),
  skip: (name: string) => test.todo(name),
};
registerSuites(registrar, [
  indexedDbTarget("indexeddb-fake"),
  // Every claim stored as a claim record (the default keeps claims of 1-7 tasks in the rows).
  indexedDbTarget("indexeddb-fake-claim-records", { claimRecordFrom: 1 }),
]);
registerIndexedDbCases(registrar, "indexeddb-fake");
