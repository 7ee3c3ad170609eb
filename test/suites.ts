/** Registers every shared suite for a list of targets with one runner. */

import { register, type Registrar } from "./conformance/harness.ts";
import { storageSuite } from "./conformance/storage.ts";
import type { Target } from "./targets.ts";

export function registerSuites(registrar: Registrar, targets: readonly Target[]): void {
  for (const target of targets) {
    register(registrar, `storage[${target.name}]`, storageSuite({ durable: target.durable }), async () => {
      const opened = await target.open();
      const extra: Array<() => Promise<void>> = [];
      const reopen = opened.reopen;
      return {
        ctx: {
          storage: opened.storage,
          ...(reopen
            ? {
              reopen: async () => {
                const s = await reopen();
                extra.push(() => s.close());
                return s;
              },
            }
            : {}),
        },
        teardown: async () => {
          for (const f of extra) await f();
          await opened.teardown();
        },
      };
    });
  }
}
