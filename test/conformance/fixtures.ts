/** Builders of job and task records for the storage suites. */

import { newId } from "../../src/ids.ts";
import type { Job, JsonValue, Task } from "../../src/types.ts";

export interface TaskDraft {
  key: string;
  deps?: string[];
  agent?: string;
  input?: JsonValue;
  priority?: number;
  runAt?: number;
  parentKey?: string;
  review?: boolean;
  durability?: Task["durability"];
  onDependencyFailure?: Task["onDependencyFailure"];
  maxAttempts?: number;
}

export function taskRecord(jobId: string, draft: TaskDraft, ids: Map<string, string>, now = 1000): Task {
  const id = ids.get(draft.key) ?? newId();
  ids.set(draft.key, id);
  return {
    id,
    jobId,
    key: draft.key,
    agent: draft.agent ?? "noop",
    input: draft.input ?? null,
    output: null,
    error: null,
    status: "pending",
    statusReason: null,
    parentId: draft.parentKey ? ids.get(draft.parentKey)! : null,
    dependencies: (draft.deps ?? []).map((k) => {
      const d = ids.get(k);
      if (!d) throw new Error(`fixture: unknown dep ${k}`);
      return d;
    }),
    remainingDeps: 0,
    attempts: 0,
    maxAttempts: draft.maxAttempts ?? 3,
    timeoutMs: null,
    durability: draft.durability ?? "at-least-once",
    onDependencyFailure: draft.onDependencyFailure ?? "cancel",
    priority: draft.priority ?? 0,
    runAt: draft.runAt ?? 0,
    review: draft.review ?? false,
    reviewFeedback: null,
    leaseOwner: null,
    leaseExpiresAt: null,
    version: 1,
    createdAt: now,
    updatedAt: now,
    startedAt: null,
    finishedAt: null,
    description: null,
    taskType: null,
    summary: null,
    acceptanceCriteria: null,
  };
}

export interface BuiltJob {
  job: Job;
  tasks: Task[];
  /** Task id by key. */
  id: (key: string) => string;
}

/** Build a job; drafts are listed so that dependencies come before dependents. */
export function buildJob(drafts: TaskDraft[], name = "job"): BuiltJob {
  const job: Job = {
    id: newId(),
    name,
    status: "running",
    metadata: null,
    taskCount: 0,
    openCount: 0,
    failedCount: 0,
    version: 1,
    createdAt: 1000,
    updatedAt: 1000,
    finishedAt: null,
  };
  const ids = new Map<string, string>();
  for (const d of drafts) ids.set(d.key, newId());
  const tasks = drafts.map((d) => taskRecord(job.id, d, ids));
  return {
    job,
    tasks,
    id: (key) => {
      const v = ids.get(key);
      if (!v) throw new Error(`fixture: unknown key ${key}`);
      return v;
    },
  };
}

/** A fresh child record to insert into an existing job. */
export function childRecord(built: BuiltJob, draft: TaskDraft): Task {
  const ids = new Map<string, string>();
  for (const t of built.tasks) ids.set(t.key, t.id);
  return taskRecord(built.job.id, draft, ids);
}
