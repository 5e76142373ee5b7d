import type { MiddlewareHandler } from 'hono';

/** A broken %-escape (`/trpc/%E0%A4%A`) would throw a URIError deep in routing: a plain 400 here, first. */
export function wellFormedPath(): MiddlewareHandler {
  return async function wellFormedPath(c, next) {
    // No '%' before the query: no escape in the path to break, no URL to parse (every request passes here).
    const url = c.req.url;
    const query = url.indexOf('?');
    if (!(query < 0 ? url : url.slice(0, query)).includes('%')) return next();
    try {
      decodeURIComponent(new URL(c.req.url).pathname);
    } catch {
      return c.json({ error: 'The address has a broken %-escape' }, 400);
    }
    await next();
  };
}
