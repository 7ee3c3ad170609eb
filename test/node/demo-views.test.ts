// @vitest-environment happy-dom
import { describe, expect, test } from "vitest";
import type { Job } from "../../mod.ts";
import { describeEvent, EventLog, renderLog } from "../../demo/src/event-log.ts";
import { barSegments, isDone, jobProgress, resumeMessage, visualStatus } from "../../demo/src/progress.ts";
import { createTaskTable, updateTaskTable } from "../../demo/src/table-view.ts";
import { attemptDuration, errorText, taskRows } from "../../demo/src/task-rows.ts";
import { digest, error, task } from "./demo-fixtures.ts";

describe("task rows", () => {
  test("a row shows status, attempts, the last attempt's duration and the error", () => {
    const [row] = taskRows([
      task("plan/fetch-1", {
        status: "completed",
        attempts: 2,
        startedAt: 1000,
        finishedAt: 2500,
      }),
    ], 9999);
    expect(row).toEqual({
      id: "id-plan/fetch-1",
      key: "plan/fetch-1",
      agent: "fetch",
      status: "completed",
      attempts: "2/4",
      duration: "1.5 s",
      error: "",
      note: "",
    });
  });

  test("a running task's duration counts up to now; one that never started has none", () => {
    expect(attemptDuration({ status: "running", startedAt: 1000, finishedAt: null }, 1400)).toBe(400);
    expect(attemptDuration({ status: "pending", startedAt: null, finishedAt: null }, 1400)).toBeNull();
    expect(taskRows([task("a")], 5)[0]!.duration).toBe("—");
  });

  test("a retrying task says when it runs again and why it failed", () => {
    const [row] = taskRows([
      task("plan/fetch-2", { status: "ready", attempts: 1, runAt: 3000, error: error("Connection reset") }),
    ], 1800);
    expect(row!.status).toBe("retrying");
    expect(row!.note).toBe("in 1.2 s");
    expect(row!.error).toBe("Error: Connection reset");
  });

  test("a task whose agent ran more often than its attempts say (a reload released it) shows its runs", () => {
    const tasks = [task("plan/fetch-1", { status: "completed", attempts: 1 }), task("plan/fetch-2", { attempts: 1 })];
    const rows = taskRows(tasks, 0, { "plan/fetch-1": 2, "plan/fetch-2": 1 });
    expect(rows.map((r) => r.attempts)).toEqual(["1/4 · ran 2×", "1/4"]);
  });

  test("a cancelled task shows its status reason", () => {
    const t = task("plan/report", { status: "cancelled", statusReason: 'Dependency "plan/fetch-1" failed' });
    expect(errorText(t)).toBe('Dependency "plan/fetch-1" failed');
    expect(errorText(task("x", { status: "completed", statusReason: "whatever" }))).toBe("");
  });
});

describe("task table", () => {
  test("updateTaskTable() shows one row per task and reuses rows across refreshes", () => {
    const table = createTaskTable(document);
    document.body.replaceChildren(table);
    const tasks = digest(1);
    updateTaskTable(table, taskRows(tasks, 0));
    const rows = () => [...table.querySelectorAll("tbody tr")] as HTMLTableRowElement[];
    expect(rows().map((r) => r.dataset.key)).toEqual(tasks.map((t) => t.key));
    const firstFetch = rows()[1]!;
    expect(firstFetch.querySelector(".col-task")!.textContent).toBe("plan/fetch-1");
    expect(firstFetch.querySelector(".key-parent")!.textContent).toBe("plan/");

    tasks[1] = { ...tasks[1]!, status: "failed", attempts: 1, error: error("gone", "NonRetryableError", false) };
    updateTaskTable(table, taskRows(tasks, 0));
    expect(rows()[1]).toBe(firstFetch); // same element, updated in place
    expect(firstFetch.dataset.status).toBe("failed");
    expect(firstFetch.querySelector(".pill")!.className).toBe("pill s-failed");
    expect(firstFetch.querySelector(".col-error")!.textContent).toBe("NonRetryableError: gone");
    expect(table.querySelectorAll("thead th")).toHaveLength(6);
  });

  test("rows follow the order given and rows of vanished tasks go away", () => {
    const table = createTaskTable(document);
    const [a, b, c] = [task("a"), task("b"), task("c")];
    updateTaskTable(table, taskRows([a, b, c], 0));
    updateTaskTable(table, taskRows([c, a], 0));
    expect([...table.querySelectorAll("tbody tr")].map((r) => (r as HTMLElement).dataset.key)).toEqual(["c", "a"]);
  });
});

