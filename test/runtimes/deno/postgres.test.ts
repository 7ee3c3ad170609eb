// The PostgreSQL adapter in Deno: the shared suites and the adapter's own cases against a
// real server (postgres.js), plus the end-to-end smoke run. PGlite runs in Node's suite.
import { postgresSmoke } from "../../postgres/smoke.ts";
import { registerPostgresSuites } from "../../postgres/suites.ts";
import { registerSuites } from "../../suites.ts";
import { postgresJsDatabase, postgresTarget, testServerUrl } from "../../targets-postgres.ts";

const server = testServerUrl();
const registrar = {
  test: (name: string, fn: () => Promise<void>) =>
    Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false }),
  skip: (name: string, reason: string) => Deno.test({ name, ignore: reason.length > 0, fn: () => {} }),
};

if (server.url) {
  const real = postgresJsDatabase(server.url);
  registerSuites(registrar, [postgresTarget(real)]);
  registerPostgresSuites(registrar, real);
  Deno.test({
    name: "postgres: a job runs on a real server through postgres.js",
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () => postgresSmoke(server.url!),
  });
  // Deno has no afterAll: the last test of the file closes the shared pools.
  Deno.test({
    name: "postgres: the shared connections close",
    sanitizeOps: false,
    sanitizeResources: false,
    fn: () => real.close(),
  });
} else {
  Deno.test({
    name: `postgres: every suite on a real server (skipped: ${server.skip})`,
    ignore: true,
    fn: () => {},
  });
}
