// Imports the built package (dist/) and runs a tiny job through the storage, in whatever
// runtime executes this file: node, deno or bun.
import { isSatisfied, newId } from "../dist/mod.js";
import { createMemoryStorage } from "../dist/adapters/memory.js";

const runtime = globalThis.Deno ? "deno" : globalThis.Bun ? "bun" : "node";
const storage = createMemoryStorage();
const jobId = newId();
const task = {
  id: newId(),
  jobId,
  key: "a",
  agent: "noop",
  input: { n: 1 },
  output: null,
  error: null,
  status: "pending",
  statusReason: null,
  parentId: null,
  dependencies: [],
  remainingDeps: 0,
  attempts: 0,
  maxAttempts: 1,
  timeoutMs: null,
  durability: "at-least-once",
  onDependencyFailure: "cancel",
  priority: 0,
  runAt: 0,
  review: false,
  reviewFeedback: null,
  leaseOwner: null,
  leaseExpiresAt: null,
  version: 1,
  createdAt: 0,
  updatedAt: 0,
  startedAt: null,
  finishedAt: null,
  description: null,
  taskType: null,
  summary: null,
  acceptanceCriteria: null,
};
await storage.createJob({
  id: jobId,
  name: "smoke",
  status: "running",
  metadata: null,
  taskCount: 0,
  openCount: 0,
  failedCount: 0,
  version: 1,
  createdAt: 0,
  updatedAt: 0,
  finishedAt: null,
}, [task]);
const [claimed] = await storage.claimReady({ limit: 1, now: Date.now(), owner: "smoke", leaseMs: 1000 });
const r = await storage.commit([{
  type: "updateTask",
  id: claimed.id,
  expect: { version: claimed.version },
  set: { status: "completed", output: 2 },
}]);
const done = r.tasks.find((t) => t.id === task.id);
if (!isSatisfied(done) || r.jobs[0]?.status !== "completed") throw new Error(`smoke failed in ${runtime}`);
console.log(`dist works in ${runtime}`);
