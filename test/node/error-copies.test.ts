/**
 * Two copies of task-core in one program (two installed versions, or the npm build next to
 * the sources a test aliases): an error class of one copy is known by `instanceof` against
 * the other's, so a `NonRetryableError` an agent imports from one copy fails its task at
 * once in an executor from the other, and an adapter built on one copy is understood by an
 * executor from the other.
 */
import { expect, test } from "vitest";
import * as errors from "../../src/errors.ts";
import {
  AgentRegistry,
  defineAgent,
  Executor,
  JobFailedError,
  ManualClock,
  StorageClosedError,
  StorageError,
  TaskCoreError,
} from "../../mod.ts";
import { createMemoryStorage } from "../../adapters/memory.ts";
import type { Storage } from "../../src/storage.ts";

// The query makes the loader evaluate the module again: classes of their own.
async function otherCopy(): Promise<typeof errors> {
  const copy = "../../src/errors.ts?other-copy";
  return (await import(/* @vite-ignore */ copy)) as typeof errors;
}

/** Every error class the package exports, by name. */
function classes(module: typeof errors): Map<string, new (...args: never[]) => Error> {
  const found = new Map<string, new (...args: never[]) => Error>();
  for (const [name, value] of Object.entries(module)) {
    if (typeof value === "function" && value.prototype instanceof Error) {
      found.set(name, value as new (...args: never[]) => Error);
    }
  }
  return found;
}

test("instanceof knows every error class of another copy of the package, and its ancestry", async () => {
  const ours = classes(errors);
  const theirs = classes(await otherCopy());
  expect([...theirs.keys()].sort()).toEqual([...ours.keys()].sort());
  expect(ours.size).toBeGreaterThan(20);
  for (const [name, Other] of theirs) {
    const Ours = ours.get(name)!;
    expect(Other).not.toBe(Ours);
    const e = Object.create(Other.prototype) as Error;
    for (const [candidate, Candidate] of ours) {
      // As within one copy: an instance of the class or of a subclass, nothing else.
      const within = Object.create(Ours.prototype) instanceof Candidate;
      expect(e instanceof Candidate, `${name} of the other copy instanceof ${candidate}`).toBe(within);
    }
  }
  // Our subclasses and what is not an error of the package stay as they were.
  class Declined extends errors.NonRetryableError {}
  expect(new errors.NonRetryableError("x") instanceof Declined).toBe(false);
  expect(new Declined("x") instanceof errors.NonRetryableError).toBe(true);
  for (const value of [null, undefined, 1, "x", {}, new Error("x"), Object.create(null)]) {
    expect(value instanceof TaskCoreError).toBe(false);
  }
});

test("an executor stops on a StorageClosedError of another copy, as on its own", async () => {
  const other = await otherCopy();
  const memory = createMemoryStorage();
  let closed = false;
  let claims = 0;
  const storage = new Proxy(memory, {
    get(target, prop) {
      if (prop === "claimReady") {
        return (o: Parameters<Storage["claimReady"]>[0]) => {
          claims++;
          return closed ? Promise.reject(new other.StorageClosedError("The storage is closed")) : target.claimReady(o);
        };
      }
      const value = Reflect.get(target, prop, target);
      return typeof value === "function" ? value.bind(target) : value;
    },
  }) as Storage;
  const clock = new ManualClock(0);
  const executor = new Executor({ storage, registry: new AgentRegistry(), clock, pollIntervalMs: 1000 });
  const seen: unknown[] = [];
  executor.on("storage:error", (e) => seen.push(e.error));
  let stopped = false;
  void executor.run().then(() => (stopped = true));
  closed = true;
  for (let i = 0; i < 20 && !stopped; i++) await clock.advance(1000);
  expect(stopped).toBe(true);
  expect(seen).toHaveLength(1);
  expect(seen[0]).toBeInstanceOf(StorageClosedError);
  expect(seen[0]).toBeInstanceOf(StorageError);
  const after = claims;
  for (let i = 0; i < 5; i++) await clock.advance(1000);
  expect(claims).toBe(after);
});

test("a NonRetryableError of another copy of the package fails its task at once", async () => {
  const { NonRetryableError: OtherNonRetryable, ValidationError: OtherValidation } = await otherCopy();
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
