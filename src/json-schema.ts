/**
 * JSON Schema as a TypeScript type, and {@link FromSchema}: the TypeScript type of the
 * values a schema accepts, computed at compile time (nothing of it exists at run time).
 *
 * @module
 */

import type { JsonValue, ReadonlyJsonValue } from "./types.ts";

export type { ReadonlyJsonValue };

/** The names JSON Schema's `type` keyword takes. */
export type JsonSchemaTypeName = "string" | "number" | "integer" | "boolean" | "null" | "array" | "object";

/**
 * A JSON Schema object. The keywords that {@link FromSchema} understands are typed; any
 * other keyword is accepted and left to the validator.
 */
export interface JsonSchemaObject {
  /** The schema's URI; precompiled validators can be looked up by it. */
  readonly $id?: string;
  /**
   * The dialect. The default validator (ajv's `Ajv` class) knows draft-07
   * (`http://json-schema.org/draft-07/schema#`) only: naming another (2019-09, 2020-12)
   * fails registration; for those, give `createAjvValidator` an instance of ajv's
   * `Ajv2019` / `Ajv2020` classes.
   */
  readonly $schema?: string;
  /** A title for people. */
  readonly title?: string;
  /** A description for people. */
  readonly description?: string;
  /** The accepted type, or several (`["string", "null"]` makes a nullable string). */
  readonly type?: JsonSchemaTypeName | readonly JsonSchemaTypeName[];
  /** ajv's keyword from OpenAPI: with `type`, `true` accepts `null` too. */
  readonly nullable?: boolean;
  /** Schemas of an object's properties. */
  readonly properties?: { readonly [key: string]: JsonSchema };
  /** Properties an object must have. */
  readonly required?: readonly string[];
  /** Schema of the properties not listed in `properties` (`false` forbids them). */
  readonly additionalProperties?: JsonSchema;
  /**
   * Schema of every item of an array; a list of schemas (draft-07) checks the items by
   * position, and `additionalItems` the items after them.
   */
  readonly items?: JsonSchema | readonly JsonSchema[];
  /** With `items` as a list (draft-07): the schema of the items past it (`false` forbids them). */
  readonly additionalItems?: JsonSchema;
  /** The allowed values. */
  readonly enum?: readonly unknown[];
  /** The only allowed value. */
  readonly const?: unknown;
  /** The value matches at least one of these. */
  readonly anyOf?: readonly JsonSchema[];
  /** The value matches exactly one of these. */
  readonly oneOf?: readonly JsonSchema[];
  /** Any other keyword. */
  readonly [keyword: string]: unknown;
}

/** A JSON Schema: an object, or `true` (anything) / `false` (nothing). */
export type JsonSchema = boolean | JsonSchemaObject;

/** Flattens an intersection into one object type, for readable hovers and errors. */
type Simplify<T> = { [K in keyof T]: T[K] };

/** The type of one `type` name. */
type FromTypeName<S, T> = T extends "string" ? string
  : T extends "number" | "integer" ? number
  : T extends "boolean" ? boolean
  : T extends "null" ? null
  : T extends "array" ? FromArray<S>
  : T extends "object" ? FromObject<S>
  : never;

/**
 * An array schema's type. A tuple is `prefixItems` (2020-12, for `Ajv2020`) followed by
 * `items`, or `items` as a list (draft-07) followed by `additionalItems`: its first
 * `minItems` elements are required (an array shorter than the tuple is valid), and the
 * schema after it types the rest (`false`: none).
 */
type FromArray<S> = S extends { readonly prefixItems: infer P extends readonly unknown[] }
  ? Tuple<P, S, S extends { readonly items: infer I } ? I : true>
  : S extends { readonly items: infer P extends readonly unknown[] }
    ? Tuple<P, S, S extends { readonly additionalItems: infer A } ? A : true>
  : S extends { readonly items: infer I } ? FromSchema<I>[]
  : JsonValue[];

/** A tuple of the schemas `P` (see {@link Prefix}), then items of schema `Rest`. */
type Tuple<P, S, Rest> = [
  ...Prefix<P, S extends { readonly minItems: infer M extends number } ? M : 0>,
  ...(Rest extends false ? [] : FromSchema<Rest>[]),
];

/** The tuple of a `prefixItems` list: required up to `Min` elements, optional after. */
type Prefix<P, Min extends number, Done extends unknown[] = []> = P extends readonly [infer H, ...infer R]
  ? (Done["length"] extends Min ? { -readonly [K in keyof P]?: FromSchema<P[K]> }
    : [FromSchema<H>, ...Prefix<R, Min, [...Done, H]>])
  : [];

