import { registerCoreSuites, registerSuites } from "../../suites.ts";
import { latencyTarget, memoryTarget } from "../../targets.ts";

registerSuites({
  test: (name, fn) => Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false }),
  skip: (name, reason) => Deno.test({ name, ignore: reason.length > 0, fn: () => {} }),
}, [memoryTarget, latencyTarget]);
registerCoreSuites({
  test: (name, fn) => Deno.test({ name, fn, sanitizeOps: false, sanitizeResources: false }),
  skip: (name, reason) => Deno.test({ name, ignore: reason.length > 0, fn: () => {} }),
});
