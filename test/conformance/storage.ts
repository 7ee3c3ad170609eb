/**
 * The storage conformance suite: one case list, run against every adapter in every runtime.
 */

import {
  ConflictError,
  InvalidTransitionError,
  isTransientStorageError,
  JobValidationError,
  JsonValueError,
  KeyConflictError,
  NotFoundError,
  StorageClosedError,
  StorageError,
} from "../../src/errors.ts";
import type { CommitOp, CommitResult, Storage, StorageChange } from "../../src/storage.ts";
import type { JobStatus, JsonValue, Task, TaskStatus } from "../../src/types.ts";
import { AgentRegistry } from "../../src/registry.ts";
import { buildJob as buildJobFromSpec } from "../../src/scheduler.ts";
import { deepEqual, equal, notEqual, ok, rejects, throws } from "./assert.ts";
import { buildJob, childRecord } from "./fixtures.ts";
import type { Case } from "./harness.ts";

export interface StorageContext {
  storage: Storage;
  /** Close and open the same database again (durable adapters only). */
  reopen?: () => Promise<Storage>;
}

const OWNER = "owner-a";

async function get(s: Storage, id: string): Promise<Task> {
  const t = await s.getTask(id);
  ok(t, `task ${id} exists`);
  return t;
}

/** Move a task through `ready -> running` (if needed) and then to `status` with `set`. */
async function settle(s: Storage, id: string, status: TaskStatus, set: Partial<Task> = {}): Promise<Task> {
  let t = await get(s, id);
  if (t.status === "ready") {
    await s.commit([{
      type: "updateTask",
      id,
      expect: { version: t.version, status: "ready" },
      set: { status: "running", attempts: t.attempts + 1 },
    }]);
    t = await get(s, id);
  }
  await s.commit([{ type: "updateTask", id, expect: { version: t.version }, set: { status, ...set } }]);
  return await get(s, id);
}

/** Move a job to `status` with a compare-and-swap on its current version. */
async function setJobStatus(s: Storage, jobId: string, status: JobStatus): Promise<CommitResult> {
  const job = await s.getJob(jobId);
  ok(job, `job ${jobId} exists`);
  return await s.commit([{ type: "updateJob", id: jobId, expect: { version: job.version }, set: { status } }]);
}

/** Agents for jobs built from specs by the library's own job builder. */
function specAgents(): AgentRegistry {
  const agents = new AgentRegistry();
  agents.register({ name: "noop", description: "does nothing", execute: () => null });
  return agents;
}

/** The fields of a stored task that do not depend on its ids or on when it was stored. */
function idFree(t: Task): Record<string, unknown> {
  const { id: _id, jobId: _jobId, dependencies, createdAt: _c, updatedAt: _u, ...rest } = t;
  return { ...rest, dependencies: dependencies.length };
}

function statuses(tasks: Task[]): Record<string, TaskStatus> {
  const out: Record<string, TaskStatus> = {};
  for (const t of tasks) out[t.key] = t.status;
  return out;
}

