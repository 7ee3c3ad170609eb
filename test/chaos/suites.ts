/**
 * Registers the reliability suites (chaos, hostile input, robustness, retention, stress) for a list
 * of targets with one runner. Every runtime's shim calls this with the targets it can run.
 */

import { register, type Registrar } from "../conformance/harness.ts";
import { chaosCases } from "./chaos.ts";
import { hostileCases, hostileOnceCases, tamperCases } from "./hostile.ts";
import type { ReliabilityContext } from "./kit.ts";
import { retentionCases } from "./retention.ts";
import { robustnessCases } from "./robustness.ts";
import { stressCases, type StressSize } from "./stress.ts";
import type { ReliabilityTarget } from "./targets.ts";

/** What to register. */
export interface ReliabilityOptions {
  /** Seeds of the chaos suite: each seed runs the seeded cases again with other faults (default `[1]`). */
  seeds?: readonly number[];
  /** Stress size per target name; targets without one get no stress case. */
  stress?: Readonly<Record<string, StressSize>>;
  /** Register only these suites (default all). */
  only?: readonly ("chaos" | "hostile" | "robustness" | "retention" | "stress")[];
}

const NO_ROWS = "needs raw access to stored rows; the memory adapter keeps frozen objects, not rows";

/** Register every reliability suite for every target. */
export function registerReliabilitySuites(
  registrar: Registrar,
  targets: readonly ReliabilityTarget[],
  options: ReliabilityOptions = {},
): void {
  const want = (suite: "chaos" | "hostile" | "robustness" | "retention" | "stress") =>
    !options.only || options.only.includes(suite);
  targets.forEach((target, index) => {
    const setup = async () => {
      const opened = await target.open();
      const ctx: ReliabilityContext = {
        storage: opened.storage,
        target: target.name,
        durable: target.durable,
        ...(opened.tamper ? { tamper: opened.tamper } : {}),
      };
      return { ctx, teardown: () => opened.teardown() };
    };
    if (want("chaos")) {
      (options.seeds ?? [1]).forEach((seed, i) => {
        const cases = chaosCases(seed);
        // Unseeded cases run once, with the first seed.
        const picked = i === 0 ? cases : cases.filter((c) => c.name.includes("(seed"));
        register(registrar, `chaos[${target.name}]`, picked, setup);
      });
    }
    if (want("hostile")) {
      const tamper = tamperCases().map((c) => (target.tamper ? c : { ...c, skip: NO_ROWS }));
      register(registrar, `hostile[${target.name}]`, [...hostileCases, ...tamper], setup);
      if (index === 0) register(registrar, "hostile", hostileOnceCases, setup);
    }
    if (want("robustness")) register(registrar, `robustness[${target.name}]`, robustnessCases, setup);
    if (want("retention")) register(registrar, `retention[${target.name}]`, retentionCases, setup);
    const size = options.stress?.[target.name];
    if (want("stress") && size) register(registrar, `stress[${target.name}]`, stressCases(size), setup);
  });
}
