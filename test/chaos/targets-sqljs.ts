/**
 * The sql.js target of the reliability suites. The database handle is caught by handing
 * the adapter a sql.js module whose `Database` class records each instance: tests then
 * `UPDATE` rows behind the adapter's back, as a damaged or edited file would.
 */

import { openSqlJsStorage, type SqlJsDatabase, type SqlJsModule, type SqlValue } from "../../adapters/sqljs.ts";
import { JOB_COLUMNS, TASK_COLUMNS } from "../../adapters/sqljs/schema.ts";
import { testSqlJs } from "../targets-sqljs.ts";
import type { Tamper } from "./kit.ts";
import type { ReliabilityTarget } from "./targets.ts";

const snake = (field: string): string => field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
const JSON_FIELDS = new Set(["input", "output", "error", "dependencies", "metadata"]);

function sqlValue(field: string, value: unknown): SqlValue {
  if (JSON_FIELDS.has(field)) return JSON.stringify(value);
  if (typeof value === "boolean") return value ? 1 : 0;
  return value as SqlValue;
}

function update(
  db: SqlJsDatabase,
  table: string,
  columns: readonly string[],
  id: string,
  fields: Record<string, unknown>,
) {
  for (const [field, value] of Object.entries(fields)) {
    const column = snake(field);
    if (!columns.includes(column)) throw new Error(`no column ${column} in ${table}`);
    db.exec(`UPDATE ${table} SET ${column} = ? WHERE id = ?`, [sqlValue(field, value), id]);
  }
}

/** A module whose databases are remembered in `opened`. */
async function spyModule(): Promise<{ sql: SqlJsModule; opened: SqlJsDatabase[] }> {
  const base = await testSqlJs();
  const opened: SqlJsDatabase[] = [];
  const Base = base.Database;
  class Database extends Base {
    constructor(data?: Uint8Array | null) {
      super(data);
      opened.push(this);
    }
  }
  return { sql: { Database }, opened };
}

/** sql.js in memory (no persister), with raw access to its database. */
export const sqljsReliabilityTarget: ReliabilityTarget = {
  name: "sqljs",
  durable: false,
  tamper: true,
  async open() {
    const { sql, opened } = await spyModule();
    const storage = await openSqlJsStorage({ sql });
    const db = (): SqlJsDatabase => {
      const d = opened.at(-1);
      if (!d) throw new Error("no sql.js database was opened");
      return d;
    };
    const tamper: Tamper = {
      task: (id, fields) => Promise.resolve(update(db(), "tasks", TASK_COLUMNS, id, fields)),
      job: (id, fields) => Promise.resolve(update(db(), "jobs", JOB_COLUMNS, id, fields)),
      taskText: (id, field, text) => {
        db().exec(`UPDATE tasks SET ${snake(field)} = ? WHERE id = ?`, [text, id]);
        return Promise.resolve();
      },
    };
    return { storage, tamper, teardown: () => storage.close() };
  },
};
