import { z } from 'zod';
import { modelInfoSchema } from '../../shared/models.js';
import { adminProcedure, publicProcedure, router } from '../trpc.js';

export const modelsRouter = router({
  /** Public: the models this server can run, with what each is (method, inputs, limits). */
  list: publicProcedure
    .meta({ openapi: { method: 'GET', path: '/models', tags: ['models'], protect: false, summary: 'The models this server can run' } })
    .input(z.void())
    .output(z.array(modelInfoSchema))
    .query(({ ctx }) => ctx.models.list()),
  /**
   * Admins: load the built-in models and MODELS_DIR again without a restart, each checked as at
   * boot. This process only: a worker process elsewhere keeps its models until it restarts.
   */
  reload: adminProcedure
    .input(z.void())
    .output(
      z.object({
        loaded: z.array(z.string()),
        interactive: z.array(z.string()),
        failed: z.array(z.object({ dir: z.string(), error: z.string() })),
      }),
    )
    .mutation(async ({ ctx }) => {
      const report = await ctx.models.reload();
      ctx.log.info({ by: ctx.user.id, ...report }, 'models reloaded by an administrator');
      return report;
    }),
});
