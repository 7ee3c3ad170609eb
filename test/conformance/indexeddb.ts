/**
 * Cases of the IndexedDB adapter itself (the storage suite covers the contract): several
 * connections on one database, cross-tab wake-ups, the claim index, and the failures
 * IndexedDB turns into typed errors. Runs on fake-indexeddb and in real Chromium.
 */

import { type IndexedDbStorage, type IndexedDbStorageOptions, openIndexedDbStorage } from "../../adapters/indexeddb.ts";
import { openDatabase, SCHEMA_VERSION } from "../../adapters/indexeddb/schema.ts";
import {
  StorageBlockedError,
  StorageError,
  StorageQuotaError,
  StorageVersionChangeError,
  StorageVersionError,
} from "../../src/errors.ts";
import { deleteDatabase, testFactory, uniqueDbName } from "../targets-indexeddb.ts";
import { deepEqual, equal, ok, rejects } from "./assert.ts";
import { buildJob } from "./fixtures.ts";
import type { Case, Registrar } from "./harness.ts";
import { register } from "./harness.ts";

/** What each case gets: a fresh database name and a way to open storages on it. */
export interface IdbContext {
  name: string;
  factory: IDBFactory;
  /** Open a storage on the case's database (closed by the teardown). */
  open(extra?: Partial<IndexedDbStorageOptions>): Promise<IndexedDbStorage>;
  /** Open a plain connection (no versionchange handler: it never closes by itself). */
  raw(version?: number): Promise<IDBDatabase>;
}

const OWNER = "owner";
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean, ms = 2000): Promise<boolean> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) return false;
    await sleep(5);
  }
  return true;
}

/** Replace a method of a global IDB class for the duration of `fn`. */
async function patched<T>(
  cls: string,
  method: string,
  wrap: (orig: (...args: unknown[]) => unknown) => (this: unknown, ...args: unknown[]) => unknown,
  fn: () => Promise<T>,
): Promise<T> {
  const proto = (globalThis as unknown as Record<string, { prototype: Record<string, unknown> }>)[cls]!.prototype;
  const orig = proto[method] as (...args: unknown[]) => unknown;
  proto[method] = wrap(orig);
  try {
    return await fn();
  } finally {
    proto[method] = orig;
  }
}

function quota(): DOMException {
  return new DOMException("The quota has been exceeded.", "QuotaExceededError");
}

const hasBroadcast = typeof (globalThis as { BroadcastChannel?: unknown }).BroadcastChannel === "function";

