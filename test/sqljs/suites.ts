/**
 * Cases only the sql.js adapter has: the journal, compaction, recovery from torn and
 * damaged stores, refusal of newer versions, persist-then-run and group commit. They run
 * on the in-memory persister and on the file persister, in every runtime.
 */

import {
  createMemoryPersister,
  JOURNAL_FORMAT,
  openSqlJsStorage,
  SCHEMA_VERSION,
  type SqlJsDatabase,
  type SqlJsPersister,
  type SqlJsStorage,
  type SqlJsStorageOptions,
} from "../../adapters/sqljs.ts";
import { GroupCommit } from "../../adapters/sqljs/group-commit.ts";
import { crc32, FRAME_HEADER_BYTES, HEADER_BYTES } from "../../adapters/sqljs/journal.ts";
import type { SqlJsInternalOptions } from "../../adapters/sqljs/storage.ts";
import {
  ConflictError,
  isTransientStorageError,
  StorageBlockedError,
  StorageCorruptError,
  StorageError,
  StorageQuotaError,
  StorageSetupError,
  StorageVersionError,
} from "../../src/errors.ts";
import { Executor } from "../../src/executor.ts";
import type { Storage } from "../../src/storage.ts";
import type { Task } from "../../src/types.ts";
import { createMemoryStorage } from "../../adapters/memory.ts";
import { deepEqual, equal, ok, rejects, throws } from "../conformance/assert.ts";
import { agent, registryOf, until } from "../conformance/executor-kit.ts";
import { buildJob } from "../conformance/fixtures.ts";
import { type Case, register, type Registrar } from "../conformance/harness.ts";
import { openTestStorage, testSqlJs } from "../targets-sqljs.ts";
import { type PersisterSuiteOptions, registerPersisterSuites } from "./persisters.ts";
import { registerPlanSuites } from "./plans.ts";

type Part = "snapshot" | "journal";

/** Raw access to one stored database. */
export interface Store {
  persister(): SqlJsPersister;
  read(part: Part): Promise<Uint8Array | null>;
  write(part: Part, bytes: Uint8Array | null): Promise<void>;
  cleanup(): Promise<void>;
}

interface Ctx {
  store: Store;
  open(options?: Omit<SqlJsStorageOptions, "persister"> & SqlJsInternalOptions): Promise<SqlJsStorage>;
}

const OWNER = "owner";

/** Create a job of `n` independent tasks and complete the first `done` of them, one commit each. */
async function jobWith(s: SqlJsStorage, n: number): Promise<ReturnType<typeof buildJob>> {
  const b = buildJob(Array.from({ length: n }, (_, i) => ({ key: `t${i}`, input: { i } })));
  await s.createJob(b.job, b.tasks);
  return b;
}

async function complete(s: SqlJsStorage, output: string): Promise<Task> {
  const [t] = await s.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 1000 });
  ok(t, "a task to claim");
  const r = await s.commit([{
    type: "updateTask",
    id: t.id,
    expect: { version: t.version },
    set: { status: "completed", output },
  }]);
  return r.tasks.find((x) => x.id === t.id)!;
}

async function unchanged(store: Store, fn: () => Promise<unknown>): Promise<void> {
  const before = [await store.read("snapshot"), await store.read("journal")];
  await fn();
  deepEqual([...(await store.read("snapshot")) ?? []], [...before[0] ?? []], "the snapshot was left untouched");
  deepEqual([...(await store.read("journal")) ?? []], [...before[1] ?? []], "the journal was left untouched");
}

function gated(
  inner: SqlJsPersister,
): SqlJsPersister & { hold(): void; release(): void; appends: number; sizes: number[] } {
  let gate: Promise<void> | null = null;
  let open: () => void = () => {};
  const p = {
    name: "gated",
    appends: 0,
    /** The size of every append, in order. */
    sizes: [] as number[],
    hold() {
      gate = new Promise<void>((r) => (open = r));
    },
    release() {
      gate = null;
      open();
    },
    load: () => inner.load(),
    async append(bytes: Uint8Array) {
      p.appends++;
      p.sizes.push(bytes.length);
      if (gate) await gate;
      await inner.append(bytes);
    },
    replace: (a: Uint8Array, b: Uint8Array) => inner.replace(a, b),
    close: () => inner.close(),
  };
  return p;
}

/** The frames of a journal from byte `from` on (the start of an append), as `[start, end]`. */
function framesOf(journal: Uint8Array, from: number, to: number = journal.length): [number, number][] {
  const view = new DataView(journal.buffer, journal.byteOffset, journal.byteLength);
  const out: [number, number][] = [];
  for (let at = from; at < to;) {
    const end = at + FRAME_HEADER_BYTES + view.getUint32(at, true);
    out.push([at, end]);
    at = end;
  }
  return out;
}

const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 5));

