import "fake-indexeddb/auto";
import { forceCloseDatabase } from "fake-indexeddb";
import { tmpdir } from "node:os";
import { test } from "vitest";
import { registerSqlJsSuites } from "../sqljs/suites.ts";
import { registerSuites } from "../suites.ts";
import {
  sqljsFileTarget,
  sqljsIndexedDbTarget,
  sqljsMemoryPersisterTarget,
  sqljsMemoryTarget,
} from "../targets-sqljs.ts";

const registrar = {
  test: (name: string, fn: () => Promise<void>) => test(name, fn),
  skip: (name: string) => test.todo(name),
};

const fakeIndexedDbTarget = sqljsIndexedDbTarget("sqljs+indexeddb(fake)");

registerSuites(registrar, [
  sqljsMemoryTarget,
  sqljsMemoryPersisterTarget,
  sqljsFileTarget(tmpdir()),
  fakeIndexedDbTarget,
]);
// fake-indexeddb closes a connection as the browser does when the site's data is cleared.
registerSqlJsSuites(registrar, tmpdir(), { forceCloseIndexedDb: (db) => forceCloseDatabase(db as never) });
