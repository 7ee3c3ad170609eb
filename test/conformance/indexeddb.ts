/**
 * Cases of the IndexedDB adapter itself (the storage suite covers the contract): several
 * connections on one database, cross-tab wake-ups, the claim index, and the failures
 * IndexedDB turns into typed errors. Runs on fake-indexeddb and in real Chromium.
 */

import { type IndexedDbStorage, type IndexedDbStorageOptions, openIndexedDbStorage } from "../../adapters/indexeddb.ts";
import { IdLeaves, type Leaf } from "../../adapters/indexeddb/leaves.ts";
import { ReadyQueue } from "../../adapters/indexeddb/ready.ts";
import { toRow } from "../../adapters/indexeddb/rows.ts";
import { LEAF_SIZE, openDatabase, SCHEMA_VERSION } from "../../adapters/indexeddb/schema.ts";
import {
  ConflictError,
  StorageBlockedError,
  StorageError,
  StorageQuotaError,
  StorageVersionChangeError,
  StorageVersionError,
} from "../../src/errors.ts";
import { Executor } from "../../src/executor.ts";
import { AgentRegistry } from "../../src/registry.ts";
import type { StorageChange } from "../../src/storage.ts";
import type { Task } from "../../src/types.ts";
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

/** How Chromium fails a large value's write when the disk filled after it last looked (seen on a full tmpfs). */
function blobWriteFailed(): DOMException {
  return new DOMException("Failed to write blobs (IOError)", "DataError");
}

/** Every record of one store, read through a plain connection. */
function storeRecords<T = unknown>(db: IDBDatabase, store: string): Promise<T[]> {
  return new Promise((resolve, reject) => {
    const r = db.transaction(store, "readonly").objectStore(store).getAll();
    r.onsuccess = () => resolve(r.result as T[]);
    r.onerror = () => reject(r.error);
  });
}

/** Completions of `tasks` (as claimed) as commit ops. */
function completions(tasks: readonly Task[]) {
  return tasks.map((t) => ({
    type: "updateTask" as const,
    id: t.id,
    expect: { version: t.version, status: "running" as const },
    set: { status: "completed" as const, output: t.key },
  }));
}

const ids = (tasks: readonly Task[]): string[] => tasks.map((t) => t.id);

const hasBroadcast = typeof (globalThis as { BroadcastChannel?: unknown }).BroadcastChannel === "function";

