/**
 * The SQL client the PostgreSQL adapter needs, as a small structural contract: queries
 * with parameters, transactions, and (optionally) LISTEN. `clients.ts` adapts postgres.js
 * and PGlite to it; any other driver can be adapted in a few lines.
 *
 * The adapter casts every parameter in its SQL (`$1::text`, `$2::float8` ...) and reads
 * JSON and arrays as text, so a client only has to send strings, numbers, booleans and
 * nulls and hand back the values its driver parses for `text`, `int4`, `float8` and `bool`.
 *
 * @module
 */

/** A parameter value. The SQL casts it, so clients may send it as text. */
export type SqlParam = string | number | boolean | null;

/** One result row: the column values in the order of the select list. */
export type SqlRow = readonly unknown[];

/** Something that runs one statement. */
export interface SqlQueryable {
  /**
   * Run one statement with `$1`, `$2` ... bound to `params`; resolve with its rows as arrays
   * (empty for a statement that returns none).
   */
  query(sql: string, params?: readonly SqlParam[]): Promise<SqlRow[]>;
}

/** A connection (or pool) the adapter runs on. */
export interface SqlClient extends SqlQueryable {
  /**
   * Run `fn` in one transaction on one connection: `BEGIN`, then `fn`'s statements through
   * `tx`, then `COMMIT`; `ROLLBACK` when `fn` throws (and rethrow). Statements issued on `tx`
   * without waiting for each other may be pipelined.
   */
  transaction<T>(fn: (tx: SqlQueryable) => Promise<T>): Promise<T>;
  /**
   * Optional: call `onNotify` for every `NOTIFY` on `channel` (a plain lower-case
   * identifier), across connection losses. Resolves once listening, with a function that
   * stops. Without it, other processes' work is found by polling alone. A client that
   * listens again after a lost connection calls `onListen` each time it listens (the
   * first time too), so the storage can tell its watchers that notices may have been
   * missed meanwhile.
   */
  listen?(
    channel: string,
    onNotify: (payload: string) => void,
    onListen?: () => void,
  ): Promise<() => Promise<void>>;
  /** Whether the data outlives the process (default `true`; an in-memory PGlite is not durable). */
  readonly durable?: boolean;
  /** Whether other processes can reach the same data (default `true`; PGlite is one process's). */
  readonly shared?: boolean;
  /** Optional: close the client (called by `close()` only with `closeClient: true`). */
  end?(): Promise<void>;
}
