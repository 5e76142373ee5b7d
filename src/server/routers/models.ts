import { z } from 'zod';
import { modelInfoSchema } from '../../shared/models.js';
import { publicProcedure, router } from '../trpc.js';

export const modelsRouter = router({
  /** Public: the models this server can run, with what each is (method, inputs, limits). */
  list: publicProcedure
    .meta({ openapi: { method: 'GET', path: '/models', tags: ['models'], protect: false, summary: 'The models this server can run' } })
    .input(z.void())
    .output(z.array(modelInfoSchema))
    .query(({ ctx }) => ctx.models.list()),
});
