import { trpcServer } from '@hono/trpc-server';
import type { AnyRouter } from '@trpc/server';
import { Hono } from 'hono';
import type { CreateRequestContext } from '../../context.js';
import { reportError } from '../../error-shapes.js';
import type { Logger } from '../../logger.js';

export interface TrpcRoutesOptions {
  router: AnyRouter;
  createContext: CreateRequestContext;
  log: Logger;
  /** Calls one batched request may carry. */
  maxBatchSize: number;
}

/** `/trpc/*`: every procedure but the multipart ones (http/uploads), batched, subscriptions over SSE. */
export function trpcRoutes(options: TrpcRoutesOptions): Hono {
  const app = new Hono();
  app.use(
    '/trpc/*',
    trpcServer({
      endpoint: '/trpc',
      router: options.router,
      maxBatchSize: options.maxBatchSize,
      createContext: (opts, c) => options.createContext(c, { resHeaders: opts.resHeaders }) as unknown as Promise<Record<string, unknown>>,
      onError: ({ error, path, ctx }) =>
        reportError(options.log, error, { reqId: (ctx as { requestId?: string } | undefined)?.requestId, path }),
    }),
  );
  return app;
}