/** `promise`, or a failure naming `what` when it has not settled after 10 s (it hangs). */
function settled<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} has not settled after 10 s`)), 10_000);
  });
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer));
}

export const sqljsCases: Case<Ctx>[] = [
  {
    name: "group commit: a call whose changes were saved is answered as saved though a later save failed meanwhile",
    async run() {
      // The first append is saved, the second fails. A caller that saw only the first
      // (a read, or a write that changed nothing, taken before the second was queued)
      // asks after the failure: what it saw is durable, so it is answered, not refused.
      const persister = createMemoryPersister();
      let appends = 0;
      const failing: SqlJsPersister = {
        ...persister,
        name: persister.name,
        append: (bytes) => ++appends === 2 ? Promise.reject(new Error("disk full")) : persister.append(bytes),
      };
      const writer = new GroupCommit({
        persister: failing,
        generation: 1,
        journalBytes: 0,
        snapshotBytes: 0,
        compaction: undefined,
        exportSnapshot: () => Promise.reject(new Error("no compaction in this case")),
      });
      const first = writer.enqueue(writer.encode(["one"]));
      await writer.whenDurable(first);
      const second = writer.enqueue(writer.encode(["two"]));
      await rejects(() => writer.whenDurable(second), StorageError);
      ok(writer.failure !== null, "the second save failed");
      await writer.whenDurable(first);
    },
  },
  {
    name: "a reopened database replays the journal over the snapshot",
    async run({ open }) {
      const s = await open();
      const b = await jobWith(s, 3);
      const done = await complete(s, "one");
      await s.commit([{ type: "setState", scope: "s", key: "k", value: { deep: [1] } }]);
      await s.close();
      const again = await open();
      ok(again.openReport.replayedFrames >= 3, `replayed ${again.openReport.replayedFrames} frames`);
      equal((await again.getTask(done.id))!.output, "one");
      equal((await again.listTasks({ jobId: b.job.id, status: "ready" })).length, 2);
      deepEqual(await again.getState("s", "k"), { deep: [1] });
      await again.close();
    },
  },
  {
    name: "a torn journal tail is dropped and every commit before it survives",
    async run({ store, open }) {
      const s = await open();
      await jobWith(s, 4);
      const first = await complete(s, "first");
      const second = await complete(s, "second");
      const before = (await store.read("journal"))!;
      const [third] = await s.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 1000 });
      const claimed = (await store.read("journal"))!;
      await s.commit([{
        type: "updateTask",
        id: third!.id,
        expect: { version: third!.version },
        set: { status: "completed" },
      }]);
      await s.close();
      const full = (await store.read("journal"))!;
      const snapshot = (await store.read("snapshot"))!;
      // Cut inside the claim's frame (the claim is lost) and inside the completion's frame (only it is lost).
      const cuts = [before.length + 3, before.length + 11, claimed.length - 1, claimed.length + 5, full.length - 1];
      for (const cut of cuts) {
        await store.write("snapshot", snapshot);
        await store.write("journal", full.subarray(0, cut));
        const again = await open();
        const torn = cut - (cut < claimed.length ? before.length : claimed.length);
        equal(again.openReport.droppedBytes, torn, `dropped bytes at cut ${cut}`);
        equal((await again.getTask(first.id))!.output, "first");
        equal((await again.getTask(second.id))!.output, "second");
        equal((await again.getTask(third!.id))!.status, cut < claimed.length ? "ready" : "running");
        await again.close();
        const clean = await open();
        equal(clean.openReport.droppedBytes, 0, "the torn tail was cleaned up at open");
        await clean.close();
      }
      // A tail of zeros (a file extended but never written) is torn too.
      await store.write("snapshot", snapshot);
      await store.write("journal", new Uint8Array([...before, ...new Uint8Array(64)]));
      const zeros = await open();
      equal(zeros.openReport.droppedBytes, 64);
      await complete(zeros, "after");
      await zeros.close();
      const last = await open();
      equal((await last.listTasks({ status: "completed" })).length, 3);
      await last.close();
    },
  },
  {
    name: "a truncated snapshot is refused with StorageCorruptError and left untouched",
    async run({ store, open }) {
      const s = await open();
      await jobWith(s, 200);
      await s.compact();
      await s.close();
      const snapshot = (await store.read("snapshot"))!;
      for (const length of [snapshot.length - 4096, snapshot.length - 100, 50]) {
        await store.write("snapshot", snapshot.subarray(0, length));
        await unchanged(store, () => rejects(() => open(), StorageCorruptError, "snapshot"));
      }
      await store.write("snapshot", snapshot);
      const again = await open();
      equal((await again.listTasks({ status: "ready" })).length, 200);
      await again.close();
    },
  },
  {
    name: "a garbage file is refused with StorageCorruptError and left untouched",
    async run({ store, open }) {
      const garbage = new Uint8Array(8192);
      for (let i = 0; i < garbage.length; i++) garbage[i] = (i * 7919 + 13) & 0xff;
      await store.write("snapshot", garbage);
      await unchanged(store, () => rejects(() => open(), StorageCorruptError, "not a SQLite database"));
      await store.write("snapshot", new TextEncoder().encode("hello, I am a text file\n"));
      await unchanged(store, () => rejects(() => open(), StorageCorruptError));
      // A valid snapshot with a garbage journal.
      await store.write("snapshot", null);
      const s = await open();
      await jobWith(s, 1);
      await s.close();
      await store.write("journal", garbage);
      await unchanged(store, () => rejects(() => open(), StorageCorruptError, "journal"));
    },
  },
  {
    name: "a SQLite database that is not task-core's is refused",
    async run({ store, open }) {
      const SQL = await testSqlJs();
      const db = new SQL.Database();
      db.exec("CREATE TABLE foo (x); INSERT INTO foo VALUES (1);");
      await store.write("snapshot", db.export());
      db.close();
      await unchanged(store, () => rejects(() => open(), StorageCorruptError, "not one of task-core"));
    },
  },
  {
    name: "an empty SQLite file gets the schema by the numbered migrations, and the version is stored",
    async run({ store, open }) {
      const SQL = await testSqlJs();
      const empty = new SQL.Database();
      await store.write("snapshot", empty.export());
      empty.close();
      const s = await open();
      await jobWith(s, 1);
      await s.close();
      const db = new SQL.Database((await store.read("snapshot"))!);
      const version = db.exec("SELECT value FROM meta WHERE key = 'schema_version'")[0]?.values[0]?.[0];
      db.close();
      equal(version, String(SCHEMA_VERSION));
      const again = await open();
      equal((await again.listJobs()).length, 1);
      await again.close();
    },
  },
  {
    name: "a database of schema version 1 is migrated at open, keeps its data and journal, and prunes and claims " +
      "by agent on the indexes the migrations add",
    async run({ store, open }) {
      const s = await open();
      const ended = await jobWith(s, 1);
      const kept = await jobWith(s, 1);
      await s.commit(
        [{ type: "updateJob", id: ended.job.id, expect: { version: 1 }, set: { status: "cancelled" } }],
        500,
      );
      await s.compact();
      await s.commit([{ type: "setState", scope: "s", key: "k", value: 1 }]); // a frame in the journal
      await s.close();
      // Version 1: the same database without what later migrations add.
      const SQL = await testSqlJs();
      const v1 = new SQL.Database((await store.read("snapshot"))!);
      v1.exec(
        "DROP INDEX jobs_ended; DROP INDEX tasks_claim_agent; UPDATE meta SET value = '1' WHERE key = 'schema_version'",
      );
      await store.write("snapshot", v1.export());
      v1.close();
      const again = await open();
      equal(again.openReport.migratedFrom, 1);
      equal(again.openReport.replayedFrames, 1, "the journal of version 1 is replayed after the migration");
      equal(await again.getState("s", "k"), 1);
      equal(await again.prune({ finishedBefore: 1000 }), 1);
      equal(await again.getJob(ended.job.id), undefined);
      ok(await again.getJob(kept.job.id));
      deepEqual(
        (await again.claimReady({ limit: 5, now: 10_000, owner: OWNER, leaseMs: 1000, agents: ["noop"] })).map((t) =>
          t.id
        ),
        [kept.id("t0")],
      );
      await again.close();
      const stored = new SQL.Database((await store.read("snapshot"))!);
      const version = stored.exec("SELECT value FROM meta WHERE key = 'schema_version'")[0]?.values[0]?.[0];
      const indexes = stored.exec(
        "SELECT name FROM sqlite_master WHERE name IN ('jobs_ended', 'tasks_claim_agent') ORDER BY name",
      )[0]?.values.map((r) => r[0]);
      stored.close();
      equal(version, String(SCHEMA_VERSION), "the migrated schema is stored");
      deepEqual(indexes, ["jobs_ended", "tasks_claim_agent"]);
    },
  },
  {
    name: "a database of a newer schema version is refused with StorageVersionError and left untouched",
    async run({ store, open }) {
      const s = await open();
      await jobWith(s, 2);
      await s.compact();
      await s.close();
      const SQL = await testSqlJs();
      const db = new SQL.Database((await store.read("snapshot"))!);
      db.exec("UPDATE meta SET value = ? WHERE key = 'schema_version'", [String(SCHEMA_VERSION + 1)]);
      await store.write("snapshot", db.export());
      db.close();
      await unchanged(store, () => rejects(() => open(), StorageVersionError, "upgrade"));
      const err = await rejects<StorageVersionError>(() => open(), StorageVersionError);
      equal(err.found, SCHEMA_VERSION + 1);
      equal(err.supported, SCHEMA_VERSION);
      ok(err instanceof StorageError);
    },
  },
  {
    name: "a claim past many priorities of tasks not yet due runs a bounded number of statements, in claim order",
    async run({ open }) {
      // Priority is a REAL: every scheduled task may have its own. A skip-scan ran two
      // statements per priority (2,000 here; 100k took seconds per claim).
      const SQL = await testSqlJs();
      let steps = 0;
      class Counting extends SQL.Database {
        override prepare(sql: string) {
          const stmt = super.prepare(sql);
          const step = stmt.step.bind(stmt);
          stmt.step = () => (steps++, step());
          return stmt;
        }
      }
      const s = await open({ sql: { ...SQL, Database: Counting } });
      const b = buildJob([
        ...Array.from({ length: 2000 }, (_, i) => ({ key: `later${i}`, agent: "a", priority: i / 8, runAt: 1e9 })),
        ...Array.from({ length: 30 }, (_, i) => ({ key: `due${i}`, agent: "a", priority: (i * 500) / 8, runAt: 50 })),
        { key: "last", agent: "a", priority: 1e6, runAt: 0 },
      ]);
      await s.createJob(b.job, b.tasks);
      const want = ["due0", "due1", "due2"];
      for (const agents of [undefined, ["a"], ["a", "b"]]) {
        steps = 0;
        const got = await s.claimReady({ limit: 3, now: 100, owner: OWNER, leaseMs: 1000, ...(agents && { agents }) });
        ok(steps < 100, `${JSON.stringify(agents)}: ${steps} statement steps`);
        deepEqual(got.map((t) => t.key), want, JSON.stringify(agents));
        await s.commit(
          got.map((t) => ({ type: "updateTask", id: t.id, expect: { version: t.version }, set: { status: "ready" } })),
        );
      }
      const all = await s.claimReady({ limit: 100, now: 100, owner: OWNER, leaseMs: 1000, agents: ["a"] });
      deepEqual(all.map((t) => t.key), [...Array.from({ length: 30 }, (_, i) => `due${i}`), "last"]);
      await s.close();
    },
  },
  {
    name: "a ready task whose priority SQLite holds as text or a blob (tampered) fails claims with " +
      "StorageCorruptError: never a loop, nor a number Number() made of it",
    async run({ open }) {
      const SQL = await testSqlJs();
      let raw: SqlJsDatabase | undefined;
      class Spy extends SQL.Database {
        constructor(data?: Uint8Array | null) {
          super(data);
          raw = this;
        }
      }
      const s = await open({ sql: { ...SQL, Database: Spy } });
      const b = buildJob([{ key: "first", priority: 1 }, { key: "bad", priority: 2, agent: "x" }]);
      await s.createJob(b.job, b.tasks);
      // Not UTF-8 (reads back as U+FFFD, which sorts before it), empty, hexadecimal, a blob.
      for (const value of ["CAST(x'ff' AS TEXT)", "''", "'0x10'", "x'00'"]) {
        raw!.exec(`UPDATE tasks SET priority = ${value} WHERE id = ?`, [b.id("bad")]);
        await rejects(() => s.getTask(b.id("bad")), StorageCorruptError, '"priority"');
        for (const agents of [undefined, ["x"], ["x", "y"]]) {
          await rejects(
            () => s.claimReady({ limit: 10, now: 100, owner: OWNER, leaseMs: 1000, ...(agents && { agents }) }),
            StorageCorruptError,
            '"priority"',
          );
        }
      }
      raw!.exec("UPDATE tasks SET priority = 2 WHERE id = ?", [b.id("bad")]);
      deepEqual(
        (await s.claimReady({ limit: 10, now: 100, owner: OWNER, leaseMs: 1000 })).map((t) => t.key),
        ["first", "bad"],
      );
      await s.close();
    },
  },
  {
    name: "a journal of a newer format is refused with StorageVersionError",
    async run({ store, open }) {
      const s = await open();
      await jobWith(s, 1);
      await s.close();
      const journal = (await store.read("journal"))!.slice();
      const view = new DataView(journal.buffer);
      view.setUint32(4, JOURNAL_FORMAT + 1, true);
      view.setUint32(12, crc32(journal, 0, 12), true);
      await store.write("journal", journal);
      await unchanged(store, () => rejects(() => open(), StorageVersionError, "journal format"));
    },
  },
  {
    name: "a damaged frame followed by good ones is corruption, not a torn tail",
    async run({ store, open }) {
      const s = await open();
      await jobWith(s, 3);
      await complete(s, "a");
      await complete(s, "b");
      await s.close();
      const clean = (await store.read("journal"))!.slice();
      const journal = clean.slice();
      journal[HEADER_BYTES + FRAME_HEADER_BYTES + 5]! ^= 0xff; // inside the first frame's payload
      await store.write("journal", journal);
      await unchanged(store, () => rejects(() => open(), StorageCorruptError, "checksum"));
      // Damage to the frame's length: the next append is not where the length points.
      for (const lengthByte of [0, 1, 2, 3]) {
        const damaged = clean.slice();
        damaged[HEADER_BYTES + lengthByte]! ^= 0x40;
        await store.write("journal", damaged);
        await unchanged(store, () => rejects(() => open(), StorageCorruptError, "checksum"));
      }
    },
  },
  {
    name: "damage anywhere in the last append, which holds several transactions, is a torn tail and not corruption",
    async run({ store }) {
      const p = gated(store.persister());
      const s = await openTestStorage({ persister: p });
      const kept = await jobWith(s, 1);
      p.hold();
      const a = buildJob([{ key: "a" }]);
      const first = s.createJob(a.job, a.tasks);
      await until(() => p.sizes.length === 2, "the first flush under way");
      // Made while the first flush is held: one flush, one append, of three transactions.
      const together = [buildJob([{ key: "x" }]), buildJob([{ key: "y" }]), buildJob([{ key: "z" }])];
      const rest = together.map((b) => s.createJob(b.job, b.tasks));
      await tick();
      p.release();
      await Promise.all([first, ...rest]);
      equal(p.sizes.length, 3);
      await s.close();
      const journal = (await store.read("journal"))!;
      const snapshot = (await store.read("snapshot"))!;
      const last = p.sizes[2]!;
      const start = journal.length - last;
      // A power loss before the append was synced: any of its pages may be lost, the first
      // transaction's as well as the last one's.
      for (const at of [start + 20, start + (last >> 1), journal.length - 8]) {
        const damaged = journal.slice();
        damaged.fill(0, at, at + 4);
        await store.write("snapshot", snapshot);
        await store.write("journal", damaged);
        const again = await openTestStorage({ persister: store.persister() });
        equal(again.openReport.droppedBytes, last, `the whole last append is dropped (damage at ${at - start})`);
        ok(await again.getJob(kept.job.id), "what earlier appends hold is kept");
        ok(await again.getJob(a.job.id));
        for (const b of together) equal(await again.getJob(b.job.id), undefined);
        await again.close();
      }
    },
  },
  {
    name: "a flush larger than a journal frame is written as several frames in one append, and a reopen " +
      "replays every one of them",
    async run({ store, open }) {
      const maxFrameBytes = 256;
      const s = await open({ maxFrameBytes });
      const kept = await jobWith(s, 1);
      const before = (await store.read("journal"))!.length;
      const appends = s.persistStats.appends;
      const big = await jobWith(s, 30); // one transaction of 31 rows
      equal(s.persistStats.appends, appends + 1, "the flush is one append");
      await s.close();
      const journal = (await store.read("journal"))!;
      const frames = framesOf(journal, before);
      ok(frames.length > 10, `the append is ${frames.length} frames`);
      for (const [start, end] of frames) {
        const payload = journal.subarray(start + FRAME_HEADER_BYTES, end);
        const changes = JSON.parse(new TextDecoder().decode(payload)) as unknown[];
        ok(payload.length <= maxFrameBytes || changes.length === 1, `a frame of ${payload.length} bytes`);
      }
      const again = await open();
      equal(again.openReport.replayedFrames, framesOf(journal, HEADER_BYTES).length, "every frame is replayed");
      equal(again.openReport.droppedBytes, 0);
      ok(await again.getJob(kept.job.id));
      ok(await again.getJob(big.job.id));
      equal((await again.listTasks({ jobId: big.job.id })).length, 30);
      await again.close();
    },
  },
  {
    name: "an append of several frames torn or damaged in any of its frames is dropped whole, and damage " +
      "followed by another append is corruption",
    async run({ store, open }) {
      const s = await open({ maxFrameBytes: 256 });
      const kept = await jobWith(s, 1);
      const before = (await store.read("journal"))!.length;
      const big = await jobWith(s, 30);
      const after = (await store.read("journal"))!.length;
      await jobWith(s, 1); // one more append
      await s.close();
      const snapshot = (await store.read("snapshot"))!;
      const full = (await store.read("journal"))!;
      const frames = framesOf(full, before, after);
      ok(frames.length >= 3, `the append is ${frames.length} frames`);
      const middle = frames[frames.length >> 1]!;
      const last = frames[frames.length - 1]!;
      const damaged = (at: number): Uint8Array => {
        const bytes = full.slice(0, after);
        bytes.fill(0, at, at + 4);
        return bytes;
      };
      const cases: [string, Uint8Array][] = [
        ["cut after its first frame", full.subarray(0, frames[0]![1])],
        ["cut before its last frame", full.subarray(0, last[0])],
        ["cut inside its last frame", full.subarray(0, after - 1)],
        ["damage in its first frame", damaged(frames[0]![0] + FRAME_HEADER_BYTES + 5)],
        ["damage in a middle frame", damaged(middle[0] + FRAME_HEADER_BYTES + 5)],
        ["damage in its last frame", damaged(after - 8)],
      ];
      for (const [what, journal] of cases) {
        await store.write("snapshot", snapshot);
        await store.write("journal", journal);
        const again = await open();
        equal(again.openReport.droppedBytes, journal.length - before, `${what}: the whole append is dropped`);
        ok(await again.getJob(kept.job.id), `${what}: what earlier appends hold is kept`);
        equal(await again.getJob(big.job.id), undefined, `${what}: no part of the append is replayed`);
        equal((await again.listTasks({ jobId: big.job.id })).length, 0, `${what}: none of its tasks`);
        await again.close();
      }
      const clean = await open();
      equal(clean.openReport.droppedBytes, 0, "the torn append was cleaned up at open");
      await clean.close();
      // The same damage with a later append after it cannot be a torn tail.
      for (const at of [frames[0]![0] + FRAME_HEADER_BYTES + 5, middle[0] + FRAME_HEADER_BYTES + 5]) {
        const journal = full.slice();
        journal.fill(0, at, at + 4);
        await store.write("snapshot", snapshot);
        await store.write("journal", journal);
        await unchanged(store, () => rejects(() => open(), StorageCorruptError, "checksum"));
      }
    },
  },
  {
    name: "a journal of format 1 (one frame per append, no frame index) is replayed, and a journal of the " +
      "current format replaces it",
    async run({ store, open }) {
      const s = await open();
      const b = await jobWith(s, 3);
      const done = await complete(s, "one");
      await s.close();
      const journal = (await store.read("journal"))!;
      // The same journal as format 1 wrote it: frame headers of 12 bytes.
      const old: number[] = [...journal.subarray(0, HEADER_BYTES)];
      const header = new DataView(new Uint8Array(old).buffer);
      header.setUint32(4, 1, true);
      header.setUint32(12, crc32(new Uint8Array(header.buffer), 0, 12), true);
      old.splice(0, HEADER_BYTES, ...new Uint8Array(header.buffer));
      const frames = framesOf(journal, HEADER_BYTES);
      for (const [start, end] of frames) {
        const frame = new Uint8Array(12 + end - start - FRAME_HEADER_BYTES);
        const view = new DataView(frame.buffer);
        view.setUint32(0, frame.length - 12, true);
        frame.set(journal.subarray(start + 8, start + 12), 8); // the generation
        frame.set(journal.subarray(start + FRAME_HEADER_BYTES, end), 12);
        view.setUint32(4, crc32(frame, 8, frame.length), true);
        old.push(...frame);
      }
      await store.write("journal", new Uint8Array(old));
      const again = await open();
      equal(again.openReport.replayedFrames, frames.length);
      equal((await again.getTask(done.id))!.output, "one");
      const stored = (await store.read("journal"))!;
      equal(new DataView(stored.buffer, stored.byteOffset).getUint32(4, true), JOURNAL_FORMAT, "the journal's format");
      await complete(again, "two");
      await again.close();
      const last = await open();
      equal((await last.listTasks({ jobId: b.job.id, status: "completed" })).length, 2);
      await last.close();
    },
  },
  {
    name: "a journal older than its snapshot (a crash during compaction) is discarded",
    async run({ store, open }) {
      const s = await open();
      await jobWith(s, 3);
      const done = await complete(s, "kept");
      const old = (await store.read("journal"))!;
      await s.compact();
      await s.close();
      await store.write("journal", old);
      const again = await open();
      ok(again.openReport.staleJournal);
      equal(again.openReport.replayedFrames, 0);
      equal((await again.getTask(done.id))!.output, "kept");
      await again.close();
    },
  },
  {
    name: "compaction folds the journal into a snapshot once it outgrows it",
    async run({ open }) {
      const s = await open({ compaction: { minJournalBytes: 0, journalRatio: 0.1 } });
      await jobWith(s, 50);
      for (let i = 0; i < 20; i++) await complete(s, `o${i}`);
      ok(s.persistStats.compactions > 1, `compactions: ${s.persistStats.compactions}`);
      await s.close();
      const again = await open();
      equal((await again.listTasks({ status: "completed" })).length, 20);
      equal((await again.listTasks({ status: "ready" })).length, 30);
      await again.close();
    },
  },
  {
    name: "a persister with maxAppends gets a snapshot once that many appends were made since the last one, " +
      "counting those of the journal it opened",
    async run({ store }) {
      const inner = store.persister();
      const p: SqlJsPersister = {
        name: "few-appends",
        maxAppends: 5,
        load: () => inner.load(),
        append: (bytes) => inner.append(bytes),
        replace: (a, b) => inner.replace(a, b),
        close: () => inner.close(),
      };
      const s = await openTestStorage({ persister: p });
      const before = s.persistStats.compactions;
      for (let i = 0; i < 4; i++) await jobWith(s, 1); // one append each
      deepEqual([s.persistStats.appends, s.persistStats.compactions], [4, before], "below maxAppends: no snapshot");
      await s.close();
      const again = await openTestStorage({ persister: p });
      equal(again.openReport.replayedFrames, 4);
      await jobWith(again, 1); // the fifth append since the snapshot
      deepEqual([again.persistStats.appends, again.persistStats.compactions], [1, 0]);
      await jobWith(again, 1); // would be the sixth: a snapshot instead
      deepEqual([again.persistStats.appends, again.persistStats.compactions], [1, 1]);
      for (let i = 0; i < 5; i++) await jobWith(again, 1);
      deepEqual([again.persistStats.appends, again.persistStats.compactions], [6, 1], "counted from the snapshot");
      await jobWith(again, 1);
      equal(again.persistStats.compactions, 2);
      await again.close();
      const last = await openTestStorage({ persister: p });
      equal((await last.listJobs()).length, 12);
      await last.close();
    },
  },
  {
    name: "claimReady() and commit() resolve only after their changes are persisted",
    async run({ store }) {
      const p = gated(store.persister());
      const s = await openTestStorage({ persister: p });
      const b = await jobWith(s, 1);
      p.hold();
      let claimed = false;
      const claim = s.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 }).then((r) => {
        claimed = true;
        return r;
      });
      await tick();
      equal(claimed, false, "the claim waits for its flush");
      let read = false;
      const reading = s.getTask(b.id("t0")).then((t) => {
        read = true;
        return t;
      });
      await tick();
      equal(read, false, "a read of the claimed task waits until the claim is durable");
      p.release();
      const [t] = await claim;
      equal((await reading)!.status, "running");
      equal(t!.status, "running");
      await s.close();
    },
  },
  {
    name: "changes made while a flush is in progress go into the next flush (group commit)",
    async run({ store }) {
      const p = gated(store.persister());
      const s = await openTestStorage({ persister: p });
      await jobWith(s, 20);
      const base = p.appends;
      p.hold();
      const first = s.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      // The first claim's write is under way (held) before the others are made.
      await until(() => p.appends === base + 1, "the first claim's write");
      const rest = Array.from({ length: 10 }, () => s.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 }));
      await tick();
      p.release();
      const all = [await first, ...(await Promise.all(rest))].flat();
      equal(all.length, 11);
      equal(p.appends - base, 2, "one flush for the first claim, one for the ten made meanwhile");
      await s.close();
      const again = await openTestStorage({ persister: store.persister() });
      equal((await again.listTasks({ status: "running" })).length, 11);
      await again.close();
    },
  },
  {
    name: "a failed save fails its calls with a transient error of the persister's class, and the next call " +
      "saves the whole database and goes on; while that fails, attempts are spaced out (200 ms doubling to 5 s)",
    async run({ store }) {
      const inner = store.persister();
      let full = false;
      let attempts = 0;
      const diskFull = () => Promise.reject(new StorageQuotaError("disk full"));
      const p: SqlJsPersister = {
        name: "failing",
        load: () => inner.load(),
        append: (bytes) => (full ? diskFull() : inner.append(bytes)),
        replace: (a, b) => (attempts++, full ? diskFull() : inner.replace(a, b)),
        close: () => inner.close(),
      };
      let t = 1_000_000;
      const s = await openTestStorage({ persister: p, now: () => t });
      const b = await jobWith(s, 3);
      full = true;
      attempts = 0;
      const claim = { limit: 1, now: 1, owner: OWNER, leaseMs: 100 };
      const err = await rejects(() => s.claimReady(claim), StorageQuotaError, "disk full");
      ok(isTransientStorageError(err), "a failed save may pass: callers retry");
      await rejects(() => s.getJob(b.job.id), StorageQuotaError, "disk full");
      equal(attempts, 1, "the next call tried to save the database whole");
      // Each attempt writes the whole database: while they fail, calls in the backoff fail
      // at once without one.
      for (const wait of [199, 1, 399, 1, 799, 1]) {
        const before = attempts;
        t += wait;
        await rejects(() => s.getJob(b.job.id), StorageQuotaError, "disk full");
        equal(
          attempts - before,
          wait === 1 ? 1 : 0,
          `an attempt ${wait === 1 ? "once" : "not before"} the backoff ended`,
        );
      }
      for (let i = 0; i < 6; i++) {
        t += 5000;
        await rejects(() => s.getJob(b.job.id), StorageQuotaError, "disk full");
      }
      t += 4999;
      const capped = attempts;
      await rejects(() => s.getJob(b.job.id), StorageQuotaError, "disk full");
      equal(attempts, capped, "the backoff grows to 5 s");
      t -= 60_000;
      await rejects(() => s.getJob(b.job.id), StorageQuotaError, "disk full");
      equal(attempts, capped + 1, "a clock set back does not hold the next attempt up");
      full = false;
      t += 5000;
      const snapshots = s.persistStats.compactions;
      equal((await s.getJob(b.job.id))?.id, b.job.id, "once saving works again, the next call answers");
      equal(s.persistStats.compactions, snapshots + 1, "after saving the database whole, once");
      equal((await s.claimReady(claim)).length, 1);
      await s.close();
      const again = await openTestStorage({ persister: store.persister() });
      equal(
        (await again.listTasks({ status: "running" })).length,
        2,
        "the claim whose save failed was saved with the database, and the claim after it in the journal",
      );
      equal(again.openReport.droppedBytes, 0);
      await again.close();
    },
  },
  {
    name: "an export that throws while saving the database whole after a failed save fails the call with a " +
      "transient StorageError, and a later call saves it and goes on",
    async run({ store }) {
      const SQL = await testSqlJs();
      let exportFails = false;
      // A database whose export fails as sql.js does when the WASM heap cannot grow.
      class FailingExport extends (SQL.Database as new (data?: Uint8Array | null) => SqlJsDatabase) {
        override export(): Uint8Array {
          if (exportFails) throw new RangeError("Array buffer allocation failed");
          return super.export();
        }
      }
      const inner = store.persister();
      let failAppend = false;
      const p: SqlJsPersister = {
        name: "failing",
        load: () => inner.load(),
        append: (bytes) => (failAppend ? Promise.reject(new Error("I/O error")) : inner.append(bytes)),
        replace: (a, b) => inner.replace(a, b),
        close: () => inner.close(),
      };
      let t = 1_000_000;
      const s = await openTestStorage({ persister: p, sql: { Database: FailingExport }, now: () => t });
      const b = await jobWith(s, 3);
      failAppend = true;
      const claim = { limit: 1, now: 1, owner: OWNER, leaseMs: 100 };
      await rejects(() => s.claimReady(claim), StorageError, "I/O error");
      failAppend = false;
      exportFails = true;
      const err = await rejects(() => s.getJob(b.job.id), StorageError, "Array buffer allocation failed");
      ok(isTransientStorageError(err), "the export may pass: callers retry");
      ok(err.cause instanceof RangeError, "the export's error is kept as the cause");
      t += 200; // past the backoff after a failed attempt
      await rejects(() => s.claimReady(claim), StorageError, "Array buffer allocation failed");
      exportFails = false;
      t += 400;
      equal((await s.getJob(b.job.id))?.id, b.job.id, "once the export works again, the next call answers");
      equal((await s.claimReady(claim)).length, 1);
      await s.close();
      const again = await openTestStorage({ persister: store.persister() });
      equal((await again.listTasks({ status: "running" })).length, 2, "both claims were saved");
      await again.close();
    },
  },
  {
    name: "after an append torn by a failure, later changes are not appended behind the torn bytes",
    async run({ store }) {
      const inner = store.persister();
      let tear = false;
      const p: SqlJsPersister = {
        name: "tearing",
        load: () => inner.load(),
        async append(bytes) {
          if (!tear) return await inner.append(bytes);
          tear = false;
          await inner.append(bytes.subarray(0, bytes.length >> 1));
          throw new Error("I/O error");
        },
        replace: (a, b) => inner.replace(a, b),
        close: () => inner.close(),
      };
      const s = await openTestStorage({ persister: p });
      await jobWith(s, 4);
      tear = true;
      await rejects(() => complete(s, "torn"), StorageError, "I/O error");
      const done = [await complete(s, "a"), await complete(s, "b")];
      await s.close();
      const again = await openTestStorage({ persister: store.persister() });
      for (const t of done) equal((await again.getTask(t.id))!.status, "completed");
      equal(again.openReport.droppedBytes, 0);
      await again.close();
    },
  },
  {
    name: "a commit that fails its compare-and-swap answers only once the state it found is durable",
    async run({ store }) {
      const p = gated(store.persister());
      const s = await openTestStorage({ persister: p });
      const b = await jobWith(s, 1);
      const t0 = (await s.getTask(b.id("t0")))!;
      p.hold();
      const claim = s.claimReady({ limit: 1, now: 1, owner: OWNER, leaseMs: 100 });
      let conflict = null as ConflictError | null;
      const cancel = s.commit([{
        type: "updateTask",
        id: t0.id,
        expect: { status: "ready", version: t0.version },
        set: { status: "cancelled" },
      }]).then(
        () => null,
        (e: unknown) => (conflict = e as ConflictError),
      );
      await tick();
      if (conflict) {
        // A crash now keeps only what is durable: what the conflict reported never existed there.
        const copy = createMemoryPersister();
        copy.snapshot = await store.read("snapshot");
        copy.journal = await store.read("journal");
        const crashed = await openTestStorage({ persister: copy });
        const durable = (await crashed.getTask(t0.id))!;
        await crashed.close();
        p.release();
        await claim;
        await s.close();
        ok(
          false,
          `the conflict answered (found ${conflict.found.status}, version ${conflict.found.version}) before the ` +
            `claim it found was durable: after a crash then, the task is ${durable.status}, version ${durable.version}`,
        );
      }
      p.release();
      const [claimed] = await claim;
      const e = await cancel;
      ok(e instanceof ConflictError, "the cancel conflicts with the claim");
      deepEqual([e.found.status, e.found.version], ["running", claimed!.version]);
      await s.close();
    },
  },
  {
    name: "a journal record that fails to encode after the transaction (out of memory) leaves no gap in the " +
      "journal: what the storage answers afterwards is what a reopen replays, and later commits survive",
    async run({ open }) {
      const s = await open();
      await jobWith(s, 3);
      const [t0, t1] = await s.claimReady({ limit: 2, now: 1, owner: OWNER, leaseMs: 1000 });
      const proto = TextEncoder.prototype as unknown as { encode: (text?: string) => Uint8Array };
      const encode = proto.encode;
      // The journal's encoder runs out of memory once, on the record of this output.
      proto.encode = function (this: TextEncoder, text?: string): Uint8Array {
        if (text?.includes("poisoned")) {
          proto.encode = encode;
          throw new RangeError("Array buffer allocation failed");
        }
        return encode.call(this, text);
      };
      let error: unknown = null;
      try {
        await s.commit([{
          type: "updateTask",
          id: t0!.id,
          expect: { version: t0!.version },
          set: { status: "completed", output: "poisoned" },
        }]);
      } catch (e) {
        error = e;
      } finally {
        proto.encode = encode;
      }
      ok(error !== null, "the commit whose record could not be encoded failed");
      const seen = (await s.getTask(t0!.id))!.status;
      await s.commit([{
        type: "updateTask",
        id: t1!.id,
        expect: { version: t1!.version },
        set: { status: "completed" },
      }]);
      await s.close();
      const again = await open();
      const replayed = (await again.getTask(t0!.id))!.status;
      equal((await again.getTask(t1!.id))!.status, "completed", "the later commit survives");
      await again.close();
      equal(
        replayed,
        seen,
        `the failed commit's task: ${seen} before the reopen, ${replayed} after it (the call failed with ${error})`,
      );
      ok(
        error instanceof StorageError && isTransientStorageError(error),
        `the failed commit is reported as a storage error that may pass, not as a refusal: got ${error}`,
      );
    },
  },
  {
    name: "an executor whose storage failed one save finishes its job and shuts down",
    async run({ store }) {
      const inner = store.persister();
      let failNext = 0;
      const p: SqlJsPersister = {
        name: "failing once",
        load: () => inner.load(),
        append: (bytes) => (failNext-- > 0 ? Promise.reject(new StorageQuotaError("disk full")) : inner.append(bytes)),
        replace: (a, b) => inner.replace(a, b),
        close: () => inner.close(),
      };
      const storage = await openTestStorage({ persister: p });
      const echo = agent("echo", (input) => {
        failNext = 1; // the save of this task's result fails
        return input;
      });
      const executor = new Executor({ storage, registry: registryOf(echo), pollIntervalMs: 20 });
      const errors: string[] = [];
      executor.on("storage:error", (e) => errors.push(`${e.operation}: ${(e.error as Error).name}`));
      executor.start();
      try {
        const job = await executor.submit({ name: "j", tasks: [{ key: "a", agent: "echo", input: 7 }] });
        deepEqual(await settled(job.wait(), "wait()"), { a: 7 });
      } finally {
        await settled(executor.shutdown(), "shutdown()");
        await storage.close();
      }
      deepEqual(errors, ["commit: StorageQuotaError"], "the failed save was reported once");
      const again = await openTestStorage({ persister: store.persister() });
      equal((await again.listJobs({ status: "completed" })).length, 1);
      await again.close();
    },
  },
  {
    name:
      "arguments of the wrong type and a fractional limit get the answers of the memory adapter, not a StorageError",
    async run({ open }) {
      const sqljs = await open();
      const memory = createMemoryStorage();
      const b = buildJob([{ key: "a" }, { key: "b" }, { key: "c" }]);
      for (const s of [sqljs, memory]) {
        await s.createJob(b.job, b.tasks);
        await s.claimReady({ limit: 3, now: 1, owner: OWNER, leaseMs: 10 });
      }
      const odd = (v: unknown) => v as never;
      const calls: [string, (s: Storage) => Promise<unknown>][] = [
        ["expiredLeases(100, 2.5)", (s) => s.expiredLeases(100, 2.5)],
        ["expiredLeases(100, NaN)", (s) => s.expiredLeases(100, NaN)],
        ['expiredLeases("soon")', (s) => s.expiredLeases(odd("soon"))],
        ["expiredLeases(NaN)", (s) => s.expiredLeases(NaN)],
        [
          "renewLeases() of [{}, a task]",
          (s) => s.renewLeases({ ids: [odd({}), b.id("a")], owner: OWNER, now: 2, leaseMs: 50 }),
        ],
        ["listTasks({ jobId: {} })", (s) => s.listTasks({ jobId: odd({}) })],
        ["listTasks({ jobId: 5 })", (s) => s.listTasks({ jobId: odd(5) })],
        ['listTasks({ agent: [], status: "running" })', (s) => s.listTasks({ agent: odd([]), status: "running" })],
        ["listTasks({ parentId: null })", (s) => s.listTasks({ parentId: odd(null) })],
        ["expiredLeases(100) after the renewal", (s) => s.expiredLeases(100)],
      ];
      const answer = (p: Promise<unknown>) =>
        p.then(
          (r) => (r as (Task | string)[]).map((x) => (typeof x === "string" ? x : x.id)),
          (e: Error) => e.name,
        );
      try {
        for (const [call, fn] of calls) deepEqual(await answer(fn(sqljs)), await answer(fn(memory)), call);
      } finally {
        await sqljs.close();
        await memory.close();
      }
    },
  },
  {
    name: "openSqlJsStorage() checks its options and names the bad one",
    async run() {
      await rejects(() => openSqlJsStorage({ persister: {} as SqlJsPersister }), TypeError, "persister");
      await rejects(() => openSqlJsStorage({ compaction: { journalRatio: -1 } }), RangeError, "journalRatio");
      await rejects(() => openSqlJsStorage({ sql: {} as never }), TypeError, "sql");
      await rejects(() => openSqlJsStorage({ locateFile: "x" as never }), TypeError, "locateFile");
    },
  },
  {
    name: "an initialised module or a lazy factory can be passed as sql",
    async run() {
      const SQL = await testSqlJs();
      for (const sql of [SQL, () => Promise.resolve(SQL)]) {
        const s = await openTestStorage({ sql });
        await jobWith(s, 1);
        equal((await s.listJobs()).length, 1);
        await s.close();
      }
    },
  },
];

