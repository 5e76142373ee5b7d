import { type Service, settledWithin } from './boot.js';
import type { Env } from './env.js';
import { createLogger } from './logger.js';
import { openRuntime } from './runtime.js';

/**
 * Segmentation workers alone (a GPU machine), taking jobs from the queue in DATABASE_URL's
 * PostgreSQL. DATA_DIR must be the storage the API servers use. No model is a boot error here:
 * a worker that can run nothing would only take jobs to fail them.
 */
export async function startWorker(env: Env): Promise<Service> {
  const logger = createLogger({ level: env.LOG_LEVEL }).child({ role: 'worker' });
  const abort = new AbortController();
  const graceMs = env.SHUTDOWN_GRACE_S * 1000;
  const booting = openRuntime(env, 'worker', { log: logger, signal: abort.signal });
  const ready = booting.then((runtime) => {
    logger.info({ database: runtime.database.kind, concurrency: env.WORKER_CONCURRENCY }, 'worker ready');
  });
  let stopped: Promise<void> | undefined;
  const shutdown = async (signal: string) => {
    abort.abort();
    logger.info({ signal }, 'worker draining');
    const runtime = await settledWithin(booting, graceMs);
    await runtime?.stop(graceMs);
    logger.info('worker stopped');
  };
  return { ready, stop: (signal = 'stop') => (stopped ??= shutdown(signal)) };
}
