import type { MiddlewareHandler } from 'hono';
import { readSessionCookie } from '../../auth/cookies.js';
import { errorResponse, formatOf } from '../../error-shapes.js';
import { forbidden } from '../../errors.js';

export interface CsrfOptions {
  /** Origins whose pages may send cookie-authenticated mutations (PUBLIC_URL's, ALLOWED_ORIGINS). */
  trustedOrigins: readonly string[];
}

const SAFE = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A request that changes state and carries the session cookie must come from our own pages:
 * `Sec-Fetch-Site: same-origin`, or an Origin on the trusted list. Otherwise 403 — a cross-site
 * form post cannot ride the cookie. Bearer-token requests carry no ambient credential and pass.
 * (Hono's `csrf` only looks at form content types; every content type matters here.)
 */
export function csrfGuard(options: CsrfOptions): MiddlewareHandler {
  const trusted = new Set(options.trustedOrigins);
  return async function csrfGuard(c, next) {
    if (SAFE.has(c.req.method) || !readSessionCookie(c.req.header('cookie'))) return next();
    const fetchSite = c.req.header('sec-fetch-site');
    const origin = c.req.header('origin');
    const sameOriginByUrl = origin !== undefined && origin === new URL(c.req.url).origin;
    if (fetchSite === 'same-origin' || (origin && (trusted.has(origin) || sameOriginByUrl))) return next();
    return errorResponse(c, formatOf(c), forbidden('This request came from another site and was refused (CSRF protection).'));
  };
}
