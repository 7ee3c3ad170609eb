/**
 * Multi-process test on a real PostgreSQL server: 4 Node processes, each with an
 * executor, work through one schema (jobs of 100 tasks in chains of 10, random retryable
 * and permanent failures); two of them are killed with SIGKILL mid-run and restarted with
 * the same executor id. Checked from the database and from the executions the processes
 * printed: every task ends in a final status, every job ends, nothing is lost, no task
 * runs in two processes at once, and no task starts before its dependency completed.
 *
 * Size: `TASK_CORE_PG_STRESS_TASKS` (default 2,000; `npm run stress:pg` runs 10,000).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { rm } from "node:fs/promises";
import process from "node:process";
import { bundleFixture } from "./bundle-fixture.ts";
import { afterAll, beforeAll, expect, test } from "vitest";
import { openPostgresStorage, type PostgresStorage } from "../../adapters/postgres.ts";
import { Executor } from "../../src/executor.ts";
import { AgentRegistry } from "../../src/registry.ts";
import { isFinal } from "../../src/status.ts";
import type { Task } from "../../src/types.ts";
import { postgresJsDatabase, type TestDatabase, testServerUrl, uniqueSchema } from "../targets-postgres.ts";

const server = testServerUrl();
const TASKS = Math.max(100, Math.round(Number(process.env.TASK_CORE_PG_STRESS_TASKS ?? 2000) / 100) * 100);
const PROCESSES = 4;
const FAILURE_RATE = 0.08;
const fixture = new URL("../fixtures/pg-worker.ts", import.meta.url).pathname;
// Next to the fixture, so the bundle resolves `postgres` from the repository's node_modules.
const bundle = new URL(`../fixtures/.pg-worker.${process.pid}.run.mjs`, import.meta.url).pathname;

let db: TestDatabase | undefined;
let schema = "";

beforeAll(async () => {
  if (!server.url) return;
  await bundleFixture(fixture, bundle);
  db = postgresJsDatabase(server.url);
});

afterAll(async () => {
  await rm(bundle, { force: true });
  if (db && schema) await db.drop(schema);
  await db?.close();
});

interface Execution {
  process: string;
  task: string;
  attempt: number;
  start: number;
  end: number | null;
  outcome: string | null;
}

interface Incarnation {
  id: string;
  child: ChildProcess;
  executions: Map<string, Execution>;
  ready: Promise<void>;
  closed: Promise<void>;
  killedAt: number | null;
}

function startWorker(url: string, id: string, n: number, onEnd: () => void): Incarnation {
  const child = spawn(process.execPath, [bundle, url, schema, id, String(FAILURE_RATE)], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const executions = new Map<string, Execution>();
  let buffer = "";
  let err = "";
  let onReady!: () => void;
  const ready = new Promise<void>((r) => (onReady = r));
  const label = `${id}#${n}`;
  child.stdout!.on("data", (d: Buffer) => {
    buffer += d.toString();
    const lines = buffer.split("\n");
    buffer = lines.pop()!;
    for (const line of lines) {
      const [kind, task, attempt, at, outcome] = line.split(" ");
      if (kind === "R") onReady();
      else if (kind === "S") {
        executions.set(`${task} ${attempt}`, {
          process: label,
          task: task!,
          attempt: Number(attempt),
          start: Number(at),
          end: null,
          outcome: null,
        });
      } else if (kind === "E") {
        const e = executions.get(`${task} ${attempt}`);
        if (e) {
          e.end = Number(at);
          e.outcome = outcome!;
        }
        onEnd();
      }
    }
  });
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const inc: Incarnation = {
    id: label,
    child,
    executions,
    ready,
    killedAt: null,
    closed: new Promise<void>((resolve, reject) => {
      child.on("exit", () => {
        if (child.signalCode === "SIGKILL") inc.killedAt = Date.now();
      });
      child.on("close", (code, signal) => {
        if (signal === "SIGKILL" || code === 0) resolve();
        else reject(new Error(`worker ${label} exited with ${code ?? signal}: ${err}`));
      });
    }),
  };
  return inc;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test.skipIf(!server.url)(
  `${PROCESSES} processes share ${TASKS.toLocaleString("en")} tasks; 2 are killed with SIGKILL and restarted: ` +
    "every task ends once, none runs in two processes at once, nothing is lost" +
    (server.url ? "" : ` (skipped: ${server.skip})`),
  async () => {
    const url = server.url!;
    schema = uniqueSchema("mp");
    const client = await db!.client();
    const storage: PostgresStorage = await openPostgresStorage({ client, schema });
    const registry = new AgentRegistry();
    registry.register({ name: "work", description: "run by the worker processes", execute: () => null });
    const submitter = new Executor({ storage, registry, maxAttempts: 3 });
    const jobs: string[] = [];
    for (let j = 0; j < TASKS / 100; j++) {
      const handle = await submitter.submit({
        name: `job-${j}`,
        tasks: Array.from({ length: 100 }, (_, i) => ({
          key: `t${i}`,
          agent: "work",
          input: j * 100 + i,
          ...(i >= 10 ? { dependsOn: [`t${i - 10}`] } : {}),
        })),
      });
      jobs.push(handle.id);
    }

    let ended = 0;
    const all: Incarnation[] = [];
    const start = (id: string) => {
      const inc = startWorker(url, id, all.filter((w) => w.id.startsWith(`${id}#`)).length, () => ended++);
      all.push(inc);
      return inc;
    };
    const live = new Map<string, Incarnation>();
    for (let p = 0; p < PROCESSES; p++) live.set(`w${p}`, start(`w${p}`));
    await Promise.all([...live.values()].map((w) => w.ready));

    const kills: { id: string; at: number; running: number }[] = [];
    for (const [victim, share] of [["w1", 0.25], ["w2", 0.55]] as const) {
      const t0 = Date.now();
      while (ended < TASKS * share) {
        if (Date.now() - t0 > 120_000) throw new Error(`stuck at ${ended} ended executions`);
        await sleep(5);
      }
      const w = live.get(victim)!;
      // Kill it while it runs tasks (their leases are then recovered).
      const runningNow = () => [...w.executions.values()].filter((e) => e.end === null).length;
      for (let i = 0; i < 200 && runningNow() === 0; i++) await sleep(2);
      const running = runningNow();
      w.child.kill("SIGKILL");
      await w.closed;
      kills.push({ id: w.id, at: w.killedAt!, running });
      await sleep(300);
      const again = start(victim);
      live.set(victim, again);
      await again.ready;
    }

    const t0 = Date.now();
    for (;;) {
      const open = [
        ...await storage.listJobs({ status: "running", limit: 1 }),
        ...await storage.listJobs({ status: "paused", limit: 1 }),
      ];
      if (open.length === 0) break;
      if (Date.now() - t0 > 300_000) throw new Error("jobs did not end in time");
      await sleep(100);
    }
    for (const w of live.values()) w.child.kill("SIGTERM");
    await Promise.all(all.map((w) => w.closed));

    // Nothing lost, everything final, every job ended once.
    const tasks: Task[] = [];
    for (const id of jobs) tasks.push(...await storage.listTasks({ jobId: id }));
    expect(tasks.length).toBe(TASKS);
    const notFinal = tasks.filter((t) => !isFinal(t));
    expect(notFinal.map((t) => `${t.key}:${t.status}`)).toEqual([]);
    for (const id of jobs) expect(["completed", "failed"]).toContain((await storage.getJob(id))!.status);

    // Executions: per task, in start order, none overlaps the next.
    const byTask = new Map<string, Execution[]>();
    for (const w of all) {
      for (const e of w.executions.values()) {
        if (e.end === null) e.end = w.killedAt ?? Infinity; // killed mid-execution
        const list = byTask.get(e.task);
        if (list) list.push(e);
        else byTask.set(e.task, [e]);
      }
    }
    const overlaps: string[] = [];
    for (const list of byTask.values()) {
      list.sort((a, b) => a.start - b.start || a.attempt - b.attempt);
      for (let i = 1; i < list.length; i++) {
        const a = list[i - 1]!;
        const b = list[i]!;
        if (b.start < a.end!) {
          overlaps.push(`${a.task}: ${a.process} [${a.start}, ${a.end}] and ${b.process} at ${b.start}`);
        }
        if (b.attempt <= a.attempt) overlaps.push(`${a.task}: attempt ${b.attempt} after ${a.attempt}`);
      }
    }
    expect(overlaps).toEqual([]);

    // Stored results agree with the executions; dependents started after their dependency completed.
    const byId = new Map(tasks.map((t) => [t.id, t]));
    const problems: string[] = [];
    for (const t of tasks) {
      const runs = byTask.get(t.id) ?? [];
      if (runs.length > t.attempts) problems.push(`${t.id} ran ${runs.length} times in ${t.attempts} attempts`);
      if (t.status === "completed") {
        if (!runs.some((r) => r.outcome === "ok")) problems.push(`${t.id} completed without a successful execution`);
        if ((t.output as { key?: string })?.key !== t.key) problems.push(`${t.id} has a wrong output`);
      }
      for (const d of t.dependencies) {
        const dep = byId.get(d)!;
        const doneAt = Math.min(...(byTask.get(d) ?? []).filter((r) => r.outcome === "ok").map((r) => r.end!));
        if (runs.length > 0 && dep.status !== "completed") problems.push(`${t.id} ran though ${d} is ${dep.status}`);
        if (runs.length > 0 && runs[0]!.start < doneAt) problems.push(`${t.id} started before ${d} completed`);
      }
    }
    expect(problems).toEqual([]);

    const count = (s: string) => tasks.filter((t) => t.status === s).length;
    const executions = [...byTask.values()].reduce((n, l) => n + l.length, 0);
    console.log(
      `multi-process: ${TASKS} tasks, ${executions} executions in ${all.length} processes ` +
        `(killed ${kills.map((k) => `${k.id} with ${k.running} running`).join(", ")}); ` +
        `completed ${count("completed")}, failed ${count("failed")}, cancelled ${count("cancelled")}`,
    );
    expect(kills.length).toBe(2);
    expect(count("completed")).toBeGreaterThan(0);
    expect(count("failed")).toBeGreaterThan(0);
    await storage.close();
  },
  600_000,
);
