// Build into the Python package's static/ directory, which `execlog serve` serves at `/`.
// `npm run dev` proxies the API to a running `execlog serve` (EXECLOG_DEV_API, default :8787).
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { constants, gzipSync } from "node:zlib";
import { build, type Plugin, type Rollup } from "vite";
import { defineConfig } from "vitest/config";
import react from "@vitejs/plugin-react";

const api = process.env.EXECLOG_DEV_API ?? "http://127.0.0.1:8787";

// src/boot.ts, bundled on its own and inlined as the page's first script: it runs while the
// parser reads index.html, before the app's bundle is even requested. It is told which chunks
// each route's view needs, so that it can have them loaded alongside the app's bundle.
const VIEW_MODULES: Record<string, string> = {
  session: "/src/views/SessionView.tsx",
  process: "/src/views/ProcessView.tsx",
  sessions: "/src/views/SessionsView.tsx",
};

type OutputBundle = Rollup.OutputBundle;
type OutputChunk = Rollup.OutputChunk;

function viewChunks(bundle: OutputBundle): Record<string, string[]> {
  const chunks = Object.values(bundle).filter((item): item is OutputChunk => item.type === "chunk");
  const byFile = new Map(chunks.map((chunk) => [chunk.fileName, chunk]));
  const files: Record<string, string[]> = {};
  for (const [route, module] of Object.entries(VIEW_MODULES)) {
    const view = chunks.find((chunk) => chunk.facadeModuleId?.endsWith(module));
    if (!view) continue;
    const needed = new Set<string>();
    const visit = (chunk: OutputChunk) => {
      if (chunk.isEntry || needed.has(chunk.fileName)) return;
      needed.add(chunk.fileName);
      chunk.imports.forEach((file) => {
        const imported = byFile.get(file);
        if (imported) visit(imported);
      });
    };
    visit(view);
    files[route] = [...needed].map((file) => `/${file}`);
  }
  return files;
}

function inlineBootScript(): Plugin {
  return {
    name: "execlog-inline-boot-script",
    apply: "build",
    transformIndexHtml: {
      order: "post",
      async handler(html, context) {
        const output = await build({
          configFile: false,
          logLevel: "warn",
          define: { __EXECLOG_VIEW_CHUNKS__: JSON.stringify(context.bundle ? viewChunks(context.bundle) : {}) },
          build: {
            write: false,
            minify: true,
            lib: { entry: "src/boot.ts", formats: ["iife"], name: "execlogBoot" },
          },
        });
        const outputs = (Array.isArray(output) ? output : [output]).flatMap((o) => ("output" in o ? o.output : []));
        const code = outputs.map((chunk) => (chunk.type === "chunk" ? chunk.code : "")).join("");
        // After the title (the charset stays first), before the stylesheet (a classic script
        // waits for the stylesheets above it).
        const script = `<script>${code.trim().replaceAll("</script", "<\\/script")}</script>`;
        return html.replace("</title>", `</title>\n    ${script}`);
      },
    },
  };
}

// Text files of the build get a gzip sibling (`app-1a2b.js.gz`), compressed once at the best
// level; `execlog serve` answers with it when the browser accepts gzip (execlog/api/webui.py),
// so a remote viewer downloads about a third of the bytes and the server compresses nothing.
const COMPRESSED = /\.(?:js|css|html|svg|json|txt)$/;
const COMPRESS_MIN_BYTES = 1024;

function precompress(outDir: string): Plugin {
  const walk = (directory: string): string[] =>
    readdirSync(directory).flatMap((name) => {
      const path = join(directory, name);
      return statSync(path).isDirectory() ? walk(path) : [path];
    });
  return {
    name: "execlog-precompress",
    apply: "build",
    closeBundle() {
      for (const path of walk(outDir)) {
        if (!COMPRESSED.test(path)) continue;
        const data = readFileSync(path);
        if (data.length < COMPRESS_MIN_BYTES) continue;
        writeFileSync(`${path}.gz`, gzipSync(data, { level: constants.Z_BEST_COMPRESSION }));
      }
    },
  };
}

const OUT_DIR = "../execlog/static";

export default defineConfig({
  plugins: [react(), inlineBootScript(), precompress(OUT_DIR)],
  build: {
    outDir: OUT_DIR,
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
