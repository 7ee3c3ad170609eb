/**
 * A small durable workflow for Deno: `deno run -A examples/deno.ts`.
 * State lives in ./task_db/deno.sqlite (SQLite in WASM); each run submits one more job,
 * and the count it prints shows the earlier ones kept. From JSR the imports are `jsr:@dagger/task-core` and
 * `jsr:@dagger/task-core/adapters/sqljs-file`.
 */
import { AgentRegistry, defineAgent, Executor } from "../mod.ts";
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

await Deno.mkdir("task_db", { recursive: true });
const storage = await openSqlJsFileStorage("task_db/deno.sqlite");
const executor = new Executor({ storage, registry: new AgentRegistry().register(words).register(sum) });
executor.start();
const job = await executor.submit({
  name: "word-count",
  tasks: [
    { key: "a", agent: "words", input: { text: "durable tasks in Deno" } },
    { key: "b", agent: "words", input: { text: "survive a killed process" } },
    { key: "total", agent: "sum", input: null, dependsOn: ["a", "b"] },
  ],
});
console.log(await job.wait());
console.log(`jobs stored so far: ${(await storage.listJobs()).length}`);
await executor.shutdown();
await storage.close();
