/**
 * Shared tools of the reliability suites (chaos, hostile input, robustness, stress): the
 * context every case gets, an executor on the real clock with fast settings that records
 * what it reports, seeded random DAGs, and waiting helpers that survive injected faults.
 */

import type { Agent } from "../../src/agent.ts";
import { Executor, type ExecutorOptions } from "../../src/executor.ts";
import type { JobHandle } from "../../src/job-handle.ts";
import type { Storage } from "../../src/storage.ts";
import type { Job, JsonValue, Task, TaskSpec } from "../../src/types.ts";
import { registryOf } from "../conformance/executor-kit.ts";
import { InjectedFaultError } from "./faulty-storage.ts";

/** What every reliability case receives. */
export interface ReliabilityContext {
  /** A fresh, empty storage of the target. */
  storage: Storage;
  /** The target's name (for messages). */
  target: string;
  /** Whether the storage is durable. */
  durable: boolean;
  /** Write raw values into stored records, bypassing every check (durable targets only). */
  tamper?: Tamper;
}

/** Raw write access to a target's backend, for tests of corrupted records. */
export interface Tamper {
  /** Overwrite fields of a stored task with raw values (field names as in `Task`). */
  task(id: string, fields: Record<string, unknown>): Promise<void>;
  /** Overwrite fields of a stored job with raw values (field names as in `Job`). */
  job(id: string, fields: Record<string, unknown>): Promise<void>;
  /** Put text that is not JSON into a JSON field of a task (`input`, `output` ...). */
  taskText(id: string, field: string, text: string): Promise<void>;
}

/** What an executor reported during a case. */
export interface Report {
  storageErrors: { operation: string; error: unknown; attempt: number }[];
  /** Job end events by job id. */
  jobEnds: Map<string, string[]>;
  lost: { task: Task; reason: string }[];
  completed: Map<string, number>;
  retrying: Map<string, number>;
  failed: Map<string, number>;
}

function bump(map: Map<string, number>, key: string): void {
  map.set(key, (map.get(key) ?? 0) + 1);
}

/** Fast settings on the real clock: short polls and retries, leases long enough never to expire by accident. */
export const FAST: Partial<ExecutorOptions> = Object.freeze({
  maxWorkers: 4,
  leaseMs: 5000,
  pollIntervalMs: 25,
  retry: { delayMs: 2, factor: 2, maxDelayMs: 20 },
  shutdownGraceMs: 200,
});

/** An executor on the real clock with {@link FAST} settings (overridden by `options`) and a {@link Report}. */
export function reportingExecutor(
  storage: Storage,
  agents: Agent<JsonValue, JsonValue>[],
  options: Partial<ExecutorOptions> = {},
): { executor: Executor; report: Report } {
  const executor = new Executor({ storage, registry: registryOf(...agents), ...FAST, ...options });
  const report: Report = {
    storageErrors: [],
    jobEnds: new Map(),
    lost: [],
    completed: new Map(),
    retrying: new Map(),
    failed: new Map(),
  };
  executor.on("storage:error", (e) => report.storageErrors.push(e));
  executor.on("task:lost", (e) => report.lost.push(e));
  executor.on("task:completed", ({ task }) => bump(report.completed, task.id));
  executor.on("task:retrying", ({ task }) => bump(report.retrying, task.id));
  executor.on("task:failed", ({ task }) => bump(report.failed, task.id));
  for (const event of ["job:completed", "job:failed", "job:cancelled"] as const) {
    executor.on(event, ({ job }: { job: Job }) => {
      const list = report.jobEnds.get(job.id) ?? [];
      list.push(event);
      report.jobEnds.set(job.id, list);
    });
  }
  return { executor, report };
}

/** Reject after `ms` with a message naming `what` (Deno has no test timeout of its own). */
export async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Run `fn` again while it fails with an injected fault (a caller's own retry of a user-facing call). */
export async function retrying<T>(fn: () => Promise<T>): Promise<T> {
  for (let i = 0;; i++) {
    try {
      return await fn();
    } catch (e) {
      if (!(e instanceof InjectedFaultError) || i > 200) throw e;
      await new Promise((r) => setTimeout(r, 1));
    }
  }
}

/** Wait for a job to end: its outputs, or the `JobFailedError` as a value. */
export function settled(job: JobHandle, ms = 20_000): Promise<Record<string, JsonValue> | Error> {
  return within(
    ms,
    `job ${job.id}`,
    retrying(() => job.wait()).catch((e: unknown) => {
      if (e instanceof Error) return e;
      throw e;
    }),
  );
}

/** Sleep on the real clock. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A random DAG node: its dependencies (indexes of earlier nodes) and whether it fails for good. */
export interface DagNode {
  deps: number[];
  fails: boolean;
}

/** A random DAG of `n` nodes: each depends on up to `maxDeps` earlier nodes; `failRate` of them fail. */
export function randomDag(random: () => number, n: number, failRate: number, maxDeps = 3): DagNode[] {
  const nodes: DagNode[] = [];
  for (let i = 0; i < n; i++) {
    const deps = new Set<number>();
    if (i > 0) {
      const count = Math.floor(random() * (maxDeps + 1));
      for (let d = 0; d < count; d++) deps.add(Math.floor(random() * i));
    }
    nodes.push({ deps: [...deps], fails: random() < failRate });
  }
  return nodes;
}

/** Task specs of a DAG: key `t<i>`, agent `agent`, input `{ i, fails }`. */
export function dagSpecs(nodes: readonly DagNode[], agent: string, extra: Partial<TaskSpec> = {}): TaskSpec[] {
  return nodes.map((n, i) => ({
    key: `t${i}`,
    agent,
    input: { i, fails: n.fails },
    dependsOn: n.deps.map((d) => `t${d}`),
    ...extra,
  }));
}

/** Indexes of the nodes that can never run: descendants of failing nodes. */
export function doomed(nodes: readonly DagNode[]): Set<number> {
  const out = new Set<number>();
  nodes.forEach((n, i) => {
    if (n.deps.some((d) => out.has(d) || nodes[d]!.fails)) out.add(i);
  });
  return out;
}
