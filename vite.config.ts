import { gzipSync } from 'node:zlib';
import react from '@vitejs/plugin-react';
import { type Plugin, defineConfig } from 'vite';

/** Prints what a first visit downloads before the viewer chunk: the entry and its static imports. */
function initialBundleSize(): Plugin {
  return {
    name: 'strokeview-initial-bundle',
    apply: 'build',
    generateBundle(_options, bundle) {
      const entry = Object.values(bundle).find((c) => c.type === 'chunk' && c.isEntry);
      if (!entry || entry.type !== 'chunk') return;
      const seen = new Set<string>();
      const walk = (name: string) => {
        if (seen.has(name)) return;
        seen.add(name);
        const c = bundle[name];
        if (c?.type === 'chunk') c.imports.forEach(walk);
      };
      walk(entry.fileName);
      for (const f of entry.viteMetadata?.importedCss ?? []) seen.add(f);
      let raw = 0;
      let gz = 0;
      for (const name of seen) {
        const c = bundle[name]!;
        const code = c.type === 'chunk' ? c.code : typeof c.source === 'string' ? c.source : Buffer.from(c.source);
        raw += Buffer.byteLength(code);
        gz += gzipSync(code).length;
      }
      this.info(
        `initial bundle (entry + static imports, NiiVue excluded): ${(raw / 1024).toFixed(1)} kB, ${(gz / 1024).toFixed(1)} kB gzip`,
      );
      console.log(`strokeview: initial bundle ${(raw / 1024).toFixed(1)} kB (${(gz / 1024).toFixed(1)} kB gzip)`);
    },
  };
}

// The viewer: src/client → dist/client, served by the API server at /. `npm run dev` runs this
// with hot reload and proxies the API to a server on API_URL (default http://localhost:7860).
const api = process.env.API_URL ?? 'http://localhost:7860';
export default defineConfig({
  root: 'src/client',
  plugins: [react(), initialBundleSize()],
  build: { outDir: '../../dist/client', emptyOutDir: true, sourcemap: true, chunkSizeWarningLimit: 2000 },
  server: {
    port: 5173,
    proxy: Object.fromEntries(
      ['/trpc', '/files', '/healthz', '/readyz', '/config.json'].map((p) => [p, { target: api, changeOrigin: true }]),
    ),
  },
});
