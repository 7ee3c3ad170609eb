/**
 * Crash test: a child process drives a file-persisted sql.js storage and is killed with
 * SIGKILL at random moments; after each kill, every operation that had resolved before it
 * (persist-then-run) must be found in the reopened storage, and every job must be
 * consistent (no half-applied transaction).
 */
import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { build } from "esbuild";
import { afterAll, beforeAll, expect, test } from "vitest";
import { openSqlJsFileStorage } from "../../adapters/sqljs-file.ts";
import { isFinal } from "../../src/status.ts";

const fixture = new URL("../fixtures/sqljs-crash-child.ts", import.meta.url).pathname;
// Next to the fixture, so the bundle resolves `sql.js` from the repository's node_modules.
const bundle = new URL("../fixtures/.sqljs-crash-child.run.mjs", import.meta.url).pathname;
let dir = "";

beforeAll(async () => {
  await build({
    entryPoints: [fixture],
    outfile: bundle,
    bundle: true,
    format: "esm",
    platform: "node",
    target: "node20",
    packages: "external",
    logLevel: "error",
  });
  dir = await mkdtemp(join(tmpdir(), "task-core-crash-"));
});

afterAll(async () => {
  await rm(bundle, { force: true });
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Run the child until it has worked for `ms` after opening, then SIGKILL it; returns its complete lines. */
function runAndKill(path: string, round: number, ms: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundle, path, String(round)], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let err = "";
    let timer: ReturnType<typeof setTimeout> | undefined;
    child.stdout.on("data", (d: Buffer) => {
      out += d.toString();
      if (!timer && out.includes("\n")) timer = setTimeout(() => child.kill("SIGKILL"), ms);
    });
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    child.on("error", reject);
    child.on("exit", (code, signal) => {
      clearTimeout(timer);
      if (signal !== "SIGKILL") reject(new Error(`child exited with ${code ?? signal} before the kill: ${err}`));
      else resolve(out.split("\n").slice(0, -1)); // the last piece may be a torn line
    });
  });
}

test("every operation that resolved before a SIGKILL survives, over several crashes", async () => {
  const path = join(dir, "crash.sqlite");
  const jobs = new Map<string, string[]>();
  const claims = new Map<string, number>();
  const completions = new Map<string, string>();
  let counter = 0;
  let replayed = 0;
  let dropped = 0;
  for (let round = 0; round < 6; round++) {
    const lines = await runAndKill(path, round, 150 + Math.floor(Math.random() * 600));
    for (const line of lines) {
      const [kind, a, ...rest] = line.split(" ");
      if (kind === "J") jobs.set(a!, rest);
      else if (kind === "C") claims.set(a!, Math.max(claims.get(a!) ?? 0, Number(rest[0])));
      else if (kind === "D") completions.set(a!, rest[0]!);
      else if (kind === "S") counter = Math.max(counter, Number(a));
    }
    const storage = await openSqlJsFileStorage(path);
    replayed += storage.openReport.replayedFrames;
    dropped += storage.openReport.droppedBytes;
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
        expect(t.attempts).toBeGreaterThanOrEqual(1);
      }
      for (const [id, output] of completions) {
        const t = (await storage.getTask(id))!;
        expect(t.status, `completed task ${id}`).toBe("completed");
        expect(t.output).toBe(output);
      }
      expect(Number(await storage.getState("crash", "counter") ?? 0)).toBeGreaterThanOrEqual(counter);
    } finally {
      await storage.close();
    }
  }
  expect(jobs.size).toBeGreaterThan(10);
  expect(completions.size).toBeGreaterThan(10);
  console.log(
    `crash test: ${jobs.size} jobs, ${claims.size} claims, ${completions.size} completions checked ` +
      `over 6 kills; after the kills ${replayed} journal frames were replayed, ${dropped} torn bytes dropped`,
  );
}, 120_000);
