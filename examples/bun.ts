/**
 * A small durable workflow for Bun: `bun run examples/bun.ts`.
 * State lives in ./task_db/bun.sqlite (SQLite in WASM); each run submits one more job,
 * and the count it prints shows the earlier ones kept. From npm the imports are `@dagger/task-core` and
 * `@dagger/task-core/adapters/sqljs-file`.
 */
import { AgentRegistry, defineAgent, Executor } from "../mod.ts";
import { mkdirSync } from "node:fs";
import { openSqlJsFileStorage } from "../adapters/sqljs-file.ts";

const words = defineAgent({
  name: "words",
  description: "Counts the words of a text",
  execute: (input: { text: string }) => input.text.split(/\s+/).filter(Boolean).length,
});
const sum = defineAgent({
  name: "sum",
  description: "Adds up its dependencies' outputs",
  execute: async (_input: null, ctx) =>
    Object.values(await ctx.dependencyOutputs()).reduce((a: number, b) => a + (b as number), 0),
});

mkdirSync("task_db", { recursive: true });
const storage = await openSqlJsFileStorage("task_db/bun.sqlite");
const executor = new Executor({ storage, registry: new AgentRegistry().register(words).register(sum) });
executor.start();
const job = await executor.submit({
  name: "word-count",
  tasks: [
    { key: "a", agent: "words", input: { text: "durable tasks in Bun" } },
    { key: "b", agent: "words", input: { text: "survive a killed process" } },
    { key: "total", agent: "sum", input: null, dependsOn: ["a", "b"] },
  ],
});
console.log(await job.wait());
console.log(`jobs stored so far: ${(await storage.listJobs()).length}`);
await executor.shutdown();
await storage.close();
