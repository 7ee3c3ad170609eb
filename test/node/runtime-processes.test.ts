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
import { afterAll, afterEach, beforeAll, expect, test } from "vitest";
import { openSqlJsFileStorage } from "../../adapters/sqljs-file.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
type Runtime = "deno" | "bun" | "node";
const command = (rt: Runtime, fixture: string, args: string[]): [string, string[]] => {
  const file = join(root, "test/fixtures", fixture);
  if (rt === "node") return [process.execPath, [join(root, "scripts/run-ts.mjs"), file, ...args]];
  return rt === "deno"
    ? [join(root, "node_modules/.bin/deno"), ["run", "-A", "--quiet", file, ...args]]
    : [join(root, "node_modules/.bin/bun"), [file, ...args]];
};
let dir = "";
/** Every child process a test started that has not exited yet (killed after each test). */
const live = new Set<{ kill(signal: NodeJS.Signals): void }>();
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "task-core-rt-proc-"));
});
afterEach(() => {
  // A test that failed or timed out midway leaves no process behind (a `forever` holder).
  for (const c of live) c.kill("SIGKILL");
  live.clear();
});
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

interface Child {
  lines: string[];
  /** Resolves with the first line matching `prefix` (a string it starts with, or a pattern). */
  line(prefix: string | RegExp): Promise<string>;
  /** Resolves once `enough(lines)` holds; rejects if the child's output ends first. */
  until(enough: (lines: string[]) => boolean, what: string): Promise<void>;
  /** Writes to the child's standard input (`stdin: true` only); `null` closes it. */
  send(text: string | null): void;
  kill(signal: NodeJS.Signals): void;
  /** Settles once the child exited and its output was read to the end ("close", not "exit"). */
  exited: Promise<{ code: number | null; signal: string | null; err: string }>;
}

