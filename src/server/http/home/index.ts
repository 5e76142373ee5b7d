import { Hono } from 'hono';
import { html } from 'hono/html';
import { countCases } from '../../db/cases.js';
import type { Readiness } from '../../readiness.js';

export interface HomeOptions {
  readiness: Readiness;
  version: string;
}

/**
 * `GET /`: until the viewer lands, a plain server-rendered status page, so a person opening the
 * app sees what is running rather than a JSON 404. No script: it passes the strict CSP.
 */
export function homeRoute(options: HomeOptions): Hono {
  const app = new Hono();
  app.get('/', async (c) => {
    const services = options.readiness.services;
    const demo = services ? await countCases(services.database.db, { source: 'demo' }).catch(() => 0) : 0;
    const models = services?.models.list() ?? [];
    c.header('Cache-Control', 'no-store');
    // The page's whitespace is its text: a formatter would split "Status: <strong>…" apart.
    // prettier-ignore
    return c.html(html`<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <title>strokeview</title>
    <meta name="viewport" content="width=device-width, initial-scale=1" />
  </head>
  <body style="font-family: system-ui, sans-serif; max-width: 44rem; margin: 3rem auto; line-height: 1.5">
    <h1>strokeview ${options.version}</h1>
    <p>Ischemic-stroke lesion segmentation on brain MRI.</p>
    <p>Status: <strong>${options.readiness.state}</strong>${services ? html` · database: ${services.database.kind} · demo cases: ${demo}` : ''}</p>
    ${models.length ? html`<p>Models: ${models.map((m) => html`<br />${m.name} (${m.id} ${m.version}, ${m.kind})`)}</p>` : ''}
    <p>The web viewer is not built yet. The API is served at <code>/trpc</code> (for example
      <a href="/trpc/system.info">/trpc/system.info</a>, <a href="/trpc/cases.list">/trpc/cases.list</a>);
      health at <a href="/readyz">/readyz</a>; metrics at <a href="/metrics">/metrics</a>.</p>
  </body>
</html>`);
  });
  return app;
}
