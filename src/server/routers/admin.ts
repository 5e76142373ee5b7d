import { z } from 'zod';
import { roleSchema } from '../../shared/auth.js';
import * as admin from '../auth/admin.js';
import { adminProcedure, router } from '../trpc.js';

export const adminRouter = router({
  users: router({
    list: adminProcedure
      .input(z.object({ cursor: z.uuid().optional(), limit: z.number().int().min(1).max(200).default(50) }).optional())
      .query(({ ctx, input }) => admin.listUsersPage(ctx.db, { limit: input?.limit ?? 50, cursor: input?.cursor })),
    setRole: adminProcedure.input(z.object({ id: z.uuid(), role: roleSchema })).mutation(async ({ ctx, input }) => {
      const user = await admin.setRole(ctx.db, ctx.user.id, input.id, input.role);
      ctx.sessions?.dropUser(input.id);
      return user;
    }),
    /** Disabling signs the user out everywhere (sessions, API tokens, open streams) and cancels their jobs. */
    disable: adminProcedure.input(z.object({ id: z.uuid(), disabled: z.boolean().default(true) })).mutation(async ({ ctx, input }) => {
      const user = await admin.setDisabled(ctx.db, await ctx.jobs, ctx.user.id, input.id, input.disabled);
      ctx.sessions?.dropUser(input.id);
      return user;
    }),
  }),
});
