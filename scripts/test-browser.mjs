// `npm run test:browser`: the shared suites in real Chromium through vitest browser mode.
// Without /usr/bin/chromium (or CHROMIUM_PATH) this fails under CI and skips elsewhere.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import process from "node:process";

const chromium = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const ci = !["", "0", "false"].includes((process.env.CI ?? "").toLowerCase());

if (!existsSync(chromium)) {
  const fix = "install it with `apt-get update && apt-get install -y chromium` (never `npx playwright install`)";
  if (ci) {
    console.error(`test:browser FAILED: Chromium not found at ${chromium} and CI is set; ${fix}`);
    process.exit(1);
  }
  console.log(`test:browser SKIPPED: Chromium not found at ${chromium}; ${fix}, or set CHROMIUM_PATH`);
  process.exit(0);
}

const vitest = new URL("../node_modules/vitest/vitest.mjs", import.meta.url);
const result = spawnSync(process.execPath, [
  vitest.pathname,
  "run",
  "--config",
  "vitest.browser.config.ts",
  ...process.argv.slice(2),
], {
  stdio: "inherit",
  env: { ...process.env, CHROMIUM_PATH: chromium },
});
process.exit(result.status ?? 1);
