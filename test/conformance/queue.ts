/**
 * The queue suite: the contract of the executor's ready queue (`Queue` in src/queue.ts),
 * run against `RingQueue` and against any `QueueFactory` a user brings — in every runtime.
 * FIFO order, the capacity bound, `push` waiting for room, `pop` waiting for an item,
 * `close` waking every waiter, and `drain`.
 */

import { type QueueFactory, RingQueue } from "../../src/queue.ts";
import { deepEqual, equal, ok, rejects, throws } from "./assert.ts";
import type { Case } from "./harness.ts";

/** What every queue case receives: a way to build the queue under test. */
export interface QueueContext {
  make: QueueFactory<number>;
}

/** Let every pending promise reaction run (a waiter that should not wake stays asleep). */
async function settle(): Promise<void> {
  for (let i = 0; i < 10; i++) await Promise.resolve();
}

export const queueCases: Case<QueueContext>[] = [
  {
    name: "tryPush and tryPop keep FIFO order across the ring's wrap-around",
    run({ make }) {
      const q = make(3);
      equal(q.capacity, 3);
      const out: number[] = [];
      for (let i = 0; i < 10; i++) {
        ok(q.tryPush(i));
        if (i % 2 === 1) {
          out.push(q.tryPop()!);
          out.push(q.tryPop()!);
        }
      }
      deepEqual(out, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
      equal(q.size, 0);
      equal(q.tryPop(), undefined);
    },
  },
  {
    name: "tryPush refuses past capacity; size never exceeds it",
    run({ make }) {
      const q = make(2);
      ok(q.tryPush(1));
      ok(q.tryPush(2));
      equal(q.tryPush(3), false);
      equal(q.size, 2);
      equal(q.tryPop(), 1);
      ok(q.tryPush(3));
      equal(q.size, 2);
      deepEqual(q.drain(), [2, 3]);
    },
  },
  {
    name: "push waits for room (backpressure) and enters in order once items are taken",
    async run({ make }) {
      const q = make(1);
      await q.push(1);
      const entered: number[] = [];
      const p2 = q.push(2).then(() => entered.push(2));
      const p3 = q.push(3).then(() => entered.push(3));
      await settle();
      deepEqual(entered, []);
      equal(q.size, 1);
      equal(q.tryPop(), 1);
      await p2;
      deepEqual(entered, [2]);
      equal(q.size, 1);
      equal(await q.pop(), 2);
      await p3;
      deepEqual(entered, [2, 3]);
      equal(await q.pop(), 3);
      equal(q.size, 0);
    },
  },
  {
    name: "pop waits for an item; waiting pops are served in order",
    async run({ make }) {
      const q = make(4);
      const got: number[] = [];
      const a = q.pop().then((v) => got.push(v!));
      const b = q.pop().then((v) => got.push(v!));
      await settle();
      deepEqual(got, []);
      ok(q.tryPush(7));
      ok(q.tryPush(8));
      await Promise.all([a, b]);
      deepEqual(got, [7, 8]);
      equal(q.size, 0, "items handed to waiting pops are not also kept");
    },
  },
  {
    name: "close wakes waiting pops with undefined and rejects waiting pushes; nothing enters after it",
    async run({ make }) {
      const empty = make(1);
      const popped = empty.pop();
      empty.close();
      equal(await popped, undefined);
      equal(empty.closed, true);
      equal(await empty.pop(), undefined);
      equal(empty.tryPush(1), false);
      await rejects(() => empty.push(1), Error, "closed");

      const full = make(1);
      ok(full.tryPush(1));
      const waiting = full.push(2);
      full.close();
      await rejects(() => waiting, Error, "closed");
      // What was in the queue can still be taken (shutdown hands those tasks back).
      equal(full.size, 1);
      equal(await full.pop(), 1);
      equal(await full.pop(), undefined);
      full.close(); // twice is harmless
    },
  },
  {
    name: "drain takes every item out in order and lets waiting pushes in",
    async run({ make }) {
      const q = make(2);
      ok(q.tryPush(1));
      ok(q.tryPush(2));
      const third = q.push(3);
      const all = q.drain();
      await third;
      // The waiting push entered as room appeared: drained with the rest, or left queued.
      ok(
        JSON.stringify(all) === "[1,2,3]" || (JSON.stringify(all) === "[1,2]" && q.tryPop() === 3),
        JSON.stringify(all),
      );
      equal(q.size, 0);
      deepEqual(q.drain(), []);
    },
  },
  {
    name: "a large number of items passes through a small queue in order (O(1) per operation)",
    async run({ make }) {
      const q = make(8);
      const n = 20_000;
      let next = 0;
      const producer = (async () => {
        for (let i = 0; i < n; i++) await q.push(i);
        q.close();
      })();
      for (let v = await q.pop(); v !== undefined; v = await q.pop()) {
        equal(v, next++);
        ok(q.size <= 8);
      }
      await producer;
      equal(next, n);
    },
  },
  {
    name: "thousands of waiting pops and pushes are served in arrival order, also while more arrive",
    async run({ make }) {
      // Enough waiters that a list of them drops its served front more than once.
      const q = make(1);
      const received: (number | undefined)[] = [];
      const pops: Promise<void>[] = [];
      const waitPop = () => {
        const w = pops.length;
        pops.push(q.pop().then((v) => void (received[w] = v)));
      };
      while (pops.length < 3000) waitPop();
      for (let v = 0; v < 2500; v++) {
        ok(q.tryPush(v));
        if (v % 2 === 0) waitPop(); // one more arrives while they are served
      }
      equal(q.size, 0, "every item went to a waiting pop");
      q.close();
      await Promise.all(pops);
      for (let w = 0; w < pops.length; w++) equal(received[w], w < 2500 ? w : undefined, `pop ${w}`);

      const p = make(1);
      ok(p.tryPush(-1));
      const outcome: string[] = [];
      const pushes: Promise<void>[] = [];
      for (let i = 0; i < 3000; i++) {
        pushes.push(p.push(i).then(() => void (outcome[i] = "in"), () => void (outcome[i] = "refused")));
      }
      const out: (number | undefined)[] = [];
      for (let i = 0; i < 2000; i++) out.push(p.tryPop());
      deepEqual(out, Array.from({ length: 2000 }, (_, i) => i - 1), "items in the order their pushes waited");
      p.close();
      await Promise.all(pushes);
      deepEqual(p.drain(), [1999]);
      for (let i = 0; i < 3000; i++) equal(outcome[i], i < 2000 ? "in" : "refused", `push ${i}`);
    },
  },
];

/** `RingQueue`'s own checks beyond the contract: its capacity must be a positive integer. */
export const ringQueueCases: Case<QueueContext>[] = [
  {
    name: "RingQueue refuses a capacity that is not a positive integer",
    run() {
      for (const bad of [0, -1, 1.5, Number.NaN, Infinity]) {
        throws(() => new RingQueue(bad), RangeError, "capacity");
      }
    },
  },
];
