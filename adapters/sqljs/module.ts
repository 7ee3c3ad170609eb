/**
 * The part of sql.js this adapter uses, typed structurally (so any sql.js build fits,
 * and the public API does not depend on `@types/sql.js`), and the loader.
 *
 * @module
 */

/** A value sql.js binds or returns. */
export type SqlValue = number | string | Uint8Array | null;

/** A prepared statement of sql.js. */
export interface SqlJsStatement {
  /** Bind positional values. */
  bind(values?: SqlValue[] | null): boolean;
  /** Step to the next row; `false` when done. */
  step(): boolean;
  /** The current row (or bind `params`, step once and return that row). */
  get(params?: SqlValue[] | null): SqlValue[];
  /** Bind, step once and reset. */
  run(values?: SqlValue[] | null): void;
  /** Reset the statement so it can run again. */
  reset(): void;
  /** Release the statement. */
  free(): boolean;
}

/** A sql.js database. */
export interface SqlJsDatabase {
  /** Run one or more statements and return their results. */
  exec(sql: string, params?: SqlValue[] | null): { columns: string[]; values: SqlValue[][] }[];
  /** Prepare a statement. */
  prepare(sql: string): SqlJsStatement;
  /** The whole database as a SQLite file image. */
  export(): Uint8Array;
  /** Release the database. */
  close(): void;
}

/** An initialised sql.js module (what `initSqlJs()` resolves to). */
export interface SqlJsModule {
  /** The database class: `new Database(bytes?)`. */
  Database: new (data?: Uint8Array | null) => SqlJsDatabase;
}

/** Where sql.js finds its WASM, passed to `initSqlJs`. */
export interface SqlJsLoadOptions {
  /**
   * Map a file name sql.js asks for (`sql-wasm.wasm`, `sql-wasm-browser.wasm`) to its URL
   * or path. In a Vite page: `import wasmUrl from "sql.js/dist/sql-wasm-browser.wasm?url"`
   * and `locateFile: () => wasmUrl`.
   */
  locateFile?: (file: string, prefix: string) => string;
  /** The WASM bytes themselves (skips locating the file). */
  wasmBinary?: ArrayBuffer | Uint8Array;
}

type InitSqlJs = (config?: Record<string, unknown>) => Promise<SqlJsModule>;

let defaultModule: Promise<SqlJsModule> | undefined;

/**
 * Load and initialise sql.js (the `sql.js` package, imported lazily). Without options the
 * module is loaded once per process and shared; sql.js then finds its WASM next to its
 * own script (Node, Deno, Bun, and pages served with `node_modules` layout).
 *
 * @example
 * ```ts
 * import { loadSqlJs } from "@dagger/task-core/adapters/sqljs";
 * const SQL = await loadSqlJs();
 * const db = new SQL.Database();
 * db.close();
 * ```
 */
export function loadSqlJs(options: SqlJsLoadOptions = {}): Promise<SqlJsModule> {
  if (options.locateFile !== undefined && typeof options.locateFile !== "function") {
    throw new TypeError(`"locateFile" must be a function, got ${typeof options.locateFile}`);
  }
  if (
    options.wasmBinary !== undefined && !(options.wasmBinary instanceof ArrayBuffer) &&
    !(options.wasmBinary instanceof Uint8Array)
  ) {
    throw new TypeError(`"wasmBinary" must be an ArrayBuffer or a Uint8Array, got ${typeof options.wasmBinary}`);
  }
  const custom = options.locateFile !== undefined || options.wasmBinary !== undefined;
  if (!custom && defaultModule) return defaultModule;
  const loading = (async () => {
    const mod = (await import("sql.js")) as unknown as { default?: InitSqlJs };
    const init = typeof mod.default === "function" ? mod.default : mod as unknown as InitSqlJs;
    if (typeof init !== "function") throw new TypeError(`The "sql.js" package exports no init function`);
    const config: Record<string, unknown> = {};
    if (options.locateFile) config.locateFile = options.locateFile;
    if (options.wasmBinary) config.wasmBinary = options.wasmBinary;
    return await init(config);
  })();
  if (!custom) {
    defaultModule = loading;
    loading.catch(() => {
      if (defaultModule === loading) defaultModule = undefined;
    });
  }
  return loading;
}

/** Resolve the `sql` option: a module, a factory of one, or (when absent) the default loader. */
export async function resolveSqlJs(
  sql: SqlJsModule | (() => Promise<SqlJsModule>) | undefined,
  load: SqlJsLoadOptions,
): Promise<SqlJsModule> {
  if (sql === undefined) return await loadSqlJs(load);
  const mod = typeof sql === "function" ? await sql() : sql;
  if (!mod || typeof mod.Database !== "function") {
    throw new TypeError(`"sql" must be an initialised sql.js module (with a Database class), got ${typeof mod}`);
  }
  return mod;
}
