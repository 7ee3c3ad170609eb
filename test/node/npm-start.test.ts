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

function start(interruptAfterRan: number | null): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["scripts/run-ts.mjs", "examples/node-start.ts"], {
      cwd: root,
      env: { ...process.env, TASK_DB_DIR: dir, WORK_MS: "60", ARTICLES: "10" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let sent = false;
    child.stdout.on("data", (chunk: Buffer) => {
      out += chunk.toString();
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
