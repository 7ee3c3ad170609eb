import { test } from "vitest";
import { registerQueueSuite, registerSuites } from "../suites.ts";
import { memoryTarget } from "../targets.ts";

registerSuites({ test: (name, fn) => test(name, fn), skip: (name) => test.todo(name) }, [memoryTarget]);
registerQueueSuite({ test: (name, fn) => test(name, fn), skip: (name) => test.todo(name) });
