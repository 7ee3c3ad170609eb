/**
 * Crash test across runtimes: a child in Deno, Bun or Node (taking turns on one file)
 * drives a file-persisted sql.js storage and is SIGKILLed at random moments, in three
 * workloads (many small commits, commits of megabytes written as many frames, a database
 * snapshotted after nearly every flush). After each kill the storage is reopened here
 * (Node) and by a child of another runtime, and every operation that had resolved before
 * the kill must be there, with no job half-applied. The next round's child (often another
 * runtime) opens what this one left, so a file written by each runtime is opened by each.
 *
 * Rounds per workload: `RUNTIME_CRASH_ROUNDS` (default 5).
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, watch } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleFixture } from "./bundle-fixture.ts";
import { afterAll, afterEach, beforeAll, expect, test } from "vitest";
import { openSqlJsFileStorage } from "../../adapters/sqljs-file.ts";
import { isFinal } from "../../src/status.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const fixture = join(root, "test/fixtures/runtime-crash-child.ts");
// One bundle per test process: two runs in one checkout do not write or delete each other's.
const bundle = join(root, `test/fixtures/.runtime-crash-child.${process.pid}.run.mjs`);
const bin = (name: string): string => join(root, "node_modules/.bin", name);
const rounds = Number(process.env.RUNTIME_CRASH_ROUNDS ?? 5);
let dir = "";
/** Children not exited yet: killed after each test, so one that failed or timed out midway leaves none. */
const live = new Set<ChildProcess>();
const track = <C extends ChildProcess>(child: C): C => {
  live.add(child);
  child.on("close", () => live.delete(child));
  return child;
};

type Runtime = "deno" | "bun" | "node";
const command = (rt: Runtime, args: string[]): [string, string[]] =>
  rt === "deno"
    ? [bin("deno"), ["run", "-A", "--quiet", fixture, ...args]]
    : rt === "bun"
    ? [bin("bun"), [fixture, ...args]]
    : [process.execPath, [bundle, ...args]];

beforeAll(async () => {
  await bundleFixture(fixture, bundle);
  dir = await mkdtemp(join(tmpdir(), "task-core-rt-crash-"));
});

afterEach(() => {
  for (const child of live) child.kill("SIGKILL");
});

afterAll(async () => {
  await rm(bundle, { force: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

function payload(seed: number, length: number): string {
  const unit = `${seed.toString(36)}-`;
  return unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
}

/**
 * Run `rt` until it has worked `ms` after opening, then SIGKILL it; its complete lines.
 * With `inSnapshot`, it is killed instead as soon as, after those `ms`, it starts writing
 * its `inSnapshot`-th snapshot or journal file (a `.tmp` file appears), or 5 s later.
 */
function runAndKill(rt: Runtime, args: string[], ms: number, inSnapshot = 0): Promise<string[]> {
  const base = args[1]!.slice(dir.length + 1);
  return new Promise((resolve, reject) => {
    const [cmd, argv] = command(rt, args);
    const child = track(spawn(cmd, argv, { cwd: root, stdio: ["ignore", "pipe", "pipe"] }));
    let seen = 0;
    let armed = false;
    const watcher = inSnapshot > 0
      ? watch(dir, (_event, name) => {
        const file = String(name);
        if (armed && file.startsWith(base) && file.endsWith(".tmp") && ++seen === inSnapshot) child.kill("SIGKILL");
      })
      : null;
    let out = "";
    let err = "";
    let timer: ReturnType<typeof setTimeout> | undefined;
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (timer || !out.includes("\n")) return;
      timer = setTimeout(() => {
        if (!watcher) return void child.kill("SIGKILL");
        armed = true;
        timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      }, ms);
    });
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    // "close", not "exit": at "exit" the last lines it printed may not have been read yet.
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      watcher?.close();
      if (signal !== "SIGKILL") reject(new Error(`${rt} child exited with ${code ?? signal} before the kill: ${err}`));
      else resolve(out.split("\n").slice(0, -1));
    });
  });
}

function runToEnd(rt: Runtime, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    const [cmd, argv] = command(rt, args);
    const child = track(spawn(cmd, argv, { cwd: root, stdio: ["ignore", "pipe", "pipe"] }));
    let out = "";
    let err = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("close", (code) => (code === 0 ? resolve(out.trim()) : reject(new Error(`${rt} verify: ${code} ${err}`))));
  });
}