/** The commit case of a full disk, with the error the browser gives as `full()`. */
async function commitOnFullDisk(s: IndexedDbStorage, full: () => DOMException): Promise<void> {
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
        if ((this as IDBObjectStore).name === "tasks") throw full();
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
  // The job runs to its end (the next round, on the same database, claims only its own tasks).
  const [b] = await s.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
  equal(b?.id, job.id("b"));
  equal((await s.commit(completions([b!]))).jobs[0]?.status, "completed");
}

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
      const changes: (StorageChange | undefined)[] = [];
      b.watch((change) => changes.push(change));
      const job = buildJob([{ key: "x" }]);
      await a.createJob(job.job, job.tasks);
      ok(await until(() => changes.length > 0), "the other connection was never woken");
      deepEqual(changes, [{ jobs: [job.job.id] }], "the new job");
      // The message names the jobs whose status changed (the job this completion ends).
      const [x] = await a.claimReady({ limit: 1, now: 1, owner: "o", leaseMs: 1000 });
      await a.commit([{
        type: "updateTask",
        id: x!.id,
        expect: { version: x!.version },
        set: { status: "completed" },
      }]);
      ok(await until(() => changes.length > 1), "the completion's message");
      deepEqual(changes[1], { jobs: [job.job.id] });
    },
  },
  {
    name: "a write that finishes after close() still wakes the other connections",
    ...(hasBroadcast ? {} : { skip: "this runtime has no BroadcastChannel" }),
    async run({ open }) {
      const a = await open();
      const b = await open();
      const changes: (StorageChange | undefined)[] = [];
      b.watch((change) => changes.push(change));
      const job = buildJob([{ key: "x" }]);
      const created = a.createJob(job.job, job.tasks);
      await a.close();
      await created;
      ok(await until(() => changes.length > 0), "the other connection was never woken");
      deepEqual(changes, [{ jobs: [job.job.id] }]);
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
      // The claim queue (`ready` store) holds leaves of ids: count the ids and requests read from it.
      let read = 0;
      let requests = 0;
      const got = await patched(
        "IDBObjectStore",
        "getAll",
        (orig) =>
          function (this: unknown, ...args: unknown[]) {
            const request = orig.apply(this, args) as IDBRequest<{ ids?: string[] }[]>;
            if ((this as IDBObjectStore).name === "ready") {
              requests++;
              request.addEventListener("success", () => {
                for (const leaf of request.result) read += leaf.ids?.length ?? 0;
              });
            }
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
    name:
      'a full disk while committing (QuotaExceededError, or Chromium\'s DataError "Failed to write blobs") becomes StorageQuotaError and applies nothing',
    async run({ open }) {
      for (const full of [quota, blobWriteFailed]) await commitOnFullDisk(await open(), full);
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
    name: "openReport tells whether the open created the database, and whether one opened here before was " +
      "deleted since (a marker kept outside IndexedDB)",
    async run({ open, name, factory }) {
      const notes = new Map<string, string>();
      const markers = {
        getItem: (k: string) => notes.get(k) ?? null,
        setItem: (k: string, v: string) => void notes.set(k, v),
      };
      const first = await open({ markers });
      deepEqual(first.openReport, { created: true, recreated: false }, "a new database");
      const b = buildJob([{ key: "a" }]);
      await first.createJob(b.job, b.tasks);
      await first.close();
      const again = await open({ markers });
      deepEqual(again.openReport, { created: false, recreated: false }, "the same database again");
      equal((await again.listJobs()).length, 1);
      await again.close();
      // Deleted under the page, as Chromium does with a database it could not write.
      await deleteDatabase(factory, name);
      const after = await open({ markers });
      deepEqual(after.openReport, { created: true, recreated: true }, "created again: what it held is gone");
      equal((await after.listJobs()).length, 0);
      await after.close();
      const next = await open({ markers });
      deepEqual(next.openReport, { created: false, recreated: false }, "reported once, by the open that created it");
      await next.close();
      // Without markers nothing is noted; a store that refuses notes nothing either.
      await deleteDatabase(factory, name);
      deepEqual((await open({ markers: null })).openReport, { created: true, recreated: false });
      const refusing = {
        getItem: (): string | null => {
          throw new Error("SecurityError");
        },
        setItem: (): void => {
          throw new Error("SecurityError");
        },
      };
      deepEqual((await open({ markers: refusing })).openReport, { created: false, recreated: false });
      await rejects(() => open({ markers: {} as never }), TypeError, '"markers"');
    },
  },
  {
    name: "an executor whose database another tab deleted or upgraded stops, as on a closed storage: run() resolves",
    async run({ open, raw, name, factory }) {
      for (const how of ["delete", "upgrade"] as const) {
        const s = await open();
        const registry = new AgentRegistry();
        registry.register({ name: "noop", description: "does nothing", execute: () => null });
        const executor = new Executor({ storage: s, registry, pollIntervalMs: 50 });
        const errors: string[] = [];
        executor.on("storage:error", (e) => errors.push((e.error as Error).name));
        let stopped = false;
        const running = executor.run().then(() => (stopped = true));
        await sleep(20);
        let newer: IDBDatabase | null = null;
        if (how === "delete") await deleteDatabase(factory, name);
        else newer = await raw(SCHEMA_VERSION + 1);
        ok(await until(() => stopped, 5000), `run() resolved after the ${how} (errors: ${errors.join(", ")})`);
        await running;
        ok(errors.length <= 2, `it stopped instead of polling: ${errors.length} storage errors`);
        ok(errors.every((n) => n === "StorageVersionChangeError"), errors.join(", "));
        newer?.close();
        if (newer) await deleteDatabase(factory, name);
      }
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
    name: "a second open while an upgrade is still blocked is refused with StorageBlockedError, not left hanging",
    async run({ raw, name, factory }) {
      // An older task-core (or another library) in another tab holds a connection and ignores versionchange.
      const v1 = await openDatabase({ factory, name, version: 1, onVersionChange: () => {}, onTerminated: () => {} });
      v1.close();
      const holder = await raw(1);
      const open = () => openDatabase({ factory, name, version: 2, onVersionChange: () => {}, onTerminated: () => {} });
      await rejects(open, StorageBlockedError, "another tab");
      // "close the other tabs and retry": a retry before the other tab is closed must say so again.
      // IndexedDB queues it behind the first, still blocked request, which gets no further event.
      const retry = open().then(() => "opened", (e: Error) => e.name);
      const answer = await Promise.race([retry, sleep(1500).then(() => "still pending after 1.5 s")]);
      equal(answer, "StorageBlockedError");
      holder.close();
      // Once the other tab lets go (and the abandoned upgrade is aborted), an open upgrades as usual.
      let db: IDBDatabase | undefined;
      for (let i = 0; !db && i < 100; i++) {
        db = await open().then((d) => d as unknown as IDBDatabase, async (e: Error) => {
          if (!(e instanceof StorageBlockedError)) throw e;
          await sleep(20);
          return undefined;
        });
      }
      equal(db?.version, 2);
      db!.close();
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
    name: "JSON values handed out are frozen, and the records themselves are copies",
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
  {
    name: "a claim of many tasks is one claim record: reads see the tasks running, and their rows are not rewritten",
    async run({ open, raw }) {
      const s = await open();
      const b = buildJob(Array.from({ length: 20 }, (_, i) => ({ key: `t${String(i).padStart(2, "0")}` })));
      await s.createJob(b.job, b.tasks);
      const claimed = await s.claimReady({ limit: 20, now: 1000, owner: OWNER, leaseMs: 500 });
      equal(claimed.length, 20);
      const db = await raw();
      deepEqual((await storeRecords<{ status: string }>(db, "tasks")).map((r) => r.status), Array(20).fill("ready"));
      equal((await storeRecords(db, "claims")).length, 1);
      deepEqual(await s.getTask(claimed[3]!.id), claimed[3]);
      deepEqual(await s.getTasks(ids(claimed)), claimed);
      deepEqual(await s.listTasks({ status: "running" }), claimed);
      deepEqual(await s.listTasks({ jobId: b.job.id, status: "running", limit: 5 }), claimed.slice(0, 5));
      deepEqual(await s.listTasks({ agent: "noop", status: "ready" }), []);
      deepEqual(await s.listTasks({ jobId: b.job.id }), claimed);
      // Part of the claim completes; the claim keeps holding the rest.
      await s.commit(completions(claimed.slice(0, 5)));
      equal((await s.listTasks({ status: "running" })).length, 15);
      equal((await s.listTasks({ status: "completed" })).length, 5);
      deepEqual(await s.getTask(claimed[7]!.id), claimed[7]);
      await s.commit(completions(claimed.slice(5)));
      equal((await s.getJob(b.job.id))!.status, "completed");
      deepEqual(await storeRecords(db, "claims"), [], "the claim record goes with its last task");
      deepEqual(await storeRecords(db, "leases"), []);
      deepEqual(await storeRecords(db, "ready"), []);
    },
  },
  {
    name: "listTasks() of one job's or parent's running tasks reads that job's rows, not every claimed task",
    async run({ open }) {
      const s = await open();
      const small = buildJob([{ key: "mine" }]);
      await s.createJob(small.job, small.tasks);
      const [mine] = await s.claimReady({ limit: 1, now: 1000, owner: OWNER, leaseMs: 500 });
      const big = buildJob(Array.from({ length: 300 }, (_, i) => ({ key: `t${String(i).padStart(3, "0")}` })));
      await s.createJob(big.job, big.tasks);
      equal((await s.claimReady({ limit: 300, now: 1000, owner: OWNER, leaseMs: 500 })).length, 300);
      let rows = 0;
      const counting = (orig: (...args: unknown[]) => unknown) =>
        function (this: unknown, ...args: unknown[]): unknown {
          const request = orig.apply(this, args) as IDBRequest;
          const source = this as { name: string; objectStore?: { name: string } };
          if ((source.objectStore?.name ?? source.name) === "tasks") {
            request.addEventListener("success", () => {
              const r = request.result as unknown;
              rows += Array.isArray(r) ? r.length : r ? 1 : 0;
            });
          }
          return request;
        };
      const got = await patched(
        "IDBObjectStore",
        "get",
        counting,
        () =>
          patched(
            "IDBObjectStore",
            "getAll",
            counting,
            () =>
              patched("IDBIndex", "get", counting, () =>
                patched("IDBIndex", "getAll", counting, () =>
                  s.listTasks({ jobId: small.job.id, status: "running" }))),
          ),
      );
      deepEqual(got, [mine]);
      ok(rows < 10, `${rows} task rows read for one running task`);
      deepEqual(await s.listTasks({ parentId: mine!.id, status: "running" }), []);
    },
  },
  {
    name: "renewing part of a claim extends only those leases, and expiredLeases() sees each task's own expiry",
    async run({ open }) {
      const s = await open();
      const b = buildJob(Array.from({ length: 10 }, (_, i) => ({ key: `t${i}` })));
      await s.createJob(b.job, b.tasks);
      const claimed = await s.claimReady({ limit: 10, now: 0, owner: OWNER, leaseMs: 100 });
      const some = ids(claimed.slice(6));
      deepEqual(await s.renewLeases({ ids: some, owner: OWNER, now: 50, leaseMs: 100 }), some);
      deepEqual(await s.renewLeases({ ids: some, owner: "someone else", now: 50, leaseMs: 100 }), []);
      deepEqual((await s.expiredLeases(120)).map((t) => t.key), ["t0", "t1", "t2", "t3", "t4", "t5"]);
      const all = await s.expiredLeases(200);
      deepEqual(all.map((t) => t.key), ["t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7", "t8", "t9"]);
      deepEqual(all.map((t) => t.leaseExpiresAt), [100, 100, 100, 100, 100, 100, 150, 150, 150, 150]);
      equal((await s.getTask(claimed[7]!.id))!.version, claimed[7]!.version, "a renewal changes no version");
      // Renewing every task the claim still holds moves the whole lease.
      await s.commit(completions(claimed.slice(0, 2)));
      await s.renewLeases({ ids: ids(claimed.slice(2)), owner: OWNER, now: 300, leaseMs: 100 });
      deepEqual((await s.expiredLeases(399)).map((t) => t.key), []);
      equal((await s.expiredLeases(400)).length, 8);
      // A recovered task goes back to ready; the claim no longer holds it, a new claim does.
      const [lost] = await s.expiredLeases(400, 1);
      await s.commit([{
        type: "updateTask",
        id: lost!.id,
        expect: { version: lost!.version, status: "running" },
        set: { status: "ready" },
      }]);
      equal((await s.listTasks({ status: "running" })).length, 7);
      const [again] = await s.claimReady({ limit: 10, now: 500, owner: "next", leaseMs: 100 });
      equal(again!.id, lost!.id);
      equal(again!.attempts, 2);
      equal((await s.getTask(lost!.id))!.leaseOwner, "next");
      await rejects(() => s.commit(completions([lost!])), ConflictError);
    },
  },
  {
    name: "cancelling or pausing a job with claimed tasks updates them and the claim queue",
    async run({ open, raw }) {
      const s = await open({ claimRecordFrom: 1 });
      const b = buildJob(Array.from({ length: 12 }, (_, i) => ({ key: `t${i}` })));
      await s.createJob(b.job, b.tasks);
      const claimed = await s.claimReady({ limit: 5, now: 1, owner: OWNER, leaseMs: 100 });
      let job = (await s.getJob(b.job.id))!;
      await s.commit([{ type: "updateJob", id: job.id, expect: { version: job.version }, set: { status: "paused" } }]);
      equal((await s.listTasks({ status: "paused" })).length, 7);
      equal((await s.listTasks({ status: "running" })).length, 5, "running tasks keep running while paused");
      deepEqual(await s.claimReady({ limit: 10, now: 1, owner: OWNER, leaseMs: 100 }), []);
      job = (await s.getJob(b.job.id))!;
      await s.commit([{ type: "updateJob", id: job.id, expect: { version: job.version }, set: { status: "running" } }]);
      equal((await s.claimReady({ limit: 3, now: 1, owner: OWNER, leaseMs: 100 })).length, 3);
      job = (await s.getJob(b.job.id))!;
      await s.commit([{
        type: "updateJob",
        id: job.id,
        expect: { version: job.version },
        set: { status: "cancelled" },
      }]);
      equal((await s.listTasks({ jobId: b.job.id, status: "cancelled" })).length, 12);
      await rejects(() => s.commit(completions(claimed)), ConflictError);
      const db = await raw();
      for (const store of ["ready", "claims", "leases"]) deepEqual(await storeRecords(db, store), [], store);
    },
  },
  {
    name: "listTasks() pages by status across agents and by agent across statuses in id order",
    async run({ open }) {
      const s = await open();
      const agents = ["a", "b", "c"];
      const b = buildJob(
        Array.from({ length: 18 }, (_, i) => ({ key: `t${String(i).padStart(2, "0")}`, agent: agents[i % 3]! })),
      );
      await s.createJob(b.job, b.tasks);
      const claimed = await s.claimReady({ limit: 9, now: 1, owner: OWNER, leaseMs: 100 });
      await s.commit(completions(claimed.filter((_, i) => i % 2 === 0)));
      const all = await s.listTasks({ jobId: b.job.id });
      const pages = async (q: { status?: Task["status"]; agent?: string }): Promise<string[]> => {
        const keys: string[] = [];
        let after: string | undefined;
        for (;;) {
          const page = await s.listTasks({ ...q, limit: 4, ...(after === undefined ? {} : { after }) });
          keys.push(...page.map((t) => t.key));
          if (page.length < 4) return keys;
          after = page[page.length - 1]!.id;
        }
      };
      for (const status of ["ready", "running", "completed"] as const) {
        deepEqual(await pages({ status }), all.filter((t) => t.status === status).map((t) => t.key), status);
        deepEqual(
          (await s.listTasks({ status })).map((t) => t.key),
          all.filter((t) => t.status === status).map((t) => t.key),
        );
      }
      for (const agent of agents) {
        deepEqual(await pages({ agent }), all.filter((t) => t.agent === agent).map((t) => t.key), agent);
      }
    },
  },
  {
    name: "a database of schema version 1 is upgraded: every task keeps its state and ready ones are claimed in order",
    async run({ name, factory, open }) {
      const v1 = await openDatabase({ factory, name, version: 1, onVersionChange: () => {}, onTerminated: () => {} });
      const b = buildJob([
        { key: "done" },
        { key: "running" },
        { key: "late", priority: 1, runAt: 50 },
        { key: "early", priority: 1, runAt: 10 },
        { key: "first", priority: 0, runAt: 99 },
        { key: "waits", deps: ["running"] },
      ]);
      const states: Record<string, Partial<Task>> = {
        done: { status: "completed", output: { ok: true }, attempts: 1, version: 3, finishedAt: 5 },
        running: { status: "running", attempts: 1, version: 2, leaseOwner: "old", leaseExpiresAt: 77, startedAt: 7 },
        late: { status: "ready" },
        early: { status: "ready" },
        first: { status: "ready" },
        waits: { status: "pending", remainingDeps: 1 },
      };
      const tasks = b.tasks.map((t) => ({ ...t, ...states[t.key] }));
      const tx = v1.transaction(["jobs", "tasks"], "readwrite");
      void tx.objectStore("jobs").put({ ...b.job, taskCount: 6, openCount: 5 });
      for (const t of tasks) {
        // The version 1 row: the full record, `_claim` while ready, `_dependents`.
        const row: Record<string, unknown> = { ...t };
        if (t.status === "ready") row._claim = [t.priority, t.runAt, t.id];
        if (t.key === "running") row._dependents = [b.id("waits")];
        void tx.objectStore("tasks").put(row as never);
      }
      await tx.done;
      v1.close();
      const s = await open();
      for (const t of tasks) deepEqual(await s.getTask(t.id), t, t.key);
      deepEqual((await s.listTasks({ status: "ready" })).map((t) => t.key), ["late", "early", "first"]);
      deepEqual((await s.listTasks({ agent: "noop", status: "running" })).map((t) => t.key), ["running"]);
      deepEqual((await s.expiredLeases(100)).map((t) => t.key), ["running"]);
      deepEqual((await s.claimReady({ limit: 10, now: 100, owner: OWNER, leaseMs: 10 })).map((t) => t.key), [
        "first",
        "early",
        "late",
      ]);
      const running = (await s.getTask(b.id("running")))!;
      const r = await s.commit(completions([running]));
      equal(r.readied, 1, "the dependents of a version 1 row are still known");
      equal((await s.getTask(b.id("waits")))!.status, "ready");
    },
  },
  {
    name: "a database of schema version 2 is upgraded: its claim queue is split by agent and claimed in order, by " +
      "agent or not",
    async run({ name, factory, open }) {
      const v2 = await openDatabase({ factory, name, version: 2, onVersionChange: () => {}, onTerminated: () => {} });
      const b = buildJob([
        { key: "x-late", agent: "x", priority: 1, runAt: 50 },
        { key: "y-early", agent: "y", priority: 1, runAt: 10 },
        { key: "x-first", agent: "x", priority: 0, runAt: 99 },
        ...Array.from({ length: LEAF_SIZE + 2 }, (_, i) => ({ key: `y${String(i).padStart(2, "0")}`, agent: "y" })),
        { key: "gone", agent: "x" },
      ]);
      const tasks = b.tasks.map((t) => ({ ...t, status: "ready" as const }));
      const tx = v2.transaction(["jobs", "tasks", "members", "ready"], "readwrite");
      void tx.objectStore("jobs").put({ ...b.job, taskCount: tasks.length, openCount: tasks.length });
      // The version 2 queue: leaves by [priority, runAt, last id], agents mixed.
      const groups = new Map<string, string[]>();
      for (const t of tasks) {
        if (t.key !== "gone") void tx.objectStore("tasks").put(toRow(t, undefined) as never);
        const g = JSON.stringify([t.priority, t.runAt]);
        groups.set(g, [...(groups.get(g) ?? []), t.id]);
      }
      for (const [g, ids] of groups) {
        ids.sort();
        for (let i = 0; i < ids.length; i += LEAF_SIZE) {
          const leaf = ids.slice(i, i + LEAF_SIZE);
          void tx.objectStore("ready").put({ k: [...JSON.parse(g), leaf[leaf.length - 1]], ids: leaf } as never);
        }
      }
      await tx.done;
      v2.close();
      const s = await open();
      const claim = async (limit: number, agents?: string[]) =>
        (await s.claimReady({ limit, now: 100, owner: OWNER, leaseMs: 10, ...(agents && { agents }) })).map((t) =>
          t.key
        );
      const ys = Array.from({ length: LEAF_SIZE + 2 }, (_, i) => `y${String(i).padStart(2, "0")}`);
      deepEqual(await claim(3, ["x"]), ["x-first", "x-late"], "the row of a queued id that is gone is dropped");
      deepEqual(await claim(2), [ys[0], ys[1]]);
      deepEqual(await claim(100, ["y"]), [...ys.slice(2), "y-early"]);
      deepEqual(await claim(100), []);
    },
  },
  {
    name:
      "id leaves stay sorted, disjoint and full under random adds and removes, and the queue hands them out in order",
    async run({ name, factory }) {
      const db = await openDatabase({ factory, name, onVersionChange: () => {}, onTerminated: () => {} });
      try {
        let seed = 7;
        const rand = (n: number): number => {
          seed = (seed * 1103515245 + 12345) % 2147483648;
          return seed % n;
        };
        const id = (n: number): string => `t${String(n).padStart(4, "0")}`;
        const groups: [string, number, number][] = [["a", 0, 5], ["a", 0, 9], ["b", 1, 5], ["a", 2, 5]];
        const model = groups.map(() => new Set<string>());
        for (let round = 0; round < 40; round++) {
          const tx = db.transaction(["ready"], "readwrite");
          const leaves = new IdLeaves(tx, "ready");
          for (let k = rand(40); k >= 0; k--) {
            const g = rand(groups.length);
            const t = id(rand(300));
            if (rand(3) === 0) {
              leaves.remove(groups[g]!, t);
              model[g]!.delete(t);
            } else {
              leaves.add(groups[g]!, t);
              model[g]!.add(t);
            }
          }
          await leaves.flush();
          await tx.done;
          const check = db.transaction(["ready"], "readonly");
          const all = (await check.objectStore("ready").getAll()) as unknown as Leaf[];
          for (const [g, group] of groups.entries()) {
            const mine = all.filter((l) => l.k[0] === group[0] && l.k[1] === group[1] && l.k[2] === group[2]);
            const ids = mine.flatMap((l) => l.ids);
            deepEqual(ids, [...model[g]!].sort(), `round ${round}, group ${g}`);
            for (const l of mine) {
              ok(l.ids.length > 0 && l.ids.length <= LEAF_SIZE, "a leaf holds 1 to LEAF_SIZE ids");
              equal(l.k[3], l.ids[l.ids.length - 1], "a leaf is keyed by its last id");
            }
            const after = id(rand(300));
            deepEqual(
              await new IdLeaves(check, "ready").ids(group, after),
              [...model[g]!].sort().filter((t) => t > after),
            );
          }
        }
        // The queue hands out priority 0 (runAt 5, then 9), then priority 1 (another agent's),
        // then priority 2, each in id order.
        const expected = model.flatMap((m) => [...m].sort());
        const got: string[] = [];
        for (;;) {
          const tx = db.transaction(["ready"], "readwrite");
          const taken = await new ReadyQueue(tx).take(1 + rand(40), 10, null);
          await tx.done;
          if (taken.length === 0) break;
          got.push(...taken);
        }
        deepEqual(got, expected);
      } finally {
        db.close();
      }
    },
  },
  {
    name:
      "ids added one transaction at a time fill their group's last leaf, and a change rewrites only the leaves it touches",
    async run({ name, factory }) {
      const db = await openDatabase({ factory, name, onVersionChange: () => {}, onTerminated: () => {} });
      try {
        const id = (n: number): string => `t${String(n).padStart(4, "0")}`;
        const group = ["a", 0, 5] as const;
        const stored = async (): Promise<string[]> => {
          const all = (await db.transaction(["ready"], "readonly").objectStore("ready").getAll()) as unknown as Leaf[];
          return all.map((l) => JSON.stringify(l));
        };
        const write = async (ids: string[]) => {
          const tx = db.transaction(["ready"], "readwrite");
          const leaves = new IdLeaves(tx, "ready");
          for (const t of ids) leaves.add(group, t);
          await leaves.flush();
          await tx.done;
        };
        // Tasks readied one commit at a time, each id after the last: the last leaf fills up.
        for (let i = 0; i < 4 * LEAF_SIZE; i++) await write([id(i * 10)]);
        equal((await stored()).length, 4, `${4 * LEAF_SIZE} ids added one at a time make 4 full leaves`);
        // One id near the start and one past the end: the two leaves in between stay as they are.
        const before = await stored();
        await write([id(5), id(4 * LEAF_SIZE * 10)]);
        const after = await stored();
        ok(after.includes(before[1]!) && after.includes(before[2]!), "the two middle leaves were not rewritten");
        equal(after.length, 6, "the first and last leaves, full, each split in two");
        const tx = db.transaction(["ready"], "readwrite");
        const taken = await new ReadyQueue(tx).take(1000, 10, null);
        await tx.done;
        deepEqual(taken, [id(5), ...Array.from({ length: 4 * LEAF_SIZE + 1 }, (_, i) => id(i * 10))].sort());
      } finally {
        db.close();
      }
    },
  },
  {
    name: "openIndexedDbStorage() rejects a bad claimRecordFrom naming it",
    async run({ name }) {
      await rejects(() => openIndexedDbStorage({ name, claimRecordFrom: 0 }), RangeError, "claimRecordFrom");
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
