/**
 * The event log: executor events and the page's own notes turned into short lines, kept
 * in a bounded list (newest first) and rendered as a list.
 *
 * @module
 */

import type { ExecutorEventName, ExecutorEvents } from "../../mod.ts";
import { h } from "./dom.ts";
import { formatClock, formatDuration, shortId } from "./format.ts";

/** How bad a line is; also its CSS class `level-<level>`. */
export type LogLevel = "info" | "success" | "warning" | "error";

/** One line of the log. */
export interface LogEntry {
  /** When (epoch milliseconds). */
  at: number;
  /** The event name, or `demo` for the page's own notes. */
  event: string;
  /** Severity. */
  level: LogLevel;
  /** The line. */
  text: string;
}

/** The executor events the log shows (progress is shown in the graph instead). */
export const LOGGED_EVENTS: readonly ExecutorEventName[] = [
  "task:started",
  "task:completed",
  "task:retrying",
  "task:failed",
  "task:timeout",
  "task:lost",
  "task:review",
  "job:completed",
  "job:failed",
  "job:cancelled",
  "storage:error",
  "listener:error",
];

function message(error: unknown): string {
  return error instanceof Error ? `${error.name}: ${error.message}` : String(error);
}

/** Describe one executor event as a log line. */
export function describeEvent<K extends ExecutorEventName>(
  event: K,
  payload: ExecutorEvents[K],
  at: number,
): LogEntry {
  const p = payload as Partial<ExecutorEvents[ExecutorEventName]> & Record<string, unknown>;
  const task = (p as { task?: ExecutorEvents["task:started"]["task"] }).task;
  const job = (p as { job?: ExecutorEvents["job:completed"]["job"] }).job;
  const key = task?.key ?? "";
  const line = (level: LogLevel, text: string): LogEntry => ({ at, event, level, text });
  switch (event) {
    case "task:started":
      return line("info", `${key} started (attempt ${task?.attempts ?? "?"})`);
    case "task:completed": {
      const took = task?.startedAt != null && task.finishedAt != null ? task.finishedAt - task.startedAt : null;
      return line("success", `${key} completed in ${formatDuration(took)}`);
    }
    case "task:retrying": {
      const e = payload as ExecutorEvents["task:retrying"];
      return line("warning", `${key} failed: ${e.error.message}; retry in ${formatDuration(e.delayMs)}`);
    }
    case "task:failed": {
      const e = payload as ExecutorEvents["task:failed"];
      return line("error", `${key} failed for good: ${e.error.name}: ${e.error.message}`);
    }
    case "task:timeout": {
      const e = payload as ExecutorEvents["task:timeout"];
      return line("warning", `${key} timed out after ${formatDuration(e.timeoutMs)}`);
    }
    case "task:lost": {
      const e = payload as ExecutorEvents["task:lost"];
      return line("warning", `${key}: result not stored (${e.reason})`);
    }
    case "task:review":
      return line("info", `${key} awaits review`);
    case "job:completed":
      return line("success", `Job ${shortId(job?.id ?? "", 10)} completed: ${job?.taskCount ?? 0} tasks`);
    case "job:failed":
      return line(
        "error",
        `Job ${shortId(job?.id ?? "", 10)} failed: ${job?.failedCount ?? 0} task(s) failed for good`,
      );
    case "job:cancelled":
      return line("warning", `Job ${shortId(job?.id ?? "", 10)} cancelled`);
    case "storage:error": {
      const e = payload as ExecutorEvents["storage:error"];
      return line("error", `Storage ${e.operation} failed (attempt ${e.attempt}): ${message(e.error)}`);
    }
    case "listener:error": {
      const e = payload as ExecutorEvents["listener:error"];
      return line("error", `A listener of ${e.event} threw: ${message(e.error)}`);
    }
    default:
      return line("info", `${event}${key ? ` ${key}` : ""}`);
  }
}

/** A bounded list of log lines, newest first. */
export class EventLog {
  readonly limit: number;
  #entries: LogEntry[] = [];
  #version = 0;

  /** Keep at most `limit` lines (default 200). */
  constructor(limit = 200) {
    if (!Number.isInteger(limit) || limit <= 0) {
      throw new RangeError(`"limit" must be a positive integer, got ${limit}`);
    }
    this.limit = limit;
  }

  /** Add a line. */
  add(entry: LogEntry): void {
    this.#entries.unshift(entry);
    if (this.#entries.length > this.limit) this.#entries.length = this.limit;
    this.#version++;
  }

  /** Add a note of the page itself. */
  note(text: string, level: LogLevel = "info", at: number = Date.now()): void {
    this.add({ at, event: "demo", level, text });
  }

  /** The lines, newest first. */
  get entries(): readonly LogEntry[] {
    return this.#entries;
  }

  /** Changes on every `add` (lets a view skip re-rendering). */
  get version(): number {
    return this.#version;
  }

  /** Forget every line. */
  clear(): void {
    this.#entries = [];
    this.#version++;
  }
}

/** Render the log into `list` (an `<ol>`), replacing what it showed. */
export function renderLog(list: HTMLElement, entries: readonly LogEntry[]): void {
  const doc = list.ownerDocument;
  list.replaceChildren(
    ...entries.map((e) =>
      h(
        doc,
        "li",
        { class: `log-line level-${e.level}`, "data-event": e.event },
        h(doc, "time", { text: formatClock(e.at) }),
        h(doc, "span", { class: "log-event", text: e.event }),
        h(doc, "span", { class: "log-text", text: e.text }),
      )
    ),
  );
}