/** Names listed in `required`. */
type RequiredKeys<S> = S extends { readonly required: readonly (infer K)[] } ? K & string : never;

/** The index signature that `additionalProperties` allows next to `properties`. */
type Additional<S> = S extends { readonly additionalProperties: false } ? unknown
  : S extends { readonly additionalProperties: infer A }
    ? (A extends JsonSchema ? { [key: string]: JsonValue } : unknown)
  : unknown;

/** An object schema's type: required properties, optional properties, extra properties. */
type FromObject<S> = S extends { readonly properties: infer P } ? Simplify<
    & { -readonly [K in keyof P & string as K extends RequiredKeys<S> ? K : never]: FromSchema<P[K]> }
    & { -readonly [K in keyof P & string as K extends RequiredKeys<S> ? never : K]?: FromSchema<P[K]> }
    & Additional<S>
  >
  : S extends { readonly additionalProperties: false } ? Record<string, never>
  : S extends { readonly additionalProperties: infer A extends JsonSchemaObject } ? { [key: string]: FromSchema<A> }
  : { [key: string]: JsonValue };

/**
 * {@link FromSchema} of each branch `U` of the `anyOf` / `oneOf` keyword `Key` of schema
 * `S`: a branch adds to the schema around it (a value passes both), so it is read with
 * the other keywords of `S`, its `properties` and `required` joined to those of `S`.
 */
type FromEach<S, Key extends string, U> = U extends unknown ? FromSchema<Merge<Omit<S, Key>, U>> : never;

/** Schema `S` with the keywords of branch `B` (see {@link FromEach}). */
type Merge<S, B> = B extends boolean ? B
  : keyof S extends never ? B
  :
    & Omit<S, keyof B>
    & Omit<B, "properties" | "required">
    & (S extends { readonly properties: infer P }
      ? { readonly properties: B extends { readonly properties: infer Q } ? P & Q : P }
      : Pick<B, "properties" & keyof B>)
    & (S extends { readonly required: readonly (infer K)[] }
      ? { readonly required: readonly (K | (B extends { readonly required: readonly (infer L)[] } ? L : never))[] }
      : Pick<B, "required" & keyof B>);

/**
 * The TypeScript type of the values a JSON Schema accepts. Understands `type` (one name or
 * several, so `["string", "null"]` is `string | null`), `nullable: true` (an ajv keyword
 * from OpenAPI, which the default validator accepts: it lets `null` through), `properties`
 * + `required`, `additionalProperties`, `items` (a list of schemas, with
 * `additionalItems`, for a draft-07 tuple; after 2020-12's `prefixItems`, if any),
 * `enum`, `const`, `anyOf` and `oneOf`; anything else is {@link JsonValue}. Extra properties of an object are left out of its type unless
 * `additionalProperties` is set to a schema or `true`.
 *
 * Write the schema inline in `defineJsonAgent`, or declare it `as const`, so its literal
 * types survive.
 *
 * @example
 * ```ts
 * import type { FromSchema } from "@dagger/task-core";
 * const schema = {
 *   type: "object",
 *   properties: { name: { type: "string" }, age: { type: ["integer", "null"] } },
 *   required: ["name"],
 * } as const;
 * const person: FromSchema<typeof schema> = { name: "Ada", age: null };
 * console.assert(person.name === "Ada");
 * ```
 */
export type FromSchema<S> = S extends { readonly nullable: true } ? FromSchemaOf<S> | null : FromSchemaOf<S>;

/** {@link FromSchema} without `nullable`. */
type FromSchemaOf<S> = S extends true ? JsonValue
  : S extends false ? never
  : S extends { readonly const: infer C } ? C
  : S extends { readonly enum: readonly (infer E)[] } ? E
  : S extends { readonly anyOf: readonly (infer A)[] } ? FromEach<S, "anyOf", A>
  : S extends { readonly oneOf: readonly (infer A)[] } ? FromEach<S, "oneOf", A>
  : S extends { readonly type: infer T } ? (T extends readonly (infer N)[] ? FromTypeName<S, N> : FromTypeName<S, T>)
  : JsonValue;

/** {@link DeepReadonly} of each member of a union (a mapped array or tuple stays one, read-only). */
type DeepReadonlyEach<T> = T extends object ? { readonly [K in keyof T]: DeepReadonly<T[K]> } : T;

/**
 * `T` with every array and object read-only. An agent may return a value of this type
 * for an output schema: a literal like `["a", "b"]` or `{ status: "ok" }` keeps its
 * literal types and still matches.
 */
export type DeepReadonly<T> = [JsonValue] extends [T] ? ReadonlyJsonValue : DeepReadonlyEach<T>;
