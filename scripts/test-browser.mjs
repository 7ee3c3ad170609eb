// `npm run test:browser`: the shared suites in real Chromium through vitest browser mode.
// Without /usr/bin/chromium (or CHROMIUM_PATH) this fails under CI and skips elsewhere.
import { spawnSync } from "node:child_process";
import process from "node:process";
import { fileURLToPath } from "node:url";
import { chromiumPath, requireChromium } from "./chromium.mjs";

requireChromium("test:browser");

const vitest = new URL("../node_modules/vitest/vitest.mjs", import.meta.url);
const result = spawnSync(process.execPath, [
  fileURLToPath(vitest),
  "run",
  "--config",
  "vitest.browser.config.ts",
  ...process.argv.slice(2),
], {
  stdio: "inherit",
  env: { ...process.env, CHROMIUM_PATH: chromiumPath },
});
process.exit(result.status ?? 1);
