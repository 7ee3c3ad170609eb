import "fake-indexeddb/auto";
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

const registrar = {
  test: (name: string, fn: () => Promise<void>) =>
    Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false }),
  skip: (name: string, reason: string) => Deno.test({ name, ignore: reason.length > 0, fn: () => {} }),
};
const tmp = tmpdir();

registerSuites(registrar, [
  sqljsMemoryTarget,
  sqljsMemoryPersisterTarget,
  sqljsFileTarget(tmp),
  sqljsIndexedDbTarget("sqljs+indexeddb(fake)"),
]);
// fake-indexeddb closes a connection as the browser does when the site's data is cleared.
registerSqlJsSuites(registrar, tmp, { forceCloseIndexedDb: (db) => forceCloseDatabase(db as never) });
