import { registerAgentSuite } from "../../conformance/agents.ts";

registerAgentSuite({
  test: (name, fn) => Deno.test({ name, fn }),
  skip: (name, reason) => Deno.test({ name, ignore: reason.length > 0, fn: () => {} }),
});
