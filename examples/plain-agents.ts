/**
 * Plain agents with the memory storage: the smallest browser-friendly setup. A bundle of
 * this file contains no ajv (test/node/bundle-ajv.test.ts checks it), because nothing
 * here defines a JSON agent.
 *
 * Run with `node_modules/.bin/deno run examples/plain-agents.ts` or `node_modules/.bin/bun examples/plain-agents.ts`.
 */

import { createMemoryStorage } from "../adapters/memory.ts";
import { AgentRegistry, defineAgent } from "../mod.ts";

const add = defineAgent({
  name: "add",
  description: "Adds two numbers",
  execute: (input: { a: number; b: number }) => input.a + input.b,
});

const shout = defineAgent({
  name: "shout",
  description: "Upper-cases a text",
  execute: (input: { text: string }) => input.text.toUpperCase(),
});

const registry = new AgentRegistry()
  .register(add, { version: "1.0.0", tags: ["math"] })
  .register(shout, { version: "1.0.0", tags: ["text"] });

const storage = createMemoryStorage();
for (const info of registry.list()) {
  console.log(`${info.name} ${info.metadata.version ?? ""}: ${info.description}`);
}
registry.validateInput("add", { a: 1, b: 2 });
console.log(await add.execute({ a: 1, b: 2 }, undefined as never));
await storage.close();
