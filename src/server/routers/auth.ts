import { z } from 'zod';
import {
  changePasswordSchema,
  createTokenSchema,
  credentialsSchema,
  idSchema,
  publicUserSchema,
  registerSchema,
} from '../../shared/auth.js';
import * as tokens from '../auth/api-tokens.js';
import * as auth from '../auth/service.js';
import { publicProcedure, router, sessionProcedure } from '../trpc.js';

export const authRouter = router({
  register: publicProcedure.input(registerSchema).mutation(async ({ ctx, input }) => {
    const issued = await auth.register(ctx.db, ctx.config, input, ctx.client);
    ctx.cookies.set(issued.token, issued.expiresAt);
    ctx.log.info({ userId: issued.user.id }, 'user registered');
    return { user: auth.toPublicUser(issued.user) };
  }),

  signIn: publicProcedure.input(credentialsSchema).mutation(async ({ ctx, input }) => {
    const issued = await auth.signIn(ctx.db, ctx.config, input, ctx.client);
    ctx.cookies.set(issued.token, issued.expiresAt);
    return { user: auth.toPublicUser(issued.user) };
  }),

  /** Public so a stale cookie can always be cleared; deletes the session when there is one. */
  signOut: publicProcedure.mutation(async ({ ctx }) => {
    const heard = ctx.user && ctx.sessions?.changeHeard(ctx.user.id);
    await auth.signOut(ctx.db, ctx.auth?.sessionId);
    if (ctx.user) ctx.sessions?.dropUser(ctx.user.id);
    await heard;
    ctx.cookies.clear();
    return { ok: true as const };
  }),

  /** The signed-in user, or null. */
  me: publicProcedure
    .meta({ openapi: { method: 'GET', path: '/me', tags: ['auth'], protect: false, summary: 'The user the token belongs to, or null' } })
    .input(z.void())
    .output(publicUserSchema.nullable())
    .query(({ ctx }) => (ctx.user ? auth.currentUser(ctx.db, ctx.user.id) : null)),

  /** A short-lived guest account and session, so a visitor can try the demo without registering. */
  guest: publicProcedure.mutation(async ({ ctx }) => {
    const issued = await auth.createGuest(ctx.db, ctx.config, ctx.client);
    ctx.cookies.set(issued.token, issued.expiresAt);
    return { user: auth.toPublicUser(issued.user), expiresAt: issued.expiresAt.toISOString() };
  }),

  changePassword: sessionProcedure.input(changePasswordSchema).mutation(async ({ ctx, input }) => {
    const heard = ctx.sessions?.changeHeard(ctx.user.id);
    const issued = await auth.changePassword(ctx.db, ctx.config, ctx.user.id, input, ctx.client);
    ctx.sessions?.dropUser(ctx.user.id);
    await heard;
    // Every session and token is gone; this client continues on a new session.
    ctx.cookies.set(issued.token, issued.expiresAt);
    return { ok: true as const };
  }),

  tokens: router({
    /** Returns the plaintext token once; only its hash is kept. */
    create: sessionProcedure.input(createTokenSchema).mutation(({ ctx, input }) => tokens.createApiToken(ctx.db, ctx.user.id, input)),
    list: sessionProcedure.query(({ ctx }) => tokens.listTokens(ctx.db, ctx.user.id)),
    revoke: sessionProcedure.input(idSchema).mutation(async ({ ctx, input }) => {
      const heard = ctx.sessions?.changeHeard(ctx.user.id);
      await tokens.revokeToken(ctx.db, ctx.user.id, input.id);
      ctx.sessions?.dropUser(ctx.user.id);
      await heard;
      return { ok: true as const };
    }),
  }),
});
