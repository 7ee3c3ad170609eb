/**
 * Storage targets for the PostgreSQL adapter: a real server through postgres.js (its URL
 * in `TASK_CORE_PG_URL`; `scripts/pg-test-server.sh` starts a throwaway one) and PGlite
 * in memory. Every open gets a schema of its own, dropped again by `teardown`; the
 * clients are shared by the cases of one file and closed by `closePostgresTargets()`.
 */

import process from "node:process";
import { fromPGlite, fromPostgresJs, openPostgresStorage, type SqlClient } from "../adapters/postgres.ts";
import type { PostgresStorage, PostgresStorageOptions } from "../adapters/postgres.ts";
import type { Target } from "./targets.ts";

/**
 * The URL of the test server, or why there is none. Outside CI an unset
 * `TASK_CORE_PG_URL` skips the real-server target; in CI (`CI=true`) it is an error.
 */
export function testServerUrl(): { url: string; skip?: undefined } | { url?: undefined; skip: string } {
  const url = process.env.TASK_CORE_PG_URL;
  if (url) return { url };
  if (process.env.CI === "true") {
    throw new Error(
      "TASK_CORE_PG_URL is not set, and CI needs the PostgreSQL tests: run them through " +
        "scripts/pg-test-server.sh (as .ci/run does)",
    );
  }
  return {
    skip: "TASK_CORE_PG_URL is unset; `npm run test:pg` starts a throwaway server and runs the PostgreSQL tests",
  };
}

let counter = 0;

/** A schema name no other test uses. */
export function uniqueSchema(prefix = "t"): string {
  counter++;
  return `${prefix}_${Date.now().toString(36)}_${counter}_${Math.random().toString(36).slice(2, 8)}`;
}

/** A client plus the way to make and drop schemas on it. */
export interface TestDatabase {
  /** Shown in test names. */
  label: string;
  /** The server's URL (a real server only). */
  url?: string;
  /** The client the storages run on. */
  client(): Promise<SqlClient>;
  /** A client on other connections of the same database (for a second "process"), where there is one. */
  otherClient?(): Promise<SqlClient>;
  /** Drop a schema and everything in it. */
  drop(schema: string): Promise<void>;
  /** Close every client made. */
  close(): Promise<void>;
}

// deno-lint-ignore no-explicit-any
type PostgresFactory = (url: string, options?: Record<string, unknown>) => any;

async function loadPostgres(): Promise<PostgresFactory> {
  const mod = await import("postgres");
  return (mod.default ?? mod) as unknown as PostgresFactory;
}

/** The real server through postgres.js: one pool per `client()` kind, shared by every case. */
export function postgresJsDatabase(url: string, options: Record<string, unknown> = {}): TestDatabase {
  // deno-lint-ignore no-explicit-any
  const pools: any[] = [];
  const make = async (name: string): Promise<SqlClient> => {
    const postgres = await loadPostgres();
    const sql = postgres(url, {
      max: 8,
      // postgres.js fetches array types after connecting and leaves that query's failure
      // unhandled when the connection drops meanwhile; the adapter needs no array types.
      fetch_types: false,
      onnotice: () => {},
      connection: { application_name: name },
      ...options,
    });
    pools.push(sql);
    return fromPostgresJs(sql);
  };
  let main: Promise<SqlClient> | undefined;
  let other: Promise<SqlClient> | undefined;
  return {
    label: "postgres",
    url,
    client: () => (main ??= make("task-core-test")),
    otherClient: () => (other ??= make("task-core-test-other")),
    async drop(schema) {
      const c = await (main ??= make("task-core-test"));
      await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    },
    async close() {
      await Promise.all(pools.map((p) => p.end({ timeout: 5 })));
      pools.length = 0;
      main = other = undefined;
    },
  };
}

/** PGlite in memory, one instance shared by every case. */
export function pgliteDatabase(): TestDatabase {
  // deno-lint-ignore no-explicit-any
  let db: Promise<any> | undefined;
  const open = () => db ??= import("@electric-sql/pglite").then(({ PGlite }) => PGlite.create());
  return {
    label: "pglite",
    client: async () => fromPGlite(await open()),
    async drop(schema) {
      const d = await open();
      await d.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
    },
    async close() {
      if (db) await (await db).close();
      db = undefined;
    },
  };
}

/** Open a storage on a fresh schema of `database`. */
export async function openFresh(
  database: TestDatabase,
  options: Omit<PostgresStorageOptions, "client" | "schema"> = {},
): Promise<{ storage: PostgresStorage; schema: string; cleanup: () => Promise<void> }> {
  const schema = uniqueSchema();
  const storage = await openPostgresStorage({ client: await database.client(), schema, ...options });
  return {
    storage,
    schema,
    cleanup: async () => {
      await storage.close();
      await database.drop(schema);
    },
  };
}

/** A target on `database`: a fresh schema per case; `reopen` opens the same schema again. */
export function postgresTarget(database: TestDatabase): Target {
  return {
    name: database.label,
    durable: true,
    async open() {
      const { storage, schema, cleanup } = await openFresh(database);
      return {
        storage,
        reopen: async () => openPostgresStorage({ client: await database.client(), schema }),
        teardown: cleanup,
      };
    },
  };
}
