import { describe, expect, test } from "vitest";
import { Executor, JobFailedError, type Storage } from "../../mod.ts";
import { createMemoryStorage } from "../../adapters/memory.ts";
import { findLatestJob, releaseLeasesOf } from "../../demo/src/recovery.ts";
import { parseStorageKind } from "../../demo/src/storage-kind.ts";
import {
  createRegistry,
  createStartCounter,
  digestJob,
  expectedTaskCount,
  FailureInjector,
  JOB_NAME,
  type KeyValueStore,
  normalizeSettings,
  readCompletions,
} from "../../demo/src/workflow.ts";

/** A seeded random source, so failure patterns repeat. */
function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function setup(options: { random?: () => number; storage?: Storage } = {}) {
  const storage = options.storage ?? createMemoryStorage();
  const injector = new FailureInjector();
  const starts = createStartCounter(null);
  const registry = createRegistry({ injector, starts, random: options.random ?? seeded(1) });
  const executor = new Executor({
    storage,
    registry,
    maxWorkers: 4,
    maxAttempts: 12,
    retry: { delayMs: 0 },
    pollIntervalMs: 20,
    shutdownGraceMs: 0,
  });
  return { storage, injector, starts, registry, executor };
}

describe("the demo workflow on the real executor", () => {
  test("plan spawns a fetch → parse → summarize chain per article and the report joins them", async () => {
    const { storage, starts, executor } = setup();
    executor.start();
    try {
      const job = await executor.submit(digestJob(normalizeSettings({ articles: 3, workMs: 1, failRate: 0 })));
      const out = await job.wait();
      const tasks = await job.tasks();
      expect(tasks).toHaveLength(expectedTaskCount(3));
      expect(tasks.map((t) => t.key)).toContain("plan/summarize-3");
      expect(tasks.find((t) => t.key === "plan/parse-2")!.parentId).toBe(tasks.find((t) => t.key === "plan")!.id);
      const report = out["plan/report"] as { articles: number; digest: string[] };
      expect(report.articles).toBe(3);
      expect(report.digest).toHaveLength(3);
      expect(report.digest[0]).toMatch(/^1\. .+: \d+ words in \d key points$/);
      const keys = tasks.map((t) => t.key);
      const completions = await readCompletions(storage, job.id, keys);
      const runs = starts.get(job.id);
      for (const key of keys) {
        expect(completions[key], key).toBe(1);
        expect(runs[key], key).toBe(1);
      }
    } finally {
      await executor.shutdown();
    }
  });

  test("random transient failures are retried, and still every task completes exactly once", async () => {
    const { storage, starts, executor } = setup({ random: seeded(42) });
    executor.start();
    try {
      const job = await executor.submit(digestJob(normalizeSettings({ articles: 4, workMs: 1, failRate: 0.6 })));
      await job.wait();
      const tasks = await job.tasks();
      const keys = tasks.map((t) => t.key);
      const completions = await readCompletions(storage, job.id, keys);
      expect(Object.values(completions)).toEqual(keys.map(() => 1));
      const runs = Object.values(starts.get(job.id)).reduce((a, b) => a + b, 0);
      expect(runs).toBeGreaterThan(tasks.length); // some attempts failed and ran again
      expect(tasks.some((t) => t.attempts > 1)).toBe(true);
      expect(executor.stats().retried).toBe(runs - tasks.length);
    } finally {
      await executor.shutdown();
    }
  });

  test("an injected fatal failure fails the fetch for good and cancels what depends on it", async () => {
    const { injector, executor } = setup();
    injector.arm("fatal");
    executor.start();
    try {
      const job = await executor.submit(digestJob(normalizeSettings({ articles: 2, workMs: 1, failRate: 0 })));
      const error = await job.wait().catch((e) => e);
      expect(error).toBeInstanceOf(JobFailedError);
      const tasks = await job.tasks();
      const failed = tasks.filter((t) => t.status === "failed");
      expect(failed).toHaveLength(1);
      expect(failed[0]!.key).toMatch(/^plan\/fetch-\d$/);
      expect(failed[0]!.attempts).toBe(1);
      expect(failed[0]!.error).toMatchObject({ name: "NonRetryableError", retryable: false });
      expect(tasks.find((t) => t.key === "plan/report")!.status).toBe("cancelled");
      expect((await job.status()).status).toBe("failed");
      expect(injector.armed).toEqual([]);
    } finally {
      await executor.shutdown();
    }
  });

  test("an injected transient failure costs one more attempt of one fetch", async () => {
    const { injector, executor } = setup();
    injector.arm("transient");
    executor.start();
    try {
      const job = await executor.submit(digestJob(normalizeSettings({ articles: 2, workMs: 1, failRate: 0 })));
      await job.wait();
      const fetches = (await job.tasks()).filter((t) => t.agent === "fetch");
      expect(fetches.map((t) => t.attempts).sort()).toEqual([1, 2]);
    } finally {
      await executor.shutdown();
    }
  });
});

