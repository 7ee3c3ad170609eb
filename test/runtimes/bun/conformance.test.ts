import { test } from "bun:test";
import { registerCoreSuites, registerSuites } from "../../suites.ts";
import { memoryTarget } from "../../targets.ts";

registerSuites({ test: (name, fn) => test(name, fn, 30_000), skip: (name) => test.todo(name) }, [memoryTarget]);
registerCoreSuites({ test: (name, fn) => test(name, fn, 30_000), skip: (name) => test.todo(name) });
