import type { MiddlewareHandler } from 'hono';
import { type Store, rateLimiter } from 'hono-rate-limiter';
import { errorResponse } from '../../error-shapes.js';
import { DomainError, invalid } from '../../errors.js';

export interface AuthRateLimitOptions {
  /** The tRPC procedures limited together (e.g. `auth.signIn`, `auth.register`). */
  procedures: readonly string[];
  limitPerMinute: number;
  /** The client's address (see http/client.ts: trusted proxy hops). */
  clientKey: (c: Parameters<MiddlewareHandler>[0]) => string;
  /** Where hits are counted: the server passes PostgreSQL (every replica's count); default this process's memory. */
  store?: Store;
}

/**
 * The procedure names a /trpc request may call (`/trpc/a.b,c.d?batch=1` → both). tRPC trims
 * slashes around the path before routing (`/trpc/auth.signIn/` runs `auth.signIn`) and decodes a
 * batch's path; this reads every spelling it accepts — a superset, so no spelling escapes the count.
 */
export function calledProcedures(path: string): string[] {
  const rest = path.replace(/^\/+trpc(?=\/|$)/, '').replace(/^\/+|\/+$/g, '');
  let decoded = rest;
  try {
    decoded = decodeURIComponent(rest);
  } catch {
    // a broken escape is refused with 400 before this runs (app.ts); count the raw spelling anyway
  }
  return decoded
    .split(',')
    .map((p) => p.replace(/^\/+|\/+$/g, ''))
    .filter(Boolean);
}

/**
 * Per-client limit on sign-in and register, answered 429 with Retry-After. A batch may call at
 * most one limited procedure, so batching cannot multiply attempts.
 */
export function authRateLimit(options: AuthRateLimitOptions): MiddlewareHandler {
  const limited = new Set(options.procedures);
  const limiter = rateLimiter({
    windowMs: 60_000,
    limit: options.limitPerMinute,
    standardHeaders: 'draft-6',
    keyGenerator: (c) => `auth:${options.clientKey(c)}`,
    ...(options.store ? { store: options.store } : {}),
    // Retry-After comes from the limiter's standard headers (the window's remaining seconds).
    handler: (c) =>
      errorResponse(c, 'trpc', new DomainError('too-many', 'Too many attempts from your address. Wait a minute and try again.')),
  });
  return async function authRateLimit(c, next) {
    const hits = calledProcedures(c.req.path).filter((p) => limited.has(p)).length;
    if (hits === 0) return next();
    if (hits > 1) {
      return errorResponse(c, 'trpc', invalid('Sign-in and register cannot be batched'));
    }
    return limiter(c, next);
  };
}
