/**
 * The page side of `test/e2e/hidden-tab.e2e.mjs`: an executor on a shared IndexedDB
 * database, driven from Node through `globalThis.hidden`, and a probe that shows whether
 * Chromium throttles this page's chained timers.
 *
 * The agent `hold` waits `input.ms` milliseconds on a timer unless its signal aborts. Each
 * execution, abort and end is noted in `hidden.reports()` with the page's visibility.
 */

import { openIndexedDbStorage } from "../../adapters/indexeddb.ts";
import type { Agent } from "../../src/agent.ts";
import { Executor, type ExecutorStats } from "../../src/executor.ts";
import { AgentRegistry } from "../../src/registry.ts";
import type { Storage } from "../../src/storage.ts";
import type { Durability, JsonValue } from "../../src/types.ts";

/** How the page runs. */
export interface HiddenConfig {
  db: string;
  tab: string;
  /** Register the agent `hold` (a tab without it claims nothing, but recovers expired leases). */
  hold: boolean;
  leaseMs: number;
  heartbeatMs: number;
  recoveryIntervalMs: number;
  pollIntervalMs: number;
}

/** An execution's start, abort or end, or a lease this tab's executor lost. */
export interface HiddenReport {
  event: "start" | "abort" | "end" | "lost";
  key: string;
  attempt: number;
  at: number;
  visibility: string;
}

/** A task as Node sees it. */
export interface HiddenTaskView {
  key: string;
  status: string;
  attempts: number;
  output: JsonValue;
}

let storage: Storage | null = null;
let executor: Executor | null = null;
const reports: HiddenReport[] = [];

// A timer chained to itself, the pattern Chromium throttles hardest in a page hidden long
// enough: its wake-ups show whether that throttling is in force (a gap of a minute).
const probe: number[] = [];
(function tick() {
  probe.push(Date.now());
  setTimeout(tick, 1000);
})();

function note(event: HiddenReport["event"], key: string, attempt: number): void {
  reports.push({ event, key, attempt, at: Date.now(), visibility: document.visibilityState });
}

function need<T>(value: T | null, what: string): T {
  if (value === null) throw new Error(`${what} is not open: call hidden.open() first`);
  return value;
}

const hold: Agent<JsonValue, JsonValue> = {
  name: "hold",
  description: "Waits input.ms milliseconds unless its signal aborts",
  async execute(input: JsonValue, ctx): Promise<JsonValue> {
    const { key, attempt } = ctx.task;
    note("start", key, attempt);
    const ms = (input as { ms: number }).ms;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, ms);
      ctx.signal.addEventListener("abort", () => {
        clearTimeout(timer);
        note("abort", key, attempt);
        reject(ctx.signal.reason);
      }, { once: true });
    });
    note("end", key, attempt);
    return document.visibilityState;
  },
};

const hidden = {
  async open(c: HiddenConfig): Promise<void> {
    storage = await openIndexedDbStorage({ name: c.db });
    const registry = new AgentRegistry();
    if (c.hold) registry.register(hold);
    executor = new Executor({
      storage,
      registry,
      claimAgents: "registered",
      leaseMs: c.leaseMs,
      heartbeatMs: c.heartbeatMs,
      recoveryIntervalMs: c.recoveryIntervalMs,
      pollIntervalMs: c.pollIntervalMs,
    });
    executor.on("task:lost", ({ task }) => note("lost", task.key, task.attempts));
    executor.start();
  },

  /** Submit one task of `hold` waiting `ms`; resolves with the job id. */
  async submit(key: string, ms: number, durability: Durability): Promise<string> {
    return (await need(executor, "executor").submit({
      name: "hidden-tab",
      tasks: [{ key, agent: "hold", input: { ms }, durability }],
    })).id;
  },

  /** The job's status and tasks once it has ended, or after `ms` (a blocked task never ends it). */
  async wait(id: string, ms: number): Promise<{ status: string; tasks: HiddenTaskView[] }> {
    const s = need(storage, "storage");
    const handle = await need(executor, "executor").job(id);
    await handle.wait({ signal: AbortSignal.timeout(ms) }).catch(() => {}); // the view tells what happened
    const job = await s.getJob(id);
    const tasks = await s.listTasks({ jobId: id });
    return {
      status: job?.status ?? "missing",
      tasks: tasks.map((t) => ({ key: t.key, status: t.status, attempts: t.attempts, output: t.output })),
    };
  },

  /** The probe's wake-ups (epoch ms). */
  probe(): number[] {
    return probe;
  },

  reports(): HiddenReport[] {
    return reports;
  },

  stats(): ExecutorStats {
    return need(executor, "executor").stats();
  },

  async close(): Promise<void> {
    await executor?.shutdown({ graceMs: 0 });
    await storage?.close();
    executor = null;
    storage = null;
  },
};

(globalThis as { hidden?: typeof hidden }).hidden = hidden;
