/**
 * Validators: what checks JSON agents' inputs and outputs against their schemas.
 *
 * The {@link Validator} contract is small on purpose so that the engine is a choice: ajv
 * (`createAjvValidator`, the default of `defineJsonAgent`) compiles schemas into code with
 * `new Function`, which a page with a strict Content-Security-Policy (no `unsafe-eval`)
 * forbids; such a page passes {@link createPrecompiledValidator} functions made at build
 * time (ajv's standalone code, or written by hand) instead. This module never imports ajv.
 *
 * @module
 */

import type { ValidationIssue } from "./errors.ts";
import type { JsonSchema } from "./json-schema.ts";

/**
 * One compiled schema: returns every issue of `value`, or an empty array when it is
 * valid. Implementations return the same frozen {@link NO_ISSUES} array for every valid
 * value, so the hot path allocates nothing.
 */
export type CompiledValidator = (value: unknown) => readonly ValidationIssue[];

/** Compiles JSON Schemas into {@link CompiledValidator}s. */
export interface Validator {
  /** A name for messages (`"ajv"`, `"precompiled"`, ...). */
  readonly name: string;
  /**
   * Compile one schema. Called once per schema when an agent is registered (never per
   * task); throws when the schema is invalid or cannot be compiled.
   */
  compile(schema: JsonSchema): CompiledValidator;
}

/** The result of a valid value: one shared, frozen, empty array. */
export const NO_ISSUES: readonly ValidationIssue[] = Object.freeze([]);

/** One error in the shape ajv reports them (also produced by ajv's standalone code). */
export interface AjvStyleError {
  /** JSON pointer to the offending value. */
  readonly instancePath: string;
  /** The failing keyword. */
  readonly keyword: string;
  /** ajv's message, when `messages` is on. */
  readonly message?: string;
  /** Keyword-specific details (`missingProperty`, `additionalProperty`, `allowedValues`, ...). */
  readonly params?: { readonly [key: string]: unknown };
}

/**
 * A validate function in ajv's shape: returns whether the value is valid and leaves the
 * errors on its `errors` property. ajv's `compile()` and its standalone code make these.
 */
export interface AjvStyleValidateFunction {
  /** Whether `value` is valid. */
  (value: unknown): boolean;
  /** The errors of the last call, `null` or `undefined` when it was valid. */
  errors?: readonly AjvStyleError[] | null;
}

/** Escape one property name for use in a JSON pointer (RFC 6901). */
function pointerToken(key: string): string {
  return key.replaceAll("~", "~0").replaceAll("/", "~1");
}

function quote(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

/**
 * Turn errors in ajv's shape into {@link ValidationIssue}s that read well: a missing or
 * forbidden property is reported at its own path (`/user/email is required`), an `enum`
 * failure lists the allowed values.
 */
export function issuesFromAjvErrors(errors: readonly AjvStyleError[] | null | undefined): ValidationIssue[] {
  if (!errors || errors.length === 0) {
    return [{ path: "", keyword: "unknown", message: "is invalid (the validator reported no details)" }];
  }
  const issues: ValidationIssue[] = [];
  for (const e of errors) {
    const params = e.params ?? {};
    if (e.keyword === "required" && typeof params["missingProperty"] === "string") {
      issues.push({
        path: `${e.instancePath}/${pointerToken(params["missingProperty"])}`,
        keyword: "required",
        message: "is required",
      });
    } else if (e.keyword === "additionalProperties" && typeof params["additionalProperty"] === "string") {
      issues.push({
        path: `${e.instancePath}/${pointerToken(params["additionalProperty"])}`,
        keyword: "additionalProperties",
        message: "is not an allowed property",
      });
    } else if (e.keyword === "enum" && Array.isArray(params["allowedValues"])) {
      issues.push({
        path: e.instancePath,
        keyword: "enum",
        message: `must be one of ${params["allowedValues"].map(quote).join(", ")}`,
      });
    } else {
      issues.push({ path: e.instancePath, keyword: e.keyword, message: e.message ?? `fails "${e.keyword}"` });
    }
  }
  return issues;
}

/** Wrap a validate function in ajv's shape as a {@link CompiledValidator}. */
export function fromAjvStyle(validate: AjvStyleValidateFunction): CompiledValidator {
  return (value) => {
    const ok: unknown = validate(value);
    if (ok === true) return NO_ISSUES;
    if (ok === false) return issuesFromAjvErrors(validate.errors);
    return notSynchronous(ok);
  };
}

/** A validator answered with something other than a verdict (an async schema's promise). */
function notSynchronous(result: unknown): never {
  const then = (result as { then?: unknown } | null)?.then;
  // Its rejection is this error's business now, not an unhandled rejection's.
  if (typeof then === "function") (result as Promise<unknown>).then(undefined, () => {});
  throw new TypeError(
    `A validator returned ${typeof then === "function" ? "a promise" : typeof result}, not a verdict: ` +
      "asynchronous schemas (`$async: true`) are not supported",
  );
}

/**
 * A function made ahead of time for one schema: either a {@link CompiledValidator}
 * (returns issues) or an {@link AjvStyleValidateFunction} (returns a boolean, errors on
 * `.errors`), such as a function of ajv's standalone code.
 */
export type PrecompiledFunction = CompiledValidator | AjvStyleValidateFunction;

/** Normalises a {@link PrecompiledFunction} into a {@link CompiledValidator}. */
function normalise(fn: PrecompiledFunction): CompiledValidator {
  return (value) => {
    const result: unknown = fn(value);
    if (result === true) return NO_ISSUES;
    if (result === false) return issuesFromAjvErrors((fn as AjvStyleValidateFunction).errors);
    if (!Array.isArray(result)) return notSynchronous(result);
    return result as ReturnType<CompiledValidator>;
  };
}

/**
 * A {@link Validator} that never generates code: each schema maps to a function made
 * ahead of time, so it runs under a Content-Security-Policy without `unsafe-eval`.
 *
 * Keys are the schema objects themselves or their `$id`s. Compiling a schema with no
 * function is a `TypeError`, raised when the agent is registered.
 *
 * @example
 * ```ts
 * import { createPrecompiledValidator, NO_ISSUES } from "@dagger/task-core";
 * const schema = { type: "string" } as const;
 * const validator = createPrecompiledValidator([
 *   [schema, (v: unknown) => typeof v === "string" ? NO_ISSUES : [{ path: "", keyword: "type", message: "must be string" }]],
 * ]);
 * console.assert(validator.compile(schema)(42).length === 1);
 * ```
 */
export function createPrecompiledValidator(
  functions: Iterable<readonly [JsonSchema | string, PrecompiledFunction]>,
): Validator {
  const bySchema = new Map<JsonSchema, CompiledValidator>();
  const byId = new Map<string, CompiledValidator>();
  for (const entry of functions) {
    const [key, fn] = entry;
    if (typeof fn !== "function") {
      throw new TypeError(`Precompiled validator for ${quote(key)} must be a function, got ${quote(fn)}`);
    }
    if (typeof key === "string") byId.set(key, normalise(fn));
    else bySchema.set(key, normalise(fn));
  }
  return {
    name: "precompiled",
    compile(schema) {
      const found = bySchema.get(schema) ??
        (typeof schema === "object" && schema !== null && typeof schema.$id === "string"
          ? byId.get(schema.$id)
          : undefined);
      if (found) return found;
      const which = typeof schema === "object" && schema !== null && typeof schema.$id === "string"
        ? `schema "${schema.$id}"`
        : "this schema (key it by the schema object or give the schema an $id)";
      throw new TypeError(`No precompiled validator for ${which}`);
    },
  };
}
