import { test } from "bun:test";
import { tmpdir } from "node:os";
import { registerSqlJsSuites } from "../../sqljs/suites.ts";
import { registerSuites } from "../../suites.ts";
import { sqljsFileTarget, sqljsMemoryPersisterTarget, sqljsMemoryTarget } from "../../targets-sqljs.ts";

const registrar = {
  test: (name: string, fn: () => Promise<void>) => test(name, fn),
  skip: (name: string) => test.todo(name),
};

registerSuites(registrar, [sqljsMemoryTarget, sqljsMemoryPersisterTarget, sqljsFileTarget(tmpdir())]);
registerSqlJsSuites(registrar, tmpdir());
