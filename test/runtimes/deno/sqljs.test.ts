import { tmpdir } from "node:os";
import { registerSqlJsSuites } from "../../sqljs/suites.ts";
import { registerSuites } from "../../suites.ts";
import { sqljsFileTarget, sqljsMemoryPersisterTarget, sqljsMemoryTarget } from "../../targets-sqljs.ts";

const registrar = {
  test: (name: string, fn: () => Promise<void>) =>
    Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false }),
  skip: (name: string, reason: string) => Deno.test({ name, ignore: reason.length > 0, fn: () => {} }),
};
const tmp = tmpdir();

registerSuites(registrar, [sqljsMemoryTarget, sqljsMemoryPersisterTarget, sqljsFileTarget(tmp)]);
registerSqlJsSuites(registrar, tmp);
