import { postgresSmoke } from "../../postgres/smoke.ts";
import { testServerUrl } from "../../targets-postgres.ts";

const server = testServerUrl();
Deno.test({
  name: server.url
    ? "postgres: a job runs on a real server through postgres.js"
    : `postgres: a job runs on a real server through postgres.js (skipped: ${server.skip})`,
  ignore: !server.url,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: () => postgresSmoke(server.url!),
});
