/**
 * The sql.js file storage in Deno and Bun on a full disk, a read-only file system and a
 * path that is a folder, on a 2 MB tmpfs (mounted here: root only, skipped otherwise).
 * A full disk fails calls with `StorageQuotaError` and loses nothing acknowledged; a
 * storage closed on a full disk leaves no half-written snapshot holding the space, so the
 * database opens again; an open that cannot work until a path or permission changes is a
 * `StorageSetupError`.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { mkdirSync, readdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, expect, test } from "vitest";

const root = fileURLToPath(new URL("../..", import.meta.url));
const mnt = `/tmp/task-core-disk-${process.pid}`;
let mounted = false;
/** Children not exited yet: a test that failed or timed out midway must not keep the tmpfs busy. */
const live = new Map<ChildProcess, Promise<void>>();
beforeAll(() => {
  if (process.getuid?.() !== 0) return;
  mkdirSync(mnt, { recursive: true });
  try {
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m", "tmpfs", mnt], { stdio: "ignore" });
    mounted = true;
  } catch {
    // no mount here (a container without the capability)
  }
});
afterAll(async () => {
  for (const child of live.keys()) child.kill("SIGKILL");
  await Promise.all(live.values());
  if (mounted) {
    try {
      execFileSync("umount", [mnt], { stdio: "ignore" });
    } catch {
      execFileSync("umount", ["-l", mnt], { stdio: "ignore" }); // still busy: detach it now, freed when let go
    }
  }
  rmSync(mnt, { recursive: true, force: true });
});

type Runtime = "deno" | "bun";
function run(rt: Runtime, args: string[]): Promise<string[]> {
  const file = join(root, "test/fixtures/disk-child.ts");
  const [cmd, argv] = rt === "deno"
    ? [join(root, "node_modules/.bin/deno"), ["run", "-A", "--quiet", file, ...args]]
    : [join(root, "node_modules/.bin/bun"), [file, ...args]];
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, argv, { cwd: root, stdio: ["ignore", "pipe", "pipe"] });
    live.set(p, new Promise((r) => p.on("close", () => r())));
    let out = "";
    let err = "";
    const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
    p.stdout.on("data", (d: Buffer) => (out += d.toString()));
    p.stderr.on("data", (d: Buffer) => (err += d.toString()));
    // "close", not "exit": at "exit" the last lines may not have been read yet.
    p.on("close", (code) => {
      live.delete(p);
      clearTimeout(timer);
      if (code === 0) resolve(out.trim().split("\n"));
      else reject(new Error(`${rt} ${args.join(" ")}: ${code} ${err}`));
    });
  });
}

const wipe = () => {
  for (const f of readdirSync(mnt)) rmSync(join(mnt, f), { recursive: true, force: true });
};

for (const rt of ["deno", "bun"] as const) {
  test(
    `${rt}: a full disk fails calls with StorageQuotaError, loses nothing acknowledged, and the closed database opens ` +
      "again (skipped unless root can mount a 2 MB tmpfs)",
    async (t) => {
      if (!mounted) return t.skip();
      wipe();
      const path = join(mnt, "db.sqlite");
      const lines = await run(rt, ["fill-close", path]);
      const acks = lines.filter((l) => l.startsWith("ACK ")).map((l) => l.slice(4));
      const fails = lines.filter((l) => l.startsWith("FAIL"));
      expect(acks.length).toBeGreaterThan(3);
      expect(fails.length).toBeGreaterThan(0);
      for (const f of fails) expect(f).toMatch(/^FAIL StorageQuotaError /);
      expect(lines).toContain("CLOSED");
      expect(lines.filter((l) => l.startsWith("UNHANDLED"))).toEqual([]);
      expect(readdirSync(mnt).sort(), "nothing half-written or left behind").toEqual(["db.sqlite", "db.sqlite.tclog"]);
      // Reopened in the other runtime: every acknowledged job is there.
      const checked = await run(rt === "deno" ? "bun" : "deno", ["check", path, acks.join(",")]);
      expect(checked.filter((l) => !l.startsWith("CHECKED")), checked.join("\n")).toEqual([]);
      // Not a byte left: an open fails with StorageQuotaError and leaves no file behind.
      try {
        execFileSync("dd", ["if=/dev/zero", `of=${join(mnt, "filler")}`, "bs=4096"], { stdio: "ignore" });
      } catch {
        // stops at ENOSPC
      }
      for (let i = 0; i < 3; i++) expect((await run(rt, ["open", path]))[0]).toMatch(/^FAIL StorageQuotaError /);
      expect(readdirSync(mnt).sort(), "no lock files left by the refused opens").toEqual([
        "db.sqlite",
        "db.sqlite.tclog",
        "filler",
      ]);
      rmSync(join(mnt, "filler"));
      expect((await run(rt, ["open", path]))[0]).toMatch(/^OPEN /);
    },
    120_000,
  );

  test(
    `${rt}: a path that is a folder or on a read-only file system is refused with StorageSetupError (skipped unless root can mount a tmpfs)`,
    async (t) => {
      if (!mounted) return t.skip();
      wipe();
      mkdirSync(join(mnt, "folder.sqlite"));
      expect((await run(rt, ["open", join(mnt, "folder.sqlite")]))[0]).toMatch(/^FAIL StorageSetupError /);
      expect(await run(rt, ["open", join(mnt, "db.sqlite")])).toEqual(["OPEN 0"]);
      execFileSync("mount", ["-o", "remount,ro", mnt]);
      try {
        expect((await run(rt, ["open", join(mnt, "db.sqlite")]))[0]).toMatch(/^FAIL StorageSetupError .*EROFS/);
        expect((await run(rt, ["open", join(mnt, "new", "db.sqlite")]))[0]).toMatch(/^FAIL StorageSetupError /);
      } finally {
        execFileSync("mount", ["-o", "remount,rw", mnt]);
      }
      expect(await run(rt, ["open", join(mnt, "db.sqlite")])).toEqual(["OPEN 0"]);
    },
    120_000,
  );
}
