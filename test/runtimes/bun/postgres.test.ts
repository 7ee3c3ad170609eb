// The PostgreSQL adapter in Bun: the shared suites and the adapter's own cases against a
// real server (postgres.js), plus the end-to-end smoke run. PGlite runs in Node's suite.
import { afterAll, test } from "bun:test";
import { postgresSmoke } from "../../postgres/smoke.ts";
import { registerPostgresSuites } from "../../postgres/suites.ts";
import { registerSuites } from "../../suites.ts";
import { postgresJsDatabase, postgresTarget, testServerUrl } from "../../targets-postgres.ts";

const server = testServerUrl();
const registrar = {
  test: (name: string, fn: () => Promise<void>) => test(name, fn, 60_000),
  skip: (name: string) => test.todo(name),
};

if (server.url) {
  const real = postgresJsDatabase(server.url);
  afterAll(() => real.close());
  registerSuites(registrar, [postgresTarget(real)]);
  registerPostgresSuites(registrar, real);
  test("postgres: a job runs on a real server through postgres.js", () => postgresSmoke(server.url!), 30_000);
} else {
  test.skip(`postgres: every suite on a real server (skipped: ${server.skip})`, () => {});
}
