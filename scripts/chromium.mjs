// Debian's Chromium for the browser suites, the end-to-end tests and the IndexedDB
// benchmark: where it is, the flags every launch uses, and what to do without it.
import { existsSync } from "node:fs";
import process from "node:process";

/** The Chromium binary (`CHROMIUM_PATH` overrides). */
export const chromiumPath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** Flags of every launch: no sandbox (containers), no GPU, and nothing that talks to the network on its own. */
export const chromiumArgs = Object.freeze([
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
]);

/** Exit when Chromium is missing: `what` fails when CI is set and is skipped otherwise. */
export function requireChromium(what) {
  if (existsSync(chromiumPath)) return;
  const ci = !["", "0", "false"].includes((process.env.CI ?? "").toLowerCase());
  const fix = "install it with `apt-get update && apt-get install -y chromium` (never `npx playwright install`)";
  if (ci) {
    console.error(`${what} FAILED: Chromium not found at ${chromiumPath} and CI is set; ${fix}`);
    process.exit(1);
  }
  console.log(`${what} SKIPPED: Chromium not found at ${chromiumPath}; ${fix}, or set CHROMIUM_PATH`);
  process.exit(0);
}
