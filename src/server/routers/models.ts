import { publicProcedure, router } from '../trpc.js';

export const modelsRouter = router({
  /** Public: the models this server can run, with what each is (method, inputs, limits). */
  list: publicProcedure.query(({ ctx }) => ctx.models.list()),
});
