/**
 * {@link AgentRegistry}: the agents an executor can run, with their metadata and their
 * compiled validators. It never imports ajv: JSON agents bring their validator (see
 * `defineJsonAgent`) or the registry is given one.
 *
 * @module
 */

import type { Agent } from "./agent.ts";
import type { TaskContext } from "./context.ts";
import { thrownMessage, UnknownAgentError, ValidationError, type ValidationIssue } from "./errors.ts";
import type { JsonSchema } from "./json-schema.ts";
import { textFault, toJson } from "./json.ts";
import { checkOptionNames } from "./options.ts";
import type { JsonValue } from "./types.ts";
import type { CompiledValidator, Validator } from "./validation.ts";

/** What {@link AgentRegistry.register} records about an agent besides the agent itself. */
export interface AgentMetadata {
  /** The agent's version (free form, for example semver). */
  version?: string;
  /** Who wrote or owns the agent. */
  author?: string;
  /** Labels to find the agent by (see {@link AgentRegistry.find}). */
  tags?: readonly string[];
}

/** One registered agent as {@link AgentRegistry.list} describes it. */
export interface AgentInfo {
  /** The agent's name. */
  readonly name: string;
  /** What the agent does. */
  readonly description: string;
  /** The metadata given at registration (a frozen copy). */
  readonly metadata: Readonly<AgentMetadata>;
  /** The input schema of a JSON agent, else `null`. */
  readonly inputSchema: JsonSchema | null;
  /** The output schema of a JSON agent, else `null`. */
  readonly outputSchema: JsonSchema | null;
}

/** What {@link AgentRegistry.find} matches. Every given field must match. */
export interface AgentQuery {
  /** Agents carrying this tag. */
  tag?: string;
}

/** Options of {@link AgentRegistry}. */
export interface AgentRegistryOptions {
  /**
   * Compiles the schemas of every JSON agent registered here, in place of the agent's own
   * validator. A page under a strict Content-Security-Policy passes
   * `createPrecompiledValidator(...)` here.
   */
  validator?: Validator;
}

interface Entry {
  readonly agent: Agent;
  readonly info: AgentInfo;
}

function show(value: unknown): string {
  if (typeof value === "string") return `"${value}"`;
  if (typeof value === "function") return "a function";
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}

function isSchema(value: unknown): value is JsonSchema {
  return typeof value === "boolean" || (typeof value === "object" && value !== null && !Array.isArray(value));
}

function copyMetadata(name: string, metadata: AgentMetadata): Readonly<AgentMetadata> {
  if (typeof metadata !== "object" || metadata === null) {
    throw new TypeError(`Metadata of agent "${name}" must be an object, got ${show(metadata)}`);
  }
  checkOptionNames("register() metadata", metadata, ["version", "author", "tags"]);
  const out: AgentMetadata = {};
  if (metadata.version !== undefined) {
    if (typeof metadata.version !== "string") {
      throw new TypeError(`Option "version" of agent "${name}" must be a string, got ${show(metadata.version)}`);
    }
    out.version = metadata.version;
  }
  if (metadata.author !== undefined) {
    if (typeof metadata.author !== "string") {
      throw new TypeError(`Option "author" of agent "${name}" must be a string, got ${show(metadata.author)}`);
    }
    out.author = metadata.author;
  }
  if (metadata.tags !== undefined) {
    if (!Array.isArray(metadata.tags) || metadata.tags.some((t) => typeof t !== "string")) {
      throw new TypeError(`Option "tags" of agent "${name}" must be an array of strings, got ${show(metadata.tags)}`);
    }
    out.tags = Object.freeze([...metadata.tags]);
  }
  return Object.freeze(out);
}

/**
 * The agents an executor can run. Registering a JSON agent compiles its schemas once
 * (an invalid schema fails right there); {@link AgentRegistry.validateInput} and
 * {@link AgentRegistry.validateOutput} then cost one map lookup plus the compiled check,
 * and nothing at all for plain agents.
 *
 * @example
 * ```ts
 * import { AgentRegistry, defineAgent } from "@dagger/task-core";
 * const registry = new AgentRegistry();
 * registry.register(defineAgent({ name: "echo", description: "Returns its input", execute: (x) => x }), {
 *   version: "1.0.0",
 *   tags: ["util"],
 * });
 * console.assert(registry.find({ tag: "util" })[0]?.name === "echo");
 * ```
 */
