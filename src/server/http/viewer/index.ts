import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { serveStatic } from '@hono/node-server/serve-static';
import { Hono } from 'hono';

export interface ViewerOptions {
  /** The built viewer (`dist/client`, written by `vite build`). */
  dir: string;
  /** What `/config.json` says: where the API is, for a viewer deployed apart from it (null: same origin). */
  apiUrl?: string | null;
}

/** Paths the viewer's client-side routes never use: they keep their own handlers or a JSON 404. */
const API_PATHS = /^\/(trpc|files|healthz|readyz|metrics|api)(\/|$)/;

/** The built viewer next to this file's build (dist/src/server/http/viewer → dist/client), or from sources (→ dist/client). */
export function findClientDir(): string | undefined {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const candidate of [path.resolve(here, '../../../../client'), path.resolve(here, '../../../../dist/client')]) {
    if (existsSync(path.join(candidate, 'index.html'))) return candidate;
  }
  return undefined;
}

/**
 * The React viewer: hashed assets cached for a year (`immutable`: their names change with their
 * content), `index.html` never cached (it names the current assets), and every other GET that is
 * not the API answered with `index.html`, so a reload or a shared link of `/cases/<id>` lands on
 * the same screen. The app's security headers apply to all of it.
 */
export function viewerRoutes(options: ViewerOptions): Hono {
  const app = new Hono();
  // The API's address goes into the page itself (empty: same origin), so the viewer needs no
  // /config.json round trip before its first query; /config.json stays for static hosting.
  const meta = `<meta name="strokeview-api" content="${(options.apiUrl ?? '').replace(/[<>"&]/g, '')}" />`;
  const index = readFileSync(path.join(options.dir, 'index.html'), 'utf8').replace('<head>', `<head>\n    ${meta}`);
  const root = path.relative(process.cwd(), options.dir) || '.';
  app.get('/config.json', (c) => {
    c.header('Cache-Control', 'no-store');
    return c.json({ apiUrl: options.apiUrl ?? null });
  });
  app.get(
    '/assets/*',
    async (c, next) => {
      await next();
      if (c.res.status === 200) c.res.headers.set('Cache-Control', 'public, max-age=31536000, immutable');
    },
    serveStatic({ root }),
  );
  app.get('*', async (c, next) => {
    if (API_PATHS.test(c.req.path) || c.req.path.startsWith('/assets/')) return next();
    c.header('Cache-Control', 'no-cache');
    return c.html(index);
  });
  return app;
}
