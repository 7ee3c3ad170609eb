import { test } from "vitest";
import { registerCoreSuites, registerSuites } from "../suites.ts";
import { latencyTarget, memoryTarget } from "../targets.ts";

registerSuites({ test: (name, fn) => test(name, fn), skip: (name) => test.todo(name) }, [memoryTarget, latencyTarget]);
registerCoreSuites({ test: (name, fn) => test(name, fn), skip: (name) => test.todo(name) });
