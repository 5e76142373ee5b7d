import type { ServerResponse } from 'node:http';
import { trpcServer } from '@hono/trpc-server';
import type { AnyRouter } from '@trpc/server';
import { type Context, Hono } from 'hono';
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

/**
 * tRPC reads `req.signal` on every call. On @hono/node-server's lightweight request that getter
 * first builds a whole undici Request (headers copied, a stream, an AbortController: ~5 % of a
 * `cases.list`), which a GET — no body to read — never otherwise needs. This view answers `signal`
 * with its own controller, aborted by node-server's rule (the response closed before it finished:
 * the client went away), so subscriptions still stop when their stream is dropped.
 */
function withOwnSignal(c: Context): Request {
  const raw = c.req.raw;
  const node = c.env as { incoming?: { errored?: unknown }; outgoing?: ServerResponse } | undefined;
  const outgoing = node?.outgoing;
  if (!outgoing || (c.req.method !== 'GET' && c.req.method !== 'HEAD')) return raw; // app.request() has a full Request already
  let controller: AbortController | undefined;
  outgoing.once('close', () => {
    if (!controller) return;
    if (node.incoming?.errored) controller.abort(String(node.incoming.errored));
    else if (!outgoing.writableFinished) controller.abort('Client connection prematurely closed.');
  });
  return new Proxy(raw, {
    get: (target, key) => (key === 'signal' ? (controller ??= new AbortController()).signal : Reflect.get(target, key, target)),
  });
}

/** `/trpc/*`: every procedure but the multipart ones (http/uploads), batched, subscriptions over SSE. */
export function trpcRoutes(options: TrpcRoutesOptions): Hono {
  const app = new Hono();
  const handler = trpcServer({
    endpoint: '/trpc',
    router: options.router,
    maxBatchSize: options.maxBatchSize,
    createContext: (opts, c) => options.createContext(c, { resHeaders: opts.resHeaders }) as unknown as Promise<Record<string, unknown>>,
    onError: ({ error, path, ctx }) =>
      reportError(options.log, error, { reqId: (ctx as { requestId?: string } | undefined)?.requestId, path }),
  });
  app.use('/trpc/*', (c, next) => {
    c.req.raw = withOwnSignal(c);
    return handler(c, next);
  });
  return app;
}
