import type { AnyRouter } from '@trpc/server';
import { Hono } from 'hono';
import { requestId } from 'hono/request-id';
import { MiB } from '../shared/units.js';
import { type ProcessInfo, requestContextFactory } from './context.js';
import type { Env } from './env.js';
import { authRateLimit } from './http/auth-rate-limit/index.js';
import { FleetLeases } from './limits/leases.js';
import { PostgresRateLimitStore } from './limits/rate-limit-store.js';
import { bodyLimits } from './http/body-limits/index.js';
import { clientAddress, publicBaseUrl, requestIsHttps } from './http/client.js';
import { corsAllowlist } from './http/cors/index.js';
import { csrfGuard } from './http/csrf/index.js';
import { fileRoutes } from './http/files/index.js';
import { healthRoutes } from './http/health/index.js';
import { homeRoute } from './http/home/index.js';
import { type Metrics, createMetrics, procedureNames } from './http/metrics/index.js';
import { metricsAccess } from './http/metrics-access/index.js';
import { openApiRoutes } from './http/openapi/index.js';
import { studyExportRoutes } from './http/study-exports/index.js';
import { readyGate } from './http/ready-gate/index.js';
import { requestLog } from './http/request-log/index.js';
import { securityHeaders } from './http/security-headers/index.js';
import { segRoutes } from './http/seg/index.js';
import { trpcRoutes } from './http/trpc/index.js';
import { MULTIPART_OVERHEAD } from './http/uploads/index.js';
import { MULTIPART_PROCEDURES, uploadRoutes } from './http/uploads/routes.js';
import { viewerRoutes } from './http/viewer/index.js';
import { wellFormedPath } from './http/well-formed-path/index.js';
import type { Logger } from './logger.js';
import type { Readiness } from './readiness.js';
import { appRouter } from './routers/_app.js';
import { redirectOrigin } from './volumes/backends.js';

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

/** Whether COOP/COEP are sent: `auto` is on unless the app is embedded in another site. */
export function crossOriginIsolationOn(env: Env): boolean {
  return env.CROSS_ORIGIN_ISOLATION === 'on' || (env.CROSS_ORIGIN_ISOLATION === 'auto' && env.EMBED_ORIGINS.length === 0);
}

/** Builds the whole HTTP surface from its dependencies, in the order requests meet it; no I/O happens here. */
export function buildApp(deps: AppDeps): Hono {
  const { env, logger: log, readiness } = deps;
  const router = deps.router ?? appRouter;
  const metrics = deps.metrics ?? createMetrics({ procedures: procedureNames(router) });
  const createContext = requestContextFactory(deps);
  const publicOrigin = env.PUBLIC_URL ? new URL(env.PUBLIC_URL).origin : undefined;
  const app = new Hono();

  // Every response: an id, a well-formed path, metrics, a log line (signed volume links are
  // credentials: the log shows the route, not the token), security headers, CORS.
  app.use(requestId(), wellFormedPath(), metrics.middleware);
  app.use(requestLog({ logger: log, redactPath: (p) => p.replace(/^\/files\/v\/[^/]+/, '/files/v/[token]') }));
  const isolation = crossOriginIsolationOn(env);
  const https = (c: Parameters<typeof requestIsHttps>[0]) => requestIsHttps(c, env);
  // STORAGE_SERVE=redirect: the viewer's fetch of a volume follows a 302 to the object store.
  const storeOrigin = redirectOrigin(env);
  const connectSrc = [...env.ALLOWED_ORIGINS, ...(storeOrigin ? [storeOrigin] : [])];
  app.use(securityHeaders({ embedOrigins: env.EMBED_ORIGINS, crossOriginIsolation: isolation, connectSrc, isHttps: https }));
  app.use(
    corsAllowlist({ allowedOrigins: env.ALLOWED_ORIGINS, exposeHeaders: ['content-range', 'content-length', 'accept-ranges', 'etag'] }),
  );

  // Routes that need no procedure context. /metrics is for operators: a bearer token, or this machine only.
  const clientKey = (c: Parameters<typeof clientAddress>[0]) => clientAddress(c, env.TRUSTED_PROXY_HOPS);
  app.route('/', healthRoutes({ readiness, disk: { dir: env.DATA_DIR, minFreeBytes: env.MIN_FREE_DISK_MB * MiB } }));
  app.use('/metrics', metricsAccess({ token: env.METRICS_TOKEN, clientAddress: clientKey }));
  metrics.mount(app, readiness);
  if (!deps.clientDir) app.route('/', homeRoute({ readiness, version: deps.process.version }));
  app.route('/', fileRoutes({ readiness, serve: env.STORAGE_SERVE, redirectTtlS: env.STORAGE_REDIRECT_TTL_S }));

  // The API: body limits, CSRF (cookie-authenticated /trpc only), readiness, the auth rate limit.
  const limits = bodyLimits({
    maxBytes: env.TRPC_MAX_BODY_BYTES,
    streamed: MULTIPART_PROCEDURES.map((p) => ({
      paths: [`/trpc/${p.procedure}`, p.restPath],
      maxBytes: ('dicom' in p ? env.DICOM_MAX_MB : env.MAX_UPLOAD_MB) * MiB + MULTIPART_OVERHEAD,
    })),
  });
  const trustedOrigins = [...(publicOrigin ? [publicOrigin] : []), ...env.ALLOWED_ORIGINS, ...env.EMBED_ORIGINS];
  app.use('/trpc/*', limits, csrfGuard({ trustedOrigins }), readyGate({ readiness }));
  app.use('/api/*', limits, readyGate({ readiness }));
  const limited = ['auth.signIn', 'auth.register', 'auth.guest'];
  // Counted per fleet, in the database every replica shares (behind readyGate: it is open by then).
  const fleetDb = () => {
    const services = readiness.services;
    if (!services) throw new Error('the database is not open yet');
    return services.database.db;
  };
  const rateStore = new PostgresRateLimitStore(fleetDb);
  app.use('/trpc/*', authRateLimit({ procedures: limited, limitPerMinute: env.AUTH_RATE_PER_MIN, clientKey, store: rateStore }));
  const uploadLeases = new FleetLeases(fleetDb, {
    kind: 'upload',
    leaseMs: env.FLEET_LEASE_S * 1000,
    onError: (err) => log.warn({ err }, 'renewing or releasing an upload lease failed'),
  });

  // Procedures: multipart ones streamed to disk, the rest over tRPC, the main ones also as REST.
  app.route('/', uploadRoutes({ env, router, createContext, log, dir: deps.uploadDir, fleet: uploadLeases }));
  app.route('/', segRoutes({ createContext, log }));
  app.route('/', studyExportRoutes({ createContext, log }));
  app.route('/', trpcRoutes({ router, createContext, log, maxBatchSize: env.TRPC_MAX_BATCH }));
  const baseUrl = (c: Parameters<typeof publicBaseUrl>[0]) => publicBaseUrl(c, env);
  app.route('/', openApiRoutes({ router, version: deps.process.version, baseUrl, createContext, log }));

  // Last, so every API route above wins: the viewer answers the remaining GETs.
  if (deps.clientDir) app.route('/', viewerRoutes({ dir: deps.clientDir }));
  app.notFound((c) => c.json({ error: 'Not found' }, 404));
  app.onError((err, c) => {
    log.error({ reqId: c.get('requestId'), err }, 'unhandled error');
    return c.json({ error: 'Internal server error' }, 500);
  });
  return app;
}