export const indexedDbCases: Case<IdbContext>[] = [
  {
    name: "claims are atomic across two connections on one database (two tabs)",
    async run({ open }) {
      const a = await open();
      const b = await open();
      const job = buildJob(Array.from({ length: 60 }, (_, i) => ({ key: `t${i}` })));
      await a.createJob(job.job, job.tasks);
      const claims = await Promise.all(
        Array.from(
          { length: 8 },
          (_, i) => (i % 2 ? a : b).claimReady({ limit: 10, now: 1, owner: `o${i}`, leaseMs: 100 }),
        ),
      );
      const ids = claims.flat().map((t) => t.id);
      equal(ids.length, 60);
      equal(new Set(ids).size, 60);
      equal((await b.listTasks({ status: "running" })).length, 60);
    },
  },
  {
    name: "a commit in one connection wakes watchers of another through a BroadcastChannel",
    ...(hasBroadcast ? {} : { skip: "this runtime has no BroadcastChannel" }),
    async run({ open }) {
      const a = await open();
      const b = await open();
      let woken = 0;
      b.watch(() => woken++);
      const job = buildJob([{ key: "x" }]);
      await a.createJob(job.job, job.tasks);
      ok(await until(() => woken > 0), "the other connection was never woken");
    },
  },
  {
    name: "broadcast: false keeps wake-ups in this connection",
    async run({ open }) {
      const a = await open({ broadcast: false });
      const b = await open();
      let local = 0;
      let remote = 0;
      a.watch(() => local++);
      b.watch(() => remote++);
      const job = buildJob([{ key: "x" }]);
      await a.createJob(job.job, job.tasks);
      ok(await until(() => local > 0), "the local listener was never called");
      await sleep(50);
      equal(remote, 0);
    },
  },
  {
    name: "claimReady() takes due tasks behind a better priority whose tasks are all delayed, reading no delayed task",
    async run({ open }) {
      const s = await open();
      const job = buildJob([
        ...Array.from({ length: 40 }, (_, i) => ({ key: `late${i}`, priority: 0, runAt: 10_000 })),
        { key: "p0-due", priority: 0, runAt: 50 },
        ...Array.from({ length: 40 }, (_, i) => ({ key: `p1-late${i}`, priority: 1, runAt: 20_000 + i })),
        { key: "p1-due", priority: 1, runAt: 0 },
        { key: "p2-due", priority: 2, runAt: 99 },
      ]);
      await s.createJob(job.job, job.tasks);
      let read = 0;
      let requests = 0;
      const got = await patched(
        "IDBIndex",
        "getAll",
        (orig) =>
          function (this: unknown, ...args: unknown[]) {
            requests++;
            const request = orig.apply(this, args) as IDBRequest<unknown[]>;
            request.addEventListener("success", () => (read += request.result.length));
            return request;
          },
        () => s.claimReady({ limit: 10, now: 100, owner: OWNER, leaseMs: 100 }),
      );
      deepEqual(got.map((t) => t.key), ["p0-due", "p1-due", "p2-due"]);
      equal(read, 3, "claimReady() read delayed tasks");
      ok(requests <= 3, `one getAll per priority expected, got ${requests}`);
      deepEqual(await s.claimReady({ limit: 10, now: 100, owner: OWNER, leaseMs: 100 }), []);
    },
  },
  {
    name: "a batch of many tasks interleaved in id order with another job's is read and written exactly",
    async run({ open }) {
      const s = await open();
      const x = buildJob(Array.from({ length: 40 }, (_, i) => ({ key: `x${i}` })), "x");
      const y = buildJob(Array.from({ length: 40 }, (_, i) => ({ key: `y${i}` })), "y");
      x.tasks.forEach((t, i) => (t.id = `k-${String(i * 2).padStart(4, "0")}`));
      y.tasks.forEach((t, i) => (t.id = `k-${String(i * 2 + 1).padStart(4, "0")}`));
      await s.createJob(x.job, x.tasks);
      await s.createJob(y.job, y.tasks);
      const claimed = await s.claimReady({ limit: 80, now: 1, owner: OWNER, leaseMs: 100 });
      equal(claimed.length, 80);
      const mine = claimed.filter((t) => t.jobId === x.job.id);
      const r = await s.commit(mine.map((t) => ({
        type: "updateTask" as const,
        id: t.id,
        expect: { version: t.version },
        set: { status: "completed" as const },
      })));
      equal(r.tasks.length, 40);
      deepEqual(r.jobs.map((j) => j.status), ["completed"]);
      equal((await s.listTasks({ jobId: y.job.id, status: "running" })).length, 40);
      const dup = buildJob(Array.from({ length: 30 }, (_, i) => ({ key: `d${i}` })), "dup");
      dup.tasks.forEach((t, i) => (t.id = `k-${String(i * 3).padStart(4, "0")}z`));
      dup.tasks[17]!.id = y.tasks[5]!.id;
      await rejects(() => s.createJob(dup.job, dup.tasks), StorageError, "already exists");
      equal(await s.getJob(dup.job.id), undefined);
      equal(await s.getTask(dup.tasks[0]!.id), undefined);
    },
  },
  {
    name: "listTasks() by job pages in id order across statuses",
    async run({ open }) {
      const s = await open();
      const b = buildJob(Array.from({ length: 12 }, (_, i) => ({ key: `t${String(i).padStart(2, "0")}` })));
      await s.createJob(b.job, b.tasks);
      const claimed = await s.claimReady({ limit: 12, now: 1, owner: OWNER, leaseMs: 100 });
      // Spread the tasks over several statuses: every third completed, every third failed.
      await s.commit(claimed.flatMap((t, i) =>
        i % 3 === 0 ? [] : [{
          type: "updateTask" as const,
          id: t.id,
          expect: { version: t.version },
          set: { status: i % 3 === 1 ? "completed" as const : "failed" as const },
        }]
      ));
      const keys: string[] = [];
      let after: string | undefined;
      for (;;) {
        const page = await s.listTasks({ jobId: b.job.id, limit: 5, ...(after === undefined ? {} : { after }) });
        keys.push(...page.map((t) => t.key));
        if (page.length < 5) break;
        after = page[page.length - 1]!.id;
      }
      deepEqual(keys, b.tasks.map((t) => t.key));
      deepEqual((await s.listTasks({ jobId: b.job.id, agent: "noop", limit: 3 })).map((t) => t.key), [
        "t00",
        "t01",
        "t02",
      ]);
    },
  },
  {
    name: "a QuotaExceededError while committing becomes StorageQuotaError and applies nothing",
    async run({ open }) {
      const s = await open();
      const job = buildJob([{ key: "a" }, { key: "b", deps: ["a"] }]);
      await s.createJob(job.job, job.tasks);
      const [a] = await s.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      const jobBefore = (await s.getJob(job.job.id))!;
      const done = {
        type: "updateTask" as const,
        id: a!.id,
        expect: { version: a!.version },
        set: { status: "completed" as const, output: "x" },
      };
      await patched(
        "IDBObjectStore",
        "put",
        (orig) =>
          function (this: unknown, ...args: unknown[]) {
            if ((this as IDBObjectStore).name === "tasks") throw quota();
            return orig.apply(this, args);
          },
        () => rejects(() => s.commit([done, { type: "setState", scope: "s", key: "k", value: 1 }]), StorageQuotaError),
      );
      equal((await s.getTask(a!.id))!.status, "running");
      equal((await s.getTask(job.id("b")))!.status, "pending");
      deepEqual(await s.getJob(job.job.id), jobBefore);
      equal(await s.getState("s", "k"), undefined);
      // Nothing was lost: the same commit succeeds once there is room again.
      const r = await s.commit([done]);
      equal(r.readied, 1);
    },
  },
  {
    name: "a QuotaExceededError while claiming becomes StorageQuotaError and claims nothing",
    async run({ open }) {
      const s = await open();
      const job = buildJob([{ key: "a" }, { key: "b" }]);
      await s.createJob(job.job, job.tasks);
      let puts = 0;
      await patched(
        "IDBObjectStore",
        "put",
        (orig) =>
          function (this: unknown, ...args: unknown[]) {
            if (++puts === 2) throw quota();
            return orig.apply(this, args);
          },
        () => rejects(() => s.claimReady({ limit: 5, now: 1, owner: OWNER, leaseMs: 100 }), StorageQuotaError),
      );
      equal((await s.listTasks({ status: "ready" })).length, 2);
      equal((await s.claimReady({ limit: 5, now: 1, owner: OWNER, leaseMs: 100 })).length, 2);
    },
  },
  {
    name: "an upgrade by another tab closes the storage with StorageVersionChangeError",
    async run({ open, raw }) {
      const s = await open();
      let woken = 0;
      s.watch(() => woken++);
      const newer = await raw(SCHEMA_VERSION + 1);
      ok(await until(() => woken > 0), "watchers were not told the storage closed");
      const e = await rejects<StorageVersionChangeError>(() => s.getJob("x"), StorageVersionChangeError, "closed");
      equal(e.newVersion, SCHEMA_VERSION + 1);
      await rejects(() => s.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 10 }), StorageVersionChangeError);
      newer.close();
      const v = await rejects<StorageVersionError>(() => open(), StorageVersionError);
      equal(v.found, SCHEMA_VERSION + 1);
      equal(v.supported, SCHEMA_VERSION);
    },
  },
  {
    name: "deleting the database under the storage closes it with StorageVersionChangeError",
    async run({ open, name, factory }) {
      const s = await open();
      await deleteDatabase(factory, name);
      const e = await rejects<StorageVersionChangeError>(
        () => s.commit([{ type: "setState", scope: "s", key: "k", value: 1 }]),
        StorageVersionChangeError,
        "deleted",
      );
      equal(e.newVersion, null);
    },
  },
  {
    name: "an upgrade blocked by a connection that does not close throws StorageBlockedError and changes nothing",
    async run({ open, raw, name, factory }) {
      const first = await open();
      await first.close();
      const holder = await raw();
      await rejects(
        () =>
          openDatabase({
            factory,
            name,
            version: SCHEMA_VERSION + 1,
            onVersionChange: () => {},
            onTerminated: () => {},
          }),
        StorageBlockedError,
        "another tab",
      );
      holder.close();
      await sleep(20);
      const again = await open();
      equal(again.databaseName, name);
      deepEqual(await again.listJobs(), []);
    },
  },
  {
    name: "a database that is not task-core's is refused with a clear error",
    async run({ open, raw }) {
      const foreign = await raw();
      foreign.close();
      await rejects(() => open(), StorageError, "not a task-core database");
    },
  },
  {
    name: "openIndexedDbStorage() rejects bad options naming them",
    async run({ name }) {
      await rejects(() => openIndexedDbStorage({ name: "" }), TypeError, "name");
      await rejects(
        () => openIndexedDbStorage({ name, durability: "fast" as never }),
        RangeError,
        "durability",
      );
    },
  },
  {
    name: "records are stored as plain tasks and JSON values handed out are frozen",
    async run({ open }) {
      const s = await open();
      const job = buildJob([{ key: "a", input: { list: [1] } }]);
      await s.createJob(job.job, job.tasks);
      const t = (await s.getTask(job.id("a")))!;
      ok(Object.isFrozen(t.input));
      ok(Object.isFrozen((t.input as { list: number[] }).list));
      ok(!Object.isFrozen(t), "the record itself is a copy the caller may change");
      const [claimed] = await s.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      ok(Object.isFrozen(claimed!.input));
    },
  },
];

/** Register the IndexedDB cases with a runner, on the global `indexedDB`. */
export function registerIndexedDbCases(registrar: Registrar, label = "indexeddb"): void {
  register(registrar, label, indexedDbCases, () => {
    const factory = testFactory();
    const name = uniqueDbName("task-core-idb");
    const opened: IndexedDbStorage[] = [];
    const raws: IDBDatabase[] = [];
    const ctx: IdbContext = {
      name,
      factory,
      async open(extra = {}) {
        const s = await openIndexedDbStorage({ name, idbFactory: factory, ...extra });
        opened.push(s);
        return s;
      },
      raw(version) {
        return new Promise((resolve, reject) => {
          const request = version === undefined ? factory.open(name) : factory.open(name, version);
          request.onsuccess = () => {
            raws.push(request.result);
            resolve(request.result);
          };
          request.onerror = () => reject(request.error);
        });
      },
    };
    return Promise.resolve({
      ctx,
      teardown: async () => {
        for (const s of opened) await s.close();
        for (const r of raws) r.close();
        await deleteDatabase(factory, name);
      },
    });
  });
}