/** A store in memory (any runtime). */
export function memoryStore(): Store {
  const p = createMemoryPersister();
  return {
    persister: () => p,
    read: (part) => Promise.resolve(p[part] && p[part]!.slice()),
    write: (part, bytes) => {
      p[part] = bytes && bytes.slice();
      return Promise.resolve();
    },
    cleanup: () => Promise.resolve(),
  };
}

/** A store in a fresh directory under `tmpdir` (node:fs: Node, Deno, Bun). */
export async function fileStore(tmpdir: string): Promise<Store> {
  const fs = await import("node:fs/promises");
  const { createFilePersister } = await import("../../adapters/sqljs-file.ts");
  const dir = await fs.mkdtemp(`${tmpdir}/task-core-sqljs-`);
  const path = `${dir}/tasks.sqlite`;
  const file = (part: Part): string => (part === "snapshot" ? path : `${path}.tclog`);
  return {
    persister: () => createFilePersister(path),
    read: async (part) => {
      try {
        return new Uint8Array(await fs.readFile(file(part)));
      } catch {
        return null;
      }
    },
    write: async (part, bytes) => {
      if (bytes === null) await fs.rm(file(part), { force: true });
      else await fs.writeFile(file(part), bytes);
    },
    cleanup: () => fs.rm(dir, { recursive: true, force: true }),
  };
}

