import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { expect, test } from "vitest";
import { createMemoryStorage } from "../../adapters/memory.ts";
import { buildJob } from "../conformance/fixtures.ts";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

test("memory: prune() lets go of a pruned task that left the ready queue unclaimed (a delayed task whose job was cancelled)", async () => {
  const storage = createMemoryStorage({ now: () => 1_000 });
  // Ready, due a year from now: filed in the delayed part of the ready queue.
  const b = buildJob([{ key: "later", runAt: 1_000 + 365 * 86_400_000, input: { big: "x".repeat(1_000_000) } }]);
  await storage.createJob(b.job, b.tasks);
  await storage.claimReady({ limit: 10, now: 2_000, owner: "o", leaseMs: 100 }); // claims nothing: not due
  const job = (await storage.getJob(b.job.id))!;
  await storage.commit([
    { type: "updateJob", id: job.id, expect: { version: job.version }, set: { status: "cancelled" } },
  ]);
  let ref: WeakRef<object> | undefined = new WeakRef((await storage.getTask(b.tasks[0]!.id))!);
  expect(await storage.prune({ keepLast: 0 })).toBe(1);
  expect(await storage.getTask(b.tasks[0]!.id)).toBeUndefined();
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 0));
    gc();
  }
  expect(ref.deref(), "the pruned task record (and its 1 MB input) is still referenced").toBeUndefined();
  ref = undefined;
  await storage.close();
});
