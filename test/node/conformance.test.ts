import { test } from "vitest";
import { registerCoreSuites, registerSuites } from "../suites.ts";
import { memoryTarget } from "../targets.ts";

registerSuites({ test: (name, fn) => test(name, fn), skip: (name) => test.todo(name) }, [memoryTarget]);
registerCoreSuites({ test: (name, fn) => test(name, fn), skip: (name) => test.todo(name) });
