import "fake-indexeddb/auto";
import { test } from "bun:test";
import { forceCloseDatabase } from "fake-indexeddb";
import { tmpdir } from "node:os";
import { registerSqlJsSuites } from "../../sqljs/suites.ts";
import { registerSuites } from "../../suites.ts";
import {
  sqljsFileTarget,
  sqljsIndexedDbTarget,
  sqljsMemoryPersisterTarget,
  sqljsMemoryTarget,
} from "../../targets-sqljs.ts";

// As vitest.config.ts: bun's default of 5 s is less than some cases take (memory+latency: about 6 s).
const TIMEOUT_MS = 30_000;

const registrar = {
  test: (name: string, fn: () => Promise<void>) => test(name, fn, TIMEOUT_MS),
  skip: (name: string) => test.todo(name),
};

registerSuites(registrar, [
  sqljsMemoryTarget,
  sqljsMemoryPersisterTarget,
  sqljsFileTarget(tmpdir()),
  sqljsIndexedDbTarget("sqljs+indexeddb(fake)"),
]);
// fake-indexeddb closes a connection as the browser does when the site's data is cleared.
registerSqlJsSuites(registrar, tmpdir(), { forceCloseIndexedDb: (db) => forceCloseDatabase(db as never) });
