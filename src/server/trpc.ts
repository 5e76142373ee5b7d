import { initTRPC } from '@trpc/server';
import type { Context } from './context.js';
import { errorHeaders, toTRPCError, trpcShape } from './error-shapes.js';
import { forbidden, unauthorized } from './errors.js';

/**
 * Who may call a procedure. Every procedure without `access` is public and must be on the
 * allowlist (PUBLIC_PROCEDURES); every `session` one is on SESSION_PROCEDURES.
 */
export interface Meta {
  access?: 'user' | 'session' | 'admin';
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
 * procedure; errors that say how long to wait (rate limits, caps, outages) set Retry-After, a
 * refused token its WWW-Authenticate challenge.
 */
const domainErrors = t.middleware(async ({ ctx, next }) => {
  const result = await next();
  if (result.ok) return result;
  const error = toTRPCError(result.error);
  for (const [name, value] of Object.entries(errorHeaders(error))) ctx.resHeaders.set(name, value);
  return error === result.error ? result : { ...result, error };
});

export const router = t.router;

export const publicProcedure = t.procedure.use(domainErrors);

/** Signed in (any role, guests included); narrows `ctx.user` to non-null. */
export const protectedProcedure = publicProcedure.meta({ access: 'user' }).use(({ ctx, next }) => {
  if (!ctx.user) throw unauthorized('Sign in to continue');
  return next({ ctx: { user: ctx.user } });
});

/**
 * Signed in through a browser session (the cookie), not an API token: for what would let a leaked
 * token outlive its revocation or take the account over — minting tokens, listing or revoking
 * them, changing the password. The CLI's `strokeview tokens create` is a local task on the
 * database and needs none of this.
 */
export const sessionProcedure = publicProcedure.meta({ access: 'session' }).use(({ ctx, next }) => {
  if (!ctx.user || !ctx.auth) throw unauthorized('Sign in to continue');
  if (ctx.auth.via !== 'session') {
    throw forbidden('Managing API tokens and changing the password need a signed-in browser session, not an API token');
  }
  return next({ ctx: { user: ctx.user, auth: ctx.auth } });
});

export const adminProcedure = publicProcedure.meta({ access: 'admin' }).use(({ ctx, next }) => {
  if (!ctx.user) throw unauthorized('Sign in to continue');
  if (ctx.user.role !== 'admin') throw forbidden('Administrators only');
  return next({ ctx: { user: ctx.user } });
});