interface FileCtx {
  path: string;
  /** A file persister of `path`. */
  persister(): SqlJsPersister;
  open(): Promise<SqlJsStorage>;
  /** Open the same file through `path` (another name for it, such as a symlinked folder). */
  openAt(path: string): Promise<SqlJsStorage>;
  exists(file: string): Promise<boolean>;
  write(file: string, text: string): Promise<void>;
}

/** A process id no system hands out (Linux caps ids below 2^22, macOS far lower). */
const DEAD_PID = 2 ** 22 + 1;

/** The file persister's one-process lock (`<path>.lock`). */
export const sqljsFileLockCases: Case<FileCtx>[] = [
  {
    name: "temporary files left by a save that failed (a full disk) are never read at open, and the next save " +
      "replaces them",
    async run(ctx) {
      const fs = await import("node:fs/promises");
      const s = await ctx.open();
      await jobWith(s, 2);
      await s.compact();
      await s.close();
      const snapshot = await fs.readFile(ctx.path);
      // What writes cut short by a full disk leave: part of a snapshot, part of a journal header.
      await fs.writeFile(`${ctx.path}.tmp`, snapshot.subarray(0, snapshot.length >> 1));
      await fs.writeFile(`${ctx.path}.tclog.tmp`, "TCJ");
      const again = await ctx.open();
      equal((await again.listTasks({})).length, 2, "opened from the snapshot and journal, not the leftovers");
      await again.compact();
      equal(await ctx.exists(`${ctx.path}.tmp`), false, "the next snapshot replaced the leftover");
      equal(await ctx.exists(`${ctx.path}.tclog.tmp`), false, "the next journal replaced the leftover");
      await again.close();
      const last = await ctx.open();
      equal((await last.listTasks({})).length, 2);
      await last.close();
    },
  },
  {
    name: "a database open here is refused to a second open with StorageBlockedError, and opens once closed",
    async run(ctx) {
      const first = await ctx.open();
      await jobWith(first, 2);
      ok(await ctx.exists(`${ctx.path}.lock`), "the lock names the process that has it open");
      await rejects(() => ctx.open(), StorageBlockedError, "one process at a time");
      equal((await first.listTasks({})).length, 2, "the first storage works on");
      await first.close();
      equal(await ctx.exists(`${ctx.path}.lock`), false, "close() removes the lock");
      const again = await ctx.open();
      equal((await again.listTasks({})).length, 2);
      await again.close();
    },
  },
  {
    name: "an open refused because its persister is already open leaves the lock with the storage that has it",
    async run(ctx) {
      const p = ctx.persister();
      const first = await openTestStorage({ persister: p });
      await rejects(() => openTestStorage({ persister: p }), StorageBlockedError, "already open");
      ok(await ctx.exists(`${ctx.path}.lock`), "the lock is still held by the first storage");
      await rejects(() => ctx.open(), StorageBlockedError, "one process at a time");
      await jobWith(first, 1);
      await first.close();
      equal(await ctx.exists(`${ctx.path}.lock`), false, "close() removes the lock");
    },
  },
  {
    name: "a relative path keeps naming the same files after the working directory changes",
    async run(ctx) {
      const { default: process } = await import("node:process");
      const { basename, dirname } = await import("node:path");
      const { mkdir } = await import("node:fs/promises");
      const home = process.cwd();
      const elsewhere = `${dirname(ctx.path)}/elsewhere`;
      await mkdir(elsewhere);
      process.chdir(dirname(ctx.path));
      try {
        const s = await ctx.openAt(basename(ctx.path));
        await jobWith(s, 1);
        process.chdir(elsewhere);
        await s.compact(); // a snapshot and a new journal
        await jobWith(s, 1); // an append
        await s.close();
      } finally {
        process.chdir(home);
      }
      for (const file of ["", ".tclog", ".lock"]) {
        equal(await ctx.exists(`${elsewhere}/${basename(ctx.path)}${file}`), false, `no "${file}" file elsewhere`);
      }
      const again = await ctx.open();
      equal((await again.listJobs()).length, 2, "both jobs are in the file that was opened");
      await again.close();
    },
  },
  {
    name: "a lock left by a process that died is taken over; one of a live process or another host is not",
    async run(ctx) {
      const { hostname } = await import("node:os");
      await ctx.write(`${ctx.path}.lock`, `${DEAD_PID}\n${hostname()}\n`);
      const taken = await ctx.open();
      await taken.close();
      // A lock naming this very process that it does not hold: an earlier process with the
      // same id (a restarted container) left it.
      const { default: process } = await import("node:process");
      await ctx.write(`${ctx.path}.lock`, `${process.pid}\n${hostname()}\nleft-behind\n`);
      const again = await ctx.open();
      await again.close();
      // Process 1 lives on every host; a lock from another host cannot be checked, so it holds.
      await ctx.write(`${ctx.path}.lock`, `1\n${hostname()}\n`);
      await rejects(() => ctx.open(), StorageBlockedError, "process 1");
      await ctx.write(`${ctx.path}.lock`, `${DEAD_PID}\nelsewhere.example\n`);
      await rejects(() => ctx.open(), StorageBlockedError, `delete "${ctx.path}.lock"`);
    },
  },
  {
    name: "a lock from another PID namespace or boot is judged by its age: refused while its holder refreshes it",
    async run(ctx) {
      const { hostname } = await import("node:os");
      const { default: process } = await import("node:process");
      const { utimes } = await import("node:fs/promises");
      const { createFilePersister } = await import("../../adapters/sqljs-file.ts");
      const openStale = (ms: number) =>
        openTestStorage({ persister: createFilePersister(ctx.path, { lockStaleMs: ms }) });
      // Another container on this host: its process id (here: this one's, alive and not
      // holding the lock) means nothing here. Its holder keeps the lock fresh: refused.
      const lockFile = `${ctx.path}.lock`;
      await ctx.write(lockFile, `${process.pid}\n${hostname()}\nother\nanother-boot pid:[1]\n`);
      const keepFresh = setInterval(() => {
        const now = new Date();
        utimes(lockFile, now, now).catch(() => {});
      }, 20);
      try {
        await rejects(() => openStale(300), StorageBlockedError, "one process at a time");
      } finally {
        clearInterval(keepFresh);
      }
      // Left behind (nobody refreshes it): taken over once older than lockStaleMs.
      const s = await openStale(300);
      await jobWith(s, 1);
      // The holder refreshes its own lock: another namespace's opener is refused.
      const { stat } = await import("node:fs/promises");
      const before = (await stat(lockFile)).mtimeMs;
      await new Promise((r) => setTimeout(r, 200));
      ok((await stat(lockFile)).mtimeMs > before, "the open storage refreshed its lock");
      await s.close();
      equal(await ctx.exists(lockFile), false);
      throws(() => createFilePersister(ctx.path, { lockStaleMs: 0 }), RangeError, "lockStaleMs");
    },
  },
  {
    name: "openers taking over one stale lock at once never open together (three at a time, 30 rounds)",
    async run(ctx) {
      const { hostname } = await import("node:os");
      const { createFilePersister } = await import("../../adapters/sqljs-file.ts");
      for (let round = 0; round < 30; round++) {
        await ctx.write(`${ctx.path}.lock`, `${DEAD_PID}\n${hostname()}\n`);
        const persisters = Array.from({ length: 3 }, () => createFilePersister(ctx.path, { sync: false }));
        const loads = await Promise.allSettled(persisters.map((p) => p.load()));
        const opened = persisters.filter((_, i) => loads[i]!.status === "fulfilled");
        for (const l of loads) {
          if (l.status === "rejected") ok(l.reason instanceof StorageBlockedError, `refused: ${l.reason}`);
        }
        for (const p of opened) await p.close();
        equal(opened.length, 1, `round ${round}: exactly one of three openers holds the lock`);
        equal(await ctx.exists(`${ctx.path}.lock`), false, "the one that opened let go of it");
      }
    },
  },
  {
    name: "a takeover claim left by an opener that died while taking a stale lock over does not hold the next opener",
    async run(ctx) {
      const { hostname } = await import("node:os");
      const { readFile, readlink, utimes } = await import("node:fs/promises");
      const boot = (await readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(() => null))?.trim();
      const ns = await readlink("/proc/self/ns/pid").catch(() => null);
      const place = boot && ns ? `${boot} ${ns}` : "";
      await ctx.write(`${ctx.path}.lock`, `${DEAD_PID}\n${hostname()}\n`);
      await ctx.write(`${ctx.path}.lock.takeover`, `${DEAD_PID}\n${hostname()}\nabc\n${place}\n`);
      const { openSqlJsFileStorage } = await import("../../adapters/sqljs-file.ts");
      // Its claimer is gone: let go at once (waiting for its age would take an hour).
      const s = await openSqlJsFileStorage(ctx.path, { lockStaleMs: 3_600_000, sync: false });
      await s.close();
      // One that cannot be judged by its process (cut short) is let go once older than lockStaleMs.
      await ctx.write(`${ctx.path}.lock`, `${DEAD_PID}\n${hostname()}\n`);
      await ctx.write(`${ctx.path}.lock.takeover`, "");
      const then = (Date.now() - 60_000) / 1000;
      await utimes(`${ctx.path}.lock.takeover`, then, then);
      const again = await openSqlJsFileStorage(ctx.path, { lockStaleMs: 5_000, sync: false });
      await again.close();
      equal(await ctx.exists(`${ctx.path}.lock.takeover`), false, "no claim left behind");
    },
  },
  {
    name: "a lock cut short by a crash of the machine (empty, or no host) is judged by its age, not held for good",
    async run(ctx) {
      const { utimes } = await import("node:fs/promises");
      const { openSqlJsFileStorage } = await import("../../adapters/sqljs-file.ts");
      const lockFile = `${ctx.path}.lock`;
      for (const text of ["", "12"]) {
        // Written a minute ago and never refreshed since: its holder is gone.
        await ctx.write(lockFile, text);
        const then = (Date.now() - 60_000) / 1000;
        await utimes(lockFile, then, then);
        const s = await openSqlJsFileStorage(ctx.path, { lockStaleMs: 5_000, sync: false });
        await jobWith(s, 1);
        await s.close();
        equal(await ctx.exists(lockFile), false);
      }
      // A fresh one ages too (nobody refreshes it): the opener waits it out, then takes it over.
      await ctx.write(lockFile, "");
      const s = await openSqlJsFileStorage(ctx.path, { lockStaleMs: 300, sync: false });
      await s.close();
    },
  },
  {
    name: "openSqlJsFileStorage() passes lockStaleMs to its file persister",
    async run(ctx) {
      const { hostname } = await import("node:os");
      const { default: process } = await import("node:process");
      const { openSqlJsFileStorage } = await import("../../adapters/sqljs-file.ts");
      // A bad value is refused, as createFilePersister() refuses it.
      await rejects(() => openSqlJsFileStorage(ctx.path, { lockStaleMs: 0 }), RangeError, "lockStaleMs");
      // A lock left in another PID namespace 10 s ago is stale under lockStaleMs 5 s: taken over
      // at once (under the default 30 s it would be waited on as a live holder's).
      const { readFile, utimes } = await import("node:fs/promises");
      await ctx.write(`${ctx.path}.lock`, `${process.pid}\n${hostname()}\nother\nanother-boot pid:[1]\n`);
      const then = (Date.now() - 10_000) / 1000;
      await utimes(`${ctx.path}.lock`, then, then);
      const s = await openSqlJsFileStorage(ctx.path, { lockStaleMs: 5_000, sync: false });
      const held = (await readFile(`${ctx.path}.lock`, "utf8")).split("\n");
      ok(held[2] !== "other" && held[3] !== "another-boot pid:[1]", "the lock is this opener's now");
      await s.close();
    },
  },
  {
    name: "the same file reached through a symlinked folder is refused while open (the lock is not taken over)",
    async run(ctx) {
      const { symlink, rm } = await import("node:fs/promises");
      const { dirname, basename } = await import("node:path");
      const alias = `${dirname(ctx.path)}-alias`;
      await symlink(dirname(ctx.path), alias, "dir");
      try {
        const first = await ctx.open();
        await jobWith(first, 1);
        await rejects(() => ctx.openAt(`${alias}/${basename(ctx.path)}`), StorageBlockedError, "one process at a time");
        equal((await first.listTasks({})).length, 1);
        await first.close();
      } finally {
        await rm(alias, { force: true });
      }
    },
  },
  {
    name: "a database refused at open (corrupt) or that fails to load keeps no lock behind",
    async run(ctx) {
      await ctx.write(ctx.path, "not a database");
      await rejects(() => ctx.open(), StorageCorruptError);
      equal(await ctx.exists(`${ctx.path}.lock`), false);
      await rejects(() => ctx.open(), StorageCorruptError);
      // A snapshot path that is a directory: the read fails after the lock was taken.
      const { mkdir, rm } = await import("node:fs/promises");
      await rm(ctx.path);
      await mkdir(ctx.path);
      // Trying again does not cure it (the path must change): a setup error, not a transient one.
      await rejects(() => ctx.open(), StorageSetupError, "Could not open");
      equal(await ctx.exists(`${ctx.path}.lock`), false, "the lock went with the failed load");
      // Inside a path that is a file (ENOTDIR): refused the same way, nothing left behind.
      await rm(ctx.path, { recursive: true });
      await ctx.write(ctx.path, "");
      await rejects(() => ctx.openAt(`${ctx.path}/inner.sqlite`), StorageSetupError, "Could not open");
    },
  },
];

