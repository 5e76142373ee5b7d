import type { MiddlewareHandler } from 'hono';

/** A broken %-escape (`/trpc/%E0%A4%A`) would throw a URIError deep in routing: a plain 400 here, first. */
export function wellFormedPath(): MiddlewareHandler {
  return async function wellFormedPath(c, next) {
    try {
      decodeURIComponent(new URL(c.req.url).pathname);
    } catch {
      return c.json({ error: 'The address has a broken %-escape' }, 400);
    }
    await next();
  };
}
