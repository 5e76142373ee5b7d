import type { AnyRouter } from '@trpc/server';
import type { Hono } from 'hono';
import { buildApp } from '../app.js';
import type { DatabaseHandle } from '../db/connect.js';
import { type Env, parseEnv } from '../env.js';
import { createLogger } from '../logger.js';
import { Readiness } from '../readiness.js';

export interface TestApp {
  app: Hono;
  readiness: Readiness;
  env: Env;
  /** Every log line the app wrote, parsed. */
  logs: Record<string, unknown>[];
}

/** The real app over a real database, with its log captured instead of printed. */
export function makeTestApp(opts: {
  database?: DatabaseHandle;
  env?: Record<string, string>;
  router?: AnyRouter;
}): TestApp {
  const env = parseEnv({ NODE_ENV: 'test', LOG_LEVEL: 'info', ...opts.env });
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: env.LOG_LEVEL,
    destination: { write: (line: string) => void logs.push(JSON.parse(line)) },
  });
  const readiness = new Readiness();
  if (opts.database) readiness.markReady({ database: opts.database });
  const app = buildApp({
    env,
    logger,
    readiness,
    process: { version: '9.9.9-test', startedAt: Date.now() - 5000 },
    ...(opts.router ? { router: opts.router } : {}),
  });
  return { app, readiness, env, logs };
}