/**
 * Register the sql.js cases on the memory store and, with `tmpdir`, on the file store, the
 * persister cases on every persister the runtime has (`options` say how to reach into it),
 * and the query plan cases.
 */
export function registerSqlJsSuites(
  registrar: Registrar,
  tmpdir?: string,
  options: PersisterSuiteOptions = {},
): void {
  registerPersisterSuites(registrar, tmpdir, options);
  registerPlanSuites(registrar);
  const stores: [string, () => Promise<Store>][] = [["memory-persister", () => Promise.resolve(memoryStore())]];
  if (tmpdir !== undefined) {
    stores.push(["file", () => fileStore(tmpdir)]);
    register(registrar, "sqljs[file lock]", sqljsFileLockCases, async () => {
      const fs = await import("node:fs/promises");
      const { createFilePersister } = await import("../../adapters/sqljs-file.ts");
      const dir = await fs.mkdtemp(`${tmpdir}/task-core-sqljs-lock-`);
      const path = `${dir}/tasks.sqlite`;
      return {
        ctx: {
          path,
          persister: () => createFilePersister(path),
          open: () => openTestStorage({ persister: createFilePersister(path) }),
          openAt: (other) => openTestStorage({ persister: createFilePersister(other) }),
          exists: (file) => fs.stat(file).then(() => true, () => false),
          write: (file, text) => fs.writeFile(file, text),
        },
        teardown: () => fs.rm(dir, { recursive: true, force: true }),
      };
    });
  }
  for (const [name, make] of stores) {
    register(registrar, `sqljs[${name}]`, sqljsCases, async () => {
      const store = await make();
      return {
        ctx: { store, open: (options = {}) => openTestStorage({ ...options, persister: store.persister() }) },
        teardown: () => store.cleanup(),
      };
    });
  }
}
