import { trpcServer } from '@hono/trpc-server';
import type { AnyRouter } from '@trpc/server';
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { createRequestContext, type ProcessInfo } from './context.js';
import type { Env } from './env.js';
import { healthRoutes } from './http/health/index.js';
import { readyGate } from './http/ready-gate/index.js';
import { requestLog } from './http/request-log/index.js';
import type { Logger } from './logger.js';
import type { Readiness } from './readiness.js';
import { appRouter } from './routers/_app.js';

export interface AppDeps {
  env: Env;
  logger: Logger;
  readiness: Readiness;
  process: ProcessInfo;
  /** Tests swap in a router of their own; the app serves `appRouter` otherwise. */
  router?: AnyRouter;
}

/** Builds the whole HTTP surface from its dependencies; no I/O happens here. */
export function buildApp(deps: AppDeps): Hono {
  const { env, logger, readiness } = deps;
  const app = new Hono();

  app.use(requestId());
  app.use(requestLog({ logger }));

  app.route('/', healthRoutes({ readiness }));

  app.use('/trpc/*', readyGate({ readiness }));
  app.use(
    '/trpc/*',
    trpcServer({
      endpoint: '/trpc',
      router: deps.router ?? appRouter,
      createContext: (opts, c) => {
        const services = readiness.services!;
        const reqId = c.get('requestId') as string;
        return createRequestContext(
          { services, env, log: logger.child({ reqId }), process: deps.process, requestId: reqId },
          { req: opts.req, resHeaders: opts.resHeaders },
        ) as unknown as Record<string, unknown>;
      },
      onError: ({ error, path, ctx }) => {
        // Only unexplained failures are logged in full; the client saw a masked message.
        if (error.code === 'INTERNAL_SERVER_ERROR') {
          const reqId = (ctx as { requestId?: string } | undefined)?.requestId;
          logger.error({ reqId, path, err: error.cause ?? error }, 'procedure failed');
        }
      },
    }),
  );

  app.notFound((c) => c.json({ error: 'Not found' }, 404));
  app.onError((err, c) => {
    logger.error({ reqId: c.get('requestId'), err }, 'unhandled error');
    return c.json({ error: 'Internal server error' }, 500);
  });
  return app;
}
