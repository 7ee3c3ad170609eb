// Vite config of the browser demo: `npm run demo` serves it, `npm run build:demo` builds
// a static site into demo/dist (relative URLs, so it works from any path and offline).
import { defineConfig } from "vite";

export default defineConfig({
  base: "./",
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    // The sql.js WASM stays a file of its own (fetched from the same origin, never inlined).
    assetsInlineLimit: 0,
    chunkSizeWarningLimit: 1000,
    rolldownOptions: {
      // task-core's errors take their `name` from their class (`new.target.name`): keep
      // class names through minification, or a stored error would read "t: ..." instead
      // of "NonRetryableError: ...".
      output: { keepNames: true },
    },
  },
  server: { host: "127.0.0.1" },
  preview: { host: "127.0.0.1" },
});
