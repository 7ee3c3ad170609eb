/**
 * PostgreSQL storage: many executors, in many processes on many machines, share one
 * database. Ready tasks are claimed by one `UPDATE` with `FOR UPDATE SKIP LOCKED`, so two
 * executors never get the same task and never wait for each other; each commit (a
 * completion, the dependents it makes ready, spawned children, the job's status) is one
 * transaction; `LISTEN`/`NOTIFY` wakes idle executors when work appears, and their poll
 * interval is the floor when a notification is missed.
 *
 * Bring your own driver: postgres.js (`postgres`, in Node, Deno and Bun) through
 * {@link fromPostgresJs}, PGlite (`@electric-sql/pglite`, PostgreSQL in WASM, also in a
 * browser) through {@link fromPGlite}, or anything that implements {@link SqlClient}.
 * task-core imports no driver. See docs/postgres.md for running several executors and
 * the guarantees across machines.
 *
 * @example
 * ```ts ignore
 * import postgres from "postgres";
 * import { Executor } from "@dagger/task-core";
 * import { fromPostgresJs, openPostgresStorage } from "@dagger/task-core/adapters/postgres";
 *
 * const sql = postgres(process.env.DATABASE_URL!);
 * const storage = await openPostgresStorage({ client: fromPostgresJs(sql) });
 * const executor = new Executor({ storage, registry, id: `worker-${process.pid}` });
 * await executor.run(signal);
 * await storage.close();
 * await sql.end();
 * ```
 *
 * @module
 */

import { checkOptionNames } from "../src/options.ts";
import { checkVersion, isSchemaName, migrate } from "./postgres/schema.ts";
import { PgStorage, type PostgresStorage } from "./postgres/storage.ts";
import { markDriverError, toStorageError } from "./postgres/errors.ts";
import type { SqlClient } from "./postgres/client.ts";

export type { SqlClient, SqlParam, SqlQueryable, SqlRow } from "./postgres/client.ts";
export {
  fromPGlite,
  fromPostgresJs,
  type PGliteDatabase,
  type PGliteQueryable,
  type PGliteResults,
  type PostgresJsClientOptions,
  type PostgresJsPendingQuery,
  type PostgresJsQueryable,
  type PostgresJsSql,
} from "./postgres/clients.ts";
export type { PostgresStorage } from "./postgres/storage.ts";
export { SCHEMA_VERSION } from "./postgres/schema.ts";

/** Options of {@link openPostgresStorage}. */
export interface PostgresStorageOptions {
  /** The SQL client (see {@link fromPostgresJs}, {@link fromPGlite}), or a function that makes one (called once). */
  client: SqlClient | (() => Promise<SqlClient>);
  /**
   * The schema holding task-core's tables (default `"task_core"`): a lower-case
   * identifier of at most 48 characters. Executors that share work use the same schema;
   * separate applications (or test cases) use separate ones.
   */
  schema?: string;
  /**
   * Run the numbered migrations at open (default `true`): in one transaction under an
   * advisory lock, so processes starting together migrate once. With `false`, the schema
   * must be current already: the open reads its version (waiting for a migration under
   * way) and refuses a missing or older schema with `StorageSetupError`, a newer one with
   * `StorageVersionError`; the role needs `SELECT` on `<schema>.migrations`.
   */
  migrate?: boolean;
  /** Wake this process's executors when another process makes tasks ready, through `LISTEN` (default `true`). */
  listen?: boolean;
  /** The `LISTEN`/`NOTIFY` channel (default `<schema>_ready`). */
  channel?: string;
  /** Close the client when the storage is closed (default `false`: the caller owns it). */
  closeClient?: boolean;
  /** Clock used when a caller passes no `now` (default `Date.now`). */
  now?: () => number;
}

/**
 * Open a storage on PostgreSQL, creating or migrating its schema first.
 *
 * Throws `TypeError` for bad options, `StorageVersionError` when a newer task-core
 * migrated the schema, `StorageSetupError` when the database refuses the storage for a
 * reason that waiting does not change (a missing privilege, a wrong password, with
 * `migrate: false` a missing or older schema), and `StorageError` when the database
 * cannot be reached.
 *
 * @example
 * ```ts ignore
 * import { PGlite } from "@electric-sql/pglite";
 * import { fromPGlite, openPostgresStorage } from "@dagger/task-core/adapters/postgres";
 * const storage = await openPostgresStorage({ client: fromPGlite(new PGlite()), schema: "jobs" });
 * console.log(await storage.listJobs({ status: "running" }));
 * ```
 */
export async function openPostgresStorage(options: PostgresStorageOptions): Promise<PostgresStorage> {
  if (typeof options !== "object" || options === null) {
    throw new TypeError(`openPostgresStorage() expects an options object, got ${typeof options}`);
  }
  checkOptionNames(
    "PostgreSQL option",
    options,
    ["client", "schema", "migrate", "listen", "channel", "closeClient", "now"],
    {
      url: `"client" (a client, or a function that opens one)`,
      connectionString: `"client" (a client, or a function that opens one)`,
      sql: `"client"`,
    },
  );
  const schema = options.schema ?? "task_core";
  if (!isSchemaName(schema)) {
    throw new TypeError(
      `PostgreSQL option "schema" must be a lower-case identifier of at most 48 characters, got ${
        typeof schema === "string" ? `"${schema}"` : typeof schema
      }`,
    );
  }
  const channel = options.channel ?? `${schema}_ready`;
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(channel)) {
    throw new TypeError(`PostgreSQL option "channel" must be a lower-case identifier, got "${channel}"`);
  }
  let client: SqlClient;
  if (typeof options.client === "function") {
    try {
      client = await options.client();
    } catch (e) {
      throw toStorageError(markDriverError(e), schema, "connecting", true);
    }
  } else client = options.client;
  if (typeof client?.query !== "function" || typeof client.transaction !== "function") {
    throw new TypeError(
      `PostgreSQL option "client" must have query() and transaction() (see fromPostgresJs, fromPGlite), got ${typeof client}`,
    );
  }
  let migratedFrom: number | null = null;
  const migrating = options.migrate !== false;
  try {
    if (migrating) migratedFrom = await migrate((fn) => client.transaction(fn), schema);
    else await checkVersion((fn) => client.transaction(fn), schema);
  } catch (e) {
    if (options.closeClient) await client.end?.().catch(() => {});
    throw toStorageError(
      markDriverError(e),
      schema,
      migrating ? "migrating the schema" : "checking the schema",
      true,
    );
  }
  return new PgStorage(client, {
    schema,
    channel,
    listen: options.listen !== false,
    closeClient: options.closeClient === true,
    now: options.now ?? Date.now,
  }, migratedFrom);
}
