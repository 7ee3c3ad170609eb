// The IndexedDB adapter's own cases (tabs, wake-ups, typed errors) against Chromium's `indexedDB`,
// and the shared suites with every claim stored as a claim record (conformance.test.ts runs
// them with the default, which keeps claims of 1-7 tasks in the rows).
import { expect, test } from "vitest";
import { openIndexedDbStorage } from "../../adapters/indexeddb.ts";
import { registerIndexedDbCases } from "../conformance/indexeddb.ts";
import { registerSuites } from "../suites.ts";
import { deleteDatabase, indexedDbTarget, testFactory, uniqueDbName } from "../targets-indexeddb.ts";

const registrar = {
  test: (name: string, fn: () => Promise<void>) => test(name, fn),
  skip: (name: string) => test.todo(name),
};
registerIndexedDbCases(registrar, "indexeddb-chromium");
registerSuites(registrar, [indexedDbTarget("indexeddb-chromium-claim-records", { claimRecordFrom: 1 })]);

test("a page notes its IndexedDB databases in localStorage by default: a database deleted since is reported recreated", async () => {
  const name = uniqueDbName("task-core-markers");
  const key = `task-core:indexeddb:${name}`;
  try {
    const first = await openIndexedDbStorage({ name });
    expect(first.openReport).toEqual({ created: true, recreated: false });
    expect(localStorage.getItem(key)).not.toBeNull();
    await first.close();
    await deleteDatabase(testFactory(), name);
    const after = await openIndexedDbStorage({ name });
    expect(after.openReport).toEqual({ created: true, recreated: true });
    await after.close();
  } finally {
    localStorage.removeItem(key);
    await deleteDatabase(testFactory(), name);
  }
});