function start(rt: Runtime, fixture: string, args: string[], { stdin = false } = {}): Child {
  const [cmd, argv] = command(rt, fixture, args);
  const p = spawn(cmd, argv, { cwd: root, stdio: [stdin ? "pipe" : "ignore", "pipe", "pipe"] });
  const lines: string[] = [];
  let buf = "";
  let err = "";
  const waiting = new Set<() => void>();
  p.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    const parts = buf.split("\n");
    buf = parts.pop()!;
    lines.push(...parts);
    for (const w of [...waiting]) w();
  });
  p.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const handle = { kill: (signal: NodeJS.Signals) => void p.kill(signal) };
  live.add(handle);
  // "close", not "exit": at "exit" the last lines may not have been read yet.
  const exited = new Promise<{ code: number | null; signal: string | null; err: string }>((resolve) =>
    p.on("close", (code, signal) => {
      live.delete(handle);
      resolve({ code, signal, err });
    })
  );
  const until = (enough: (lines: string[]) => boolean, what: string): Promise<void> =>
    new Promise((resolve, reject) => {
      const check = () => {
        if (!enough(lines)) return;
        waiting.delete(check);
        resolve();
      };
      waiting.add(check);
      check();
      void exited.then((e) => {
        waiting.delete(check);
        reject(new Error(`${rt} ${fixture} exited before ${what}: ${e.code ?? e.signal} ${e.err}`));
      });
    });
  const matches = (prefix: string | RegExp) => (l: string) =>
    typeof prefix === "string" ? l.startsWith(prefix) : prefix.test(l);
  return {
    lines,
    line: async (prefix) => {
      await until((ls) => ls.some(matches(prefix)), `"${prefix}"`);
      return lines.find(matches(prefix))!;
    },
    until,
    send: (text) => (text === null ? p.stdin!.end() : void p.stdin!.write(text)),
    kill: handle.kill,
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
      expect(await refused.line(/^(OPEN|BLOCKED) /), `${second} while ${first} holds it`).toMatch(
        /^BLOCKED \w+ StorageBlockedError/,
      );
      holder.kill("SIGKILL");
      await holder.exited;
      const taker = start(second, "lock-child.ts", [path, "10"]);
      expect(await taker.line(/^(OPEN|BLOCKED) /), `${second} after ${first} was killed`).toMatch(/^OPEN/);
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
    let pid = 0;
    try {
      let out = "";
      let ended = false;
      parent.stdout.on("data", (d: Buffer) => (out += d.toString()));
      parent.stdout.on("end", () => (ended = true));
      while (!/OPEN/.test(out)) {
        if (ended) throw new Error(`the Deno holder never opened: ${out}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      pid = Number(/PID (\d+)/.exec(out)![1]);
      process.kill(pid, "SIGKILL");
      for (;;) {
        const stat = await readFile(`/proc/${pid}/stat`, "utf8").catch(() => null);
        if (stat === null) throw new Error(`process ${pid} was reaped: no zombie to test with`);
        if (/\) Z /.test(stat)) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const taker = start("bun", "lock-child.ts", [path, "10"]);
      expect(await taker.line(/^(OPEN|BLOCKED)/), "the zombie holds no files").toMatch(/^OPEN/);
      expect((await taker.exited).code).toBe(0);
    } finally {
      // The holder too, should the test have failed before it was killed: `sleep` does not take it down.
      if (pid) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
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
    // Each child loads sql.js and says READY; once all have, they are told one moment to open
    // at, however long each took to start. The one that opens holds the lock until every
    // child has answered (its standard input closed), so a slow child cannot come after it
    // closed and open a free database.
    const children = (["deno", "bun", round % 2 ? "deno" : "bun"] as const).map((rt) =>
      start(rt, "lock-child.ts", [path, "stdin", "", "stdin"], { stdin: true })
    );
    try {
      await Promise.all(children.map((c) => c.line("READY")));
      const at = Date.now() + 100;
      for (const c of children) c.send(`GO ${at}\n`);
      const first = await Promise.all(children.map((c) => c.line(/^(OPEN|BLOCKED) /)));
      for (const c of children) c.send(null);
      const exits = await Promise.all(children.map((c) => c.exited));
      expect(first.filter((l) => l.startsWith("OPEN")), `round ${round}: ${first.join(" | ")}`).toHaveLength(1);
      for (const [i, e] of exits.entries()) expect(e.code, `round ${round}, child ${i}: ${e.err}`).toBe(0);
      expect(existsSync(`${path}.lock`), "the one that opened let go of it").toBe(false);
    } finally {
      for (const c of children) c.kill("SIGKILL");
    }
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
        // Stopped at another point of the run each time: before any task completed, then
        // once this child has completed that many (tasks are in flight), never after a sleep.
        const after = [0, 1, 15, 60, 150][i]!;
        await child.until((ls) => ls.filter((l) => l.startsWith("done ")).length >= after, `${after} completions`);
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

test(
  "deno: an open refused for want of a permission (--allow-sys, --allow-write) is a StorageSetupError, not a " +
    "StorageError that trying again could cure",
  async () => {
    const deno = join(root, "node_modules/.bin/deno");
    const fixture = join(root, "test/fixtures/lock-child.ts");
    const run = (flags: string[], path: string) =>
      new Promise<string>((resolve, reject) => {
        const p = spawn(deno, ["run", "--quiet", ...flags, fixture, path, "10"], {
          cwd: root,
          stdio: ["ignore", "pipe", "pipe"],
        });
        live.add(p);
        let out = "";
        let err = "";
        p.stdout.on("data", (d: Buffer) => (out += d.toString()));
        p.stderr.on("data", (d: Buffer) => (err += d.toString()));
        p.on("close", (code) => {
          live.delete(p);
          if (code === 0) resolve(out.split("\n")[0] ?? "");
          else reject(new Error(`deno ${flags.join(" ")}: exit ${code} ${err}`));
        });
      });
    const writable = join(dir, "perm");
    // No --allow-sys: the lock cannot name this host.
    expect(await run(["--allow-read", `--allow-write=${writable}`], join(writable, "a", "db.sqlite"))).toMatch(
      /^BLOCKED deno StorageSetupError .*--allow-sys/,
    );
    // Writes allowed elsewhere only.
    expect(await run(["--allow-read", "--allow-sys", `--allow-write=${writable}`], join(dir, "elsewhere.sqlite")))
      .toMatch(/^BLOCKED deno StorageSetupError .*--allow-write/);
    // Everything it needs: it opens.
    expect(await run(["--allow-read", "--allow-sys=hostname", `--allow-write=${writable}`], join(writable, "b.sqlite")))
      .toMatch(/^OPEN deno /);
  },
  60_000,
);

/** Run `fixture` in `rt` until it prints DONE; it must then exit by itself, with code 0, within 10 s. */
async function exitsAfterDone(rt: Runtime, fixture: string): Promise<void> {
  const child = start(rt, fixture, []);
  await child.line("DONE");
  const exit = await Promise.race([child.exited, new Promise<null>((r) => setTimeout(() => r(null), 10_000))]);
  if (exit === null) child.kill("SIGKILL");
  expect(exit, `${rt} still running 10 s after DONE`).not.toBeNull();
  expect(exit!.code, exit!.err).toBe(0);
}

for (const rt of ["node", "deno", "bun"] as const) {
  test(
    `${rt}: an executor in a process with an emulated DOM (a document global) lets the process exit after shutdown`,
    () => exitsAfterDone(rt, "fake-dom-child.ts"),
    30_000,
  );
}

for (const rt of ["deno", "bun"] as const) {
  test(
    `${rt}: an IndexedDB storage left open (its BroadcastChannel armed) does not keep the process alive`,
    () => exitsAfterDone(rt, "left-open-child.ts"),
    30_000,
  );
}
