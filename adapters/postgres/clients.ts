/**
 * Adapters from two PostgreSQL drivers to the adapter's {@link SqlClient}: postgres.js
 * (`postgres`, for Node, Deno and Bun) and PGlite (`@electric-sql/pglite`, PostgreSQL in
 * WASM, also in the browser). Both are typed structurally: task-core imports neither
 * package, the caller passes the instance it made.
 *
 * @module
 */

import type { SqlClient, SqlParam, SqlQueryable, SqlRow } from "./client.ts";

/** A pending postgres.js query: `.values()` resolves with the rows as arrays. */
export interface PostgresJsPendingQuery {
  /** Rows as arrays of column values. */
  values(): PromiseLike<ArrayLike<unknown>>;
}

/** The part of a postgres.js `Sql` or `TransactionSql` the adapter uses. */
export interface PostgresJsQueryable {
  /** Run a statement with parameters. */
  unsafe(query: string, parameters?: (string | null)[], options?: { prepare?: boolean }): PostgresJsPendingQuery;
}

/** The part of a postgres.js `Sql` instance (`postgres(url, options)`) the adapter uses. */
export interface PostgresJsSql extends PostgresJsQueryable {
  /** Run a callback in a transaction on one connection. */
  begin(cb: (sql: PostgresJsQueryable) => Promise<unknown>): Promise<unknown>;
  /** Listen on a channel (on a connection of its own, re-established after a loss). */
  listen(
    channel: string,
    onnotify: (value: string) => void,
    onlisten?: () => void,
  ): Promise<{ unlisten(): Promise<void> }>;
  /** Close every connection. */
  end(options?: { timeout?: number }): Promise<void>;
}

/** Options of {@link fromPostgresJs}. */
export interface PostgresJsClientOptions {
  /**
   * Use named prepared statements (default `true`: one round trip per statement instead of
   * two). Set `false` behind a connection pooler in transaction mode that does not support
   * them (the postgres.js `prepare: false` option turns them off as well).
   */
  prepare?: boolean;
}

function textParams(params: readonly SqlParam[] | undefined): (string | null)[] {
  return params ? params.map((p) => (p === null ? null : String(p))) : [];
}

/**
 * The rows of a postgres.js result. postgres.js 3.4 does not reset its row counter when a
 * statement fails after it sent rows (an error on a row, a statement timeout, a connection
 * terminated while rows streamed): the next statement on that connection answers with as
 * many empty slots before its own rows, so a read of one record found "nothing" at index
 * 0. The empty slots are dropped; a result whose rows still disagree with the count the
 * server reported is refused (an error that may pass) rather than taken as the answer.
 */
function rowsOf(result: ArrayLike<unknown>): SqlRow[] {
  const rows: SqlRow[] = [];
  for (let i = 0; i < result.length; i++) if (i in result) rows.push((result as ArrayLike<SqlRow>)[i]!);
  if (rows.length !== result.length) {
    const count = (result as { count?: unknown }).count;
    if (typeof count === "number" && count !== rows.length) {
      throw new Error(
        `postgres.js answered ${rows.length} rows in ${result.length} slots for a statement that returned ${count}`,
      );
    }
  }
  return rows;
}

const LOST_CONNECTION = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_DESTROYED",
  "CONNECTION_ENDED",
  "CONNECT_TIMEOUT",
  "ECONNRESET",
  "ECONNREFUSED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ERR_STREAM_DESTROYED",
  "ERR_STREAM_WRITE_AFTER_END",
]);

/** Whether a postgres.js error means the connection is gone (lost, or ended by the server with `FATAL`). */
function connectionLost(e: unknown): boolean {
  const err = e as { code?: unknown; severity?: unknown } | null;
  if (typeof err?.code === "string" && LOST_CONNECTION.has(err.code)) return true;
  return err?.severity === "FATAL" || err?.severity === "PANIC";
}

/**
 * A {@link SqlClient} on a postgres.js instance. `storage.close()` leaves the instance
 * open unless the storage was opened with `closeClient: true`.
 *
 * Create the instance with `fetch_types: false`: the adapter needs no array types, and
 * postgres.js 3.4 leaves the failure of that per-connection query unhandled (an
 * unhandled rejection) when the connection drops during it.
 *
 * When a transaction's connection is lost, its statements are abandoned at once
 * (PostgreSQL rolls the transaction back when the session ends) and nothing more is sent
 * on that connection: postgres.js 3.4 crashes the process with an error thrown from a
 * timer when a query is written to a connection whose socket closed, which its
 * `sql.begin()` does with the `ROLLBACK` it sends after a failed callback.
 *
 * Known limits of postgres.js 3.4.9 the adapter cannot work around (see RELIABILITY.md):
 * after a connection is terminated mid-statement, a call on it hangs while the server
 * refuses logins; a pool ended during an outage may reconnect its LISTEN connection after
 * `end()` resolved.
 *
 * @example
 * ```ts ignore
 * import postgres from "postgres";
 * import { fromPostgresJs, openPostgresStorage } from "@dagger/task-core/adapters/postgres";
 * const sql = postgres(process.env.DATABASE_URL!, { max: 10, fetch_types: false });
 * const storage = await openPostgresStorage({ client: fromPostgresJs(sql) });
 * ```
 */
