/**
 * Vitest browser mode: the shared suites in real Chromium (`npm run test:browser`, which
 * goes through scripts/test-browser.mjs to check that Chromium is installed).
 *
 * Chromium comes from Debian (`apt-get install -y chromium`), never from
 * `npx playwright install`. The context is persistent (a fresh profile directory per
 * run), so IndexedDB writes go to disk as they do for users, not to incognito memory.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { playwright } from "@vitest/browser-playwright";
import { defineConfig } from "vitest/config";

/** Where Chromium lives (`CHROMIUM_PATH` overrides). */
const executablePath = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

/** A fresh profile per run, removed when vitest exits. */
const profile = mkdtempSync(join(tmpdir(), "task-core-chromium-"));
process.on("exit", () => rmSync(profile, { recursive: true, force: true }));

export default defineConfig({
  test: {
    include: ["test/browser/**/*.test.ts"],
    testTimeout: 30_000,
    fileParallelism: false,
    browser: {
      enabled: true,
      headless: true,
      screenshotFailures: false,
      provider: playwright({
        persistentContext: profile,
        launchOptions: {
          executablePath,
          args: [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
          ],
        },
      }),
      instances: [{ browser: "chromium" }],
    },
  },
});
