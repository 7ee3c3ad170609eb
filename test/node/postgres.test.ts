import { afterAll, beforeAll, test } from "vitest";
import { registerPostgresSuites } from "../postgres/suites.ts";
import { registerSuites } from "../suites.ts";
import { pgliteDatabase, postgresJsDatabase, postgresTarget, testServerUrl } from "../targets-postgres.ts";

// Every statement of PGlite runs in WASM on the test's own thread: a case of thousands of
// commits takes 16 s alone and twice that on a machine loaded by other work, so these cases
// get more than vitest's 30 s (they assert behaviour, never time).
const registrar = {
  test: (name: string, fn: () => Promise<void>) => test(name, fn, 120_000),
  skip: (name: string) => test.skip(name),
};

const server = testServerUrl();
const pglite = pgliteDatabase();
const real = server.url ? postgresJsDatabase(server.url) : undefined;
// Starting PGlite (WASM) takes seconds on a loaded machine: not inside a case's timeout.
beforeAll(async () => {
  await pglite.client();
}, 120_000);
afterAll(async () => {
  await real?.close();
  await pglite.close();
});

if (real) {
  registerSuites(registrar, [postgresTarget(real)]);
  registerPostgresSuites(registrar, real);
} else {
  test.skip(`postgres (real server): every suite (skipped: ${server.skip})`, () => {});
}
registerSuites(registrar, [postgresTarget(pglite)]);
registerPostgresSuites(registrar, pglite);
