/**
 * The executor's implementation of {@link TaskContext}: one per attempt. Writes to the
 * cache, shared state and spawned children are buffered here and stored in the same
 * commit as the attempt's completion, so a retried attempt never leaves half its effects.
 *
 * @module
 */

import type { KeyValue, ReadonlyStorage, SpawnSpec, TaskContext, TaskHandle, TaskInfo } from "./context.ts";
import { type JobProblem, JobValidationError } from "./errors.ts";
import { newId } from "./ids.ts";
import { textFault, toJson } from "./json.ts";
import {
  type AgentSource,
  checkInput,
  checkTaskOptions,
  hasReservedChar,
  reservedKeyProblem,
  type TaskDefaults,
  taskFromSpec,
} from "./scheduler.ts";
import { isSatisfied } from "./status.ts";
import type { CommitOp, Storage } from "./storage.ts";
import type { JsonValue, Task } from "./types.ts";

/** What the context needs from its executor. */
export interface ContextHost {
  readonly storage: Storage;
  /** The read-only view handed to agents (one per executor). */
  readonly readonlyStorage: ReadonlyStorage;
  readonly agents: AgentSource;
  /**
   * Whether a child may name an agent `agents` lacks: the executor claims only some agents'
   * tasks (`claimAgents`), so another executor may run it (its input is then not checked here).
   */
  readonly spawnsForOthers?: boolean;
  readonly defaults: TaskDefaults;
  now(): number;
  progress(task: Task, fraction: number, message: string | null): void;
  /** Throw a `PayloadTooLargeError` naming `what "key"` when `value` is over the executor's `maxPayloadBytes`. */
  checkSize(value: unknown, what: string, key: string): void;
}

/** A write after the attempt ended: nothing would store it, so it is refused, not lost. */
function ended(what: string): Error {
  return new Error(`${what} after the attempt ended is not stored (await it before returning)`);
}

/** A `TypeError` for a key or scope some store would change or refuse (storage would drop the whole result). */
function checkText(what: string, s: string): void {
  const fault = textFault(s);
  if (fault !== undefined) throw new TypeError(`${what} must be text every storage keeps: ${fault}`);
}

class BufferedKeyValue implements KeyValue {
  readonly writes = new Map<string, JsonValue | undefined>();
  /**
   * What this attempt first read from storage, by key: a write of such a key is stored only
   * if the entry still holds it (another attempt's write meanwhile makes the commit conflict
   * and this attempt run again), so a read-modify-write is never lost.
   */
  readonly reads = new Map<string, JsonValue | undefined>();
  constructor(
    private readonly read: (key: string) => Promise<JsonValue | undefined>,
    /** Whether the attempt ended: its writes were taken (or dropped with it). */
    private readonly sealed: () => boolean,
    /** Refuses a value over the payload limit (at once, where the agent can still react). */
    private readonly checkSize: (value: unknown, key: string) => void,
  ) {}

  get(key: string): Promise<JsonValue | undefined> {
    // A key that is not text names no entry: a silent `undefined` would hide the mistake.
    if (typeof key !== "string") return Promise.reject(new TypeError(`Key must be a string, got ${typeof key}`));
    if (this.writes.has(key)) return Promise.resolve(this.writes.get(key));
    return this.read(key).then((value) => {
      if (!this.reads.has(key) && !this.sealed()) this.reads.set(key, value);
      return value;
    });
  }

  /** The expectation a write of `key` carries, when this attempt read it from storage. */
  expectOf(key: string): { expect?: { value: JsonValue | undefined } } {
    return this.reads.has(key) ? { expect: { value: this.reads.get(key) } } : {};
  }

  set(key: string, value: JsonValue): void {
    if (this.sealed()) throw ended("A cache or state write");
    if (typeof key !== "string") throw new TypeError(`Key must be a string, got ${typeof key}`);
    // Storage refuses it at commit, which would drop the whole result: refuse it here.
    checkText("Key", key);
    const json = toJson(value);
    this.checkSize(json, key);
    this.writes.set(key, json);
  }

  delete(key: string): void {
    if (this.sealed()) throw ended("A cache or state delete");
    if (typeof key !== "string") throw new TypeError(`Key must be a string, got ${typeof key}`);
    checkText("Key", key);
    this.writes.set(key, undefined);
  }
}

