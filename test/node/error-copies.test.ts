/**
 * Two copies of task-core in one program (two installed versions, or the npm build next to
 * the sources a test aliases): a `NonRetryableError` an agent imports from one copy still
 * fails its task at once in an executor from the other, where `instanceof` tells nothing.
 */
import { expect, test } from "vitest";
import { AgentRegistry, defineAgent, Executor, JobFailedError, ManualClock } from "../../mod.ts";
import { createMemoryStorage } from "../../adapters/memory.ts";

test("a NonRetryableError of another copy of the package fails its task at once", async () => {
  // The query makes the loader evaluate the module again: classes of their own.
  const copy = "../../src/errors.ts?other-copy";
  const other = (await import(/* @vite-ignore */ copy)) as typeof import("../../src/errors.ts");
  const { NonRetryableError: OtherNonRetryable, ValidationError: OtherValidation } = other;
  class Declined extends OtherNonRetryable {
    override name = "Declined";
  }
  const thrown = [
    new OtherNonRetryable("refused"),
    new OtherValidation("input", [{ path: "", keyword: "type", message: "must be object" }]),
    new Declined("card declined"),
  ];
  let calls = 0;
  const fail = defineAgent({
    name: "fail",
    description: "Throws the error its input names",
    execute: (input: number) => {
      calls++;
      throw thrown[input];
    },
  });
  const clock = new ManualClock(0);
  const executor = new Executor({
    storage: createMemoryStorage({ now: () => clock.now() }),
    registry: new AgentRegistry().register(fail),
    clock,
  });
  executor.start();
  const job = await executor.submit({
    name: "copies",
    tasks: thrown.map((_, i) => ({ key: `t${i}`, agent: "fail", input: i })),
  });
  const e = await clock.runUntil(job.wait()).catch((e: unknown) => e);
  expect(e).toBeInstanceOf(JobFailedError);
  expect(calls).toBe(thrown.length);
  for (const t of await job.tasks()) {
    expect(t.status).toBe("failed");
    expect(t.attempts).toBe(1);
    expect(t.error?.retryable).toBe(false);
  }
  await executor.shutdown();
});
