/**
 * The ajv {@link Validator}: the default of `defineJsonAgent`. It lives in its own module
 * so that a bundle that never defines a JSON agent never contains ajv.
 *
 * ajv compiles schemas with `new Function`; a page whose Content-Security-Policy forbids
 * `unsafe-eval` uses `createPrecompiledValidator` instead.
 *
 * Formats (`email`, `date-time`, `uri`, ...) come from a plugin such as `ajv-formats`,
 * passed in `plugins`. They are not loaded here: `ajv-formats` does not declare itself
 * free of side effects, so a static import of it would keep ajv in the bundles of
 * applications that never define a JSON agent (`ajv` itself declares `sideEffects: false`).
 *
 * @module
 */

import { Ajv, type Options as AjvOptions } from "ajv";
import type { JsonSchema } from "./json-schema.ts";
import { type CompiledValidator, fromAjvStyle, type Validator } from "./validation.ts";

/**
 * An ajv plugin, such as the default export of `ajv-formats`. The namespace of a
 * CommonJS module whose `default` is the plugin is accepted too (Deno types
 * `import addFormats from "ajv-formats"` that way).
 */
export type AjvPlugin = ((ajv: Ajv) => unknown) | { readonly default: (ajv: Ajv) => unknown };

/** Options of {@link createAjvValidator}. */
export interface AjvValidatorOptions {
  /**
   * A configured ajv instance to compile with (custom keywords, formats, ...). It should
   * have `allErrors: true`, or only the first issue of a value is reported, and
   * `ownProperties: true`, or `required: ["constructor"]` accepts `{}`.
   */
  ajv?: Ajv;
  /** Options of the ajv instance made when `ajv` is not given; merged over the defaults. */
  options?: AjvOptions;
  /**
   * Plugins applied to the instance made when `ajv` is not given, for example
   * `[addFormats]` from `ajv-formats` for `format: "email"`, `"date-time"`, `"uri"` ...
   * Without a formats plugin, a schema that uses `format` fails at registration.
   */
  plugins?: readonly AjvPlugin[];
}

/**
 * The ajv options used when none are given: report every error, accept `type` arrays
 * (nullable values), reject unknown keywords and formats (a typo in a schema fails
 * registration), never log to the console (every problem is thrown instead), and look at
 * a value's own properties only: JSON has no prototype, so `required: ["constructor"]`
 * must not be met by `{}.constructor` (ajv reads inherited properties otherwise).
 */
const DEFAULT_OPTIONS: AjvOptions = {
  allErrors: true,
  allowUnionTypes: true,
  strictSchema: true,
  strictNumbers: true,
  strictTypes: false,
  strictTuples: false,
  strictRequired: false,
  ownProperties: true,
  logger: false,
};

function pluginFunction(plugin: AjvPlugin, index: number): (ajv: Ajv) => unknown {
  const fn = typeof plugin === "function" ? plugin : plugin?.default;
  if (typeof fn !== "function") {
    throw new TypeError(`Option "plugins" must hold functions, got ${String(plugin)} at index ${index}`);
  }
  return fn;
}

/**
 * Compile `schema`. A schema whose `$id` the instance already holds (the same agent
 * defined twice: a second registry, a test, a reload) reuses that compilation when it is
 * the same schema; a different schema under that id is refused, as ajv refuses it. The
 * instance is asked about the id only once ajv refused it: a lookup can register ids.
 */
function compileOnce(ajv: Ajv, schema: JsonSchema): ReturnType<Ajv["compile"]> {
  const id = typeof schema === "object" && schema !== null ? (schema as { $id?: unknown }).$id : undefined;
  const held = typeof id === "string" && (ajv.schemas[id] !== undefined || ajv.refs[id] !== undefined);
  try {
    return ajv.compile(schema);
  } catch (e) {
    // ajv keeps a schema that failed to compile under its `$id`: a corrected schema under
    // that id would then meet the old one's error. Let go of what this call added.
    if (typeof id === "string" && !held && !(e instanceof Error && /already exists/.test(e.message))) {
      try {
        ajv.removeSchema(id);
      } catch {
        // nothing was kept
      }
    }
    if (typeof id !== "string" || !(e instanceof Error) || !/already exists/.test(e.message)) throw e;
    const known = ajv.getSchema(id);
    if (known && JSON.stringify(known.schema) === JSON.stringify(schema)) return known;
    throw e;
  }
}

/**
 * A {@link Validator} backed by ajv. The ajv instance is made on the first `compile`,
 * and each schema object is compiled once (later calls return the cached function).
 *
 * @example
 * ```ts
 * import { createAjvValidator } from "@dagger/task-core";
 * const check = createAjvValidator().compile({ type: "object", required: ["id"] });
 * console.assert(check({ id: 1 }).length === 0);
 * console.assert(check({})[0]?.path === "/id");
 * ```
 */
export function createAjvValidator(options: AjvValidatorOptions = {}): Validator {
  let ajv: Ajv | undefined = options.ajv;
  const given: readonly AjvPlugin[] = options.plugins ?? [];
  if (!Array.isArray(given)) {
    throw new TypeError(`Option "plugins" must be an array, got ${String(given)}`);
  }
  const plugins = given.map(pluginFunction);
  // Options that change the value they check would change a frozen, stored input or output
  // (ajv's writes fail silently, and its verdict assumes they happened): refused.
  const opts = (options.ajv as { opts?: Record<string, unknown> } | undefined)?.opts ??
    (options.options as Record<string, unknown> | undefined) ?? {};
  for (const name of ["useDefaults", "coerceTypes", "removeAdditional"]) {
    if (opts[name]) {
      throw new TypeError(
        `ajv option "${name}" changes the value it checks; inputs and outputs are checked as they are stored ` +
          `and are not changed (give defaults in the agent, or convert the value before submitting it)`,
      );
    }
  }
  const cache = new WeakMap<object, CompiledValidator>();
  const instance = (): Ajv => {
    if (ajv === undefined) {
      const made = new Ajv({ ...DEFAULT_OPTIONS, ...options.options });
      for (const plugin of plugins) plugin(made);
      ajv = made;
    }
    return ajv;
  };
  return {
    name: "ajv",
    compile(schema: JsonSchema): CompiledValidator {
      const key = typeof schema === "object" && schema !== null ? schema : undefined;
      const cached = key && cache.get(key);
      if (cached) return cached;
      let compiled: CompiledValidator;
      try {
        const validate = compileOnce(instance(), schema);
        if ((validate as { $async?: unknown }).$async === true) {
          throw new TypeError(
            "Schemas with `$async: true` are not supported: an agent's input and output are checked synchronously",
          );
        }
        compiled = fromAjvStyle(validate);
      } catch (e) {
        if (e instanceof Error && /^no schema with key or ref "https?:\/\/json-schema\.org\//.test(e.message)) {
          throw new Error(
            `${e.message} (this ajv instance does not know that dialect: the default one knows draft-07; ` +
              `for 2019-09 or 2020-12 pass createAjvValidator({ ajv: new Ajv2020({ allErrors: true, ownProperties: true }) }) ` +
              `from "ajv/dist/2020")`,
            { cause: e },
          );
        }
        if (e instanceof Error && /unknown format/.test(e.message)) {
          throw new Error(`${e.message} (formats need a plugin: createAjvValidator({ plugins: [addFormats] }))`, {
            cause: e,
          });
        }
        throw e;
      }
      if (key) cache.set(key, compiled);
      return compiled;
    },
  };
}