/** The read-only view of a storage that agents get. */
export function readonlyView(storage: Storage): ReadonlyStorage {
  return Object.freeze({
    getJob: (id: string) => storage.getJob(id),
    listJobs: (q?: Parameters<Storage["listJobs"]>[0]) => storage.listJobs(q),
    getTask: (id: string) => storage.getTask(id),
    getTasks: (ids: readonly string[]) => storage.getTasks(ids),
    listTasks: (q: Parameters<Storage["listTasks"]>[0]) => storage.listTasks(q),
    getCache: (jobId: string, key: string) => storage.getCache(jobId, key),
    getState: (scope: string, key: string) => storage.getState(scope, key),
  });
}

/** One attempt's context. Everything but the input is built on first use: most agents touch little of it. */
export class AttemptContext implements TaskContext<JsonValue> {
  #controller: AbortController | null = null;
  #abortReason: unknown = undefined;
  #info: TaskInfo | null = null;
  readonly #record: Task;
  readonly #host: ContextHost;
  #children: Task[] | null = null;
  #childKeys: Map<string, string> | null = null;
  #cache: BufferedKeyValue | null = null;
  #states: Map<string, BufferedKeyValue> | null = null;
  #sealed = false;

  constructor(record: Task, host: ContextHost) {
    this.#record = record;
    this.#host = host;
  }

