import { trpcServer } from '@hono/trpc-server';
import type { AnyRouter } from '@trpc/server';
import path from 'node:path';
import { Hono, type Context as HonoContext, type MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { requestId } from 'hono/request-id';
import { cookiePolicy } from './auth/cookies.js';
import { type ProcessInfo, createRequestContext } from './context.js';
import type { Env } from './env.js';
import { authRateLimit } from './http/auth-rate-limit/index.js';
import { clientAddress, isHttps } from './http/client.js';
import { corsAllowlist } from './http/cors/index.js';
import { csrfGuard } from './http/csrf/index.js';
import { fileRoutes } from './http/files/index.js';
import { healthRoutes } from './http/health/index.js';
import { homeRoute } from './http/home/index.js';
import { viewerRoutes } from './http/viewer/index.js';
import { MULTIPART_PATHS, openApiRoutes } from './http/openapi/index.js';
import { type AnswerFormat, type UploadAuth, caseUploadHandler, refusal } from './http/uploads/case-upload.js';
import { streamingUpload } from './http/uploads/index.js';
import { type Metrics, createMetrics, procedureNames } from './http/metrics/index.js';
import { readyGate } from './http/ready-gate/index.js';
import { requestLog } from './http/request-log/index.js';
import { securityHeaders } from './http/security-headers/index.js';
import { trpcErrorResponse } from './http/trpc-error.js';
import type { Logger } from './logger.js';
import type { Readiness } from './readiness.js';
import { appRouter } from './routers/_app.js';
import { uploadLimitMb } from './auth/quotas.js';
import { DomainError } from './errors.js';
import { isDatabaseUnavailable } from './db/unavailable.js';

export interface AppDeps {
  env: Env;
  logger: Logger;
  readiness: Readiness;
  process: ProcessInfo;
  /** Tests swap in a router of their own; the app serves `appRouter` otherwise. */
  router?: AnyRouter;
  metrics?: Metrics;
  /** The built viewer (`dist/client`); without it `/` is a plain status page. */
  clientDir?: string;
  /** Where uploads are spooled while they arrive (default `DATA_DIR/uploads`). */
  uploadDir?: string;
}

/** The procedures that take files (multipart): they get the large body limit, everything else the small one. */
const UPLOAD_PATHS = new Set(['/trpc/cases.upload', '/trpc/masks.save']);

/** Whether COOP/COEP are sent: `auto` is on unless the app is embedded in another site. */
export function crossOriginIsolationOn(env: Env): boolean {
  return env.CROSS_ORIGIN_ISOLATION === 'on' || (env.CROSS_ORIGIN_ISOLATION === 'auto' && env.EMBED_ORIGINS.length === 0);
}

/** Builds the whole HTTP surface from its dependencies; no I/O happens here. */
export function buildApp(deps: AppDeps): Hono {
  const { env, logger, readiness } = deps;
  const app = new Hono();
  const hops = env.TRUSTED_PROXY_HOPS;
  const https = (c: Parameters<typeof isHttps>[0]) => isHttps(c, { hops, publicUrl: env.PUBLIC_URL });
  const publicOrigin = env.PUBLIC_URL ? new URL(env.PUBLIC_URL).origin : undefined;

  const metrics = deps.metrics ?? createMetrics({ procedures: procedureNames(deps.router ?? appRouter) });
  app.use(requestId());
  // A broken %-escape (`/trpc/%E0%A4%A`) would throw a URIError deep in routing: a plain 400 here.
  app.use(async (c, next) => {
    try {
      decodeURIComponent(new URL(c.req.url).pathname);
    } catch {
      return c.json({ error: 'The address has a broken %-escape' }, 400);
    }
    await next();
  });
  app.use(metrics.middleware);
  // Signed volume links are credentials: the log shows the route, not the token.
  app.use(requestLog({ logger, redactPath: (p) => p.replace(/^\/files\/v\/[^/]+/, '/files/v/[token]') }));
  app.use(
    securityHeaders({
      embedOrigins: env.EMBED_ORIGINS,
      crossOriginIsolation: crossOriginIsolationOn(env),
      connectSrc: env.ALLOWED_ORIGINS,
      isHttps: https,
    }),
  );
  app.use(
    corsAllowlist({
      allowedOrigins: env.ALLOWED_ORIGINS,
      exposeHeaders: ['content-range', 'content-length', 'accept-ranges', 'etag'],
    }),
  );

  app.route('/', healthRoutes({ readiness }));
  metrics.mount(app, readiness);
  if (!deps.clientDir) app.route('/', homeRoute({ readiness, version: deps.process.version }));
  app.route('/', fileRoutes({ readiness }));

  // Uploads get their own, larger limit; every other /trpc body is small.
  const uploadLimit = bodyLimit({
    maxSize: env.MAX_UPLOAD_MB * 1048576 + 65536,
    onError: (c) => trpcErrorResponse(c, 413, 'PAYLOAD_TOO_LARGE', `The upload is larger than ${env.MAX_UPLOAD_MB} MiB`),
  });
  const smallLimit = bodyLimit({
    maxSize: env.TRPC_MAX_BODY_BYTES,
    onError: (c) =>
      trpcErrorResponse(c, 413, 'PAYLOAD_TOO_LARGE', `The request body is larger than ${Math.round(env.TRPC_MAX_BODY_BYTES / 1024)} KiB`),
  });
  // Streamed uploads are capped while they stream (http/uploads), after authentication: here only
  // a declared Content-Length is checked. Hono's bodyLimit would read a chunked body (no length)
  // into memory before anything else ran — the whole upload, unauthenticated.
  const declaredOnly =
    (maxSize: number, refuse: (c: HonoContext) => Response): MiddlewareHandler =>
    async (c, next) => {
      const length = c.req.header('content-length');
      if (length !== undefined && !c.req.header('transfer-encoding') && Number(length) > maxSize) return refuse(c);
      await next();
    };
  const streamedTrpcLimit = declaredOnly(env.MAX_UPLOAD_MB * 1048576 + 65536, (c) =>
    trpcErrorResponse(c, 413, 'PAYLOAD_TOO_LARGE', `The upload is larger than ${env.MAX_UPLOAD_MB} MiB`),
  );
  app.use('/trpc/*', (c, next) =>
    c.req.path === '/trpc/cases.upload'
      ? streamedTrpcLimit(c, next)
      : UPLOAD_PATHS.has(c.req.path)
        ? uploadLimit(c, next)
        : smallLimit(c, next),
  );
  app.use(
    '/trpc/*',
    csrfGuard({ trustedOrigins: [...(publicOrigin ? [publicOrigin] : []), ...env.ALLOWED_ORIGINS, ...env.EMBED_ORIGINS] }),
  );
  app.use('/trpc/*', readyGate({ readiness }));
  app.use(
    '/trpc/*',
    authRateLimit({
      procedures: ['auth.signIn', 'auth.register', 'auth.guest'],
      limitPerMinute: env.AUTH_RATE_PER_MIN,
      clientKey: (c) => clientAddress(c, hops),
    }),
  );
  const baseUrlOf = (c: HonoContext) => {
    const url = new URL(c.req.url);
    return env.PUBLIC_URL ?? (https(c) ? `https://${url.host}` : url.origin);
  };
  const contextFor = (c: HonoContext, req: Request, resHeaders: Headers, bearerOnly = false) => {
    const services = readiness.services!;
    const reqId = c.get('requestId') as string;
    return createRequestContext(
      { services, env, log: logger.child({ reqId }), process: deps.process, requestId: reqId, baseUrl: baseUrlOf(c) },
      {
        req,
        resHeaders,
        bearerOnly,
        cookiePolicy: cookiePolicy({ https: https(c), hostname: new URL(c.req.url).hostname, embedded: env.EMBED_ORIGINS.length > 0 }),
        client: { ip: clientAddress(c, hops), userAgent: c.req.header('user-agent') ?? null },
      },
    );
  };
  const router = deps.router ?? appRouter;

  // Case uploads stream to disk as they arrive (size cap while streaming, bounded concurrency),
  // then run the same cases.upload procedure; /api/cases is the same for REST.
  const uploadDir = deps.uploadDir ?? path.join(path.resolve(env.DATA_DIR), 'uploads');
  const streamed = (format: AnswerFormat) =>
    streamingUpload({
      dir: uploadDir,
      maxBytes: (auth) => uploadLimitMb(env, auth.ctx.user!.role) * 1048576,
      maxConcurrent: env.MAX_CONCURRENT_UPLOADS,
      refuse: (c, status, code, message, retryAfterS) => refusal(format, c, status, code, message, retryAfterS),
      // Anonymous bodies are never spooled; the context made here is the procedure's.
      authorize: async (c): Promise<UploadAuth | null> => {
        const resHeaders = new Headers();
        const ctx = await contextFor(c, c.req.raw, resHeaders, format === 'rest');
        return ctx.user ? { ctx, resHeaders } : null;
      },
      handle: caseUploadHandler({
        router,
        format,
        onInternalError: (c, err) => logger.error({ reqId: c.get('requestId'), path: 'cases.upload', err }, 'procedure failed'),
      }),
    });
  app.post('/trpc/cases.upload', streamed('trpc'));

  app.use(
    '/trpc/*',
    trpcServer({
      endpoint: '/trpc',
      router,
      maxBatchSize: env.TRPC_MAX_BATCH,
      createContext: (opts, c) => contextFor(c, opts.req, opts.resHeaders) as unknown as Promise<Record<string, unknown>>,
      onError: ({ error, path, ctx }) => {
        // Only unexplained failures are logged in full; the client saw a masked message.
        if (error.code === 'SERVICE_UNAVAILABLE' && isDatabaseUnavailable(error.cause)) {
          logger.warn(
            { reqId: (ctx as { requestId?: string } | undefined)?.requestId, path, err: (error.cause as Error).message },
            'database unavailable',
          );
        } else if (error.code === 'INTERNAL_SERVER_ERROR' && !(error.cause instanceof DomainError)) {
          const reqId = (ctx as { requestId?: string } | undefined)?.requestId;
          logger.error({ reqId, path, err: error.cause ?? error }, 'procedure failed');
        }
      },
    }),
  );

  // REST for programs without a tRPC client (bearer tokens only), described by /api/openapi.json.
  // The same limits for REST, answered in its error shape.
  const restLimit = (maxSize: number, message: string) =>
    bodyLimit({ maxSize, onError: (c) => c.json({ message, code: 'PAYLOAD_TOO_LARGE' }, 413) });
  const restUploadLimit = restLimit(env.MAX_UPLOAD_MB * 1048576 + 65536, `The upload is larger than ${env.MAX_UPLOAD_MB} MiB`);
  const restSmallLimit = restLimit(
    env.TRPC_MAX_BODY_BYTES,
    `The request body is larger than ${Math.round(env.TRPC_MAX_BODY_BYTES / 1024)} KiB`,
  );
  const streamedRestLimit = declaredOnly(env.MAX_UPLOAD_MB * 1048576 + 65536, (c) =>
    c.json({ message: `The upload is larger than ${env.MAX_UPLOAD_MB} MiB`, code: 'PAYLOAD_TOO_LARGE' }, 413),
  );
  app.use('/api/*', (c, next) =>
    c.req.method === 'POST' && c.req.path === '/api/cases'
      ? streamedRestLimit(c, next)
      : c.req.method === 'POST' && MULTIPART_PATHS.includes(c.req.path)
        ? restUploadLimit(c, next)
        : restSmallLimit(c, next),
  );
  app.use('/api/*', readyGate({ readiness }));
  app.post('/api/cases', streamed('rest'));
  app.route(
    '/',
    openApiRoutes({
      router,
      version: deps.process.version,
      baseUrl: baseUrlOf,
      createContext: (c, resHeaders) => contextFor(c, c.req.raw, resHeaders, true),
      onInternalError: (c, path, err) => logger.error({ reqId: c.get('requestId'), path, err }, 'procedure failed'),
    }),
  );

  // Last, so every API route above wins: the viewer answers the remaining GETs.
  if (deps.clientDir) app.route('/', viewerRoutes({ dir: deps.clientDir }));
  app.notFound((c) => c.json({ error: 'Not found' }, 404));
  app.onError((err, c) => {
    logger.error({ reqId: c.get('requestId'), err }, 'unhandled error');
    return c.json({ error: 'Internal server error' }, 500);
  });
  return app;
}
