/**
 * The sql.js file storage across Deno and Bun processes: the `<path>.lock` (a second
 * process refused while the first lives, taken over once it was SIGKILLed, never two
 * open of several starting at once on a stale lock) and a graceful stop on SIGINT or
 * SIGTERM (`run(signal)` resolves, the state is saved, the process exits by itself, no
 * unhandled rejection).
 */
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdtemp, readFile, readlink, rm, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, test } from "vitest";
import { openSqlJsFileStorage } from "../../adapters/sqljs-file.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
type Runtime = "deno" | "bun";
const command = (rt: Runtime, fixture: string, args: string[]): [string, string[]] => {
  const file = join(root, "test/fixtures", fixture);
  return rt === "deno"
    ? [join(root, "node_modules/.bin/deno"), ["run", "-A", "--quiet", file, ...args]]
    : [join(root, "node_modules/.bin/bun"), [file, ...args]];
};
let dir = "";
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "task-core-rt-proc-"));
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Child {
  lines: string[];
  /** Resolves with the first line starting with `prefix`. */
  line(prefix: string): Promise<string>;
  kill(signal: NodeJS.Signals): void;
  exited: Promise<{ code: number | null; signal: string | null; err: string }>;
}

function start(rt: Runtime, fixture: string, args: string[]): Child {
  const [cmd, argv] = command(rt, fixture, args);
  const p = spawn(cmd, argv, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let buf = "";
  let err = "";
  const waiting: [string, (l: string) => void][] = [];
  p.stdout.on("data", (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split("\n");
    buf = parts.pop()!;
    for (const l of parts) {
      lines.push(l);
      for (const w of waiting.filter(([prefix]) => l.startsWith(prefix))) {
        waiting.splice(waiting.indexOf(w), 1);
        w[1](l);
      }
    }
  });
  p.stderr.on("data", (d: Buffer) => (err += d.toString()));
  const exited = new Promise<{ code: number | null; signal: string | null; err: string }>((resolve) =>
    p.on("exit", (code, signal) => resolve({ code, signal, err }))
  );
  return {
    lines,
    line: (prefix) =>
      new Promise((resolve, reject) => {
        const found = lines.find((l) => l.startsWith(prefix));
        if (found) return resolve(found);
        waiting.push([prefix, resolve]);
        void exited.then((e) => reject(new Error(`exited before "${prefix}": ${e.code} ${e.err}`)));
      }),
    kill: (signal) => p.kill(signal),
    exited,
  };
}

test(
  "a database open in Deno is refused in Bun and vice versa while it lives, and taken over once SIGKILLed",
  async () => {
    for (const [first, second] of [["deno", "bun"], ["bun", "deno"], ["deno", "deno"], ["bun", "bun"]] as const) {
      const path = join(dir, `held-${first}-${second}.sqlite`);
      const holder = start(first, "lock-child.ts", [path, "forever"]);
      await holder.line("OPEN");
      const refused = start(second, "lock-child.ts", [path, "10"]);
      expect(await refused.line(""), `${second} while ${first} holds it`).toMatch(/^BLOCKED \w+ StorageBlockedError/);
      holder.kill("SIGKILL");
      await holder.exited;
      const taker = start(second, "lock-child.ts", [path, "10"]);
      expect(await taker.line(""), `${second} after ${first} was killed`).toMatch(/^OPEN/);
      expect((await taker.exited).code).toBe(0);
      expect(existsSync(`${path}.lock`), "closed: no lock left").toBe(false);
    }
  },
  120_000,
);

test(
  "a lock whose holder was SIGKILLed is taken over while the holder is a zombie (its parent never reaps it; " +
    "Linux only: skipped elsewhere, as zombies are read from /proc)",
  async (t) => {
    if (process.platform !== "linux") return t.skip();
    const path = join(dir, "zombie.sqlite");
    const [deno, argv] = command("deno", "lock-child.ts", [path, "forever"]);
    // The shell execs `sleep`, which inherits the Deno child and never collects its exit status.
    const parent = spawn("sh", [
      "-c",
      `"${deno}" ${argv.map((a) => `"${a}"`).join(" ")} & echo PID $!; exec sleep 120`,
    ], {
      cwd: root,
      stdio: ["ignore", "pipe", "ignore"],
    });
    try {
      let out = "";
      parent.stdout.on("data", (d: Buffer) => (out += d.toString()));
      while (!/OPEN/.test(out)) await new Promise((r) => setTimeout(r, 20));
      const pid = Number(/PID (\d+)/.exec(out)![1]);
      process.kill(pid, "SIGKILL");
      while (!/\) Z /.test(await readFile(`/proc/${pid}/stat`, "utf8").catch(() => ""))) {
        await new Promise((r) => setTimeout(r, 20));
      }
      const taker = start("bun", "lock-child.ts", [path, "10"]);
      expect(await taker.line(""), "the zombie holds no files").toMatch(/^OPEN/);
      expect((await taker.exited).code).toBe(0);
    } finally {
      parent.kill("SIGKILL");
    }
  },
  60_000,
);

