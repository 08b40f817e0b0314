// Build into the Python package's static/ directory, which `execlog serve` serves at `/`.
// `npm run dev` proxies the API to a running `execlog serve` (EXECLOG_DEV_API, default :8787).
import { build, type Plugin } from "vite";
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

const api = process.env.EXECLOG_DEV_API ?? "http://127.0.0.1:8787";

// src/boot.ts, bundled on its own and inlined as the page's first script: it runs while the
// parser reads index.html, before the app's bundle is even requested.
function inlineBootScript(): Plugin {
  return {
    name: "execlog-inline-boot-script",
    apply: "build",
    async transformIndexHtml(html) {
      const output = await build({
        configFile: false,
        logLevel: "warn",
        build: {
          write: false,
          minify: true,
          lib: { entry: "src/boot.ts", formats: ["iife"], name: "execlogBoot" },
        },
      });
      const chunks = (Array.isArray(output) ? output : [output]).flatMap((o) => ("output" in o ? o.output : []));
      const code = chunks.map((chunk) => (chunk.type === "chunk" ? chunk.code : "")).join("");
      // After the title (the charset stays first), before the stylesheet (a classic script waits
      // for the stylesheets above it).
      const script = `<script>${code.trim().replaceAll("</script", "<\\/script")}</script>`;
      return html.replace("</title>", `</title>\n    ${script}`);
    },
  };
}

export default defineConfig({
  plugins: [react(), inlineBootScript()],
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