export function fromPostgresJs(sql: PostgresJsSql, options: PostgresJsClientOptions = {}): SqlClient {
  if (typeof sql?.unsafe !== "function" || typeof sql.begin !== "function") {
    throw new TypeError(`fromPostgresJs() expects a postgres.js instance, got ${typeof sql}`);
  }
  const prepare = options.prepare ?? true;
  const run = async (q: PostgresJsQueryable, text: string, params?: readonly SqlParam[]): Promise<SqlRow[]> =>
    rowsOf(await q.unsafe(text, textParams(params), { prepare }).values());
  return {
    query: (text, params) => run(sql, text, params),
    async transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> {
      let lost: { error: unknown } | undefined;
      let onLost: (e: unknown) => void = () => {};
      const lostConnection = new Promise<never>((_, reject) => (onLost = reject));
      lostConnection.catch(() => {});
      const done = sql.begin((tx) => {
        const query = async (text: string, params?: readonly SqlParam[]): Promise<SqlRow[]> => {
          if (lost) throw lost.error;
          try {
            return await run(tx, text, params);
          } catch (e) {
            if (!lost && connectionLost(e)) {
              lost = { error: e };
              onLost(e);
            }
            throw e;
          }
        };
        // After a lost connection the callback never settles, so postgres.js sends no
        // ROLLBACK on the dead connection; `begin` itself rejects when the socket closes.
        return fn({ query }).catch((e) => (lost ? new Promise<never>(() => {}) : Promise.reject(e)));
      }) as Promise<T>;
      return await Promise.race([done, lostConnection]);
    },
    listen: async (channel, onNotify, onListen) => {
      // postgres.js listens again after a lost connection and runs `onlisten` each time.
      // It does so with a listener record of its own, which the `unlisten` of the first
      // call no longer finds: after a reconnect, `unlisten()` neither removes the callbacks
      // nor sends UNLISTEN. So the callbacks are the adapter's: stopping silences them and
      // drops what they hold, whatever postgres.js still keeps.
      let target: { notify: (payload: string) => void; listen?: () => void } | null = {
        notify: onNotify,
        ...(onListen ? { listen: onListen } : {}),
      };
      const { unlisten } = await sql.listen(
        channel,
        (payload) => target?.notify(payload),
        () => target?.listen?.(),
      );
      return async () => {
        target = null;
        await unlisten();
      };
    },
    end: () => sql.end({ timeout: 5 }),
  };
}

/** Results of a PGlite query with `rowMode: "array"`. */
export interface PGliteResults {
  /** The rows (arrays with `rowMode: "array"`). */
  rows: readonly unknown[];
}

/** The part of a PGlite transaction the adapter uses. */
export interface PGliteQueryable {
  /** Run a statement with parameters. */
  query(query: string, params?: (string | null)[], options?: { rowMode?: "array" | "object" }): Promise<PGliteResults>;
}

/** The part of a PGlite instance (`new PGlite()`, `await PGlite.create(dataDir)`) the adapter uses. */
export interface PGliteDatabase extends PGliteQueryable {
  /** Run a callback in a transaction. */
  transaction(callback: (tx: PGliteQueryable) => Promise<unknown>): Promise<unknown>;
  /** Listen on a channel; resolves with a function that stops. */
  listen(channel: string, callback: (payload: string) => void): Promise<() => Promise<void>>;
  /** Close the database. */
  close(): Promise<void>;
  /** Where the data lives (`undefined` or `memory://...`: in memory). */
  readonly dataDir?: string;
}

/**
 * A {@link SqlClient} on a PGlite database. PGlite runs one connection in this process, so
 * the storage is not `shared`, and not `durable` when the database lives in memory.
 *
 * @example
 * ```ts ignore
 * import { PGlite } from "@electric-sql/pglite";
 * import { fromPGlite, openPostgresStorage } from "@dagger/task-core/adapters/postgres";
 * const db = await PGlite.create("idb://my-app-tasks"); // IndexedDB in a browser
 * const storage = await openPostgresStorage({ client: fromPGlite(db) });
 * ```
 */
export function fromPGlite(db: PGliteDatabase): SqlClient {
  if (typeof db?.query !== "function" || typeof db.transaction !== "function") {
    throw new TypeError(`fromPGlite() expects a PGlite instance, got ${typeof db}`);
  }
  const on = (q: PGliteQueryable): SqlQueryable => ({
    query: async (text, params) => rowsOf((await q.query(text, textParams(params), { rowMode: "array" })).rows),
  });
  const dir = db.dataDir;
  return {
    ...on(db),
    transaction: <T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T> =>
      db.transaction((tx) => fn(on(tx))) as Promise<T>,
    listen: async (channel, onNotify) => {
      const stop = await db.listen(channel, onNotify);
      return () => stop();
    },
    end: () => db.close(),
    durable: typeof dir === "string" && dir !== "" && !dir.startsWith("memory://"),
    shared: false,
  };
}
