// Build into the Python package's static/ directory, which `execlog serve` serves at `/`.
// `npm run dev` proxies the API to a running `execlog serve` (EXECLOG_DEV_API, default :8787).
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

const api = process.env.EXECLOG_DEV_API ?? "http://127.0.0.1:8787";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "../execlog/static",
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 600,
  },
  server: {
    proxy: { "/api": { target: api, ws: true, changeOrigin: false } },
  },
  test: {
    include: ["tests/**/*.test.ts"],
    environment: "node",
  },
});