export const storageCases: Case<StorageContext>[] = [
  {
    name: "createJob() stores the job and every task",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b", deps: ["a"] }]);
      await storage.createJob(b.job, b.tasks);
      const job = await storage.getJob(b.job.id);
      ok(job);
      equal(job.status, "running");
      equal(job.taskCount, 2);
      equal(job.openCount, 2);
      equal((await storage.listTasks({ jobId: b.job.id })).length, 2);
      // Every adapter answers a record's fields in one order (its JSON text is the same).
      const fields = Object.keys(b.tasks[0]!);
      for (const t of [await get(storage, b.id("a")), ...await storage.listTasks({ jobId: b.job.id })]) {
        deepEqual(Object.keys(t), fields, t.key);
      }
      const [claimed] = await storage.claimReady({ limit: 1, now: 2000, owner: OWNER, leaseMs: 100 });
      deepEqual(Object.keys(claimed!), fields, "claimed");
      deepEqual(Object.keys(await get(storage, claimed!.id)), fields, "claimed, read back");
    },
  },
  {
    name: "tasks without dependencies start ready, the others pending with remainingDeps",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }, { key: "c", deps: ["a", "b"] }]);
      await storage.createJob(b.job, b.tasks);
      const c = await get(storage, b.id("c"));
      equal(c.status, "pending");
      equal(c.remainingDeps, 2);
      equal((await get(storage, b.id("a"))).status, "ready");
    },
  },
  {
    name: "createJob() keeps the frozen records of a built job as they are, with the values a copy of them gets",
    async run({ storage }) {
      const spec = {
        name: "built",
        tasks: [
          { key: "a", agent: "noop", input: { n: [1, 2] }, priority: 3, description: "first" },
          { key: "b", agent: "noop", dependsOn: ["a"], review: true, durability: "at-most-once" as const },
          { key: "c", agent: "noop", dependsOn: ["a", "b"], maxAttempts: 2, timeoutMs: 500, delayMs: 10 },
        ],
      };
      const sealed = buildJobFromSpec(spec, specAgents(), { maxAttempts: 4 }, 1_000);
      ok(Object.isFrozen(sealed.tasks) && sealed.tasks.every((t) => Object.isFrozen(t)));
      await storage.createJob(sealed.job, sealed.tasks);
      for (const built of sealed.tasks) deepEqual({ ...(await get(storage, built.id)) }, { ...built }, built.key);
      // The same spec built again, its records copied into a plain list: checked and copied.
      const copied = buildJobFromSpec(spec, specAgents(), { maxAttempts: 4 }, 1_000);
      await storage.createJob(copied.job, copied.tasks.map((t) => ({ ...t, status: "pending", remainingDeps: 0 })));
      for (let i = 0; i < spec.tasks.length; i++) {
        const a = await get(storage, sealed.tasks[i]!.id);
        const b = await get(storage, copied.tasks[i]!.id);
        deepEqual(idFree(a), idFree(b), a.key);
      }
      equal((await storage.getJob(sealed.job.id))!.openCount, 3);
      equal((await storage.listTasks({ status: "ready" })).length, 2);
    },
  },
  {
    name: "createJob() checks a built job's records again: the list cannot change, nor be stored under another job",
    async run({ storage }) {
      const b = buildJobFromSpec(
        { name: "built", tasks: [{ key: "a", agent: "noop" }] },
        specAgents(),
        { maxAttempts: 4 },
        1_000,
      );
      throws(() => {
        (b.tasks as Task[])[0] = { ...b.tasks[0]!, priority: Number.NaN };
      }, TypeError);
      throws(() => {
        (b.tasks[0] as { priority: number }).priority = Number.NaN;
      }, TypeError);
      await rejects(() => storage.createJob({ ...b.job, id: "another-job" }, b.tasks), StorageError, "names job");
      equal(await storage.getJob("another-job"), undefined);
      // A spec whose option changes once it has been checked is stored with the checked value, or not at all.
      let reads = 0;
      const fickle = {
        key: "f",
        agent: "noop",
        get priority() {
          return ++reads <= 2 ? 1 : Number.NaN;
        },
      };
      let built;
      let refused = false;
      try {
        built = buildJobFromSpec({ name: "fickle", tasks: [fickle] }, specAgents(), { maxAttempts: 4 }, 1_000);
      } catch (e) {
        ok(e instanceof JobValidationError || e instanceof TypeError, `refused by the builder: ${e}`);
        refused = true;
      }
      if (built) {
        try {
          await storage.createJob(built.job, built.tasks);
        } catch (e) {
          ok(e instanceof TypeError, `a TypeError, got ${e}`);
          refused = true;
        }
        const stored = await storage.getTask(built.tasks[0]!.id);
        if (refused) equal(stored, undefined, "a refused job writes nothing");
        else ok(stored && Number.isFinite(stored.priority), "stored with the priority that was checked");
      }
    },
  },
  {
    name: "createJob() with an unknown dependency throws NotFoundError and writes nothing",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      b.tasks[0]!.dependencies = ["nope"];
      await rejects(() => storage.createJob(b.job, b.tasks), NotFoundError);
      equal(await storage.getJob(b.job.id), undefined);
      equal(await storage.getTask(b.id("a")), undefined);
    },
  },
  {
    name: "text with a lone surrogate is refused in every text field and key, and nothing is written",
    async run({ storage }) {
      // A UTF-8 database cannot hold a lone surrogate: it changed such text, and two cache
      // keys that differ only there became one row. Every adapter refuses it alike.
      const lone = "a\ud800b";
      const fields: [string, (b: ReturnType<typeof buildJob>) => void][] = [
        ["key", (b) => ((b.tasks[0] as { key: string }).key = lone)],
        ["description", (b) => ((b.tasks[0] as { description: string }).description = lone)],
        ["agent", (b) => ((b.tasks[0] as { agent: string }).agent = lone)],
        ["job name", (b) => ((b.job as { name: string }).name = lone)],
      ];
      for (const [what, spoil] of fields) {
        const b = buildJob([{ key: "a" }]);
        spoil(b);
        const e = await rejects(() => storage.createJob(b.job, b.tasks), TypeError);
        ok(e.message.includes(`"${what}"`), e.message);
        equal(await storage.getJob(b.job.id), undefined, what);
      }
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const a = await get(storage, b.id("a"));
      const jobVersion = (await storage.getJob(b.job.id))!.version;
      const ops: [string, CommitOp][] = [
        ["cache key", { type: "setCache", jobId: b.job.id, key: "k\ud800", value: 1 }],
        ["state scope", { type: "setState", scope: "s\udc00", key: "k", value: 1 }],
        ["state key", { type: "setState", scope: "s", key: "\ud83d", value: 1 }],
        ["statusReason", {
          type: "updateTask",
          id: a.id,
          expect: { version: a.version },
          set: { statusReason: lone },
        }],
        ["job name", { type: "updateJob", id: b.job.id, expect: { version: jobVersion }, set: { name: lone } }],
      ];
      for (const [what, op] of ops) {
        // Each with a valid write before it: the batch is refused whole.
        const e = await rejects(
          () => storage.commit([{ type: "setCache", jobId: b.job.id, key: "good", value: what }, op]),
          TypeError,
        );
        ok(e.message.includes(`"${what}"`), e.message);
      }
      equal(await storage.getCache(b.job.id, "good"), undefined);
      equal(await storage.getCache(b.job.id, "k\ufffd"), undefined);
      equal((await get(storage, a.id)).version, a.version);
      equal((await storage.getJob(b.job.id))!.name, b.job.name);
      // Reads with a lone surrogate find nothing, not the entry whose text has U+FFFD there.
      await storage.commit([
        { type: "setCache", jobId: b.job.id, key: "k\ufffd", value: 1 },
        { type: "setState", scope: "s\ufffd", key: "k\ufffd", value: 1 },
      ]);
      equal(await storage.getCache(b.job.id, "k\ud800"), undefined);
      equal(await storage.getState("s\ud800", "k\ufffd"), undefined);
      equal(await storage.getState("s\ufffd", "k\udc00"), undefined);
      equal(await storage.getTask(`${a.id}\ud800`), undefined);
      deepEqual(await storage.getTasks([`${a.id}\ud800`]), []);
      deepEqual(await storage.listTasks({ jobId: `${b.job.id}\udc00` }), []);
    },
  },
  {
    name:
      "a cache or state key too long for a store's index is stored, or refused for good: never as an error that may pass",
    async run({ storage }) {
      // Random text does not compress: PostgreSQL's btree refuses a key of ~3 KB (SQLSTATE
      // 54000). Taken for an error that may pass, its commit was retried for good, and the
      // results committed with it were never stored.
      let seed = 7;
      const key = Array.from({ length: 3000 }, () => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return String.fromCharCode(33 + (seed % 90));
      }).join("");
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      for (
        const op of [
          { type: "setCache" as const, jobId: b.job.id, key, value: 1 },
          { type: "setState" as const, scope: "s", key, value: 1 },
        ]
      ) {
        try {
          await storage.commit([op]);
        } catch (e) {
          ok(!isTransientStorageError(e), `${op.type}: ${(e as Error).name}: ${(e as Error).message}`);
          ok(e instanceof RangeError || e instanceof TypeError, `${op.type}: ${(e as Error).name}`);
          continue;
        }
        equal(op.type === "setCache" ? await storage.getCache(b.job.id, key) : await storage.getState("s", key), 1);
      }
    },
  },
  {
    name: "createJob() refuses a function in the input and writes nothing",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }]);
      (b.tasks[1] as { input: unknown }).input = { f: () => 1 };
      const e = await rejects<JsonValueError>(() => storage.createJob(b.job, b.tasks), JsonValueError);
      equal(e.path, "/f");
      equal(await storage.getJob(b.job.id), undefined);
      equal((await storage.listJobs()).length, 0);
    },
  },
  {
    name: "createJob() refuses a BigInt and a cyclic input",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      (b.tasks[0] as { input: unknown }).input = { n: 10n };
      await rejects(() => storage.createJob(b.job, b.tasks), JsonValueError, "BigInt");
      const cyclic: Record<string, unknown> = {};
      cyclic.self = cyclic;
      (b.tasks[0] as { input: unknown }).input = cyclic;
      await rejects(() => storage.createJob(b.job, b.tasks), JsonValueError, "cyclic");
      (b.tasks[0] as { input: unknown }).input = { x: Number.NaN };
      await rejects(() => storage.createJob(b.job, b.tasks), JsonValueError, "not finite");
      equal(await storage.getJob(b.job.id), undefined);
    },
  },
  {
    name: "createJob() refuses a job id that already exists",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const again = buildJob([{ key: "x" }]);
      again.job.id = b.job.id;
      for (const t of again.tasks) t.jobId = b.job.id;
      await rejects(() => storage.createJob(again.job, again.tasks), StorageError, "already exists");
      equal((await storage.listTasks({ jobId: b.job.id })).length, 1);
    },
  },
  {
    name: "createJob() refuses a task with a bad field and names it",
    async run({ storage }) {
      // 2^31: past the attempts every storage counts (PostgreSQL's are 32-bit).
      for (const maxAttempts of [0, 2 ** 31]) {
        const b = buildJob([{ key: "a" }]);
        (b.tasks[0] as { maxAttempts: unknown }).maxAttempts = maxAttempts;
        await rejects(() => storage.createJob(b.job, b.tasks), TypeError, "maxAttempts");
        equal(await storage.getJob(b.job.id), undefined);
      }
    },
  },
  {
    name: "getJob() and getTask() return undefined for an unknown id",
    async run({ storage }) {
      equal(await storage.getJob("missing"), undefined);
      equal(await storage.getTask("missing"), undefined);
    },
  },
  {
    name: "getTasks() keeps the order of ids and leaves out missing ones",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }, { key: "c" }]);
      await storage.createJob(b.job, b.tasks);
      const got = await storage.getTasks([b.id("c"), "missing", b.id("a")]);
      deepEqual(got.map((t) => t.key), ["c", "a"]);
    },
  },
  {
    name: "getTasks() with ids that are not an array rejects with a TypeError (a rejected promise, not a throw)",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      for (const ids of [b.id("a"), null, undefined, 7, { 0: b.id("a"), length: 1 }]) {
        let call: Promise<unknown> | undefined;
        try {
          call = storage.getTasks(ids as never);
        } catch (e) {
          throw new Error(`getTasks(${typeof ids}) threw instead of rejecting: ${e}`);
        }
        await rejects(() => call!, TypeError, '"ids"');
      }
    },
  },
  {
    name: "listTasks() by jobId returns only that job's tasks in id order",
    async run({ storage }) {
      const one = buildJob([{ key: "a" }, { key: "b" }]);
      const two = buildJob([{ key: "x" }]);
      await storage.createJob(one.job, one.tasks);
      await storage.createJob(two.job, two.tasks);
      const got = await storage.listTasks({ jobId: one.job.id });
      deepEqual(got.map((t) => t.key), ["a", "b"]);
      ok(got[0]!.id < got[1]!.id);
    },
  },
  {
    name: "listTasks() by agent",
    async run({ storage }) {
      const b = buildJob([{ key: "a", agent: "fetch" }, { key: "b", agent: "parse" }, { key: "c", agent: "fetch" }]);
      await storage.createJob(b.job, b.tasks);
      deepEqual((await storage.listTasks({ agent: "fetch" })).map((t) => t.key), ["a", "c"]);
      deepEqual(await storage.listTasks({ agent: "none" }), []);
    },
  },
  {
    name: "listTasks() by status follows status changes",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b", deps: ["a"] }]);
      await storage.createJob(b.job, b.tasks);
      deepEqual((await storage.listTasks({ status: "pending" })).map((t) => t.key), ["b"]);
      await settle(storage, b.id("a"), "completed", { output: 1 });
      deepEqual((await storage.listTasks({ status: "completed" })).map((t) => t.key), ["a"]);
      deepEqual((await storage.listTasks({ status: "ready" })).map((t) => t.key), ["b"]);
      deepEqual(await storage.listTasks({ status: "pending" }), []);
    },
  },
  {
    name: "listTasks() by parentId returns spawned children",
    async run({ storage }) {
      const b = buildJob([{ key: "p" }]);
      await storage.createJob(b.job, b.tasks);
      const c1 = childRecord(b, { key: "c1", parentKey: "p" });
      const c2 = childRecord(b, { key: "c2", parentKey: "p" });
      await storage.commit([{ type: "insertTask", task: c1 }, { type: "insertTask", task: c2 }]);
      deepEqual((await storage.listTasks({ parentId: b.id("p") })).map((t) => t.key), ["c1", "c2"]);
    },
  },
  {
    name: "listTasks() combines filters and pages with after and limit",
    async run({ storage }) {
      const drafts = Array.from({ length: 7 }, (_, i) => ({ key: `t${i}`, agent: i % 2 ? "odd" : "even" }));
      const b = buildJob(drafts);
      await storage.createJob(b.job, b.tasks);
      const first = await storage.listTasks({ jobId: b.job.id, agent: "even", limit: 2 });
      deepEqual(first.map((t) => t.key), ["t0", "t2"]);
      const next = await storage.listTasks({ jobId: b.job.id, agent: "even", after: first[1]!.id, limit: 2 });
      deepEqual(next.map((t) => t.key), ["t4", "t6"]);
      const rest = await storage.listTasks({ jobId: b.job.id, agent: "even", after: next[1]!.id });
      deepEqual(rest, []);
    },
  },
  {
    name: "listTasks() and listJobs() refuse a filter they do not know instead of listing everything",
    async run({ storage }) {
      const one = buildJob([{ key: "a" }]);
      const two = buildJob([{ key: "b" }]);
      await storage.createJob(one.job, one.tasks);
      await storage.createJob(two.job, two.tasks);
      // A misspelt filter (`jobID`, `job`) would otherwise list the tasks of every job.
      for (const query of [{ jobID: one.job.id }, { job: one.job.id }, { jobId: one.job.id, state: "ready" }]) {
        await rejects(() => storage.listTasks(query as never), TypeError, `"${Object.keys(query).at(-1)}"`);
      }
      await rejects(() => storage.listJobs({ name: "job" } as never), TypeError, '"name"');
      // Every known filter, and one given as undefined, still lists.
      equal((await storage.listTasks({ jobId: one.job.id, agent: undefined } as never)).length, 1);
      equal((await storage.listJobs({ status: "running", after: undefined, limit: 5 } as never)).length, 2);
    },
  },
  {
    name: "a limit past 2^31 or 2^32 is accepted like any other by claimReady(), listJobs() and listTasks()",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }]);
      await storage.createJob(b.job, b.tasks);
      for (const limit of [2 ** 32, Number.MAX_SAFE_INTEGER]) {
        equal((await storage.listJobs({ limit })).length, 1);
        equal((await storage.listJobs({ limit, status: "running" })).length, 1);
        equal((await storage.listTasks({ jobId: b.job.id, limit })).length, 2);
        // Each index a query may take: all tasks, by status, by status and agent, by agent.
        equal((await storage.listTasks({ limit })).length, 2);
        equal((await storage.listTasks({ status: "ready", limit })).length, 2);
        equal((await storage.listTasks({ status: "ready", agent: "noop", limit })).length, 2);
        equal((await storage.listTasks({ agent: "noop", limit })).length, 2);
      }
      // Past 2^32 (a count IndexedDB refuses) and past 2^63 (SQL's integers).
      for (const limit of [2 ** 31, 1e11, 2 ** 63, 1e21]) {
        const claimed = await storage.claimReady({ limit, now: 0, owner: OWNER, leaseMs: 100 });
        equal(claimed.length, 2, `limit ${limit}`);
        for (const t of claimed) {
          await storage.commit([{
            type: "updateTask",
            id: t.id,
            expect: { version: t.version },
            set: { status: "ready", attempts: 0 },
          }]);
        }
      }
    },
  },
  {
    name: "listJobs() filters by status and pages in id order",
    async run({ storage }) {
      const jobs = [buildJob([{ key: "a" }], "j1"), buildJob([{ key: "a" }], "j2"), buildJob([{ key: "a" }], "j3")];
      for (const b of jobs) await storage.createJob(b.job, b.tasks);
      await settle(storage, jobs[1]!.id("a"), "completed", { output: null });
      deepEqual((await storage.listJobs({ status: "completed" })).map((j) => j.name), ["j2"]);
      deepEqual((await storage.listJobs({ status: "running" })).map((j) => j.name), ["j1", "j3"]);
      const firstTwo = await storage.listJobs({ limit: 2 });
      deepEqual(firstTwo.map((j) => j.name), ["j1", "j2"]);
      deepEqual((await storage.listJobs({ after: firstTwo[1]!.id })).map((j) => j.name), ["j3"]);
    },
  },
  {
    name: "claimReady() moves tasks to running with attempts + 1 and a lease",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const [t] = await storage.claimReady({ limit: 10, now: 5000, owner: OWNER, leaseMs: 1000 });
      ok(t);
      equal(t.status, "running");
      equal(t.attempts, 1);
      equal(t.leaseOwner, OWNER);
      equal(t.leaseExpiresAt, 6000);
      equal(t.updatedAt, 5000);
      const stored = await get(storage, t.id);
      equal(stored.status, "running");
      equal(stored.version, t.version);
    },
  },
  {
    name: "claimReady() leaves startedAt null, at-most-once or not: the executor stores each start",
    async run({ storage }) {
      const b = buildJob([{ key: "once", durability: "at-most-once" }, { key: "many" }]);
      await storage.createJob(b.job, b.tasks);
      const claimed = await storage.claimReady({ limit: 10, now: 5000, owner: OWNER, leaseMs: 1000 });
      const byKey = Object.fromEntries(claimed.map((t) => [t.key, t]));
      equal(byKey["once"]?.startedAt, null);
      equal(byKey["many"]?.startedAt, null);
      equal((await get(storage, b.id("once"))).startedAt, null);
      equal((await get(storage, b.id("many"))).startedAt, null);
      const once = byKey["once"]!;
      await storage.commit([{
        type: "updateTask",
        id: once.id,
        expect: { version: once.version, status: "running" },
        set: { startedAt: 5001 },
      }], 5001);
      const started = await get(storage, once.id);
      equal(started.startedAt, 5001);
      equal(started.status, "running");
      equal(started.leaseOwner, OWNER, "the lease is kept");
    },
  },
  {
    name: "claimReady({ start }) starts the first tasks it claims, for free workers, but never an at-most-once one",
    async run({ storage }) {
      // Ten tasks (a claim of many may be stored apart from the rows it holds): t0..t9 in
      // claim order, t1 at-most-once.
      const b = buildJob(Array.from({ length: 10 }, (_, i) => ({
        key: `t${i}`,
        priority: i,
        ...(i === 1 ? { durability: "at-most-once" as const } : {}),
      })));
      await storage.createJob(b.job, b.tasks);
      const claimed = await storage.claimReady({ limit: 10, now: 5000, owner: OWNER, leaseMs: 1000, start: 3 });
      equal(claimed.length, 10);
      const started = (ts: Task[]) => ts.filter((t) => t.startedAt !== null).map((t) => t.key).sort();
      deepEqual(started(claimed), ["t0", "t2"]);
      for (const t of claimed) if (t.startedAt !== null) equal(t.startedAt, 5000, t.key);
      deepEqual(started(await storage.listTasks({ jobId: b.job.id })), ["t0", "t2"], "as stored");
      // A later claim starts only what it is asked to.
      const c = buildJob([{ key: "u0" }, { key: "u1" }]);
      await storage.createJob(c.job, c.tasks);
      const more = await storage.claimReady({ limit: 10, now: 6000, owner: OWNER, leaseMs: 1000, start: 0 });
      deepEqual(started(more), []);
      // The started ones are stored as a commit that stores a start would leave them.
      const t0 = claimed.find((t) => t.key === "t0")!;
      await storage.commit([{
        type: "updateTask",
        id: t0.id,
        expect: { version: t0.version, status: "running" },
        set: { status: "completed", output: 1 },
      }], 7000);
      const done = await get(storage, t0.id);
      equal(done.startedAt, 5000);
      equal(done.status, "completed");
    },
  },
  {
    name: "claimReady({ start }) past 2^63 (SQL's integers) starts every task it claims, as any start >= limit does",
    async run({ storage }) {
      for (const start of [2 ** 63, 1e21]) {
        const b = buildJob([{ key: "a" }, { key: "b" }]);
        await storage.createJob(b.job, b.tasks);
        const claimed = await storage.claimReady({ limit: 2, now: 5000, owner: OWNER, leaseMs: 1000, start });
        deepEqual(claimed.map((t) => t.startedAt), [5000, 5000], `start ${start}`);
      }
    },
  },
  {
    name: "claimReady() claims at most limit tasks and nothing twice",
    async run({ storage }) {
      const b = buildJob(Array.from({ length: 5 }, (_, i) => ({ key: `t${i}` })));
      await storage.createJob(b.job, b.tasks);
      const one = await storage.claimReady({ limit: 3, now: 1, owner: OWNER, leaseMs: 100 });
      const two = await storage.claimReady({ limit: 3, now: 1, owner: OWNER, leaseMs: 100 });
      equal(one.length, 3);
      equal(two.length, 2);
      equal(new Set([...one, ...two].map((t) => t.id)).size, 5);
      deepEqual(await storage.claimReady({ limit: 3, now: 1, owner: OWNER, leaseMs: 100 }), []);
    },
  },
  {
    name: "claimReady() leaves tasks whose runAt is later than now",
    async run({ storage }) {
      const b = buildJob([{ key: "later", runAt: 10_000 }, { key: "now", runAt: 0 }]);
      await storage.createJob(b.job, b.tasks);
      deepEqual((await storage.claimReady({ limit: 10, now: 5000, owner: OWNER, leaseMs: 100 })).map((t) => t.key), [
        "now",
      ]);
      deepEqual((await storage.claimReady({ limit: 10, now: 10_000, owner: OWNER, leaseMs: 100 })).map((t) => t.key), [
        "later",
      ]);
    },
  },
  {
    name: "claimReady() orders by priority (lower first), then runAt, then creation",
    async run({ storage }) {
      const b = buildJob([
        { key: "p5", priority: 5 },
        { key: "p1-late", priority: 1, runAt: 20 },
        { key: "p1-early", priority: 1, runAt: 10 },
        { key: "p1-early-2", priority: 1, runAt: 10 },
        { key: "p-1", priority: -1, runAt: 30 },
        { key: "future", priority: -5, runAt: 10_000 },
      ]);
      await storage.createJob(b.job, b.tasks);
      const got = await storage.claimReady({ limit: 10, now: 100, owner: OWNER, leaseMs: 100 });
      deepEqual(got.map((t) => t.key), ["p-1", "p1-early", "p1-early-2", "p1-late", "p5"]);
    },
  },
  {
    name: "claimReady() takes due tasks of later priorities past tasks not yet due, wherever the limit cuts",
    async run({ storage }) {
      const b = buildJob([
        { key: "p0-later", priority: 0, runAt: 500 },
        { key: "p0-due", priority: 0, runAt: 50 },
        { key: "p1-tomorrow", priority: 1, runAt: 86_400_000 },
        { key: "p2-90", priority: 2, runAt: 90 },
        { key: "p2-10", priority: 2, runAt: 10 },
        { key: "p2.5-now", priority: 2.5, runAt: 100 },
        { key: "p-3-soon", priority: -3, runAt: 101 },
        { key: "p7", priority: 7, runAt: 0 },
      ]);
      await storage.createJob(b.job, b.tasks);
      const claim = async (limit: number, now: number) =>
        (await storage.claimReady({ limit, now, owner: OWNER, leaseMs: 1000 })).map((t) => t.key);
      deepEqual(await claim(2, 100), ["p0-due", "p2-10"]);
      deepEqual(await claim(2, 100), ["p2-90", "p2.5-now"]);
      deepEqual(await claim(10, 100), ["p7"]);
      deepEqual(await claim(10, 100), []);
      deepEqual(await claim(1, 500), ["p-3-soon"]);
      deepEqual(await claim(10, 500), ["p0-later"]);
      deepEqual(await claim(10, 86_400_000), ["p1-tomorrow"]);
    },
  },
  {
    name: "claimReady({ agents }) claims only those agents' tasks, in claim order among them; the rest stay ready",
    async run({ storage }) {
      const b = buildJob([
        { key: "a1", agent: "a", priority: 2 },
        { key: "b1", agent: "b", priority: 1, runAt: 50 },
        { key: "c1", agent: "c", priority: 0 },
        { key: "b2", agent: "b", priority: 1, runAt: 20 },
        { key: "a2", agent: "a", priority: 1, runAt: 50 },
        { key: "a-later", agent: "a", priority: -1, runAt: 5000 },
        { key: "c2", agent: "c", priority: 3 },
      ]);
      await storage.createJob(b.job, b.tasks);
      const claim = async (limit: number, now: number, agents?: string[]) =>
        (await storage.claimReady({ limit, now, owner: OWNER, leaseMs: 1000, ...(agents && { agents }) })).map((t) =>
          t.key
        );
      deepEqual(await claim(10, 100, []), [], "an empty list claims nothing");
      deepEqual(await claim(10, 100, ["nobody"]), [], "an agent no task names");
      // Across two agents: priority, then runAt, then creation, wherever the limit cuts.
      deepEqual(await claim(2, 100, ["b", "a", "b"]), ["b2", "b1"]);
      deepEqual(await claim(1, 100, ["a", "b"]), ["a2"]);
      deepEqual(await claim(10, 100, ["a", "b"]), ["a1"], "a task not yet due is left");
      equal((await get(storage, b.id("c1"))).status, "ready", "another agent's task stays ready");
      deepEqual(await claim(10, 100), ["c1", "c2"], "a claim without agents takes any agent's");
      deepEqual(await claim(10, 5000, ["a"]), ["a-later"]);
      // Names a list or an array literal could misread are names like any other.
      const odd = ["NULL", 'a"b,c{d}', "back\\slash", " ", "ünï 𝄞"];
      const o = buildJob(odd.map((agent, i) => ({ key: `o${i}`, agent })));
      await storage.createJob(o.job, o.tasks);
      deepEqual(await claim(10, 100, [odd[1]!, "NULL"]), ["o0", "o1"]);
      deepEqual(await claim(10, 100, odd.slice(2)), ["o2", "o3", "o4"]);
    },
  },
  {
    name: "claimReady({ agents }) and a claim of any agent merge several agents' tasks in one claim order",
    async run({ storage }) {
      // Ids in creation order alternate agents: the order must hold across them, not per agent.
      const drafts = Array.from({ length: 12 }, (_, i) => ({ key: `t${i}`, agent: ["x", "y", "z"][i % 3]! }));
      const b = buildJob(drafts);
      await storage.createJob(b.job, b.tasks);
      const claim = async (limit: number, agents?: string[]) =>
        (await storage.claimReady({ limit, now: 100, owner: OWNER, leaseMs: 1000, ...(agents && { agents }) })).map((
          t,
        ) => t.key);
      deepEqual(await claim(3, ["z", "x"]), ["t0", "t2", "t3"]);
      deepEqual(await claim(3), ["t1", "t4", "t5"]);
      deepEqual(await claim(2, ["y"]), ["t7", "t10"]);
      deepEqual(await claim(10), ["t6", "t8", "t9", "t11"]);
    },
  },
  {
    name: "claimReady() with and without agents follows a model of the ready set through moves, releases and pauses",
    async run({ storage }) {
      // A seeded walk: tasks of three agents move between priorities, runAts and agents,
      // are released back to ready, paused and resumed, cancelled; every claim (limit cut
      // anywhere, any agent subset) must answer the model's first tasks in claim order.
      let seed = 7;
      const rnd = (n: number) => {
        seed = (seed * 1103515245 + 12345) % 2147483648;
        return Math.floor((seed / 2147483648) * n);
      };
      const AGENTS = ["a", "b", "c"];
      const drafts = Array.from({ length: 200 }, (_, i) => ({
        key: `t${i}`,
        agent: AGENTS[rnd(3)]!,
        priority: rnd(3),
        runAt: rnd(3) * 10,
      }));
      const b = buildJob(drafts);
      await storage.createJob(b.job, b.tasks);
      const model = new Map<string, Task>();
      for (const t of await storage.getTasks(b.tasks.map((t) => t.id))) model.set(t!.id, t!);
      const update = async (id: string, set: Partial<Task>) => {
        const t = model.get(id)!;
        await storage.commit([{ type: "updateTask", id, expect: { version: t.version, status: t.status }, set }]);
        model.set(id, await get(storage, id));
      };
      let now = 0;
      for (let step = 0; step < 300; step++) {
        const ids = [...model.keys()];
        const op = rnd(7);
        if (op <= 2) {
          now += rnd(3) * 5;
          const limit = 1 + rnd(40);
          const pick = rnd(5);
          const agents = pick === 0
            ? undefined
            : pick === 4
            ? ["a", "c"]
            : pick === 3
            ? ["b", "c", "a"]
            : [AGENTS[rnd(3)]!];
          const want = [...model.values()]
            .filter((t) => t.status === "ready" && t.runAt <= now && (!agents || agents.includes(t.agent)))
            .sort((x, y) => x.priority - y.priority || x.runAt - y.runAt || (x.id < y.id ? -1 : 1))
            .slice(0, limit)
            .map((t) => t.key);
          const got = await storage.claimReady({ limit, now, owner: OWNER, leaseMs: 1000, ...(agents && { agents }) });
          deepEqual(got.map((t) => t.key), want, `step ${step}: claim ${limit} at ${now} of ${agents ?? "any"}`);
          for (const t of got) model.set(t.id, await get(storage, t.id));
        } else {
          const id = ids[rnd(ids.length)]!;
          const t = model.get(id)!;
          const set: Partial<Task> = {};
          if (rnd(2)) set.priority = rnd(3);
          if (rnd(2)) set.agent = AGENTS[rnd(3)]!;
          if (rnd(2)) set.runAt = now + rnd(3) * 5;
          if (t.status === "running") await update(id, { ...set, status: "ready" });
          else if (t.status === "ready") {
            const r = rnd(6);
            if (r === 0) await update(id, { status: "paused" });
            else if (r === 1 && step > 200) await update(id, { status: "cancelled" });
            else if (Object.keys(set).length > 0) await update(id, set);
          } else if (t.status === "paused") await update(id, { ...set, status: "ready" });
        }
      }
      // Whatever is left ready is claimed exactly once.
      const left = [...model.values()].filter((t) => t.status === "ready").map((t) => t.key).sort();
      const rest = await storage.claimReady({ limit: 1000, now: now + 1000, owner: OWNER, leaseMs: 1000 });
      deepEqual(rest.map((t) => t.key).sort(), left);
    },
  },
  {
    name: "claimReady() keeps claim order past many distinct priorities, tasks not yet due among them, by agent or not",
    async run({ storage }) {
      // 60 priorities (a claim reads the first ones one range at a time and may read the rest
      // in one scan): every third task not yet due, two agents, the limit cutting anywhere.
      const drafts = Array.from({ length: 60 }, (_, i) => ({
        key: `t${String(i).padStart(2, "0")}`,
        agent: i % 2 === 0 ? "even" : "odd",
        priority: (59 - i) / 7,
        runAt: i % 3 === 0 ? 5000 : 10,
      }));
      const b = buildJob(drafts);
      await storage.createJob(b.job, b.tasks);
      const model = b.tasks.map((t) => ({ ...t }));
      const claim = async (limit: number, now: number, agents?: string[]) => {
        const want = model
          .filter((t) => t.runAt <= now && (!agents || agents.includes(t.agent)))
          .sort((x, y) => x.priority - y.priority || x.runAt - y.runAt || (x.id < y.id ? -1 : 1))
          .slice(0, limit);
        const got = await storage.claimReady({ limit, now, owner: OWNER, leaseMs: 1000, ...(agents && { agents }) });
        deepEqual(got.map((t) => t.key), want.map((t) => t.key), `claim ${limit} at ${now} of ${agents ?? "any"}`);
        for (const t of want) model.splice(model.indexOf(t), 1);
      };
      await claim(3, 100, ["odd"]);
      await claim(5, 100);
      await claim(20, 100, ["even"]);
      await claim(2, 100, ["even", "odd"]);
      await claim(100, 100);
      await claim(1, 5000, ["odd"]);
      await claim(100, 5000);
      equal(model.length, 0);
    },
  },
  {
    name: "claimReady() keeps creation order among tasks made ready out of that order",
    async run({ storage }) {
      // d<i> waits for r<5-i>: finishing r0..r5 in order readies d5 first and d0 last.
      const roots = Array.from({ length: 6 }, (_, i) => ({ key: `r${i}` }));
      const dependents = Array.from({ length: 6 }, (_, i) => ({ key: `d${i}`, deps: [`r${5 - i}`] }));
      const b = buildJob([...roots, ...dependents]);
      await storage.createJob(b.job, b.tasks);
      const claimed = await storage.claimReady({ limit: 6, now: 100, owner: OWNER, leaseMs: 1000 });
      deepEqual(claimed.map((t) => t.key), ["r0", "r1", "r2", "r3", "r4", "r5"]);
      for (const t of claimed) {
        await storage.commit([{
          type: "updateTask",
          id: t.id,
          expect: { version: t.version },
          set: { status: "completed", output: null },
        }], 100);
        if (t.key === "r2") {
          // Some of them claimed while the rest still arrive.
          const first = await storage.claimReady({ limit: 1, now: 100, owner: OWNER, leaseMs: 1000 });
          deepEqual(first.map((x) => x.key), ["d3"]);
        }
      }
      const rest = await storage.claimReady({ limit: 10, now: 100, owner: OWNER, leaseMs: 1000 });
      deepEqual(rest.map((t) => t.key), ["d0", "d1", "d2", "d4", "d5"]);
    },
  },
  {
    name:
      "claimReady() breaks ties by id in one order on every adapter; an id beyond U+FFFF, which UTF-8 stores sort apart, is refused",
    async run({ storage }) {
      // JavaScript and IndexedDB compare UTF-16 units, SQLite and PostgreSQL ("C") UTF-8
      // bytes: the orders agree on text of the Basic Multilingual Plane, not beyond it
      // ("t\u{10000}" sorts before "t\uFFFF" in UTF-16, after it in UTF-8).
      const ids = ["t\uFFFF", "tZ", "t\uE000", "t\u00e9", "t~", "t\uD7FF", "t-"];
      const b = buildJob(ids.map((_, i) => ({ key: `k${i}`, priority: 1, runAt: 50 })));
      const tasks = b.tasks.map((t, i) => ({ ...t, id: ids[i]! }));
      await storage.createJob(b.job, tasks);
      const byId = (t: Task) => t.id;
      const first = await storage.claimReady({ limit: 3, now: 50, owner: OWNER, leaseMs: 100, start: 1 });
      const rest = await storage.claimReady({ limit: 10, now: 50, owner: OWNER, leaseMs: 100 });
      deepEqual([...first, ...rest].map(byId), [...ids].sort());
      deepEqual(first.map((t) => t.startedAt !== null), [true, false, false]);
      for (const id of ["t\u{10000}", "\u{1F600}"]) {
        const o = buildJob([{ key: "a" }]);
        await rejects(() => storage.createJob(o.job, [{ ...o.tasks[0]!, id }]), TypeError, "id");
        await rejects(
          () => storage.createJob({ ...o.job, id }, o.tasks.map((t) => ({ ...t, jobId: id }))),
          TypeError,
          "id",
        );
        const child = { ...childRecord(b, { key: "child" }), id };
        await rejects(() => storage.commit([{ type: "insertTask", task: child }]), TypeError, "id");
        equal(await storage.getTask(id), undefined);
        equal(await storage.getJob(id), undefined);
        equal(await storage.getJob(o.job.id), undefined);
      }
    },
  },
  {
    name: "claimReady() skips tasks of a paused job until it resumes",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const job = (await storage.getJob(b.job.id))!;
      await setJobStatus(storage, job.id, "paused");
      equal((await get(storage, b.id("a"))).status, "paused");
      deepEqual(await storage.claimReady({ limit: 10, now: 1, owner: OWNER, leaseMs: 100 }), []);
      await setJobStatus(storage, job.id, "running");
      equal((await storage.claimReady({ limit: 10, now: 1, owner: OWNER, leaseMs: 100 })).length, 1);
    },
  },
  {
    name: "claimReady() never hands one task to two concurrent claimers",
    async run({ storage }) {
      const b = buildJob(Array.from({ length: 60 }, (_, i) => ({ key: `t${i}` })));
      await storage.createJob(b.job, b.tasks);
      const claims = await Promise.all(
        Array.from({ length: 8 }, (_, i) => storage.claimReady({ limit: 10, now: 1, owner: `o${i}`, leaseMs: 100 })),
      );
      const ids = claims.flat().map((t) => t.id);
      equal(ids.length, 60);
      equal(new Set(ids).size, 60);
    },
  },
  {
    name: "claimReady() rejects bad options with a typed error naming the option",
    async run({ storage }) {
      await rejects(() => storage.claimReady({ limit: -1, now: 1, owner: OWNER, leaseMs: 10 }), RangeError, "limit");
      await rejects(() => storage.claimReady({ limit: 1, now: 1, owner: "", leaseMs: 10 }), TypeError, "owner");
      await rejects(() => storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 0 }), RangeError, "leaseMs");
      for (const start of [-1, 1.5, Number.NaN]) {
        await rejects(
          () => storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 10, start }),
          RangeError,
          "start",
        );
      }
      for (const agents of ["a", null, [1], [""], ["ok", "\ud800"]]) {
        await rejects(
          () => storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 10, agents: agents as never }),
          TypeError,
          "agents",
        );
      }
    },
  },
  {
    name: "a lease owner with a lone surrogate is refused, and an id with one renews no other task's lease",
    async run({ storage }) {
      // A UTF-8 database stores U+FFFD in place of a lone surrogate: two owners differing
      // only there would hold, and renew, each other's leases.
      const b = buildJob([{ key: "a" }, { key: "b" }]);
      (b.tasks[0] as { id: string }).id = `${b.id("a")}\ufffd`;
      await storage.createJob(b.job, b.tasks);
      for (const owner of ["o\ud800", "\udc00"]) {
        await rejects(() => storage.claimReady({ limit: 2, now: 1, owner, leaseMs: 100 }), TypeError, "owner");
        await rejects(() => storage.renewLeases({ ids: [], owner, now: 1, leaseMs: 100 }), TypeError, "owner");
      }
      equal((await storage.listTasks({ status: "running" })).length, 0, "a refused claim claims nothing");
      const claimed = await storage.claimReady({ limit: 2, now: 1, owner: "o\ufffd", leaseMs: 100 });
      equal(claimed.length, 2);
      const id = `${b.id("a")}\ufffd`;
      deepEqual(
        await storage.renewLeases({ ids: [`${b.id("a")}\ud800`], owner: "o\ufffd", now: 50, leaseMs: 1000 }),
        [],
      );
      equal((await get(storage, id)).leaseExpiresAt, 101, "the lease of the task whose id has U+FFFD there");
      deepEqual(await storage.renewLeases({ ids: [id], owner: "o\ufffd", now: 50, leaseMs: 1000 }), [id]);
      equal((await get(storage, id)).leaseExpiresAt, 1050);
    },
  },
  {
    name: "a ready task whose attempts no claim can count past does not stop the claims of the other tasks",
    async run({ storage }) {
      // 2^31 - 1 is the largest count an SQL int4 column holds: counting one more attempt
      // failed the claim statement, so no task of the store could be claimed any more.
      const b = buildJob([{ key: "a", maxAttempts: 2 ** 31 - 1 }, { key: "b", priority: 1 }]);
      (b.tasks[0] as { attempts: number }).attempts = 2 ** 31 - 1;
      await storage.createJob(b.job, b.tasks);
      const claimed = await storage.claimReady({ limit: 2, now: 1, owner: OWNER, leaseMs: 100 });
      ok(claimed.some((t) => t.id === b.id("b")), `claimed ${claimed.map((t) => t.key).join(", ")}`);
      const again = await storage.claimReady({ limit: 2, now: 1, owner: OWNER, leaseMs: 100 });
      ok(again.every((t) => t.id === b.id("a")), "only the task at the limit may be left");
    },
  },
  {
    name: "commit() with a stale version throws ConflictError reporting the found state",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const [t] = await storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      const e = await rejects<ConflictError>(
        () =>
          storage.commit([{
            type: "updateTask",
            id: t!.id,
            expect: { version: t!.version - 1 },
            set: { status: "completed" },
          }]),
        ConflictError,
      );
      equal(e.opIndex, 0);
      equal(e.id, t!.id);
      deepEqual(e.found, { status: "running", version: t!.version });
      equal((await get(storage, t!.id)).status, "running");
    },
  },
  {
    name: "commit() with a wrong expected status throws ConflictError",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const t = await get(storage, b.id("a"));
      const e = await rejects<ConflictError>(
        () =>
          storage.commit([{
            type: "updateTask",
            id: t.id,
            expect: { version: t.version, status: "running" },
            set: { status: "completed" },
          }]),
        ConflictError,
      );
      equal(e.found.status, "ready");
    },
  },
  {
    name: "commit() on an unknown task id throws ConflictError with nothing found",
    async run({ storage }) {
      const e = await rejects<ConflictError>(
        () => storage.commit([{ type: "updateTask", id: "ghost", expect: { version: 1 }, set: { status: "ready" } }]),
        ConflictError,
      );
      deepEqual(e.found, { status: null, version: null });
    },
  },
  {
    name: "commit() refuses an illegal transition (pending to completed)",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b", deps: ["a"] }]);
      await storage.createJob(b.job, b.tasks);
      const t = await get(storage, b.id("b"));
      const e = await rejects<InvalidTransitionError>(
        () =>
          storage.commit([{
            type: "updateTask",
            id: t.id,
            expect: { version: t.version },
            set: { status: "completed" },
          }]),
        InvalidTransitionError,
      );
      equal(e.from, "pending");
      equal(e.to, "completed");
      equal((await get(storage, t.id)).version, t.version);
    },
  },
  {
    name: "commit() refuses to change a task in a final status",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "z" }]);
      await storage.createJob(b.job, b.tasks);
      const done = await settle(storage, b.id("a"), "failed");
      await rejects(
        () =>
          storage.commit([{
            type: "updateTask",
            id: done.id,
            expect: { version: done.version },
            set: { status: "ready" },
          }]),
        InvalidTransitionError,
      );
      await rejects(
        () =>
          storage.commit([{
            type: "updateTask",
            id: done.id,
            expect: { version: done.version },
            set: { summary: "x" },
          }]),
        InvalidTransitionError,
      );
    },
  },
  {
    name: "commit() is all or nothing: a failing op leaves earlier ops unapplied",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }]);
      await storage.createJob(b.job, b.tasks);
      const a = await get(storage, b.id("a"));
      const bb = await get(storage, b.id("b"));
      await rejects(
        () =>
          storage.commit([
            { type: "updateTask", id: a.id, expect: { version: a.version }, set: { status: "running" } },
            { type: "setCache", jobId: b.job.id, key: "k", value: 1 },
            { type: "setState", scope: "s", key: "k", value: 2 },
            { type: "updateTask", id: bb.id, expect: { version: bb.version + 7 }, set: { status: "running" } },
          ]),
        ConflictError,
      );
      const after = await get(storage, a.id);
      equal(after.status, "ready");
      equal(after.version, a.version);
      equal(await storage.getCache(b.job.id, "k"), undefined);
      equal(await storage.getState("s", "k"), undefined);
    },
  },
  {
    name: "commit() refuses a non-JSON output and changes nothing",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const [t] = await storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      await rejects(
        () =>
          storage.commit([{
            type: "updateTask",
            id: t!.id,
            expect: { version: t!.version },
            set: { status: "completed", output: { when: new Date() } as unknown as JsonValue },
          }]),
        JsonValueError,
        "Date",
      );
      equal((await get(storage, t!.id)).status, "running");
    },
  },
  {
    name: "commit() refuses a field value no stored task may hold, and the task stays readable and claimable",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }]);
      await storage.createJob(b.job, b.tasks);
      const bad: [string, Record<string, unknown>][] = [
        ["maxAttempts", { maxAttempts: 0 }],
        ["maxAttempts", { maxAttempts: 2 ** 31 }],
        ["agent", { agent: null }],
        ["agent", { agent: "" }],
        ["durability", { durability: "exactly-once" }],
        ["onDependencyFailure", { onDependencyFailure: "ignore" }],
      ];
      for (const [field, set] of bad) {
        const t = await get(storage, b.id("a"));
        await rejects(
          () => storage.commit([{ type: "updateTask", id: t.id, expect: { version: t.version }, set: set as never }]),
          TypeError,
          field,
        );
      }
      const a = await get(storage, b.id("a"));
      equal(a.version, 1);
      equal((await storage.listTasks({ status: "ready" })).length, 2);
      equal((await storage.claimReady({ limit: 5, now: 1, owner: OWNER, leaseMs: 100 })).length, 2);
    },
  },
  {
    name: "createJob() and commit() store the batch as it was at the call, whatever the caller does to it afterwards",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }]);
      const tasks = [...b.tasks].map((t) => ({ ...t, dependencies: [...t.dependencies] }));
      const job = { ...b.job };
      const created = storage.createJob(job, tasks);
      tasks.length = 0; // a caller reusing its buffer
      job.name = "changed";
      await created;
      equal((await storage.listTasks({ jobId: b.job.id })).length, 2);
      equal((await storage.getJob(b.job.id))!.name, b.job.name);
      const [t] = await storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      const output = { n: 1, list: [1] };
      const cached = { v: "at the call" };
      const set: Record<string, unknown> = { status: "completed", output };
      const ops = [
        { type: "updateTask" as const, id: t!.id, expect: { version: t!.version }, set: set as never },
        { type: "setCache" as const, jobId: b.job.id, key: "k", value: cached },
      ];
      const committed = storage.commit(ops);
      set["status"] = "failed";
      output.n = 2;
      output.list.push(2);
      cached.v = "changed after the call";
      ops.length = 0;
      await committed;
      const after = await get(storage, t!.id);
      equal(after.status, "completed");
      deepEqual(after.output, { n: 1, list: [1] });
      deepEqual(await storage.getCache(b.job.id, "k"), { v: "at the call" });
    },
  },
  {
    name:
      "a task's error is stored as it was at the call of commit() or createJob(), whatever the caller does to it afterwards",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const [t] = await storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      const error = { name: "Error", message: "at the call", retryable: false, at: 1 };
      const committed = storage.commit([{
        type: "updateTask",
        id: t!.id,
        expect: { version: t!.version },
        set: { status: "failed", error },
      }]);
      error.message = "changed after the call";
      await committed;
      equal((await get(storage, t!.id)).error?.message, "at the call");
      const b2 = buildJob([{ key: "x" }]);
      const tasks = b2.tasks.map((task) => ({
        ...task,
        error: { name: "Error", message: "at the call", retryable: true, at: 2 },
      }));
      const created = storage.createJob(b2.job, tasks);
      tasks[0]!.error.message = "changed after the call";
      await created;
      equal((await get(storage, b2.tasks[0]!.id)).error?.message, "at the call");
    },
  },
  {
    name: "commit() rejects an op of unknown type and a missing expected version",
    async run({ storage }) {
      await rejects(() => storage.commit([{ type: "dropTable" } as never]), TypeError, "dropTable");
      await rejects(
        () => storage.commit([{ type: "updateTask", id: "x", set: {} } as never]),
        TypeError,
        "expect.version",
      );
    },
  },
  {
    name: "every update increments the version by one",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const t = await get(storage, b.id("a"));
      equal(t.version, 1);
      await storage.commit([{ type: "updateTask", id: t.id, expect: { version: 1 }, set: { summary: "one" } }]);
      await storage.commit([{ type: "updateTask", id: t.id, expect: { version: 2 }, set: { summary: "two" } }]);
      const after = await get(storage, t.id);
      equal(after.version, 3);
      equal(after.summary, "two");
    },
  },
  {
    name: "completing a task makes its dependents ready in the same commit",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b", deps: ["a"] }, { key: "c", deps: ["a"] }]);
      await storage.createJob(b.job, b.tasks);
      const [a] = await storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      const r = await storage.commit([{
        type: "updateTask",
        id: a!.id,
        expect: { version: a!.version },
        set: { status: "completed", output: "x" },
      }]);
      equal(r.readied, 2);
      deepEqual(statuses(r.tasks), { a: "completed", b: "ready", c: "ready" });
      equal((await get(storage, b.id("b"))).remainingDeps, 0);
    },
  },
  {
    name: "a join waits for every dependency (diamond)",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "l", deps: ["a"] }, { key: "r", deps: ["a"] }, {
        key: "j",
        deps: ["l", "r"],
      }]);
      await storage.createJob(b.job, b.tasks);
      await settle(storage, b.id("a"), "completed");
      await settle(storage, b.id("l"), "completed");
      const j = await get(storage, b.id("j"));
      equal(j.status, "pending");
      equal(j.remainingDeps, 1);
      await settle(storage, b.id("r"), "completed");
      equal((await get(storage, b.id("j"))).status, "ready");
    },
  },
  {
    name: "a failed task cancels its dependents transitively, naming the failed task",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b", deps: ["a"] }, { key: "c", deps: ["b"] }, { key: "other" }]);
      await storage.createJob(b.job, b.tasks);
      await settle(storage, b.id("a"), "failed", {
        error: { name: "Error", message: "boom", retryable: false, at: 1 },
      });
      const bt = await get(storage, b.id("b"));
      const ct = await get(storage, b.id("c"));
      equal(bt.status, "cancelled");
      equal(bt.statusReason, 'Dependency "a" failed');
      equal(ct.status, "cancelled");
      equal(ct.statusReason, 'Dependency "b" cancelled');
      equal((await get(storage, b.id("other"))).status, "ready");
      equal((await storage.getJob(b.job.id))!.status, "running");
    },
  },
  {
    name: "a failure ends a chain of 3,000 dependents, and cancelling a job ends such a chain (no recursion per link)",
    async run({ storage }) {
      const chain = (n: number) =>
        buildJob(Array.from({ length: n }, (_, i) => ({ key: `t${i}`, ...(i > 0 ? { deps: [`t${i - 1}`] } : {}) })));
      const failed = chain(3000);
      await storage.createJob(failed.job, failed.tasks);
      await settle(storage, failed.id("t0"), "failed");
      equal((await get(storage, failed.id("t2999"))).status, "cancelled");
      const job = (await storage.getJob(failed.job.id))!;
      equal(job.status, "failed");
      equal(job.openCount, 0);

      const cancelled = chain(3000);
      await storage.createJob(cancelled.job, cancelled.tasks);
      await setJobStatus(storage, cancelled.job.id, "cancelled");
      equal((await get(storage, cancelled.id("t2999"))).status, "cancelled");
      equal((await storage.getJob(cancelled.job.id))!.openCount, 0);
    },
  },
  {
    name: "a failure's dependents name their nearest ended dependency",
    async run({ storage }) {
      const b = buildJob([
        { key: "a" },
        { key: "b", deps: ["a"] },
        { key: "c", deps: ["a"] },
        { key: "x", deps: ["b", "c"] },
        { key: "y", deps: ["a", "x"] },
      ]);
      await storage.createJob(b.job, b.tasks);
      await settle(storage, b.id("a"), "failed");
      const reason = async (key: string) => (await get(storage, b.id(key))).statusReason;
      equal(await reason("b"), 'Dependency "a" failed');
      equal(await reason("c"), 'Dependency "a" failed');
      equal(await reason("x"), 'Dependency "b" cancelled');
      equal(await reason("y"), 'Dependency "a" failed');
    },
  },
  {
    name: "onDependencyFailure: block makes the dependent blocked instead of cancelled",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b", deps: ["a"], onDependencyFailure: "block" }]);
      await storage.createJob(b.job, b.tasks);
      await settle(storage, b.id("a"), "failed");
      const bt = await get(storage, b.id("b"));
      equal(bt.status, "blocked");
      equal((await storage.getJob(b.job.id))!.status, "running");
    },
  },
  {
    name: "a job ends completed exactly once when its last task completes",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }]);
      await storage.createJob(b.job, b.tasks);
      const ends: string[] = [];
      for (const key of ["a", "b"]) {
        let t = await get(storage, b.id(key));
        await storage.commit([{
          type: "updateTask",
          id: t.id,
          expect: { version: t.version },
          set: { status: "running" },
        }]);
        t = await get(storage, t.id);
        const r = await storage.commit([{
          type: "updateTask",
          id: t.id,
          expect: { version: t.version },
          set: { status: "completed" },
        }]);
        for (const j of r.jobs) ends.push(j.status);
      }
      deepEqual(ends, ["completed"]);
      const job = (await storage.getJob(b.job.id))!;
      equal(job.openCount, 0);
      ok(job.finishedAt !== null);
    },
  },
  {
    name: "a job with a failed task ends failed",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b", deps: ["a"] }]);
      await storage.createJob(b.job, b.tasks);
      await settle(storage, b.id("a"), "failed");
      const job = (await storage.getJob(b.job.id))!;
      equal(job.status, "failed");
      equal(job.failedCount, 1);
    },
  },
  {
    name: "an inserted child whose dependency already completed is ready at once",
    async run({ storage }) {
      const b = buildJob([{ key: "p" }, { key: "q" }]);
      await storage.createJob(b.job, b.tasks);
      await settle(storage, b.id("q"), "completed");
      const child = childRecord(b, { key: "child", parentKey: "p", deps: ["q"] });
      const join = childRecord(b, { key: "join", parentKey: "p" });
      join.dependencies = [child.id];
      await storage.commit([{ type: "insertTask", task: child }, { type: "insertTask", task: join }]);
      equal((await get(storage, child.id)).status, "ready");
      equal((await get(storage, join.id)).status, "pending");
      const job = (await storage.getJob(b.job.id))!;
      equal(job.taskCount, 4);
      equal(job.openCount, 3);
    },
  },
  {
    name: "a parent's completion and its children are written in one commit, and the job waits for them",
    async run({ storage }) {
      const b = buildJob([{ key: "p" }]);
      await storage.createJob(b.job, b.tasks);
      const [p] = await storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      const child = childRecord(b, { key: "c", parentKey: "p" });
      const r = await storage.commit([
        { type: "updateTask", id: p!.id, expect: { version: p!.version }, set: { status: "completed" } },
        { type: "insertTask", task: child },
      ]);
      deepEqual(r.jobs, []);
      equal((await storage.getJob(b.job.id))!.status, "running");
      await settle(storage, child.id, "completed");
      equal((await storage.getJob(b.job.id))!.status, "completed");
    },
  },
  {
    name: "a task inserted earlier in a batch is made ready when its dependency completes later in the same batch",
    async run({ storage }) {
      const b = buildJob([{ key: "p" }, { key: "q" }]);
      await storage.createJob(b.job, b.tasks);
      const [p] = await storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      const waiter = childRecord(b, { key: "waiter", deps: ["p"] });
      const r = await storage.commit([
        { type: "insertTask", task: waiter },
        { type: "updateTask", id: p!.id, expect: { version: p!.version }, set: { status: "completed" } },
      ]);
      equal(r.tasks.find((t) => t.key === "waiter")!.status, "ready");
      const stored = await get(storage, waiter.id);
      equal(stored.status, "ready");
      equal(stored.remainingDeps, 0);
    },
  },
  {
    name: "insertTask refuses a dependency on itself or on a task inserted later in the batch (a cycle)",
    async run({ storage }) {
      const b = buildJob([{ key: "p" }]);
      await storage.createJob(b.job, b.tasks);
      const self = childRecord(b, { key: "self", parentKey: "p" });
      self.dependencies = [self.id];
      await rejects(() => storage.commit([{ type: "insertTask", task: self }]), TypeError, "inserted after it");
      const x = childRecord(b, { key: "x", parentKey: "p" });
      const y = childRecord(b, { key: "y", parentKey: "p" });
      x.dependencies = [y.id];
      y.dependencies = [x.id];
      await rejects(
        () => storage.commit([{ type: "insertTask", task: x }, { type: "insertTask", task: y }]),
        TypeError,
        "inserted after it",
      );
      await rejects(() => storage.commit([{ type: "insertTask", task: null as never }]), TypeError, '"task"');
      equal((await storage.listTasks({ jobId: b.job.id })).length, 1, "nothing was written");
      equal((await storage.getJob(b.job.id))!.taskCount, 1);
    },
  },
  {
    name: "createJob refuses a dependency cycle or a task depending on itself, in any order of the list",
    async run({ storage }) {
      // Such a job would never end: no task on the cycle ever becomes ready.
      const shapes: [string, { key: string; deps?: string[] }[]][] = [
        ["two tasks", [{ key: "a", deps: ["b"] }, { key: "b", deps: ["a"] }]],
        ["itself", [{ key: "ok" }, { key: "c", deps: ["c"] }]],
        ["behind a valid prefix", [{ key: "x", deps: ["z"] }, { key: "y", deps: ["x"] }, { key: "z", deps: ["y"] }]],
      ];
      for (const [what, drafts] of shapes) {
        const b = buildJob(drafts);
        await rejects(() => storage.createJob(b.job, b.tasks), TypeError, "cycle");
        equal(await storage.getJob(b.job.id), undefined, what);
      }
      // Dependencies on tasks later in the list are fine when there is no cycle.
      const b = buildJob([{ key: "late", deps: ["early"] }, { key: "early" }]);
      await storage.createJob(b.job, b.tasks);
      equal((await get(storage, b.id("late"))).status, "pending");
      equal((await get(storage, b.id("early"))).status, "ready");
    },
  },
  {
    name: "createJob refuses a job without tasks (it would never end) and writes nothing",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await rejects(() => storage.createJob(b.job, []), TypeError, "at least one task");
      equal(await storage.getJob(b.job.id), undefined);
      equal((await storage.listJobs()).length, 0);
      // The same job with its task is stored: nothing of the refused call remains in the way.
      await storage.createJob(b.job, b.tasks);
      equal((await storage.getJob(b.job.id))!.taskCount, 1);
    },
  },
  {
    name: "a caller cannot make a task ready or paused while its dependencies have not ended",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b", deps: ["a"] }]);
      await storage.createJob(b.job, b.tasks);
      const waiting = await get(storage, b.id("b"));
      for (const status of ["ready", "paused"] as const) {
        await rejects(
          () =>
            storage.commit([{
              type: "updateTask",
              id: waiting.id,
              expect: { version: waiting.version },
              set: { status },
            }]),
          InvalidTransitionError,
          "dependencies",
        );
      }
      deepEqual((await storage.claimReady({ limit: 10, now: 5000, owner: OWNER, leaseMs: 100 })).map((t) => t.key), [
        "a",
      ]);
      equal((await get(storage, waiting.id)).status, "pending");
      // A caller may still cancel or block it.
      await storage.commit([{
        type: "updateTask",
        id: waiting.id,
        expect: { version: waiting.version },
        set: { status: "cancelled", statusReason: "not wanted" },
      }]);
      equal((await get(storage, waiting.id)).status, "cancelled");
    },
  },
  {
    name: "insertTask into an ended job is refused",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      await settle(storage, b.id("a"), "completed");
      await rejects(
        () => storage.commit([{ type: "insertTask", task: childRecord(b, { key: "late" }) }]),
        StorageError,
        "ended",
      );
    },
  },
  {
    name: "pausing a job parks its ready tasks; a dependency finishing meanwhile parks the dependent too",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }, { key: "c", deps: ["a"] }]);
      await storage.createJob(b.job, b.tasks);
      const [a] = await storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      const job = (await storage.getJob(b.job.id))!;
      await setJobStatus(storage, job.id, "paused");
      equal((await get(storage, b.id("b"))).status, "paused");
      await storage.commit([{
        type: "updateTask",
        id: a!.id,
        expect: { version: a!.version },
        set: { status: "completed" },
      }]);
      equal((await get(storage, b.id("c"))).status, "paused");
      const paused = (await storage.getJob(job.id))!;
      equal(paused.status, "paused");
      await setJobStatus(storage, job.id, "running");
      deepEqual(statuses(await storage.listTasks({ jobId: job.id })), { a: "completed", b: "ready", c: "ready" });
    },
  },
  {
    name: "cancelling a job cancels every open task and ends it once as cancelled",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }, { key: "c", deps: ["a"] }]);
      await storage.createJob(b.job, b.tasks);
      await storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      const job = (await storage.getJob(b.job.id))!;
      const r = await setJobStatus(storage, job.id, "cancelled");
      deepEqual(r.jobs.map((j) => j.status), ["cancelled"]);
      deepEqual(statuses(await storage.listTasks({ jobId: job.id })), {
        a: "cancelled",
        b: "cancelled",
        c: "cancelled",
      });
      const ended = (await storage.getJob(job.id))!;
      await rejects(
        () =>
          storage.commit([{
            type: "updateJob",
            id: job.id,
            expect: { version: ended.version },
            set: { status: "running" },
          }]),
        InvalidTransitionError,
      );
    },
  },
  {
    name: "a task that asks for review satisfies dependents only once accepted",
    async run({ storage }) {
      const b = buildJob([{ key: "a", review: true }, { key: "b", deps: ["a"] }]);
      await storage.createJob(b.job, b.tasks);
      const done = await settle(storage, b.id("a"), "completed", { output: "draft" });
      equal((await get(storage, b.id("b"))).status, "pending");
      equal((await storage.getJob(b.job.id))!.openCount, 2);
      await storage.commit([{
        type: "updateTask",
        id: done.id,
        expect: { version: done.version },
        set: { status: "accepted" },
      }]);
      equal((await get(storage, b.id("b"))).status, "ready");
    },
  },
  {
    name: "a rejected review can send the task back to ready with the feedback",
    async run({ storage }) {
      const b = buildJob([{ key: "a", review: true }]);
      await storage.createJob(b.job, b.tasks);
      const done = await settle(storage, b.id("a"), "completed", { output: "draft" });
      await storage.commit([{
        type: "updateTask",
        id: done.id,
        expect: { version: done.version },
        set: { status: "ready", reviewFeedback: "too short" },
      }]);
      const again = await get(storage, done.id);
      equal(again.status, "ready");
      equal(again.reviewFeedback, "too short");
      equal(again.output, null);
    },
  },
  {
    name: "a task of a paused job sent back to ready (retry, lease recovery, retryTask) waits paused until resume",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }, { key: "c", deps: ["x"], onDependencyFailure: "block" }, {
        key: "x",
      }]);
      await storage.createJob(b.job, b.tasks);
      const [a, bb] = await storage.claimReady({ limit: 2, now: 1, owner: OWNER, leaseMs: 100 });
      ok(a && bb);
      await settle(storage, b.id("x"), "failed");
      equal((await get(storage, b.id("c"))).status, "blocked");
      const job = (await storage.getJob(b.job.id))!;
      await setJobStatus(storage, job.id, "paused");
      // A retry of a running task, a lease handed back, and a person retrying a blocked task.
      const blocked = await get(storage, b.id("c"));
      const r = await storage.commit([
        {
          type: "updateTask",
          id: a.id,
          expect: { version: a.version, status: "running" },
          set: { status: "ready", runAt: 5 },
        },
        { type: "updateTask", id: bb.id, expect: { version: bb.version, status: "running" }, set: { status: "ready" } },
        {
          type: "updateTask",
          id: blocked.id,
          expect: { version: blocked.version, status: "blocked" },
          set: { status: "ready" },
        },
      ]);
      equal(r.readied, 0, "nothing became ready");
      deepEqual(statuses(await storage.listTasks({ jobId: job.id })), {
        a: "paused",
        b: "paused",
        c: "paused",
        x: "failed",
      });
      deepEqual(await storage.claimReady({ limit: 10, now: 1000, owner: OWNER, leaseMs: 100 }), []);
      await setJobStatus(storage, job.id, "running");
      equal((await get(storage, a.id)).runAt, 5, "the retry keeps its time");
      deepEqual(
        (await storage.claimReady({ limit: 10, now: 1000, owner: OWNER, leaseMs: 100 })).map((t) => t.key).sort(),
        [
          "a",
          "b",
          "c",
        ],
      );
    },
  },
  {
    name: "cancelling a job cancels a task awaiting review; the job ends with nothing open and the review is refused",
    async run({ storage }) {
      const b = buildJob([{ key: "a", review: true }, { key: "b" }]);
      await storage.createJob(b.job, b.tasks);
      const done = await settle(storage, b.id("a"), "completed", { output: "draft" });
      await settle(storage, b.id("b"), "completed");
      const job = (await storage.getJob(b.job.id))!;
      equal(job.openCount, 1, "the task awaiting review keeps the job open");
      const r = await setJobStatus(storage, job.id, "cancelled");
      deepEqual(r.jobs.map((j) => j.status), ["cancelled"]);
      const ended = (await storage.getJob(job.id))!;
      equal(ended.openCount, 0);
      deepEqual(statuses(await storage.listTasks({ jobId: job.id })), { a: "cancelled", b: "completed" });
      const cancelled = await get(storage, done.id);
      equal(cancelled.output, "draft", "its output is kept");
      await rejects(
        () =>
          storage.commit([{
            type: "updateTask",
            id: done.id,
            expect: { version: cancelled.version },
            set: { status: "ready", reviewFeedback: "again" },
          }]),
        InvalidTransitionError,
      );
    },
  },
  {
    name: "a completed task without review never changes again (reopening would satisfy its dependents twice)",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }, { key: "c", deps: ["a", "b"] }]);
      await storage.createJob(b.job, b.tasks);
      const a = await settle(storage, b.id("a"), "completed", { output: 1 });
      for (const set of [{ status: "ready" }, { status: "accepted" }, { status: "rejected" }, { output: 2 }] as const) {
        await rejects(
          () => storage.commit([{ type: "updateTask", id: a.id, expect: { version: a.version }, set }]),
          InvalidTransitionError,
        );
      }
      const c = await get(storage, b.id("c"));
      equal(c.status, "pending");
      equal(c.remainingDeps, 1);
      equal((await get(storage, a.id)).version, a.version);
    },
  },
  {
    name: "a dependency settling leaves dependents that no longer wait untouched (a blocked one keeps its version)",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }, { key: "c", deps: ["a", "b"], onDependencyFailure: "block" }]);
      await storage.createJob(b.job, b.tasks);
      await settle(storage, b.id("a"), "failed");
      const blocked = await get(storage, b.id("c"));
      equal(blocked.status, "blocked");
      await settle(storage, b.id("b"), "completed");
      const after = await get(storage, b.id("c"));
      equal(after.status, "blocked");
      equal(after.version, blocked.version, "not rewritten");
    },
  },
  {
    name:
      "a task blocked by a failed dependency and sent back to ready waits, pending, for its other open dependencies",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }, { key: "c", deps: ["a", "b"], onDependencyFailure: "block" }]);
      await storage.createJob(b.job, b.tasks);
      const [, bb] = await storage.claimReady({ limit: 2, now: 1, owner: OWNER, leaseMs: 100 });
      ok(bb);
      await settle(storage, b.id("a"), "failed");
      const blocked = await get(storage, b.id("c"));
      equal(blocked.status, "blocked");
      await storage.commit([{
        type: "updateTask",
        id: blocked.id,
        expect: { version: blocked.version, status: "blocked" },
        set: { status: "ready" },
      }]);
      const waiting = await get(storage, b.id("c"));
      equal(waiting.status, "pending", "b is still running");
      equal(waiting.remainingDeps, 1);
      await storage.commit([{
        type: "updateTask",
        id: bb.id,
        expect: { version: bb.version, status: "running" },
        set: { status: "completed" },
      }]);
      equal((await get(storage, b.id("c"))).status, "ready");
    },
  },
  {
    name: "an update may not move a task to another parent, job, key or dependency list",
    async run({ storage }) {
      const b = buildJob([{ key: "p" }, { key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const a = await get(storage, b.id("a"));
      for (const field of ["parentId", "jobId", "key", "dependencies", "id"]) {
        await rejects(
          () =>
            storage.commit([{
              type: "updateTask",
              id: a.id,
              expect: { version: a.version },
              set: { [field]: field === "dependencies" ? [b.id("p")] : b.id("p") } as never,
            }]),
          TypeError,
          `"${field}"`,
        );
      }
      equal((await storage.listTasks({ parentId: b.id("p") })).length, 0);
      equal((await get(storage, a.id)).version, a.version);
    },
  },
  {
    name: "cancelling a job ends the tasks an earlier op of the same batch sent back to ready or inserted",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }]);
      await storage.createJob(b.job, b.tasks);
      const [a] = await storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      ok(a);
      const job = (await storage.getJob(b.job.id))!;
      const kid = childRecord(b, { key: "kid" });
      await storage.commit([
        { type: "updateTask", id: a.id, expect: { version: a.version, status: "running" }, set: { status: "ready" } },
        { type: "insertTask", task: kid },
        // The insert moved the job's version within this batch.
        { type: "updateJob", id: job.id, expect: { version: job.version + 1 }, set: { status: "cancelled" } },
      ]);
      deepEqual(statuses(await storage.listTasks({ jobId: job.id })), {
        a: "cancelled",
        b: "cancelled",
        kid: "cancelled",
      });
      const ended = (await storage.getJob(job.id))!;
      equal(ended.status, "cancelled");
      equal(ended.openCount, 0);
    },
  },
  {
    name: "renewLeases() extends leases held by the owner and skips the others",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }]);
      await storage.createJob(b.job, b.tasks);
      const [a] = await storage.claimReady({ limit: 1, now: 1, owner: "mine", leaseMs: 100 });
      const [bb] = await storage.claimReady({ limit: 1, now: 1, owner: "theirs", leaseMs: 100 });
      const renewed = await storage.renewLeases({
        ids: [a!.id, bb!.id, "ghost"],
        owner: "mine",
        now: 50,
        leaseMs: 100,
      });
      deepEqual(renewed, [a!.id]);
      equal((await get(storage, a!.id)).leaseExpiresAt, 150);
      equal((await get(storage, bb!.id)).leaseExpiresAt, 101);
      equal((await get(storage, a!.id)).version, a!.version);
    },
  },
  {
    name: "leases of tasks whose ids name Object.prototype members are their own, renewed or not",
    async run({ storage }) {
      // Eight tasks: one claim of them all (a claim the IndexedDB adapter stores as one record).
      const ids = ["__proto__", "constructor", "toString", "valueOf", "t4", "t5", "t6", "t7"];
      const b = buildJob(ids.map((_, i) => ({ key: `k${i}` })));
      b.tasks.forEach((t, i) => (t.id = ids[i]!));
      await storage.createJob(b.job, b.tasks);
      equal((await storage.claimReady({ limit: 8, now: 1000, owner: OWNER, leaseMs: 10 })).length, 8);
      deepEqual(
        (await storage.renewLeases({ ids: ["__proto__", "t4"], owner: OWNER, now: 1005, leaseMs: 100 })).sort(),
        ["__proto__", "t4"],
      );
      equal((await get(storage, "constructor")).leaseExpiresAt, 1010);
      equal((await get(storage, "toString")).leaseExpiresAt, 1010);
      equal((await get(storage, "__proto__")).leaseExpiresAt, 1105);
      deepEqual((await storage.expiredLeases(1050)).map((t) => t.id).sort(), [
        "constructor",
        "t5",
        "t6",
        "t7",
        "toString",
        "valueOf",
      ]);
      deepEqual((await storage.expiredLeases(2000)).map((t) => t.id).sort(), [...ids].sort());
    },
  },
  {
    name: "expiredLeases() returns running tasks whose lease has expired, and only those",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }, { key: "c" }]);
      await storage.createJob(b.job, b.tasks);
      await storage.claimReady({ limit: 1, now: 0, owner: OWNER, leaseMs: 100 });
      await storage.claimReady({ limit: 1, now: 0, owner: OWNER, leaseMs: 500 });
      deepEqual((await storage.expiredLeases(99)).map((t) => t.key), []);
      deepEqual((await storage.expiredLeases(100)).map((t) => t.key), ["a"]);
      deepEqual((await storage.expiredLeases(1000)).map((t) => t.key), ["a", "b"]);
    },
  },
  {
    name: "expiredLeases() reads odd arguments alike on every adapter",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b" }, { key: "c" }]);
      await storage.createJob(b.job, b.tasks);
      await storage.claimReady({ limit: 1, now: 0, owner: OWNER, leaseMs: 100 });
      await storage.claimReady({ limit: 1, now: 0, owner: OWNER, leaseMs: 500 });
      const keys = async (now: unknown, limit?: unknown) =>
        (await storage.expiredLeases(now as number, limit as number)).map((t) => t.key);
      // A limit is floored; past the largest safe integer (or Infinity) it is none; a
      // negative one, or one that is not a number, is 0.
      deepEqual(await keys(1000, 1.9), ["a"]);
      deepEqual(await keys(1000, 1e20), ["a", "b"]);
      deepEqual(await keys(1000, Infinity), ["a", "b"]);
      deepEqual(await keys(1000, -1), []);
      deepEqual(await keys(1000, Number.NaN), []);
      deepEqual(await keys(1000, "5"), []);
      // Infinity is after every expiry; a time that is not a number is none.
      deepEqual(await keys(Infinity), ["a", "b"]);
      deepEqual(await keys("1000"), []);
      deepEqual(await keys(Number.NaN), []);
    },
  },
  {
    name: "a completion from a lost lease is rejected after the task was recovered",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const [zombie] = await storage.claimReady({ limit: 1, now: 0, owner: "dead", leaseMs: 10 });
      const [expired] = await storage.expiredLeases(10);
      await storage.commit([{
        type: "updateTask",
        id: expired!.id,
        expect: { version: expired!.version, status: "running" },
        set: { status: "ready" },
      }]);
      const [fresh] = await storage.claimReady({ limit: 1, now: 20, owner: "alive", leaseMs: 10 });
      equal(fresh!.attempts, 2);
      await rejects(
        () =>
          storage.commit([{
            type: "updateTask",
            id: zombie!.id,
            expect: { version: zombie!.version },
            set: { status: "completed", output: "late" },
          }]),
        ConflictError,
      );
      const now = await get(storage, fresh!.id);
      equal(now.leaseOwner, "alive");
      equal(now.output, null);
    },
  },
  {
    name:
      "a compare-and-swap expecting a lease expiry conflicts once the lease was renewed (renewal keeps the version)",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      await storage.claimReady({ limit: 1, now: 0, owner: "slow", leaseMs: 10 });
      const [expired] = await storage.expiredLeases(20);
      equal(expired!.leaseExpiresAt, 10);
      // The owner renews after the expiry was read, before the recovery commits.
      deepEqual(await storage.renewLeases({ ids: [expired!.id], owner: "slow", now: 20, leaseMs: 100 }), [expired!.id]);
      const recover = (leaseExpiresAt: number) =>
        storage.commit([{
          type: "updateTask",
          id: expired!.id,
          expect: { version: expired!.version, status: "running", leaseExpiresAt },
          set: { status: "ready" },
        }]);
      const e = await rejects(() => recover(10), ConflictError, "lease until 10");
      equal((e as ConflictError).found.leaseExpiresAt, 120);
      const t = await get(storage, expired!.id);
      equal(t.status, "running", "the renewed task stays with its owner");
      equal(t.leaseOwner, "slow");
      // Expecting the lease it has succeeds.
      const r = await recover(120);
      equal(r.tasks[0]!.status, "ready");
    },
  },
  {
    name: "the job cache round-trips, overwrites and deletes",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      await storage.commit([{ type: "setCache", jobId: b.job.id, key: "k", value: { n: 1 } }]);
      deepEqual(await storage.getCache(b.job.id, "k"), { n: 1 });
      await storage.commit([{ type: "setCache", jobId: b.job.id, key: "k", value: [2] }]);
      deepEqual(await storage.getCache(b.job.id, "k"), [2]);
      await storage.commit([{ type: "setCache", jobId: b.job.id, key: "k", value: undefined }]);
      equal(await storage.getCache(b.job.id, "k"), undefined);
      await rejects(() => storage.commit([{ type: "setCache", jobId: "nope", key: "k", value: 1 }]), NotFoundError);
    },
  },
  {
    name:
      "a cache or state write that expects a value is stored only while the entry holds it; else KeyConflictError " +
      "and nothing of the batch is applied",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const jobId = b.job.id;
      // Absent, expected absent: stored. Then expected as found: stored.
      await storage.commit([{ type: "setCache", jobId, key: "n", value: 1, expect: { value: undefined } }]);
      await storage.commit([{ type: "setState", scope: "s", key: "n", value: { v: 1 }, expect: { value: undefined } }]);
      await storage.commit([{ type: "setCache", jobId, key: "n", value: 2, expect: { value: 1 } }]);
      await storage.commit([{ type: "setState", scope: "s", key: "n", value: { v: 2 }, expect: { value: { v: 1 } } }]);
      equal(await storage.getCache(jobId, "n"), 2);
      deepEqual(await storage.getState("s", "n"), { v: 2 });
      // A stale expectation (another writer stored meanwhile) fails the whole batch.
      const stale: CommitOp[][] = [
        [
          { type: "setState", scope: "s", key: "other", value: "kept?" },
          { type: "setCache", jobId, key: "n", value: 99, expect: { value: 1 } },
        ],
        [
          { type: "setCache", jobId, key: "other", value: "kept?" },
          { type: "setState", scope: "s", key: "n", value: 99, expect: { value: { v: 1 } } },
        ],
        // Expected absent, but present; expected present, but absent.
        [{ type: "setCache", jobId, key: "n", value: 99, expect: { value: undefined } }],
        [{ type: "setState", scope: "s", key: "missing", value: 99, expect: { value: 0 } }],
      ];
      for (const ops of stale) {
        const e = await rejects<KeyConflictError>(() => storage.commit(ops), KeyConflictError);
        equal(e.opIndex, ops.length - 1);
      }
      equal(await storage.getCache(jobId, "n"), 2);
      deepEqual(await storage.getState("s", "n"), { v: 2 });
      equal(await storage.getState("s", "other"), undefined, "nothing of a failed batch is applied");
      equal(await storage.getCache(jobId, "other"), undefined);
      equal(await storage.getState("s", "missing"), undefined);
      // Within one batch an expectation sees the batch's earlier writes: the second of two
      // writers that read the same value conflicts.
      await rejects(
        () =>
          storage.commit([
            { type: "setCache", jobId, key: "n", value: 3, expect: { value: 2 } },
            { type: "setCache", jobId, key: "n", value: 3, expect: { value: 2 } },
          ]),
        KeyConflictError,
      );
      await storage.commit([
        { type: "setCache", jobId, key: "n", value: 3, expect: { value: 2 } },
        { type: "setCache", jobId, key: "n", value: 4, expect: { value: 3 } },
      ]);
      equal(await storage.getCache(jobId, "n"), 4);
      // Equal JSON matches whatever its key order; a malformed expectation is a TypeError.
      await storage.commit([{ type: "setState", scope: "s", key: "o", value: { a: 1, b: [2] } }]);
      await storage.commit([{ type: "setState", scope: "s", key: "o", value: 5, expect: { value: { b: [2], a: 1 } } }]);
      equal(await storage.getState("s", "o"), 5);
      await rejects(
        () => storage.commit([{ type: "setState", scope: "s", key: "o", value: 6, expect: 5 as never }]),
        TypeError,
        "expect",
      );
      equal(await storage.getState("s", "o"), 5);
    },
  },
  {
    name: "shared state round-trips per scope",
    async run({ storage }) {
      await storage.commit([
        { type: "setState", scope: "user:1", key: "theme", value: "dark" },
        { type: "setState", scope: "user:2", key: "theme", value: "light" },
      ]);
      equal(await storage.getState("user:1", "theme"), "dark");
      equal(await storage.getState("user:2", "theme"), "light");
      equal(await storage.getState("user:3", "theme"), undefined);
      await storage.commit([{ type: "setState", scope: "user:1", key: "theme", value: undefined }]);
      equal(await storage.getState("user:1", "theme"), undefined);
      // A scope and a key that hold NUL are two entries, however they split.
      try {
        await storage.commit([
          { type: "setState", scope: "plain", key: "k", value: 1 },
          { type: "setState", scope: "a\u0000b", key: "c", value: "first" },
          { type: "setState", scope: "a", key: "b\u0000c", value: "second" },
        ]);
      } catch (e) {
        // PostgreSQL's text cannot hold NUL: it refuses the whole batch, as a value it cannot hold.
        if (!(e instanceof RangeError && e.message.includes("PostgreSQL"))) throw e;
        equal(await storage.getState("plain", "k"), undefined);
        return;
      }
      equal(await storage.getState("plain", "k"), 1);
      equal(await storage.getState("a\u0000b", "c"), "first");
      equal(await storage.getState("a", "b\u0000c"), "second");
      await storage.commit([{ type: "setState", scope: "a", key: "b\u0000c", value: undefined }]);
      equal(await storage.getState("a\u0000b", "c"), "first");
    },
  },
  {
    name: "negative zero is stored as zero, in JSON values and in number fields, as every store reads it back",
    async run({ storage }) {
      // JSON has no -0, and database columns keep no sign of zero: one answer everywhere.
      const b = buildJob([{ key: "a", priority: -0, runAt: -0, input: { z: -0, list: [-0] } }]);
      (b.job as { metadata: JsonValue }).metadata = { z: -0 };
      await storage.createJob(b.job, b.tasks);
      const a = await get(storage, b.id("a"));
      await storage.commit([
        { type: "setCache", jobId: b.job.id, key: "c", value: -0 },
        { type: "setState", scope: "s", key: "k", value: { z: -0 } },
        { type: "updateTask", id: a.id, expect: { version: a.version }, set: { priority: -0, output: -0 } },
      ]);
      const t = await get(storage, a.id);
      const job = (await storage.getJob(b.job.id))!;
      const zeros: [string, unknown][] = [
        ["priority", t.priority],
        ["runAt", t.runAt],
        ["input", (t.input as { z: number }).z],
        ["input list", (t.input as { list: number[] }).list[0]],
        ["output", t.output],
        ["metadata", (job.metadata as { z: number }).z],
        ["cache", await storage.getCache(b.job.id, "c")],
        ["state", ((await storage.getState("s", "k")) as { z: number }).z],
      ];
      for (const [what, v] of zeros) ok(Object.is(v, 0), `${what}: ${Object.is(v, -0) ? "-0" : String(v)}`);
    },
  },
  {
    name: "negative zero is stored as zero in the other number fields too: timeouts, creation times and times set",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }, { key: "b", priority: 1 }, { key: "c", priority: 2 }]);
      (b.job as { createdAt: number }).createdAt = -0;
      (b.tasks[0] as { timeoutMs: number }).timeoutMs = -0;
      (b.tasks[0] as { createdAt: number }).createdAt = -0;
      (b.tasks[2] as { attempts: number }).attempts = -0;
      await storage.createJob(b.job, b.tasks);
      const a = await get(storage, b.id("a"));
      const c = await get(storage, b.id("c"));
      const zeros: [string, unknown][] = [
        ["job createdAt", (await storage.getJob(b.job.id))!.createdAt],
        ["timeoutMs", a.timeoutMs],
        ["createdAt", a.createdAt],
        ["attempts", c.attempts],
      ];
      // Counts an update sets.
      await storage.commit([{
        type: "updateTask",
        id: c.id,
        expect: { version: c.version },
        set: { attempts: -0, remainingDeps: -0 },
      }]);
      const counted = await get(storage, c.id);
      zeros.push(["set attempts", counted.attempts], ["set remainingDeps", counted.remainingDeps]);
      // A clock at -0 (a claim's, a commit's) and times an update sets.
      const [claimed] = await storage.claimReady({ limit: 1, now: -0, owner: OWNER, leaseMs: 100 });
      zeros.push(["claim updatedAt", claimed!.updatedAt]);
      await storage.commit([{
        type: "updateTask",
        id: a.id,
        expect: { version: claimed!.version },
        set: { status: "completed", output: 1, timeoutMs: -0, startedAt: -0 },
      }], -0);
      const done = await get(storage, a.id);
      zeros.push(
        ["commit updatedAt", done.updatedAt],
        ["commit finishedAt", done.finishedAt],
        ["set timeoutMs", done.timeoutMs],
        ["set startedAt", done.startedAt],
      );
      const bb = await get(storage, b.id("b"));
      await storage.commit([{
        type: "updateTask",
        id: bb.id,
        expect: { version: bb.version },
        set: { status: "running", leaseOwner: OWNER, leaseExpiresAt: -0, finishedAt: -0 },
      }]);
      const running = await get(storage, bb.id);
      zeros.push(["set leaseExpiresAt", running.leaseExpiresAt], ["set finishedAt", running.finishedAt]);
      for (const [what, v] of zeros) ok(Object.is(v, 0), `${what}: ${Object.is(v, -0) ? "-0" : String(v)}`);
    },
  },
  {
    name: "JSON values round-trip exactly: nesting, unicode, large strings, __proto__ keys",
    async run({ storage }) {
      const big = "x".repeat(200_000);
      const input = JSON.parse(
        JSON.stringify({
          nested: { a: [1, 2.5, -0.125, { b: [null, true, false] }], deep: { e: { f: { g: "h" } } } },
          unicode: "héllo wörld — 日本語 🎉 \u0000 \n",
          big,
          empty: { list: [], obj: {} },
          num: 1e300,
        }).replace('"num"', '"__proto__":{"polluted":true},"num"'),
      );
      const b = buildJob([{ key: "a", input }]);
      await storage.createJob(b.job, b.tasks);
      await storage.commit([{ type: "setState", scope: "s", key: "v", value: input }]);
      const t = await get(storage, b.id("a"));
      deepEqual(t.input, input);
      deepEqual(await storage.getState("s", "v"), input);
      ok(Object.prototype.hasOwnProperty.call(t.input, "__proto__"));
      equal(({} as Record<string, unknown>).polluted, undefined);
    },
  },
  {
    name: "records handed out are isolated from caller mutation",
    async run({ storage }) {
      const input = { list: [1, 2], obj: { k: "v" } };
      const b = buildJob([{ key: "a", input }]);
      await storage.createJob(b.job, b.tasks);
      input.list.push(3);
      input.obj.k = "changed";
      const t = await get(storage, b.id("a"));
      deepEqual(t.input, { list: [1, 2], obj: { k: "v" } });
      // Records are copies or frozen: a write either lands on a copy or throws.
      const attempt = (f: () => void) => {
        try {
          f();
        } catch (e) {
          ok(e instanceof TypeError, "a frozen record refuses writes with a TypeError");
        }
      };
      attempt(() => (t.status = "completed"));
      attempt(() => (t.attempts = 99));
      attempt(() => (t.input as { list: number[] }).list.push(4));
      const again = await get(storage, b.id("a"));
      equal(again.status, "ready");
      equal(again.attempts, 0);
      deepEqual(again.input, { list: [1, 2], obj: { k: "v" } });
      const job = (await storage.getJob(b.job.id))!;
      attempt(() => (job.status = "failed"));
      equal((await storage.getJob(b.job.id))!.status, "running");
    },
  },
  {
    name: "commit(), renewLeases() and prune() refuse bad times and counts instead of storing them",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const [a] = await storage.claimReady({ limit: 1, now: 1, owner: "o", leaseMs: 100 });
      const set = { type: "updateTask" as const, id: a!.id, expect: { version: a!.version }, set: { summary: "s" } };
      for (const now of [Number.NaN, Infinity, "x" as unknown as number]) {
        await rejects(() => storage.commit([set], now), RangeError, '"now"');
      }
      // A lease end past the largest number: stored as Infinity it never expires, and a
      // durable store cannot read it back.
      for (const bad of [{ now: 1.5e308, leaseMs: 1.5e308 }, { now: 1e308, leaseMs: Number.MAX_VALUE }]) {
        await rejects(() => storage.claimReady({ limit: 1, owner: "o", ...bad }), RangeError, '"leaseMs"');
      }
      for (
        const bad of [
          { now: Number.NaN },
          { leaseMs: "x" as unknown as number },
          { leaseMs: 0 },
          { owner: "" },
          { now: 1.5e308, leaseMs: 1.5e308 },
        ]
      ) {
        await rejects(
          () => storage.renewLeases({ ids: [a!.id], owner: "o", now: 2, leaseMs: 100, ...bad }),
          Error,
          "renewLeases()",
        );
      }
      const t = await get(storage, a!.id);
      equal(t.version, a!.version, "nothing was written");
      equal(t.leaseExpiresAt, 101);
      await settle(storage, a!.id, "completed");
      for (const keepLast of [-1, 1.5, Number.NaN]) {
        await rejects(() => storage.prune({ keepLast }), RangeError, '"keepLast"');
      }
      // Nothing asked for prunes nothing; `null` reads as not given; Infinity keeps everything.
      equal(await storage.prune(undefined as never), 0);
      equal(await storage.prune({ keepLast: Infinity, finishedBefore: null as never }), 0);
      equal((await storage.listJobs()).length, 1, "no job was pruned");
      equal((await storage.listJobs(null as never)).length, 1);
      equal((await storage.listTasks({ limit: null as never, after: null as never })).length, 1);
      equal((await storage.listJobs({ limit: 1e20 })).length, 1, "a limit past any store's size is none");
      // An unknown status is a mistake, not a filter that matches nothing.
      await rejects(() => storage.listTasks({ status: "done" as never }), RangeError, '"status"');
      await rejects(() => storage.listJobs({ status: "ready" as never }), RangeError, '"status"');
      equal((await storage.listJobs({ status: "completed" })).length, 1);
      // Paging: a limit is a non-negative integer (Infinity: no limit), `after` an id.
      for (const limit of [1.5, -1, Number.NaN]) {
        await rejects(() => storage.listTasks({ limit }), RangeError, '"limit"');
        await rejects(() => storage.listJobs({ limit }), RangeError, '"limit"');
      }
      equal((await storage.listTasks({ limit: Infinity })).length, 1);
      // Ids that are not strings find nothing, on every adapter alike.
      equal(await storage.getJob({} as never), undefined);
      equal(await storage.getTask(undefined as never), undefined);
      deepEqual(await storage.getTasks([{} as never, a!.id]).then((ts) => ts.map((x) => x.id)), [a!.id]);
    },
  },
  {
    name: "prune() deletes ended jobs by count and age and keeps running ones",
    async run({ storage }) {
      const done = [buildJob([{ key: "a" }], "d1"), buildJob([{ key: "a" }], "d2"), buildJob([{ key: "a" }], "d3")];
      const live = buildJob([{ key: "a" }], "live");
      for (const b of [...done, live]) await storage.createJob(b.job, b.tasks);
      for (const b of done) await settle(storage, b.id("a"), "completed");
      equal(await storage.prune({ keepLast: 1 }), 2);
      const names = (await storage.listJobs()).map((j) => j.name).sort();
      equal(names.length, 2);
      ok(names.includes("live"));
      equal(await storage.getTask(done[0]!.id("a")), undefined);
      // A count past the largest safe integer keeps every job (it is not one SQLite takes).
      equal(await storage.prune({ keepLast: 1e20 }), 0);
      equal(await storage.prune({ finishedBefore: Number.MAX_SAFE_INTEGER }), 1);
      deepEqual((await storage.listJobs()).map((j) => j.name), ["live"]);
    },
  },
  {
    name: "prune() with keepLast and finishedBefore deletes the jobs either names; a tie in end time goes by id",
    async run({ storage }) {
      const jobs = Array.from({ length: 6 }, (_, i) => buildJob([{ key: "a" }], `j${i + 1}`));
      const live = buildJob([{ key: "a" }], "live");
      for (const b of [...jobs, live]) await storage.createJob(b.job, b.tasks);
      const endedAt = [100, 200, 200, 300, 400, 500];
      for (const [i, b] of jobs.entries()) {
        await storage.commit(
          [{ type: "updateJob", id: b.job.id, expect: { version: 1 }, set: { status: "cancelled" } }],
          endedAt[i],
        );
      }
      const names = async () => (await storage.listJobs()).map((j) => j.name).sort();
      equal(await storage.prune({ keepLast: 5 }), 1);
      deepEqual(await names(), ["j2", "j3", "j4", "j5", "j6", "live"]);
      // Newest first: j6, j5, j4, then j3 and j2 (both at 200: j3, created later, is newer).
      equal(await storage.prune({ keepLast: 4, finishedBefore: 250 }), 2);
      deepEqual(await names(), ["j4", "j5", "j6", "live"]);
      equal(await storage.prune({ keepLast: 10, finishedBefore: 350 }), 1);
      deepEqual(await names(), ["j5", "j6", "live"]);
      equal(await storage.prune({ keepLast: 0 }), 2);
      deepEqual(await names(), ["live"]);
    },
  },
  {
    name: "watch() listeners of this storage are told which jobs changed status",
    async run({ storage }) {
      const changes: (StorageChange | undefined)[] = [];
      const stop = storage.watch((change) => changes.push(change));
      const b = buildJob([{ key: "a" }, { key: "b", deps: ["a"] }]);
      await storage.createJob(b.job, b.tasks);
      for (let i = 0; i < 400 && changes.length < 1; i++) await new Promise((r) => setTimeout(r, 5));
      deepEqual(changes, [{ jobs: [b.job.id] }], "the new job");
      await settle(storage, b.id("a"), "completed");
      for (let i = 0; i < 400 && changes.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
      // Completing a makes b ready and changes no job's status (claiming it told nothing).
      deepEqual(changes.slice(1), [{ jobs: [] }], "a completion that ends no job names none");
      await settle(storage, b.id("b"), "completed");
      for (let i = 0; i < 400 && changes.length < 3; i++) await new Promise((r) => setTimeout(r, 5));
      deepEqual(changes[2], { jobs: [b.job.id] }, "the completion that ends the job names it");
      stop();
    },
  },
  {
    name: "watch() is told when tasks become ready",
    async run({ storage }) {
      let calls = 0;
      const stop = storage.watch(() => calls++);
      const b = buildJob([{ key: "a" }, { key: "b", deps: ["a"] }]);
      await storage.createJob(b.job, b.tasks);
      await settle(storage, b.id("a"), "completed");
      // Some backends tell their watchers asynchronously (notifications, channels).
      for (let i = 0; i < 400 && calls < 2; i++) await new Promise((r) => setTimeout(r, 5));
      ok(calls >= 2, `expected at least 2 wake-ups, got ${calls}`);
      stop();
      const before = calls;
      const c = buildJob([{ key: "x" }]);
      await storage.createJob(c.job, c.tasks);
      await new Promise((r) => setTimeout(r, 20));
      equal(calls, before);
    },
  },
  {
    name: "watch() of one function twice makes two watchers, each ended by its own stop; a non-function is refused",
    async run({ storage }) {
      throws(() => storage.watch("wake" as never), TypeError, "function");
      let calls = 0;
      const listener = () => calls++;
      const stop1 = storage.watch(listener);
      const stop2 = storage.watch(listener);
      const told = async (atLeast: number) => {
        const before = calls;
        const b = buildJob([{ key: "a" }]);
        await storage.createJob(b.job, b.tasks);
        // Some backends tell their watchers asynchronously (notifications, channels).
        for (let i = 0; i < 400 && calls - before < atLeast; i++) await new Promise((r) => setTimeout(r, 5));
        await new Promise((r) => setTimeout(r, 20));
        return calls - before;
      };
      ok((await told(2)) >= 2, "each watcher is told");
      stop1();
      ok((await told(1)) >= 1, "the second watcher is still told after the first stopped");
      stop2();
      equal(await told(0), 0, "no watcher is left");
    },
  },
  {
    name:
      "close() tells every watcher once more (whoever waits on one learns of the close at once) unless it stopped first, then none; a watcher added after the close is told at once",
    async run({ storage }) {
      const told: (StorageChange | undefined)[] = [];
      storage.watch((change) => told.push(change));
      let stoppedOne = 0;
      const stop = storage.watch(() => stoppedOne++);
      stop();
      let stoppedAfter = 0;
      const stopAfter = storage.watch(() => stoppedAfter++);
      const closing = storage.close();
      stopAfter(); // between the close and the telling
      await closing;
      // Some backends tell their watchers asynchronously.
      for (let i = 0; i < 400 && told.length < 1; i++) await new Promise((r) => setTimeout(r, 5));
      deepEqual(told, [undefined], "told once, that anything may have changed");
      await new Promise((r) => setTimeout(r, 50));
      equal(told.length, 1, "told once only");
      equal(stoppedOne, 0, "a watcher stopped before the close is not told");
      equal(stoppedAfter, 0, "nor one stopped after the close, before it was told");
      await storage.close();
      await new Promise((r) => setTimeout(r, 50));
      equal(told.length, 1, "a second close() tells nothing");
      // A watcher added after the close is told at once, and not kept.
      const late: (StorageChange | undefined)[] = [];
      storage.watch((change) => late.push(change));
      let stoppedLate = 0;
      storage.watch(() => stoppedLate++)();
      for (let i = 0; i < 400 && late.length < 1; i++) await new Promise((r) => setTimeout(r, 5));
      await new Promise((r) => setTimeout(r, 50));
      deepEqual(late, [undefined], "a watcher added after the close is told once");
      equal(stoppedLate, 0, "one stopped at once is not told");
      throws(() => storage.watch("wake" as never), TypeError, "function");
    },
  },
  {
    name: "a closed storage throws StorageClosedError, which waiting does not cure",
    async run({ storage }) {
      await storage.close();
      const e = await rejects(() => storage.getJob("x"), StorageClosedError, "closed");
      ok(e instanceof StorageError);
      equal(isTransientStorageError(e), false, "not an error that may pass");
      await rejects(() => storage.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 10 }), StorageClosedError);
      await rejects(() => storage.commit([]), StorageClosedError);
      // Whatever the arguments: a time that answers nothing on an open storage still says closed.
      await rejects(() => storage.expiredLeases(0), StorageClosedError);
      await rejects(() => storage.expiredLeases(Number.NaN), StorageClosedError);
      await rejects(() => storage.renewLeases({ ids: ["x"], owner: "", now: 1, leaseMs: 10 }), StorageClosedError);
      await rejects(() => storage.prune({ keepLast: -1 }), StorageClosedError);
      await rejects(() => storage.claimReady({ limit: -1, now: 1, owner: OWNER, leaseMs: 10 }), StorageClosedError);
      await rejects(() => storage.listTasks({ limit: -1 }), StorageClosedError);
      await rejects(() => storage.listJobs({ limit: -1 }), StorageClosedError);
      // Every call answers with a rejected promise, never a synchronous throw: a caller
      // that chains `.catch()` or awaits later would otherwise miss it.
      const b = buildJob([{ key: "a" }]);
      const calls: [string, () => Promise<unknown>][] = [
        ["createJob", () => storage.createJob(b.job, b.tasks)],
        ["getJob", () => storage.getJob("x")],
        ["listJobs", () => storage.listJobs()],
        ["getTask", () => storage.getTask("x")],
        ["getTasks", () => storage.getTasks(["x"])],
        ["listTasks", () => storage.listTasks({ jobId: "x" })],
        ["getCache", () => storage.getCache("x", "k")],
        ["getState", () => storage.getState("s", "k")],
        ["renewLeases", () => storage.renewLeases({ ids: ["x"], owner: OWNER, now: 1, leaseMs: 10 })],
        ["expiredLeases", () => storage.expiredLeases(0)],
        ["prune", () => storage.prune({ keepLast: 0 })],
      ];
      for (const [name, call] of calls) {
        let answer: Promise<unknown>;
        try {
          answer = call();
        } catch (e) {
          throw new Error(`${name}() threw synchronously: ${(e as Error).message}`);
        }
        await rejects(() => answer, StorageClosedError);
      }
    },
  },
  {
    name: "two jobs are independent: ending one leaves the other running",
    async run({ storage }) {
      const one = buildJob([{ key: "a" }]);
      const two = buildJob([{ key: "a" }]);
      await storage.createJob(one.job, one.tasks);
      await storage.createJob(two.job, two.tasks);
      await settle(storage, one.id("a"), "completed");
      equal((await storage.getJob(one.job.id))!.status, "completed");
      equal((await storage.getJob(two.job.id))!.status, "running");
      notEqual(one.job.id, two.job.id);
    },
  },
  {
    name: "a retried task goes back to ready with a later runAt and is claimed only then",
    async run({ storage }) {
      const b = buildJob([{ key: "a" }]);
      await storage.createJob(b.job, b.tasks);
      const [t] = await storage.claimReady({ limit: 1, now: 0, owner: OWNER, leaseMs: 100 });
      await storage.commit([{
        type: "updateTask",
        id: t!.id,
        expect: { version: t!.version },
        set: { status: "ready", runAt: 500, error: { name: "Error", message: "flaky", retryable: true, at: 0 } },
      }]);
      deepEqual(await storage.claimReady({ limit: 1, now: 499, owner: OWNER, leaseMs: 100 }), []);
      const [again] = await storage.claimReady({ limit: 1, now: 500, owner: OWNER, leaseMs: 100 });
      equal(again!.attempts, 2);
      equal(again!.error?.message, "flaky");
    },
  },
  {
    name: "durable data survives closing and reopening the storage",
    async run(ctx) {
      ok(ctx.reopen, "a durable target can reopen its storage"); // non-durable ones skip this case
      const b = buildJob([{ key: "a" }, { key: "b", deps: ["a"] }]);
      await ctx.storage.createJob(b.job, b.tasks);
      await settle(ctx.storage, b.id("a"), "completed", { output: { ok: true } });
      await ctx.storage.commit([{ type: "setState", scope: "s", key: "k", value: 7 }]);
      const again = await ctx.reopen();
      deepEqual((await again.getTask(b.id("a")))!.output, { ok: true });
      equal((await again.getTask(b.id("b")))!.status, "ready");
      equal(await again.getState("s", "k"), 7);
      equal((await again.claimReady({ limit: 5, now: 1, owner: OWNER, leaseMs: 10 })).length, 1);
    },
  },
];

/** The storage cases for one adapter, with capability gaps turned into skips with a reason. */
export function storageSuite(capabilities: { durable: boolean }): Case<StorageContext>[] {
  return storageCases.map((c) =>
    c.name.startsWith("durable data") && !capabilities.durable
      ? { ...c, skip: "the adapter is not durable: nothing outlives the process" }
      : c
  );
}
