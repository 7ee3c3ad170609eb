// The agents suite (plain and JSON agents, validation, the registry) in real Chromium.
//
// Every case runs here as it does in Node, Deno and Bun. There, the strict-CSP case forbids code
// generation by replacing `globalThis.Function` and `eval` with throwing stubs: a simulation. A
// browser has the real thing, so that case runs a second time in a same-origin iframe whose page
// has a Content-Security-Policy without 'unsafe-eval'. It loads its own copy of the modules and has
// its own `Function` and `eval`. The case's stubs do nothing there, so Chromium itself refuses every
// string-to-code (an EvalError and a `securitypolicyviolation` event).
import { test } from "vitest";
import { agentCases, registerAgentSuite } from "../conformance/agents.ts";
import type * as AgentsModule from "../conformance/agents.ts";
import type * as RegistryModule from "../../src/registry.ts";
import type * as AjvModule from "../../src/validation-ajv.ts";

registerAgentSuite({ test: (name, fn) => test(name, fn), skip: (name) => test.todo(name) });

/** A page policy as strict as a real one: scripts from this origin or with the nonce, no 'unsafe-eval'. */
const policy = (nonce: string) => `script-src 'self' 'nonce-${nonce}'`;

type FrameWindow = Window & typeof globalThis & { load(url: string): Promise<unknown> };

interface StrictCspFrame {
  win: FrameWindow;
  /** Import a module into the frame's realm (its own module map, `Function` and `eval`). */
  load<M>(relative: string): Promise<M>;
  /** The frame's `securitypolicyviolation` events so far. */
  violations: SecurityPolicyViolationEvent[];
  remove(): void;
}

/** A same-origin iframe whose page forbids `eval` and `new Function` by Content-Security-Policy. */
async function strictCspFrame(): Promise<StrictCspFrame> {
  const nonce = crypto.randomUUID().replaceAll("-", "");
  const iframe = document.createElement("iframe");
  iframe.srcdoc = `<!doctype html><meta http-equiv="Content-Security-Policy" content="${policy(nonce)}">` +
    `<script type="module" nonce="${nonce}">window.load = (url) => import(url);</script>`;
  const loaded = new Promise<void>((resolve) => iframe.addEventListener("load", () => resolve(), { once: true }));
  document.body.append(iframe);
  await loaded;
  const win = iframe.contentWindow as FrameWindow;
  const violations: SecurityPolicyViolationEvent[] = [];
  win.document.addEventListener("securitypolicyviolation", (e) => violations.push(e));
  return {
    win,
    load: async <M>(relative: string) => await win.load(new URL(relative, import.meta.url).href) as M,
    violations,
    remove: () => iframe.remove(),
  };
}

/** Violation events are queued as tasks: let them arrive. */
const settle = () => new Promise((resolve) => setTimeout(resolve, 50));

/** Throws unless `fn` throws an EvalError of the frame's realm that blames the policy. */
function refusedByPolicy(frame: StrictCspFrame, what: string, fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    if (e instanceof frame.win.EvalError && /Content Security Policy/.test(e.message)) return;
    throw new Error(`${what}: expected the page's CSP to refuse it, got ${String(e)}`);
  }
  throw new Error(`${what}: the page's CSP did not refuse it`);
}

/** Make `globalThis.Function = stub` and `globalThis.eval = stub` no-ops in `win`, so only the CSP forbids. */
function ignoreStubs(win: FrameWindow): void {
  for (const key of ["Function", "eval"] as const) {
    const real = win[key];
    Object.defineProperty(win, key, { get: () => real, set: () => {}, configurable: true });
  }
}

const cspCase = agentCases.find((c) => c.name.includes("(strict CSP)"));
if (!cspCase) throw new Error("the agents suite has no strict-CSP case");

test(`agents (page with a CSP without 'unsafe-eval'): ${cspCase.name}`, async () => {
  const frame = await strictCspFrame();
  try {
    // The page really forbids code generation, ajv included (no stub involved).
    refusedByPolicy(frame, "new Function", () => new frame.win.Function("return 1"));
    refusedByPolicy(frame, "eval", () => frame.win.eval("1"));
    const ajv = await frame.load<typeof AjvModule>("../../src/validation-ajv.ts");
    refusedByPolicy(frame, "ajv compile", () => ajv.createAjvValidator().compile({ type: "string" }));
    await settle();
    if (frame.violations.length !== 3 || frame.violations.some((v) => v.blockedURI !== "eval")) {
      throw new Error(`expected 3 eval violations, got ${frame.violations.map((v) => v.blockedURI).join(", ")}`);
    }
    frame.violations.length = 0;

    // The suite's own case, in the frame's realm, with the page's CSP doing the forbidding.
    const agents = await frame.load<typeof AgentsModule>("../conformance/agents.ts");
    const { AgentRegistry } = await frame.load<typeof RegistryModule>("../../src/registry.ts");
    const inFrame = agents.agentCases.find((c) => c.name === cspCase.name);
    if (!inFrame) throw new Error("the frame's agents suite has no strict-CSP case");
    ignoreStubs(frame.win);
    await inFrame.run({ registry: new AgentRegistry() });
    await settle();
    // One refusal: the case's control (ajv compiling at registration). None from the precompiled validator.
    if (frame.violations.length !== 1 || frame.violations[0]?.blockedURI !== "eval") {
      throw new Error(`expected 1 eval violation, got ${frame.violations.map((v) => v.blockedURI).join(", ")}`);
    }
  } finally {
    frame.remove();
  }
});
