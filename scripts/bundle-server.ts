/**
 * Bundles the server's two entries — `dist/src/server/index.js` (`npm start`, the Dockerfile) and
 * `dist/src/cli/index.js` (`strokeview serve`, `strokeview worker`) — over what `tsc` wrote there,
 * as the last step of `npm run build` (#29). Loading the server's modules one file at a time was
 * ~480 ms of a warm restart, mostly module resolution and file look-ups in node_modules; one bundle
 * is a fraction of it. The CLI's dynamic imports (serve, worker, tasks) become shared chunks in
 * `dist/src/chunks/`, so a command that needs no server does not load it.
 *
 * Everything else `tsc` wrote stays and is still used: the CPU pool's threads import the task
 * modules (`cpuTask(import.meta.url, …)`) from their unbundled twins. So every `import.meta.url` in
 * our sources is rewritten to the URL of that file's twin in dist/: code that finds things
 * relative to itself (models/, package.json, the viewer, the tasks) sees the same paths as before.
 * Outputs sit one folder below dist/src (server/, cli/, chunks/), so one relative form fits all.
 *
 * Kept external: packages with native code or WebAssembly and files they find beside themselves
 * (onnxruntime-node, argon2, PGlite, dcm2niix), and those that start worker threads from their own
 * files (pino's transports, piscina). Source maps are written and the entries turn them on, so
 * stack traces in logs name the TypeScript file and line.
 */
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC = path.join(ROOT, 'src');

const EXTERNAL = ['onnxruntime-node', '@node-rs/argon2', '@electric-sql/pglite', 'pino', 'piscina', '@niivue/dcm2niix'];

// CommonJS dependencies inside an ESM bundle still call require() and read __dirname.
const BANNER = [
  "import { createRequire as __svCreateRequire } from 'node:module';",
  "import { fileURLToPath as __svFileURLToPath } from 'node:url';",
  'const require = __svCreateRequire(import.meta.url);',
  'const __filename = __svFileURLToPath(import.meta.url);',
  "const __dirname = __svFileURLToPath(new URL('.', import.meta.url));",
].join('\n');

// Chunk names carry a content hash: the last build's would otherwise pile up.
rmSync(path.join(ROOT, 'dist/src/chunks'), { recursive: true, force: true });
await build({
  entryPoints: { 'chunks/server-main': path.join(SRC, 'server/index.ts'), 'chunks/cli-main': path.join(SRC, 'cli/index.ts') },
  outdir: path.join(ROOT, 'dist/src'),
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  packages: 'bundle',
  external: EXTERNAL.flatMap((p) => [p, `${p}/*`]),
  sourcemap: true,
  // Stack traces need the mappings, not the sources: without their text the maps Node reads and
  // parses as each chunk loads are a fraction of the size (#29: reading them was ≈ 100 ms of a restart).
  sourcesContent: false,
  banner: { js: BANNER },
  legalComments: 'none',
  logLevel: 'warning',
  plugins: [
    {
      name: 'twin-import-meta-url',
      setup(b) {
        b.onLoad({ filter: /\.tsx?$/ }, (args) => {
          const rel = path.relative(SRC, args.path);
          if (rel.startsWith('..')) return undefined;
          const source = readFileSync(args.path, 'utf8');
          if (!source.includes('import.meta.url')) return { contents: source, loader: 'ts' };
          const twin = `../${rel
            .split(path.sep)
            .join('/')
            .replace(/\.tsx?$/, '.js')}`;
          return { contents: source.replaceAll('import.meta.url', `new URL(${JSON.stringify(twin)}, import.meta.url).href`), loader: 'ts' };
        });
      },
    },
  ],
});

// The entries turn the source maps on before the bundle loads: Node reads a module's map only if
// they are on when it compiles it, and the bundle's modules are all compiled before any of it runs.
const entries: [entry: string, main: string][] = [
  ['server/index.js', 'server-main.js'],
  ['cli/index.js', 'cli-main.js'],
];
for (const [entry, main] of entries) {
  writeFileSync(
    path.join(ROOT, 'dist/src', entry),
    `// Written by scripts/bundle-server.ts.\nprocess.setSourceMapsEnabled(true);\nawait import('../chunks/${main}');\n`,
  );
  rmSync(path.join(ROOT, 'dist/src', `${entry}.map`), { force: true }); // tsc's, for the file it no longer describes
}