export class AgentRegistry {
  /** Every entry, in registration order (for `list()`). */
  readonly #entries = new Map<string, Entry>();
  /**
   * The same entries by name, in a prototype-less object: the hot-path index. With names
   * read from storage (not literals), a `Map` lookup cost 7-12% of a 10-field validation
   * in Bun and ~5% in V8, a lookup in such an object ~0-2% (measured while writing
   * bench/validation.ts); validation runs for every task.
   */
  readonly #byName: Record<string, Entry | undefined> = Object.create(null);
  /** Compiled input validators of the JSON agents, by name (same kind of index). */
  readonly #inputs: Record<string, CompiledValidator | undefined> = Object.create(null);
  /** Compiled output validators of the JSON agents, by name. */
  readonly #outputs: Record<string, CompiledValidator | undefined> = Object.create(null);
  readonly #validator: Validator | undefined;

  /** Create an empty registry. */
  constructor(options: AgentRegistryOptions = {}) {
    checkOptionNames("AgentRegistry option", options, ["validator"]);
    if (options.validator !== undefined && typeof options.validator?.compile !== "function") {
      throw new TypeError(`Option "validator" must have a compile() method, got ${show(options.validator)}`);
    }
    this.#validator = options.validator;
  }

  /** How many agents are registered. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Add an agent. A JSON agent's schemas are compiled now, with the registry's validator
   * or else the agent's own. Throws a `TypeError` when the name is taken, the agent or
   * its metadata is malformed, a schema is invalid, or a JSON agent has no validator.
   */
  register<Input, Output>(agent: Agent<Input, Output>, metadata: AgentMetadata = {}): this {
    if (typeof agent !== "object" || agent === null) {
      throw new TypeError(`Agent must be an object, got ${show(agent)}`);
    }
    const { name, description } = agent;
    if (typeof name !== "string" || name === "") {
      throw new TypeError(`Agent "name" must be a non-empty string, got ${show(name)}`);
    }
    // Tasks store the name: text some store would change or refuse is refused here.
    const fault = textFault(name);
    if (fault !== undefined) throw new TypeError(`Agent "name" must be text every storage keeps: ${fault}`);
    if (typeof description !== "string") {
      throw new TypeError(`Agent "${name}": "description" must be a string, got ${show(description)}`);
    }
    if (typeof agent.execute !== "function") {
      throw new TypeError(`Agent "${name}": "execute" must be a function, got ${show(agent.execute)}`);
    }
    if (this.#entries.has(name)) {
      throw new TypeError(`An agent named "${name}" is already registered`);
    }
    const meta = copyMetadata(name, metadata);

    const raw = agent as Partial<Record<"inputSchema" | "outputSchema" | "validator", unknown>>;
    const inputSchema = raw.inputSchema ?? null;
    const outputSchema = raw.outputSchema ?? null;
    let input: CompiledValidator | null = null;
    let output: CompiledValidator | null = null;
    if (inputSchema !== null || outputSchema !== null) {
      const own = raw.validator as Validator | undefined;
      const validator = this.#validator ?? own;
      if (validator === undefined || typeof validator.compile !== "function") {
        throw new TypeError(
          `Agent "${name}" has a JSON schema but no validator: define it with defineJsonAgent(), ` +
            `give it a "validator", or create the registry with new AgentRegistry({ validator })`,
        );
      }
      input = inputSchema === null ? null : compile(validator, name, "inputSchema", inputSchema);
      output = outputSchema === null ? null : compile(validator, name, "outputSchema", outputSchema);
    }

    const info: AgentInfo = Object.freeze({
      name,
      description,
      metadata: meta,
      inputSchema: inputSchema as JsonSchema | null,
      outputSchema: outputSchema as JsonSchema | null,
    });
    const entry: Entry = { agent: agent as unknown as Agent, info };
    this.#entries.set(name, entry);
    this.#byName[name] = entry;
    if (input) this.#inputs[name] = input;
    if (output) this.#outputs[name] = output;
    return this;
  }

