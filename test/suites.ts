/** Registers every shared suite for a list of targets with one runner. */

import { register, type Registrar } from "./conformance/harness.ts";
import { storageSuite } from "./conformance/storage.ts";
import { executorCases } from "./conformance/executor.ts";
import { jobCases } from "./conformance/jobs.ts";
import { jobPropertyCases } from "./conformance/jobs-property.ts";
import type { ExecContext } from "./conformance/executor-kit.ts";
import { queueCases, type QueueContext, ringQueueCases } from "./conformance/queue.ts";
import { RingQueue } from "../src/queue.ts";
import { unitCases } from "./conformance/units.ts";
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
    const execSetup = async () => {
      const opened = await target.open();
      const ctx: ExecContext = { storage: opened.storage, durable: target.durable };
      return { ctx, teardown: () => opened.teardown() };
    };
    register(registrar, `executor[${target.name}]`, executorCases, execSetup);
    register(registrar, `jobs[${target.name}]`, jobCases, execSetup);
    register(registrar, `jobs[${target.name}]`, jobPropertyCases(target.durable ? 5 : 30), execSetup);
  }
}

/** Registers the suites that need no storage (once per runner): the queue against `RingQueue`, backoff, ids. */
export function registerCoreSuites(registrar: Registrar): void {
  const setup = () => Promise.resolve({ ctx: { make: (n: number) => new RingQueue<number>(n) } as QueueContext });
  register(registrar, "queue[RingQueue]", [...queueCases, ...ringQueueCases], setup);
  register(registrar, "core", unitCases, () => Promise.resolve({ ctx: undefined }));
}
