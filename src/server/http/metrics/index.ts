import type { Hono, MiddlewareHandler } from 'hono';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { countJobsByStatus } from '../../db/jobs.js';
import type { Readiness } from '../../readiness.js';
import { JOB_STATUSES } from '../../../shared/job-status.js';

const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);

/**
 * Route labels stay a fixed set whatever a client sends: the router's own procedure names,
 * "(batch)", "(unknown)", fixed routes, and "other". A label per path an attacker makes up would
 * grow /metrics (and the registry) without bound.
 */
export function routeOf(path: string, procedures: ReadonlySet<string>): string {
  if (path.startsWith('/trpc/')) {
    const name = path.slice(6).replace(/\/+$/, '');
    if (name.includes(',')) return '/trpc/(batch)';
    return procedures.has(name) ? `/trpc/${name}` : '/trpc/(unknown)';
  }
  if (path.startsWith('/files/v/')) return '/files/v';
  if (path.startsWith('/api/')) return '/api';
  if (['/healthz', '/readyz', '/metrics', '/'].includes(path)) return path;
  return 'other';
}

/** Every procedure path of a tRPC router (`cases.list`, …): the allowed route labels. */
export function procedureNames(router: { _def: { procedures: object } }): string[] {
  return Object.keys(router._def.procedures);
}

export interface Metrics {
  registry: Registry;
  middleware: MiddlewareHandler;
  jobFinished(status: string, seconds: number): void;
  mount(app: Hono, readiness: Readiness): void;
}

/** Prometheus metrics: HTTP requests and durations, jobs by status, queue depth, job durations. */
export function createMetrics(opts: { procedures?: Iterable<string> } = {}): Metrics {
  const procedures = new Set(opts.procedures ?? []);
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
      const method = METHODS.has(c.req.method) ? c.req.method : 'OTHER';
      const route = routeOf(c.req.path, procedures);
      const end = durations.startTimer({ method, route });
      try {
        await next();
      } finally {
        end();
        requests.inc({ method, route, status: String(c.res.status) });
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
          for (const status of JOB_STATUSES) jobs.set({ status }, counts[status] ?? 0);
          depth.set(counts.queued ?? 0);
        }
        c.header('Content-Type', registry.contentType);
        return c.body(await registry.metrics());
      });
    },
  };
}
