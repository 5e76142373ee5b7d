import type { MiddlewareHandler } from 'hono';
import { cors } from 'hono/cors';

export interface CorsOptions {
  /** Exact origins allowed to call with credentials. Anything else gets no CORS headers at all. */
  allowedOrigins: readonly string[];
  /** Response headers scripts on allowed origins may read. */
  exposeHeaders?: string[];
}

/**
 * CORS on an exact allowlist. Hono's `cors` sends `Access-Control-Allow-Credentials` even to
 * origins it does not allow, so it runs only for allowlisted origins; every other origin
 * (look-alikes, `null`, http for https) gets neither Allow-Origin nor Allow-Credentials.
 */
export function corsAllowlist(options: CorsOptions): MiddlewareHandler {
  const allowed = new Set(options.allowedOrigins);
  const inner = cors({
    origin: (origin) => (allowed.has(origin) ? origin : null),
    credentials: true,
    allowMethods: ['GET', 'POST', 'OPTIONS'],
    allowHeaders: ['content-type', 'authorization', 'trpc-accept', 'x-trpc-source', 'last-event-id', 'range'],
    exposeHeaders: ['x-request-id', 'retry-after', ...(options.exposeHeaders ?? [])],
    maxAge: 600,
  });
  return async function corsAllowlist(c, next) {
    const origin = c.req.header('origin');
    if (origin && allowed.has(origin)) return inner(c, next);
    // A preflight from an origin not on the list: a plain refusal, without any CORS header (it
    // used to reach tRPC and come back as a confusing 415).
    if (c.req.method === 'OPTIONS' && c.req.header('access-control-request-method')) {
      return c.text('This origin may not call the API', 403, { Vary: 'Origin' });
    }
    await next();
    c.res.headers.append('Vary', 'Origin');
  };
}