describe("progress", () => {
  test("jobProgress() counts final tasks, running ones, retries and retrying ones", () => {
    const p = jobProgress([
      task("a", { status: "completed", attempts: 1 }),
      task("b", { status: "completed", attempts: 3 }),
      task("c", { status: "running", attempts: 1 }),
      task("d", { status: "ready", attempts: 1, error: error("x") }),
      task("e", { status: "failed", attempts: 4 }),
      task("f", { status: "cancelled" }),
      task("g", { status: "completed", review: true, attempts: 1 }),
    ]);
    expect(p).toMatchObject({
      total: 7,
      done: 4,
      completed: 3,
      failed: 1,
      cancelled: 1,
      running: 1,
      retrying: 1,
      retries: 2 + 1 + 3, // b ran 3 times, d waits to retry, e failed after 4 attempts
    });
    expect(p.fraction).toBeCloseTo(4 / 7);
    expect(jobProgress([]).fraction).toBe(0);
  });

  test("isDone() and visualStatus() follow the task lifecycle", () => {
    expect(isDone({ status: "completed", review: false })).toBe(true);
    expect(isDone({ status: "completed", review: true })).toBe(false);
    expect(isDone({ status: "accepted", review: true })).toBe(true);
    expect(isDone({ status: "paused", review: false })).toBe(false);
    expect(visualStatus({ status: "ready", error: null })).toBe("ready");
    expect(visualStatus({ status: "ready", error: error("x") })).toBe("retrying");
  });

  test("barSegments() put finished work first and add up to the finished and in-flight share", () => {
    const p = jobProgress([
      task("a", { status: "running" }),
      task("b", { status: "completed" }),
      task("c", { status: "pending" }),
      task("d", { status: "failed" }),
    ]);
    const segs = barSegments(p);
    expect(segs.map((s) => s.status)).toEqual(["completed", "failed", "running"]);
    expect(segs.reduce((n, s) => n + s.fraction, 0)).toBeCloseTo(0.75);
    expect(barSegments(jobProgress([]))).toEqual([]);
  });

  test("resumeMessage() says a job resumed after a reload and how much was already done", () => {
    const job = { id: "01HZXJOBIDEXAMPLE", status: "running" } as Pick<Job, "id" | "status">;
    expect(resumeMessage(job, { done: 7, total: 20 }, "IndexedDB")).toBe(
      "Resumed job 01HZXJOBID… after reload: 7 tasks already done, 13 to go (storage: IndexedDB).",
    );
    expect(resumeMessage({ ...job, status: "paused" }, { done: 1, total: 2 }, "sql.js", false)).toBe(
      "Resumed job 01HZXJOBID… from sql.js: 1 task already done, 1 to go (storage: sql.js). " +
        "It is paused: press Resume to continue.",
    );
  });
});

describe("event log", () => {
  test("describeEvent() turns executor events into short lines with a level", () => {
    const t = task("plan/fetch-1", { attempts: 2, startedAt: 100, finishedAt: 400 });
    expect(describeEvent("task:started", { task: t }, 5)).toEqual({
      at: 5,
      event: "task:started",
      level: "info",
      text: "plan/fetch-1 started (attempt 2)",
    });
    expect(describeEvent("task:completed", { task: t }, 5).text).toBe("plan/fetch-1 completed in 300 ms");
    const retry = describeEvent("task:retrying", { task: t, error: error("reset"), delayMs: 1500 }, 5);
    expect(retry).toMatchObject({ level: "warning", text: "plan/fetch-1 failed: reset; retry in 1.5 s" });
    const failed = describeEvent("task:failed", { task: t, error: error("gone", "NonRetryableError", false) }, 5);
    expect(failed).toMatchObject({ level: "error", text: "plan/fetch-1 failed for good: NonRetryableError: gone" });
    const job = { id: "01HZXJOBIDEXAMPLE", taskCount: 20, failedCount: 1 } as Job;
    expect(describeEvent("job:completed", { job }, 5).text).toBe("Job 01HZXJOBID… completed: 20 tasks");
    expect(describeEvent("job:failed", { job }, 5).level).toBe("error");
    const storage = describeEvent("storage:error", { operation: "commit", error: new Error("quota"), attempt: 2 }, 5);
    expect(storage.text).toBe("Storage commit failed (attempt 2): Error: quota");
  });

  test("EventLog keeps the newest lines first, up to its limit", () => {
    const log = new EventLog(3);
    for (let i = 1; i <= 5; i++) log.note(`line ${i}`, "info", i);
    expect(log.entries.map((e) => e.text)).toEqual(["line 5", "line 4", "line 3"]);
    const v = log.version;
    log.clear();
    expect(log.entries).toEqual([]);
    expect(log.version).toBeGreaterThan(v);
    expect(() => new EventLog(0)).toThrow(RangeError);
  });

  test("renderLog() draws one list item per line with its level as a class", () => {
    const log = new EventLog();
    log.note("<b>not bold</b>", "warning", new Date(2024, 0, 1, 12, 0, 0, 0).getTime());
    const list = document.createElement("ol");
    renderLog(list, log.entries);
    expect(list.children).toHaveLength(1);
    const li = list.firstElementChild!;
    expect(li.className).toBe("log-line level-warning");
    expect(li.querySelector("time")!.textContent).toBe("12:00:00.000");
    expect(li.querySelector(".log-text")!.textContent).toBe("<b>not bold</b>");
    expect(li.querySelector("b")).toBeNull();
  });
});
