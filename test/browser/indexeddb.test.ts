// The IndexedDB adapter's own cases (tabs, wake-ups, typed errors) against Chromium's `indexedDB`.
import { test } from "vitest";
import { registerIndexedDbCases } from "../conformance/indexeddb.ts";

registerIndexedDbCases({ test: (name, fn) => test(name, fn), skip: (name) => test.todo(name) }, "indexeddb-chromium");
