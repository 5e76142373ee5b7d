import { initTRPC } from '@trpc/server';
import type { Context } from './context.js';
import { retryAfterOf, toTRPCError, trpcShape } from './error-shapes.js';
import { forbidden, unauthorized } from './errors.js';

/** Who may call a procedure. Every procedure without `access` is public and must be on the allowlist. */
export interface Meta {
  access?: 'user' | 'admin';
  /**
   * Also served as a REST route under `/api` and described in `/api/openapi.json`
   * (trpc-to-openapi reads this; see http/openapi). `protect: false` marks a public route.
   */
  openapi?: {
    method: 'GET' | 'POST' | 'DELETE';
    path: `/${string}`;
    summary?: string;
    description?: string;
    tags?: string[];
    protect?: boolean;
  };
}

const t = initTRPC
  .context<Context>()
  .meta<Meta>()
  .create({
    // SSE subscriptions: a ping every 10 s keeps proxies from cutting an idle stream; the client
    // reconnects (resuming from the last event id) when it hears nothing for 25 s.
    sse: { ping: { enabled: true, intervalMs: 10_000 }, client: { reconnectAfterInactivityMs: 25_000 } },
    // The wire shape lives in error-shapes.ts (also used by routes outside tRPC's handler). A domain
    // error thrown where no middleware sees it (inside a subscription's stream) is mapped here too.
    errorFormatter: ({ shape, error }) => trpcShape(toTRPCError(error), shape.data.path),
  });

/**
 * Maps a failed procedure's domain error (errors.ts) to its tRPC code, in one place for every
 * procedure; errors that say how long to wait (rate limits, caps, outages) set Retry-After.
 */
const domainErrors = t.middleware(async ({ ctx, next }) => {
  const result = await next();
  if (result.ok) return result;
  const error = toTRPCError(result.error);
  const retryAfter = retryAfterOf(error);
  if (retryAfter !== undefined) ctx.resHeaders.set('Retry-After', String(retryAfter));
  return error === result.error ? result : { ...result, error };
});

export const router = t.router;

export const publicProcedure = t.procedure.use(domainErrors);

/** Signed in (any role, guests included); narrows `ctx.user` to non-null. */
export const protectedProcedure = publicProcedure.meta({ access: 'user' }).use(({ ctx, next }) => {
  if (!ctx.user) throw unauthorized('Sign in to continue');
  return next({ ctx: { user: ctx.user } });
});

export const adminProcedure = publicProcedure.meta({ access: 'admin' }).use(({ ctx, next }) => {
  if (!ctx.user) throw unauthorized('Sign in to continue');
  if (ctx.user.role !== 'admin') throw forbidden('Administrators only');
  return next({ ctx: { user: ctx.user } });
});
