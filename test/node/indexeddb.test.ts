import "fake-indexeddb/auto";
import { test } from "vitest";
import { registerIndexedDbCases } from "../conformance/indexeddb.ts";
import { registerSuites } from "../suites.ts";
import { indexedDbTarget } from "../targets-indexeddb.ts";

const registrar = {
  test: (name: string, fn: () => Promise<void>) => test(name, fn),
  skip: (name: string) => test.todo(name),
};
registerSuites(registrar, [indexedDbTarget("indexeddb-fake")]);
registerIndexedDbCases(registrar, "indexeddb-fake");
