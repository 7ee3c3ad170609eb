/**
 * A smoke run on a real PostgreSQL server for the Deno and Bun shims: postgres.js, a fresh
 * schema, an executor running a small DAG (fan-out, join, a retried task), and a second
 * storage on the same schema woken through LISTEN/NOTIFY.
 */

import postgres from "postgres";
import { fromPostgresJs, openPostgresStorage } from "../../adapters/postgres.ts";
import { Executor } from "../../src/executor.ts";
import { deepEqual, equal, ok } from "../conformance/assert.ts";
import { agent, registryOf, until } from "../conformance/executor-kit.ts";
import { uniqueSchema } from "../targets-postgres.ts";

/** Run a job on the server at `url` and check its outputs; drops its schema afterwards. */
export async function postgresSmoke(url: string): Promise<void> {
  const sql = postgres(url, { max: 4, fetch_types: false, onnotice: () => {} });
  const other = postgres(url, { max: 2, fetch_types: false, onnotice: () => {} });
  const schema = uniqueSchema("smoke");
  try {
    const storage = await openPostgresStorage({ client: fromPostgresJs(sql), schema });
    const watcher = await openPostgresStorage({ client: fromPostgresJs(other), schema });
    let woken = 0;
    watcher.watch(() => woken++);
    let flaky = 0;
    const executor = new Executor({
      storage,
      registry: registryOf(
        agent("square", (n) => (n as number) ** 2),
        agent("flaky", () => {
          if (flaky++ === 0) throw new Error("first attempt fails");
          return "ok";
        }),
        agent("sum", async (_input, ctx) => {
          const outputs = await ctx.dependencyOutputs();
          return Object.values(outputs).reduce((a: number, b) => a + (b as number), 0);
        }),
      ),
      retry: { delayMs: 10 },
      pollIntervalMs: 100,
    });
    executor.start();
    const job = await executor.submit({
      name: "smoke",
      tasks: [
        { key: "a", agent: "square", input: 2 },
        { key: "b", agent: "square", input: 3 },
        { key: "c", agent: "square", input: 4 },
        { key: "total", agent: "sum", dependsOn: ["a", "b", "c"] },
        { key: "retry", agent: "flaky" },
      ],
    });
    deepEqual(await job.wait(), { a: 4, b: 9, c: 16, total: 29, retry: "ok" });
    await executor.shutdown();
    equal((await storage.getJob(job.id))!.status, "completed");
    await until(() => woken > 0, "a notification in the second storage");
    ok(woken > 0);
    await watcher.close();
    await storage.close();
  } finally {
    await sql.unsafe(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    await other.end({ timeout: 5 });
    await sql.end({ timeout: 5 });
  }
}
