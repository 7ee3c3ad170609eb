import { test } from "bun:test";
import { postgresSmoke } from "../../postgres/smoke.ts";
import { testServerUrl } from "../../targets-postgres.ts";

const server = testServerUrl();
if (server.url) {
  test("postgres: a job runs on a real server through postgres.js", () => postgresSmoke(server.url!), 30_000);
} else {
  test.skip(`postgres: a job runs on a real server through postgres.js (skipped: ${server.skip})`, () => {});
}
