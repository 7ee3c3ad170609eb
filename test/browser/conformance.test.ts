// The shared suites in real Chromium, against the memory adapter and the real `indexedDB`.
import { test } from "vitest";
import { registerCoreSuites, registerSuites } from "../suites.ts";
import { indexedDbTarget } from "../targets-indexeddb.ts";
import { memoryTarget } from "../targets.ts";

registerSuites({ test: (name, fn) => test(name, fn), skip: (name) => test.todo(name) }, [
  memoryTarget,
  indexedDbTarget("indexeddb-chromium"),
]);
registerCoreSuites({ test: (name, fn) => test(name, fn), skip: (name) => test.todo(name) });
