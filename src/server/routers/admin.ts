import { z } from 'zod';
import { roleSchema } from '../../shared/auth.js';
import * as auth from '../auth/service.js';
import { toPage } from '../db/paging.js';
import { listUsers, updateUser } from '../db/users.js';
import { TRPCError } from '@trpc/server';
import { adminProcedure, router } from '../trpc.js';

export const adminRouter = router({
  users: router({
    list: adminProcedure
      .input(z.object({ cursor: z.uuid().optional(), limit: z.number().int().min(1).max(200).default(50) }).optional())
      .query(async ({ ctx, input }) => {
        const limit = input?.limit ?? 50;
        const rows = await listUsers(ctx.db, { limit: limit + 1, ...(input?.cursor ? { cursor: input.cursor } : {}) });
        const { page, nextCursor } = toPage(rows, limit);
        return { items: page.map(auth.toPublicUser), nextCursor };
      }),
    setRole: adminProcedure.input(z.object({ id: z.uuid(), role: roleSchema })).mutation(async ({ ctx, input }) => {
      if (input.id === ctx.user.id && input.role !== 'admin') {
        throw new TRPCError({ code: 'BAD_REQUEST', message: 'You cannot remove your own admin role' });
      }
      const user = await updateUser(ctx.db, input.id, { role: input.role });
      if (!user) throw new TRPCError({ code: 'NOT_FOUND', message: 'No such user' });
      return auth.toPublicUser(user);
    }),
    /** Disabling signs the user out everywhere: all sessions and API tokens are deleted. */
    disable: adminProcedure.input(z.object({ id: z.uuid(), disabled: z.boolean().default(true) })).mutation(async ({ ctx, input }) => {
      if (input.id === ctx.user.id) {
        throw new TRPCError({ code: 'BAD_REQUEST', message: 'You cannot disable your own account' });
      }
      return auth.toPublicUser(await auth.setUserDisabled(ctx.db, input.id, input.disabled));
    }),
  }),
});
