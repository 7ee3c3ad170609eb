/**
 * `npm start` survives Ctrl-C: a first run is interrupted with SIGINT mid-job and shuts
 * down gracefully; a second run resumes the same job and finishes it without running
 * again any task the first run completed.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, expect, test } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "task-core-start-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function start(
  interruptAfterRan: number | null,
  interrupts = 1,
  db = dir,
): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["scripts/run-ts.mjs", "examples/node-start.ts"], {
      cwd: root,
      env: { ...process.env, TASK_DB_DIR: db, WORK_MS: "60", ARTICLES: "10" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let sent = false;
    let again = interrupts > 1;
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
      // The second Ctrl-C once the first was handled (signals sent together arrive as one).
      if (again && out.includes("Interrupted")) {
        again = false;
        child.kill("SIGINT");
      }
      const ran = out.split("\n").filter((l) => l.startsWith("ran ")).length;
      if (interruptAfterRan !== null && !sent && ran >= interruptAfterRan) {
        sent = true;
        child.kill("SIGINT");
      }
    });
    child.stderr.on("data", (chunk: Buffer) => (out += chunk.toString()));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code, out }));
  });
}

const ranKeys = (out: string) => out.split("\n").filter((l) => l.startsWith("ran ")).map((l) => l.slice(4).trim());

test(
  "npm start: Ctrl-C stops gracefully and a second run finishes the job without redoing completed tasks",
  async () => {
    const first = await start(6);
    expect(first.code).toBe(0);
    expect(first.out).toContain("Interrupted");
    expect(first.out).toContain("Stopped.");
    const before = ranKeys(first.out);
    expect(before.length).toBeGreaterThanOrEqual(6);

    const second = await start(null);
    expect(second.code).toBe(0);
    expect(second.out).toContain("Resuming job");
    expect(second.out).toMatch(/completed: 22 tasks/);
    const after = ranKeys(second.out);
    // Everything the first run finished was stored before it exited: nothing runs twice.
    expect(after.filter((k) => before.includes(k))).toEqual([]);
    // Between them, the runs did every fetch, summary and the report.
    expect(new Set([...before, ...after]).size).toBe(21);
  },
  120_000,
);

test(
  "npm start: a second Ctrl-C stops at once, handing running tasks back; the next run takes them back and finishes",
  async () => {
    const db = join(dir, "twice");
    const first = await start(4, 2, db);
    expect(first.code).toBe(0);
    expect(first.out).toContain("Stopping now");
    expect(first.out).toContain("Stopped.");
    const second = await start(null, 1, db);
    expect(second.code).toBe(0);
    expect(second.out).toContain("Resuming job");
    expect(second.out).toMatch(/completed: 22 tasks/);
    expect(new Set([...ranKeys(first.out), ...ranKeys(second.out)]).size).toBe(21);
  },
  120_000,
);
