/**
 * Crash test of the executor on the sql.js file storage: a child process runs a
 * 1,000-task job and is killed with SIGKILL at random moments, 20 times, restarted each
 * time, then left to finish. The job completes (or only at-most-once tasks interrupted
 * mid-run wait, blocked, for a person), no task is lost, no task runs again after its
 * completion was stored, every task's side effect ran at least once, and at-most-once
 * tasks never ran twice.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { bundleFixture } from "./bundle-fixture.ts";
import { afterAll, expect, test } from "vitest";
import { openSqlJsFileStorage } from "../../adapters/sqljs-file.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const work = mkdtempSync(join(tmpdir(), "task-core-crash-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const logFile = join(work, "effects.log");
const logLines = () => {
  try {
    return readFileSync(logFile, "utf8").split("\n").length - 1;
  } catch {
    return 0;
  }
};

/** Run the child; with `killAfterLines`, SIGKILL it once the log grew by that many lines (mid-work). */
function run(child: string, killAfterLines: number | null, prefetch = "none"): Promise<number | null> {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [child, work, logFile, prefetch], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    p.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const start = logLines();
    const timer = killAfterLines === null ? null : setInterval(() => {
      if (logLines() >= start + killAfterLines) p.kill("SIGKILL");
    }, 5);
    p.on("error", reject);
    p.on("exit", (code, signal) => {
      if (timer) clearInterval(timer);
      if (code !== 0 && signal !== "SIGKILL") reject(new Error(`child failed (${code}): ${err}`));
      else resolve(code);
    });
  });
}

test(
  "a 1,000-task job survives its process being SIGKILLed (20 runs, each killed at a random point unless the job ended first): nothing lost, nothing completed rerun, at-most-once never twice",
  async () => {
    const child = join(work, "child.mjs");
    await bundleFixture(join(root, "test/fixtures/executor-crash-child.ts"), child, [join(root, "node_modules")]);
    // esbuild leaves packages external: let the child resolve them from the project.
    rmSync(join(work, "node_modules"), { force: true, recursive: true });
    await import("node:fs").then((fs) => fs.symlinkSync(join(root, "node_modules"), join(work, "node_modules")));

    let kills = 0;
    for (let i = 0; i < 20; i++) {
      // Every other run holds claimed tasks waiting in the ready queue (prefetch), the others
      // claim only for free workers (the default): a kill meets both ways of starting a task.
      const code = await run(child, 10 + Math.floor(Math.random() * 80), i % 2 === 0 ? "none" : "all");
      if (code === null) kills++;
    }
    await run(child, null);

    const lines = readFileSync(logFile, "utf8").trim().split("\n");
    const execs = new Map<string, number>();
    const doneAt = new Map<string, number>();
    lines.forEach((line, at) => {
      const [kind, key] = line.split(" ") as [string, string];
      if (kind === "exec") {
        // No execution after the task's completion was stored.
        expect(doneAt.has(key), `${key} ran again after its completion was stored`).toBe(false);
        execs.set(key, (execs.get(key) ?? 0) + 1);
      } else if (kind === "done") doneAt.set(key, at);
    });

    const storage = await openSqlJsFileStorage(join(work, "crash.sqlite"));
    try {
      const [job] = await storage.listJobs();
      const tasks = await storage.listTasks({ jobId: job!.id });
      expect(tasks.length).toBe(1000);
      for (const t of tasks) {
        const n = execs.get(t.key) ?? 0;
        if (t.durability === "at-most-once") {
          expect(n, `${t.key} is at-most-once`).toBeLessThanOrEqual(1);
          expect(["completed", "blocked"]).toContain(t.status);
          // Blocked only once its start was stored: a task claimed but never started runs after all.
          if (t.status === "blocked") expect(t.startedAt, `${t.key} started before it was blocked`).not.toBeNull();
        } else {
          expect(t.status, `${t.key}`).toBe("completed");
          expect(n, `${t.key} side effect`).toBeGreaterThanOrEqual(1);
        }
        if (t.status === "completed") expect(t.output).toBe(t.key);
      }
      const blocked = tasks.filter((t) => t.status === "blocked");
      expect(job!.status).toBe(blocked.length === 0 ? "completed" : "running");
      expect(kills).toBeGreaterThan(0);
      console.log(
        `crash test: ${kills} kills, ${lines.filter((l) => l.startsWith("exec")).length} executions for 1000 tasks, ` +
          `${blocked.length} at-most-once task(s) blocked after an interrupted run`,
      );
    } finally {
      await storage.close();
    }
  },
  300_000,
);
