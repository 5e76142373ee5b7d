import type { PgBoss } from 'pg-boss';
import type { DatabaseHandle } from '../db/connect.js';
import type { Env } from '../env.js';
import type { Logger } from '../logger.js';

export const SEGMENTATION_QUEUE = 'segmentation';
/** Jobs whose retries ran out (a worker died on them each time) land here to be marked failed. */
export const DEAD_LETTER_QUEUE = 'segmentation-dead';
export const CLEANUP_QUEUE = 'strokeview-cleanup';

export interface QueueJobData {
  jobId: string;
}

const stopping = new WeakSet<PgBoss>();

/**
 * Stops the queue at once (jobs in flight are the workers' to drain first). pg-boss answers before
 * a worker's poll in flight has ended: that poll's error, once the database closes, is logged as
 * part of the shutdown, not as a fault.
 */
export async function stopQueue(boss: PgBoss, close: boolean): Promise<void> {
  stopping.add(boss);
  await boss.stop({ graceful: false, close, timeout: 1000 });
}

/**
 * pg-boss on the same database: its `fromPglite` adapter for the embedded engine, its own pool
 * with LISTEN/NOTIFY wake-ups on PostgreSQL. It carries the work (delivery, leases by heartbeat,
 * retries, expiry, schedules); the `jobs` table holds what users see.
 */
export async function startQueue(opts: { database: DatabaseHandle; env: Env; log: Logger }): Promise<PgBoss> {
  const { database, env, log } = opts;
  // Loaded here, not with the server: pg-boss and what it brings (cron-parser, luxon, rrule) are
  // ~1.4 MB of source, and with the embedded database the queue starts after ready (#29).
  const { PgBoss, fromPglite } = await import('pg-boss');
  const common = {
    // the lease: how quickly a crashed worker's job is noticed and handed to another
    superviseIntervalSeconds: 5,
    monitorIntervalSeconds: 5,
    schedule: true,
  };
  const boss =
    database.kind === 'embedded'
      ? new PgBoss({ db: fromPglite(database.pglite!), backend: 'pglite', ...common })
      : new PgBoss({ connectionString: database.url!, max: 4, useListenNotify: true, ...common });
  boss.on('error', (err) => {
    // A poll still in flight when the queue stops meets a closed database: shutdown, not a fault.
    if (stopping.has(boss)) log.info({ err: (err as Error).message }, 'job queue: a poll cut short by the shutdown');
    else log.error({ err: (err as Error).message }, 'job queue error');
  });
  boss.on('warning', (w) => log.warn({ warning: w }, 'job queue warning'));
  await boss.start();
  const ensure = async (name: string, options: Parameters<PgBoss['createQueue']>[1]) => {
    try {
      const existing = await boss.getQueue(name);
      if (existing) {
        // heartbeat and dead-letter are fixed at creation; the rest follows the configuration
        const { heartbeatSeconds: _h, deadLetter: _d, ...updatable } = options ?? {};
        await boss.updateQueue(name, updatable);
        if (options?.heartbeatSeconds !== undefined && existing.heartbeatSeconds !== options.heartbeatSeconds) {
          // not silently: the lease in force is the one the queue was created with
          log.warn(
            { queue: name, configured: options.heartbeatSeconds, inForce: existing.heartbeatSeconds },
            `JOB_LEASE_S is ${options.heartbeatSeconds} but the queue was created with a ${existing.heartbeatSeconds} s lease, which stays in force (pg-boss fixes it at creation)`,
          );
        }
      } else {
        await boss.createQueue(name, options);
      }
    } catch (err) {
      // another process created it between our look and our create
      if (!(await boss.getQueue(name))) throw err;
    }
  };
  await ensure(DEAD_LETTER_QUEUE, { retryLimit: 5, notify: true });
  await ensure(SEGMENTATION_QUEUE, {
    retryLimit: 2,
    retryDelay: 1,
    // our own timeout (JOB_TIMEOUT_S) fails the job with a reason first; this is the backstop
    expireInSeconds: env.JOB_TIMEOUT_S + 60,
    heartbeatSeconds: env.JOB_LEASE_S,
    deadLetter: DEAD_LETTER_QUEUE,
    notify: true,
  });
  await ensure(CLEANUP_QUEUE, { retryLimit: 1 });
  return boss;
}