  /** {@inheritDoc TaskContext.task} */
  get task(): TaskInfo {
    const r = this.#record;
    return (this.#info ??= Object.freeze({
      id: r.id,
      jobId: r.jobId,
      key: r.key,
      agent: r.agent,
      parentId: r.parentId,
      dependencies: r.dependencies,
      attempt: r.attempts,
      maxAttempts: r.maxAttempts,
      durability: r.durability,
    }));
  }

  /** {@inheritDoc TaskContext.input} */
  get input(): JsonValue {
    return this.#record.input;
  }

  /** {@inheritDoc TaskContext.reviewFeedback} */
  get reviewFeedback(): string | null {
    return this.#record.reviewFeedback;
  }

  /** {@inheritDoc TaskContext.storage} */
  get storage(): ReadonlyStorage {
    return this.#host.readonlyStorage;
  }

  /** {@inheritDoc TaskContext.cache} */
  get cache(): KeyValue {
    if (!this.#cache) {
      const { storage } = this.#host;
      const jobId = this.#record.jobId;
      this.#cache = new BufferedKeyValue(
        (key) => storage.getCache(jobId, key),
        () => this.#sealed,
        (value, key) => this.#host.checkSize(value, "cache value", key),
      );
    }
    return this.#cache;
  }

  /** {@inheritDoc TaskContext.signal} */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#abortReason !== undefined) this.#controller.abort(this.#abortReason);
    }
    return this.#controller.signal;
  }

  /** Abort the attempt's signal (created lazily: most agents never read it). */
  abort(reason: unknown): void {
    if (this.#abortReason !== undefined) return;
    this.#abortReason = reason;
    // An aborted attempt's result is not stored: writes and spawns from its abort
    // listeners (they run now, synchronously) throw instead of being lost.
    this.#sealed = true;
    this.#controller?.abort(reason);
  }

  /** {@inheritDoc TaskContext.dependencyOutputs} */
  async dependencyOutputs(): Promise<Record<string, JsonValue>> {
    const out: Record<string, JsonValue> = {};
    if (this.#record.dependencies.length === 0) return out;
    // Defined, not assigned: a task key such as "__proto__" is data, never the prototype.
    for (const t of await this.#host.storage.getTasks(this.#record.dependencies)) {
      // A dependency that failed or was cancelled (a person's retryTask() sent this task on
      // without it) has no output: left out, not shown as a `null` output.
      if (!isSatisfied(t)) continue;
      Object.defineProperty(out, t.key, { value: t.output, enumerable: true, writable: true, configurable: true });
    }
    return out;
  }

  /** {@inheritDoc TaskContext.spawn} */
  spawn(spec: SpawnSpec): TaskHandle {
    if (this.#sealed) throw ended("spawn()");
    const problems: JobProblem[] = [];
    if (spec === null || typeof spec !== "object" || typeof spec.key !== "string" || spec.key === "") {
      throw new JobValidationError([{ code: "invalid-task", message: `spawn() needs a non-empty string "key"` }]);
    }
    // A rerun after a rejected review spawns under `<parent>#<attempt>`: its children do not
    // take the keys of the first run's, which are stored already.
    const record = this.#record;
    const key = record.reviewFeedback === null
      ? `${record.key}/${spec.key}`
      : `${record.key}#${record.attempts}/${spec.key}`;
    if (hasReservedChar(spec.key)) problems.push(reservedKeyProblem(spec.key, `Child key "${spec.key}"`));
    const childKeys = (this.#childKeys ??= new Map());
    if (childKeys.has(spec.key)) {
      problems.push({ key, code: "duplicate-key", message: `Child key "${spec.key}" is used twice` });
    }
    if (
      typeof spec.agent !== "string" || spec.agent === "" || textFault(spec.agent) !== undefined ||
      (!this.#host.spawnsForOthers && !this.#host.agents.has(spec.agent))
    ) {
      problems.push({
        key,
        code: "unknown-agent",
        message: `Child "${spec.key}": no agent named "${String(spec.agent)}"`,
      });
    }
    // Children of an output that awaits a person's review wait for its acceptance (the
    // parent is their first dependency); a rejection cancels them.
    const dependencies: string[] = record.review ? [record.id] : [];
    const dependsOn = spec.dependsOn ?? [];
    if (!Array.isArray(dependsOn)) {
      problems.push({
        key,
        code: "invalid-option",
        message: `Child "${spec.key}": "dependsOn" must be an array of keys`,
      });
    }
    // A sibling is named by the key given to spawn() or by its handle's key, the key in
    // the job (`<prefix><key>`): spawn keys hold no `/` or `#`, so the two never collide.
    const prefix = key.slice(0, key.length - spec.key.length);
    for (const d of Array.isArray(dependsOn) ? dependsOn : []) {
      const id = childKeys.get(d) ??
        (typeof d === "string" && d.startsWith(prefix) ? childKeys.get(d.slice(prefix.length)) : undefined);
      if (id) dependencies.push(id);
      else {
        problems.push({
          key,
          code: "unknown-dependency",
          message: `Child "${spec.key}" depends on "${d}", which is not an earlier child of this task ` +
            `(name one by the key given to spawn() or by the key of the handle it returned)`,
        });
      }
    }
    checkTaskOptions(spec, problems, key);
    const input = checkInput(this.#host.agents, spec, key, problems);
    if (problems.length > 0) throw new JobValidationError(problems);
    this.#host.checkSize(input, "input of spawned task", key);
    const now = this.#host.now();
    const id = newId(now);
    childKeys.set(spec.key, id);
    (this.#children ??= []).push(
      taskFromSpec(
        spec,
        { id, jobId: this.#record.jobId, parentId: this.#record.id, dependencies },
        input!,
        this.#host.defaults,
        now,
        key,
      ),
    );
    return { id, key };
  }

  /** {@inheritDoc TaskContext.state} */
  state(scope: string): KeyValue {
    if (typeof scope !== "string") throw new TypeError(`State scope must be a string, got ${typeof scope}`);
    // Storage refuses it at commit, which would drop the whole result: refuse it here.
    checkText("State scope", scope);
    const states = (this.#states ??= new Map());
    let kv = states.get(scope);
    if (!kv) {
      const storage = this.#host.storage;
      kv = new BufferedKeyValue(
        (key) => storage.getState(scope, key),
        () => this.#sealed,
        (value, key) => this.#host.checkSize(value, "state value", key),
      );
      states.set(scope, kv);
    }
    return kv;
  }

  /** {@inheritDoc TaskContext.progress} */
  progress(fraction: number, message?: string): void {
    if (!Number.isFinite(fraction)) {
      throw new RangeError(`progress() "fraction" must be a number, got ${String(fraction)}`);
    }
    if (message !== undefined && message !== null && typeof message !== "string") {
      throw new TypeError(`progress() "message" must be a string, got ${typeof message}`);
    }
    // An ended attempt reports nothing: its task may already run again under the same
    // attempt number (a completion whose write lost a race is not counted).
    if (this.#sealed) return;
    this.#host.progress(this.#record, Math.min(1, Math.max(0, fraction)), message ?? null);
  }

  /** The attempt ended: later writes, spawns and deletes throw instead of being lost. */
  seal(): void {
    this.#sealed = true;
  }

  /** The ops that store this attempt's side effects (children, cache, state) with its completion. */
  effectOps(ops: CommitOp[]): void {
    if (this.#children) { for (const task of this.#children) ops.push({ type: "insertTask", task }); }
    if (this.#cache) {
      for (const [key, value] of this.#cache.writes) {
        ops.push({ type: "setCache", jobId: this.#record.jobId, key, value, ...this.#cache.expectOf(key) });
      }
    }
    if (this.#states) {
      for (const [scope, kv] of this.#states) {
        for (const [key, value] of kv.writes) ops.push({ type: "setState", scope, key, value, ...kv.expectOf(key) });
      }
    }
  }
}
