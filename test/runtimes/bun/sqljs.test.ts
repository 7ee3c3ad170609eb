import { test } from "bun:test";
import { tmpdir } from "node:os";
import { registerSqlJsSuites } from "../../sqljs/suites.ts";
import { registerSuites } from "../../suites.ts";
import { sqljsFileTarget, sqljsMemoryPersisterTarget, sqljsMemoryTarget } from "../../targets-sqljs.ts";

const registrar = {
  // The 30 s vitest gives every case (Bun's default is 5 s, which the longer cases come near
  // on a busy machine).
  test: (name: string, fn: () => Promise<void>) => test(name, fn, 30_000),
  skip: (name: string) => test.todo(name),
};

registerSuites(registrar, [sqljsMemoryTarget, sqljsMemoryPersisterTarget, sqljsFileTarget(tmpdir())]);
registerSqlJsSuites(registrar, tmpdir());
