import type { Hono, MiddlewareHandler } from 'hono';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { countJobsByStatus } from '../../db/jobs.js';
import type { Readiness } from '../../readiness.js';

/** Route labels stay a small set: tRPC procedure names, fixed routes, and "other". */
function routeOf(path: string): string {
  if (path.startsWith('/trpc/')) return `/trpc/${path.slice(6).split(',').length > 1 ? '(batch)' : path.slice(6)}`;
  if (path.startsWith('/files/v/')) return '/files/v';
  if (['/healthz', '/readyz', '/metrics', '/'].includes(path)) return path;
  return 'other';
}

export interface Metrics {
  registry: Registry;
  middleware: MiddlewareHandler;
  jobFinished(status: string, seconds: number): void;
  mount(app: Hono, readiness: Readiness): void;
}

/** Prometheus metrics: HTTP requests and durations, jobs by status, queue depth, job durations. */
export function createMetrics(): Metrics {
  const registry = new Registry();
  const requests = new Counter({
    name: 'strokeview_http_requests_total',
    help: 'HTTP requests by method, route and status',
    labelNames: ['method', 'route', 'status'],
    registers: [registry],
  });
  const durations = new Histogram({
    name: 'strokeview_http_request_duration_seconds',
    help: 'HTTP request durations',
    labelNames: ['method', 'route'],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [registry],
  });
  const jobDurations = new Histogram({
    name: 'strokeview_job_duration_seconds',
    help: 'Segmentation job durations (start to finish) by final status, for jobs finished in this process',
    labelNames: ['status'],
    buckets: [0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
    registers: [registry],
  });
  const jobs = new Gauge({ name: 'strokeview_jobs', help: 'Jobs by status', labelNames: ['status'], registers: [registry] });
  const depth = new Gauge({ name: 'strokeview_queue_depth', help: 'Jobs queued and not yet running', registers: [registry] });
  return {
    registry,
    middleware: async function metrics(c, next) {
      const end = durations.startTimer({ method: c.req.method, route: routeOf(c.req.path) });
      try {
        await next();
      } finally {
        end();
        requests.inc({ method: c.req.method, route: routeOf(c.req.path), status: String(c.res.status) });
      }
    },
    jobFinished(status, seconds) {
      jobDurations.observe({ status }, seconds);
    },
    mount(app, readiness) {
      app.get('/metrics', async (c) => {
        const services = readiness.services;
        if (services) {
          const counts = await countJobsByStatus(services.database.db).catch(() => ({}) as Record<string, number>);
          for (const status of ['queued', 'running', 'succeeded', 'failed', 'cancelled']) jobs.set({ status }, counts[status] ?? 0);
          depth.set(counts.queued ?? 0);
        }
        c.header('Content-Type', registry.contentType);
        return c.body(await registry.metrics());
      });
    },
  };
}
