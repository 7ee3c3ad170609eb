/**
 * The workload of the multi-executor stress runs, shared by the in-process stress
 * (`stress.ts`: memory, sql.js) and the Chromium pages stress on IndexedDB
 * (`test/e2e/indexeddb-tabs.e2e.mjs`): seeded DAG jobs whose tasks carry their plan in
 * their input, and what each plan must end as.
 */

import type { Durability, JobSpec, JsonValue, TaskSpec } from "../../src/types.ts";
import { prng } from "./faulty-storage.ts";

/** What one task's agent does, decided up front. */
export type Plan = "ok" | "flaky" | "fatal" | "timeout";

/** A task's plan and durability (its input). */
export interface Behaviour {
  plan: Plan;
  durability: Durability;
}

/** 3% fatal, 3% timeout, 10% flaky, the rest ok; 20% at-most-once, never flaky. */
export function plan(random: () => number): Behaviour {
  const r = random();
  const p: Plan = r < 0.03 ? "fatal" : r < 0.06 ? "timeout" : r < 0.16 ? "flaky" : "ok";
  const durability: Durability = random() < 0.2 ? "at-most-once" : "at-least-once";
  // An at-most-once task that throws a retryable error asks for a retry itself: keep
  // those out, so "never runs twice" is about interruptions, which is what it promises.
  return { plan: durability === "at-most-once" && p === "flaky" ? "ok" : p, durability };
}

/** The expected runs and final status of a task whose dependencies all completed. */
export function expected(b: Behaviour): { runs: number; status: "completed" | "failed" } {
  switch (b.plan) {
    case "ok":
      return { runs: 1, status: "completed" };
    case "flaky":
      return { runs: 2, status: "completed" };
    case "fatal":
      return { runs: 1, status: "failed" };
    case "timeout":
      // A timed-out at-most-once attempt may have had effects: it is never run again.
      return b.durability === "at-most-once" ? { runs: 1, status: "failed" } : { runs: 2, status: "completed" };
  }
}

/** Options of {@link stressJobs}. */
export interface StressJobsOptions {
  /** Tasks in all. */
  tasks: number;
  /** Tasks per job (default 50). */
  perJob?: number | undefined;
  /** PRNG seed (default 7). */
  seed?: number | undefined;
  /** The agent every task runs. */
  agent: string;
  /** Timeout of the tasks planned to time out. */
  timeoutMs: number;
  /** Timeout of the other tasks (default `timeoutMs`). */
  otherTimeoutMs?: number;
}

/**
 * Job specs of `tasks` tasks in jobs of `perJob`, each task depending on up to two random
 * earlier ones of its job; every task may run 3 times. The same seed gives the same jobs.
 */
export function stressJobs(options: StressJobsOptions): JobSpec[] {
  const { tasks, perJob = 50, seed = 7, agent, timeoutMs, otherTimeoutMs = timeoutMs } = options;
  const random = prng(seed);
  const jobs: JobSpec[] = [];
  for (let made = 0, j = 0; made < tasks; j++) {
    const n = Math.min(perJob, tasks - made);
    const specs: TaskSpec[] = [];
    for (let i = 0; i < n; i++) {
      const b = plan(random);
      const deps = new Set<string>();
      if (i > 0 && random() < 0.7) deps.add(`t${Math.floor(random() * i)}`);
      if (i > 1 && random() < 0.3) deps.add(`t${Math.floor(random() * i)}`);
      specs.push({
        key: `t${i}`,
        agent,
        input: b as unknown as JsonValue,
        durability: b.durability,
        timeoutMs: b.plan === "timeout" ? timeoutMs : otherTimeoutMs,
        maxAttempts: 3,
        dependsOn: [...deps],
      });
    }
    jobs.push({ name: `stress-${j}`, tasks: specs });
    made += n;
  }
  return jobs;
}
