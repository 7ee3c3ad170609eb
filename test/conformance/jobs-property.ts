/**
 * Property-based job test: random DAGs of up to 200 tasks with random failing agents.
 * Invariants: no task starts before all its dependencies are satisfied, every task ends in
 * a final status, the job ends exactly once, and a failed task's descendants never run.
 */

import fc from "fast-check";
import { NonRetryableError } from "../../src/errors.ts";
import { isFinal, isSatisfied } from "../../src/status.ts";
import type { JsonValue, TaskSpec } from "../../src/types.ts";
import { equal, ok } from "./assert.ts";
import { agent, type ExecContext, harness } from "./executor-kit.ts";
import type { Case } from "./harness.ts";

interface Node {
  deps: number[];
  fails: boolean;
}

const dagArb = fc.integer({ min: 1, max: 200 }).chain((n) =>
  fc.array(
    fc.record({
      deps: fc.uniqueArray(fc.nat({ max: 1_000_000 }), { maxLength: 3 }),
      fails: fc.double({ min: 0, max: 1, noNaN: true }).map((x) => x < 0.08),
    }),
    { minLength: n, maxLength: n },
  ).map((raw) =>
    raw.map((r, i): Node => ({ deps: i === 0 ? [] : [...new Set(r.deps.map((d) => d % i))], fails: r.fails }))
  )
);

async function runDag(ctx: ExecContext, nodes: Node[]): Promise<void> {
  const violations: string[] = [];
  const ran = new Map<string, number>();
  const worker = agent("node", async (input, c) => {
    const deps = await c.storage.getTasks(c.task.dependencies);
    for (const d of deps) if (!isSatisfied(d)) violations.push(`${c.task.key} started before ${d.key} (${d.status})`);
    ran.set(c.task.key, (ran.get(c.task.key) ?? 0) + 1);
    if ((input as { fails: boolean }).fails) throw new NonRetryableError("planned failure");
    return c.task.key;
  });
  const { executor } = harness(ctx.storage, [worker], { maxWorkers: 5 });
  let ends = 0;
  for (const e of ["job:completed", "job:failed", "job:cancelled"] as const) executor.on(e, () => ends++);
  executor.start();
  const tasks: TaskSpec[] = nodes.map((n, i) => ({
    key: `t${i}`,
    agent: "node",
    input: { fails: n.fails } as JsonValue,
    dependsOn: n.deps.map((d) => `t${d}`),
  }));
  const job = await executor.submit({ name: "random", tasks });
  await job.wait().catch(() => {});
  await executor.shutdown();
  equal(violations.length, 0, violations.join("; "));
  const stored = await job.tasks();
  ok(stored.every((t) => isFinal(t)), "every task final");
  equal(ends, 1, "job ended once");
  // Descendants of failed tasks never ran.
  const failed = new Set(nodes.flatMap((n, i) => (n.fails && ran.has(`t${i}`) ? [i] : [])));
  const doomed = new Set<number>();
  nodes.forEach((n, i) => {
    if (n.deps.some((d) => failed.has(d) || doomed.has(d))) doomed.add(i);
  });
  for (const i of doomed) ok(!ran.has(`t${i}`), `descendant t${i} of a failed task ran`);
  for (const [key, count] of ran) equal(count, 1, `${key} ran ${count} times`);
  const expectedStatus = (i: number) => (doomed.has(i) ? "cancelled" : nodes[i]!.fails ? "failed" : "completed");
  for (const t of stored) equal(t.status, expectedStatus(Number(t.key.slice(1))), `status of ${t.key}`);
}

export function jobPropertyCases(runs: number): Case<ExecContext>[] {
  return [{
    name: `random DAGs (up to 200 tasks, ${runs} runs) keep the scheduling invariants`,
    async run(ctx) {
      // Each run gets a fresh job on the same storage; jobs never interfere.
      await fc.assert(fc.asyncProperty(dagArb, (nodes) => runDag(ctx, nodes)), { numRuns: runs });
    },
  }];
}
