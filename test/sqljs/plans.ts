/**
 * The query plans of the sql.js adapter: which index each query walks, read with
 * `EXPLAIN QUERY PLAN` on a database of the current schema (no timing: the plan is what
 * decides how much a query reads).
 */

import { PRUNE_SQL, taskListQuery } from "../../adapters/sqljs/db.ts";
import type { SqlJsDatabase, SqlValue } from "../../adapters/sqljs/module.ts";
import { migrate } from "../../adapters/sqljs/schema.ts";
import type { TaskQuery } from "../../src/storage.ts";
import { ok } from "../conformance/assert.ts";
import { type Case, register, type Registrar } from "../conformance/harness.ts";
import { testSqlJs } from "../targets-sqljs.ts";

interface PlanCtx {
  /** An empty database of the current schema. */
  db: SqlJsDatabase;
}

/** The plan of `sql`, one step per line joined with " | ". */
export function planOf(db: SqlJsDatabase, sql: string, params: SqlValue[]): string {
  return (db.exec(`EXPLAIN QUERY PLAN ${sql}`, params)[0]?.values ?? []).map((r) => String(r[3])).join(" | ");
}

export const planCases: Case<PlanCtx>[] = [
  {
    name:
      "listTasks() walks the index of its most selective filter, in id order, never every task of a status or agent",
    run({ db }) {
      const cases: [TaskQuery, string][] = [
        [{ jobId: "j", status: "ready" }, "tasks_job (job_id=?)"],
        [{ jobId: "j", agent: "a" }, "tasks_job (job_id=?)"],
        [{ jobId: "j", agent: "a", status: "completed", after: "t", limit: 10 }, "tasks_job (job_id=? AND id>?)"],
        [{ parentId: "p", status: "ready" }, "tasks_parent (parent_id=?)"],
        [{ jobId: "j", parentId: "p" }, "tasks_parent (parent_id=?)"],
        // Tasks of work in flight are few; an ended status holds nearly every task.
        [{ agent: "a", status: "running" }, "tasks_status (status=?)"],
        [{ agent: "a", status: "completed" }, "tasks_agent (agent=?)"],
        [{ status: "failed", after: "t" }, "tasks_status (status=? AND id>?)"],
        [{ agent: "a" }, "tasks_agent (agent=?)"],
      ];
      for (const [query, index] of cases) {
        const { sql, params } = taskListQuery(query);
        const plan = planOf(db, sql, params);
        ok(plan === `SEARCH tasks USING INDEX ${index}`, `${JSON.stringify(query)} is planned as "${plan}"`);
      }
    },
  },
  {
    name: "prune() finds its jobs on the index of ended jobs by end time, without reading or sorting them all",
    run({ db }) {
      const before = planOf(db, PRUNE_SQL.endedBefore, [1000]);
      ok(before === "SEARCH jobs USING COVERING INDEX jobs_ended (<expr><?)", `ended before: "${before}"`);
      // Newest first is the index read backwards: no sort, and it stops at the jobs it keeps.
      const beyond = planOf(db, PRUNE_SQL.endedBeyond, [10]);
      ok(beyond === "SCAN jobs USING COVERING INDEX jobs_ended", `after the newest: "${beyond}"`);
    },
  },
];

/** Register the plan cases (one database of the current schema per case). */
export function registerPlanSuites(registrar: Registrar): void {
  register(registrar, "sqljs[plans]", planCases, async () => {
    const db = new (await testSqlJs()).Database();
    migrate(db, 0);
    return { ctx: { db }, teardown: () => db.close() };
  });
}