describe("resuming after a reload", () => {
  test("releaseLeasesOf() hands back an at-most-once task that never started, and leaves one that did", async () => {
    const storage = createMemoryStorage();
    const { executor: submitter } = setup({ storage });
    const input = { id: 1, title: "A", workMs: 1, failRate: 0 };
    const job = await submitter.submit({
      name: JOB_NAME,
      tasks: [
        { key: "queued", agent: "fetch", input, durability: "at-most-once" },
        { key: "started", agent: "fetch", input, durability: "at-most-once" },
      ],
    });
    const claimed = await storage.claimReady({ limit: 2, now: Date.now(), owner: "gone-tab", leaseMs: 60_000 });
    const started = claimed.find((t) => t.key === "started")!;
    await storage.commit([{
      type: "updateTask",
      id: started.id,
      expect: { version: started.version },
      set: { startedAt: Date.now() },
    }]);
    expect(await releaseLeasesOf(storage, "gone-tab", Date.now(), job.id)).toBe(1);
    const byKey = Object.fromEntries((await storage.listTasks({ jobId: job.id })).map((t) => [t.key, t.status]));
    expect(byKey).toEqual({ queued: "ready", started: "running" });
  });

  test("releaseLeasesOf() hands back at once the tasks a gone executor held, without counting the attempt", async () => {
    const storage = createMemoryStorage();
    const { executor: submitter } = setup({ storage });
    const job = await submitter.submit({
      name: JOB_NAME,
      tasks: [
        { key: "a", agent: "fetch", input: { id: 1, title: "A", workMs: 1, failRate: 0 } },
        { key: "b", agent: "fetch", input: { id: 2, title: "B", workMs: 1, failRate: 0 } },
      ],
    });
    const [a] = await storage.claimReady({ limit: 1, now: Date.now(), owner: "gone-tab", leaseMs: 60_000 });
    const [b] = await storage.claimReady({ limit: 1, now: Date.now(), owner: "other-tab", leaseMs: 60_000 });
    expect(await releaseLeasesOf(storage, "gone-tab", Date.now())).toBe(1);
    const after = await storage.getTask(a!.id);
    expect(after).toMatchObject({ status: "ready", attempts: 0, leaseOwner: null });
    expect(after!.error).toMatchObject({ name: "PageReloadError", retryable: true });
    expect((await storage.getTask(b!.id))!.status).toBe("running"); // someone else's lease is left alone
    expect(await releaseLeasesOf(storage, "gone-tab", Date.now(), job.id)).toBe(0);

    const { executor } = setup({ storage });
    executor.start();
    try {
      await storage.commit([{
        type: "updateTask",
        id: b!.id,
        expect: { version: b!.version, status: "running" },
        set: { status: "ready" },
      }]);
      const resumed = await executor.job(job.id);
      await resumed.wait();
      expect((await resumed.tasks()).map((t) => t.status)).toEqual(["completed", "completed"]);
    } finally {
      await executor.shutdown();
    }
  });

  test("findLatestJob() prefers the newest unfinished digest, else the newest one", async () => {
    const storage = createMemoryStorage();
    const { executor } = setup({ storage });
    expect(await findLatestJob(storage, JOB_NAME)).toBeUndefined();
    const first = await executor.submit(digestJob(normalizeSettings({ articles: 1 })));
    const second = await executor.submit(digestJob(normalizeSettings({ articles: 1 })));
    await executor.submit({ name: "something-else", tasks: [{ key: "x", agent: "plan", input: null }] });
    expect((await findLatestJob(storage, JOB_NAME))!.id).toBe(second.id);
    await second.cancel();
    expect((await findLatestJob(storage, JOB_NAME))!.id).toBe(first.id);
    await first.cancel();
    expect((await findLatestJob(storage, JOB_NAME))!.id).toBe(second.id);
  });
});