  /** Remove an agent; returns whether it was registered. Tasks naming it then fail as unknown. */
  unregister(name: string): boolean {
    delete this.#byName[name];
    delete this.#inputs[name];
    delete this.#outputs[name];
    return this.#entries.delete(name);
  }

  /** The agent of that name, or `undefined`. */
  get(name: string): Agent | undefined {
    return this.#byName[name]?.agent;
  }

  /** Whether an agent of that name is registered. */
  has(name: string): boolean {
    return this.#byName[name] !== undefined;
  }

  /** The names of the registered agents, in registration order. */
  names(): string[] {
    return [...this.#entries.keys()];
  }

  /** Every registered agent, in registration order: name, description, metadata, schemas. */
  list(): AgentInfo[] {
    return [...this.#entries.values()].map((e) => e.info);
  }

  /** The registered agents that match every field of `query` (all of them for `{}`). */
  find(query: AgentQuery = {}): AgentInfo[] {
    const { tag } = query;
    return this.list().filter((info) => tag === undefined || (info.metadata.tags?.includes(tag) ?? false));
  }

  /**
   * Every problem of `value` against the input schema of agent `name`: `[]` when it is
   * valid, when the agent is plain, and when no agent has that name. Used at submission
   * to report every bad input of a job at once.
   */
  inputIssues(name: string, value: unknown): ValidationIssue[] {
    const check = this.#inputs[name];
    return check === undefined ? [] : [...check(value)];
  }

  /** Throw a non-retryable `ValidationError` when `value` fails the input schema of agent `name`. A no-op for plain agents. */
  validateInput(name: string, value: unknown): void {
    const check = this.#inputs[name];
    if (check !== undefined) runCheck(check, `Input of agent "${name}"`, value);
  }

  /** Throw a non-retryable `ValidationError` when `value` fails the output schema of agent `name`. A no-op for plain agents. */
  validateOutput(name: string, value: unknown): void {
    const check = this.#outputs[name];
    if (check !== undefined) runCheck(check, `Output of agent "${name}"`, value);
  }

  /**
   * Run agent `name` on one input the way the executor does: validate the input, await
   * `execute`, validate the output. An invalid input never reaches `execute`; an invalid
   * output is a `ValidationError` even though `execute` succeeded. An unknown name is an
   * `UnknownAgentError`.
   */
  async execute(name: string, input: JsonValue, ctx: TaskContext): Promise<JsonValue> {
    const entry = this.#byName[name];
    if (entry === undefined) throw new UnknownAgentError(name);
    this.validateInput(name, input);
    const raw = await entry.agent.execute(input, ctx);
    // As the executor stores it: no answer is `null`, and the value is checked as JSON.
    const output = toJson(raw === undefined ? null : raw);
    this.validateOutput(name, output);
    return output;
  }
}

/**
 * Run a compiled check; throw a `ValidationError` naming `subject` when it finds issues, or
 * when the validator itself throws (a bug in it, an async schema): that error is not one the
 * agent's next attempt can cure, so it is not retried as an agent's failure would be.
 */
function runCheck(check: CompiledValidator, subject: string, value: unknown): void {
  let issues: readonly ValidationIssue[];
  try {
    issues = check(value);
  } catch (cause) {
    throw new ValidationError(subject, [{
      path: "",
      keyword: "validator",
      message: `could not be checked: the validator threw: ${thrownMessage(cause)}`,
    }], { cause });
  }
  if (issues.length !== 0) throw new ValidationError(subject, issues);
}

function compile(validator: Validator, name: string, which: string, schema: unknown): CompiledValidator {
  if (!isSchema(schema)) {
    throw new TypeError(
      `Agent "${name}": "${which}" must be a JSON Schema (an object or a boolean), got ${show(schema)}`,
    );
  }
  let compiled: unknown;
  try {
    compiled = validator.compile(schema);
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new TypeError(`Agent "${name}" has an invalid ${which}: ${reason}`, { cause });
  }
  if (typeof compiled !== "function") {
    throw new TypeError(`Validator "${validator.name}" returned ${show(compiled)} for the ${which} of agent "${name}"`);
  }
  return compiled as CompiledValidator;
}