const writers: Runtime[] = ["deno", "bun", "deno", "bun", "node"];

for (const kind of ["small", "large", "compact", "in-snapshot"] as const) {
  const mode = kind === "in-snapshot" ? "compact" : kind;
  test(
    `${kind} commits: what resolved before a SIGKILL in Deno, Bun or Node reopens whole in every runtime`,
    async () => {
      const path = join(dir, `${kind}.sqlite`);
      const expectFile = join(dir, `${kind}.expect.json`);
      const jobs = new Map<string, string[]>();
      const claims = new Map<string, number>();
      const completions = new Map<string, [number, number]>();
      let counter = 0;
      const kills: Record<string, number> = { deno: 0, bun: 0, node: 0 };
      let replayed = 0;
      let dropped = 0;
      let stale = 0;
      let midSnapshot = 0;
      for (let round = 0; round < rounds; round++) {
        const rt = writers[round % writers.length]!;
        const ms = mode === "small" ? 20 + Math.floor(Math.random() * 900) : 50 + Math.floor(Math.random() * 2500);
        const inSnapshot = kind === "in-snapshot" ? 1 + Math.floor(Math.random() * 6) : 0;
        const lines = await runAndKill(rt, [mode, path, String(round)], ms, inSnapshot);
        kills[rt]!++;
        if (existsSync(`${path}.tmp`) || existsSync(`${path}.tclog.tmp`)) midSnapshot++;
        for (const line of lines) {
          const [tag, a, ...rest] = line.split(" ");
          if (tag === "O") {
            replayed += Number(rest[0]);
            dropped += Number(rest[1]);
            if (rest[2] === "true") stale++;
          } else if (tag === "J") jobs.set(a!, rest);
          else if (tag === "C") claims.set(a!, Math.max(claims.get(a!) ?? 0, Number(rest[0])));
          else if (tag === "D") completions.set(a!, [Number(rest[0]), Number(rest[1])]);
          else if (tag === "S") counter = Math.max(counter, Number(a));
        }
        // Another runtime reopens it first (verify mode), then Node here.
        await writeFile(
          expectFile,
          JSON.stringify({ jobs: [...jobs], claims: [...claims], completions: [...completions], counter }),
        );
        const reader: Runtime = rt === "deno" ? "bun" : rt === "bun" ? "deno" : round % 2 ? "deno" : "bun";
        expect(await runToEnd(reader, ["verify", path, expectFile]), `round ${round}: ${rt} wrote, ${reader} read`)
          .toBe(`OK ${reader}`);
        const storage = await openSqlJsFileStorage(path);
        try {
          for (const [jobId, taskIds] of jobs) {
            const job = await storage.getJob(jobId);
            expect(job, `job ${jobId}`).toBeDefined();
            const tasks = await storage.listTasks({ jobId });
            expect(tasks.map((t) => t.id).sort()).toEqual([...taskIds].sort());
            expect(job!.taskCount).toBe(tasks.length);
            expect(job!.openCount).toBe(tasks.filter((t) => !isFinal(t)).length);
          }
          for (const [id, version] of claims) {
            const t = (await storage.getTask(id))!;
            expect(t.version, `claimed task ${id}`).toBeGreaterThanOrEqual(version);
          }
          for (const [id, [seed, length]] of completions) {
            const t = (await storage.getTask(id))!;
            expect(t.status, `completed task ${id}`).toBe("completed");
            expect(t.output === payload(seed, length), `output of ${id}`).toBe(true);
          }
          expect(Number(await storage.getState("crash", "counter") ?? 0)).toBeGreaterThanOrEqual(counter);
        } finally {
          await storage.close();
        }
      }
      expect(completions.size).toBeGreaterThan(0);
      console.log(
        `runtime crash (${kind}): kills ${JSON.stringify(kills)}, ${jobs.size} jobs, ${claims.size} claims, ` +
          `${completions.size} completions checked; at reopen ${replayed} frames replayed, ${dropped} torn bytes ` +
          `dropped, ${stale} stale journals, ${midSnapshot} kills left a snapshot or journal half written`,
      );
    },
    600_000,
  );
}