describe("demo settings and counters", () => {
  test("normalizeSettings() clamps form and URL values into range", () => {
    expect(normalizeSettings({})).toEqual({ articles: 8, workMs: 700, failRate: 0.15 });
    expect(normalizeSettings({ articles: "100", workMs: "0", failRate: "2" })).toEqual({
      articles: 40,
      workMs: 1,
      failRate: 0.9,
    });
    expect(normalizeSettings({ articles: "2.6", workMs: "abc", failRate: -1 })).toEqual({
      articles: 3,
      workMs: 700,
      failRate: 0,
    });
  });

  test("digestJob() submits one plan task carrying the settings", () => {
    const spec = digestJob({ articles: 2, workMs: 5, failRate: 0 });
    expect(spec.name).toBe(JOB_NAME);
    expect(spec.tasks).toEqual([
      expect.objectContaining({ key: "plan", agent: "plan", input: { articles: 2, workMs: 5, failRate: 0 } }),
    ]);
  });

  test("createStartCounter() keeps counts per job in the given store", () => {
    const items = new Map<string, string>();
    const store: KeyValueStore = { getItem: (k) => items.get(k) ?? null, setItem: (k, v) => void items.set(k, v) };
    const counter = createStartCounter(store);
    counter.count("j1", "a");
    counter.count("j1", "a");
    counter.count("j2", "b");
    expect(createStartCounter(store).get("j1")).toEqual({ a: 2 }); // a new page reads what the last one wrote
    expect(counter.get("j2")).toEqual({ b: 1 });
    items.set("task-core-demo:starts:bad", "{not json");
    expect(counter.get("bad")).toEqual({});
    const memory = createStartCounter(null);
    memory.count("j", "k");
    expect(memory.get("j")).toEqual({ k: 1 });
  });

  test("FailureInjector hands out armed failures in order, once each", () => {
    const injector = new FailureInjector();
    let changes = 0;
    const off = injector.onChange(() => changes++);
    injector.arm("transient");
    injector.arm("fatal");
    expect(injector.armed).toEqual(["transient", "fatal"]);
    expect(injector.take()).toBe("transient");
    expect(injector.take()).toBe("fatal");
    expect(injector.take()).toBeUndefined();
    injector.arm("fatal");
    injector.clear();
    expect(injector.armed).toEqual([]);
    off();
    injector.arm("fatal");
    expect(changes).toBe(6);
    expect(() => injector.arm("sometimes" as never)).toThrow(TypeError);
  });

  test("parseStorageKind() falls back to IndexedDB", () => {
    expect(parseStorageKind("sqljs")).toBe("sqljs");
    expect(parseStorageKind("memory")).toBe("memory");
    expect(parseStorageKind(null)).toBe("indexeddb");
    expect(parseStorageKind("postgres")).toBe("indexeddb");
  });
});