test("Deno and Bun processes taking over one stale lock at the same moment never both open it", async () => {
  const place = `${(await readFile("/proc/sys/kernel/random/boot_id", "utf8").catch(() => "")).trim()} ${await readlink(
    "/proc/self/ns/pid",
  ).catch(() => "")}`;
  let rounds = 0;
  for (let round = 0; round < 6; round++) {
    const path = join(dir, `race-${round}.sqlite`);
    // Left by a process that died (no process has this id).
    await writeFile(`${path}.lock`, `${2 ** 22 + 1}\n${hostname()}\ndeadbeef\n${place}\n`);
    const at = Date.now() + 2500;
    const children = (["deno", "bun", round % 2 ? "deno" : "bun"] as const).map((rt) =>
      start(rt, "lock-child.ts", [path, "1500", "", String(at)])
    );
    const first = await Promise.all(children.map((c) => c.line("")));
    await Promise.all(children.map((c) => c.exited));
    expect(first.filter((l) => l.startsWith("OPEN")), `round ${round}: ${first.join(" | ")}`).toHaveLength(1);
    rounds++;
  }
  expect(rounds).toBe(6);
}, 120_000);

for (const rt of ["deno", "bun"] as const) {
  test(
    `${rt}: SIGINT and SIGTERM stop the executor gracefully; state saved, the process exits, nothing unhandled`,
    async () => {
      const path = join(dir, `signals-${rt}.sqlite`);
      const done = new Set<string>();
      let stops = 0;
      for (const [i, signal] of (["SIGINT", "SIGTERM", "SIGINT", "SIGTERM", "SIGTERM"] as const).entries()) {
        const child = start(rt, "signal-child.ts", [path]);
        await child.line("READY");
        await new Promise((r) => setTimeout(r, i === 0 ? 0 : Math.random() * 1200));
        child.kill(signal);
        const exit = await Promise.race([
          child.exited,
          new Promise<null>((r) => setTimeout(() => r(null), 15_000)),
        ]);
        if (exit === null) child.kill("SIGKILL");
        expect(exit, `${rt} exits after ${signal}`).not.toBeNull();
        expect(exit!.code, `${rt} after ${signal}: ${exit!.err}`).toBe(0);
        expect(child.lines).toContain("STOPPED");
        expect(child.lines.filter((l) => l.startsWith("UNHANDLED"))).toEqual([]);
        expect(existsSync(`${path}.lock`), "the lock is let go").toBe(false);
        for (const l of child.lines) if (l.startsWith("done ")) done.add(l.slice(5));
        stops++;
        const storage = await openSqlJsFileStorage(path);
        try {
          const tasks = await storage.listTasks({});
          const byKey = new Map(tasks.map((t) => [t.key, t]));
          for (const key of done) expect(byKey.get(key)?.status, key).toBe("completed");
          expect(tasks.filter((t) => t.status === "running"), "running tasks handed back").toEqual([]);
        } finally {
          await storage.close();
        }
      }
      expect(stops).toBe(5);
    },
    180_000,
  );
}
