import type { DatabaseHandle } from '../db/connect.js';
import type { Env } from '../env.js';
import type { Logger } from '../logger.js';
import type { ModelRegistry } from '../segmentation/models.js';
import type { VolumeStore } from '../volumes/store.js';
import { CpuPool, poolSize } from '../workers/pool.js';
import { type JobEventBus, localEventBus, postgresEventBus } from './events.js';
import { type JobHold, holdFromEnv } from './hold.js';
import { ensurePushQueue, startPushWorker } from '../pacs/push.js';
import type { PgBoss } from 'pg-boss';
import { CLEANUP_QUEUE, startQueue, stopQueue } from './queue.js';
import { runRetention } from './retention.js';
import { reconcileQueue } from './service.js';
import type { JobSystem } from './service.js';
import { FleetLeases } from '../limits/leases.js';
import { type Workers, startWorkers } from './worker.js';

export interface JobRuntime {
  jobs: JobSystem;
  workers?: Workers;
  /** Drains workers (up to `graceMs`), stops the queue and the event bus. */
  stop(graceMs: number): Promise<void>;
}

/**
 * The job system of one process: the queue, the progress event bus, optionally the workers, and
 * the scheduled retention clean-up (expired jobs, then volumes nothing references).
 */
export async function startJobRuntime(opts: {
  database: DatabaseHandle;
  store: VolumeStore;
  models: ModelRegistry;
  env: Env;
  log: Logger;
  runWorker: boolean;
  onFinished?: (status: string, seconds: number) => void;
  /** Tests: hold jobs at a stage (default: `STROKEVIEW_TEST_HOLD` for spawned processes). */
  hold?: JobHold;
  /** The process's CPU pool; without one the runtime makes (and closes) its own. */
  cpu?: CpuPool;
  /** The queue, already starting (the server's boot starts it early); else started here. */
  boss?: Promise<PgBoss>;
  /** Boot phases: how long the queue, the event bus and the workers took to start (ms). */
  phases?: Record<string, number>;
  /** Tests: the workers' idle backstop poll while NOTIFY wakes them (s; default 5). */
  workerBackstopSeconds?: number;
}): Promise<JobRuntime> {
  const { database, env, log } = opts;
  const timed = async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const t0 = performance.now();
    try {
      return await fn();
    } finally {
      if (opts.phases) opts.phases[name] = Math.round(performance.now() - t0);
    }
  };
  const boss = await (opts.boss ?? timed('queue', () => startQueue({ database, env, log })));
  await ensurePushQueue(boss, env);
  const bus: JobEventBus = await timed('eventBus', async () =>
    database.kind === 'embedded' ? localEventBus() : await postgresEventBus(database.url!, log),
  );
  let workers: Workers | undefined;
  const hold = opts.hold ?? holdFromEnv();
  const ownCpu = opts.runWorker && !opts.cpu ? new CpuPool(poolSize(env)) : undefined;
  if (opts.runWorker) {
    const t0 = performance.now();
    workers = await startWorkers({
      cpu: (opts.cpu ?? ownCpu)!,
      boss,
      db: database.db,
      store: opts.store,
      models: opts.models,
      bus,
      log,
      concurrency: env.WORKER_CONCURRENCY,
      timeoutSeconds: env.JOB_TIMEOUT_S,
      runJobsInFlight: env.MAX_RUN_JOBS_IN_FLIGHT,
      ...(hold ? { hold } : {}),
      ...(opts.onFinished ? { onFinished: opts.onFinished } : {}),
      ...(opts.workerBackstopSeconds ? { backstopSeconds: opts.workerBackstopSeconds } : {}),
    });
    await startPushWorker({
      db: database.db,
      boss,
      store: opts.store,
      cpu: (opts.cpu ?? ownCpu)!,
      env,
      log,
      modelVersion: (id) => opts.models.models.get(id)?.manifest.version ?? null,
    });
    await boss.schedule(CLEANUP_QUEUE, '*/15 * * * *');
    await boss.work(CLEANUP_QUEUE, { pollingIntervalSeconds: 30 }, async () => {
      const orphans = await reconcileQueue(database.db, boss);
      if (orphans > 0) log.warn({ jobs: orphans }, 'queued jobs that never reached the queue were enqueued');
      const removed = await runRetention(database.db, opts.store, { signInFailureWindowMs: env.SIGN_IN_FAILURE_WINDOW_MIN * 60_000 });
      if (Object.values(removed).some((n) => n > 0)) log.info(removed, 'retention clean-up');
    });
    if (opts.phases) opts.phases.workers = Math.round(performance.now() - t0);
  }
  // Progress streams count per fleet: leases in the database that a dead replica's streams lose.
  const streams = new FleetLeases(() => database.db, {
    kind: 'stream',
    leaseMs: env.FLEET_LEASE_S * 1000,
    onError: (err) => log.warn({ err }, 'renewing or releasing a progress stream lease failed'),
  });
  const jobs: JobSystem = { boss, bus, streams, ...(workers ? { wake: () => workers!.wake() } : {}) };
  return {
    jobs,
    ...(workers ? { workers } : {}),
    async stop(graceMs) {
      streams.stop();
      await workers?.stop(graceMs);
      await stopQueue(boss, database.kind === 'postgres').catch(() => {});
      await bus.close();
      await ownCpu?.destroy();
    },
  };
}
