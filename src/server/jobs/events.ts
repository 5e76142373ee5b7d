import { EventEmitter } from 'node:events';
import type pg from 'pg';
import type { JobProgressEvent } from '../../shared/jobs.js';
import { CREDENTIALS_CHANNEL, type CredentialChanges, credentialFeed } from '../auth/session-cache.js';
import type { Logger } from '../logger.js';

/** Carries job progress from whichever process runs a job to every process with subscribers. */
export interface JobEventBus {
  publish(event: JobProgressEvent): Promise<void>;
  subscribe(jobId: string, listener: (event: JobProgressEvent) => void): () => void;
  close(): Promise<void>;
  /**
   * On PostgreSQL, the same LISTEN connection also hears credential changes (for every process's
   * session cache): live while it is connected and listening, down from the moment it drops.
   */
  readonly credentials?: CredentialChanges;
}

/** One process (the embedded database): an in-memory emitter. */
export function localEventBus(): JobEventBus {
  const emitter = new EventEmitter();
  emitter.setMaxListeners(0);
  return {
    async publish(event) {
      emitter.emit(event.id, event);
    },
    subscribe(jobId, listener) {
      emitter.on(jobId, listener);
      return () => emitter.off(jobId, listener);
    },
    async close() {
      emitter.removeAllListeners();
    },
  };
}

export const JOB_EVENTS_CHANNEL = 'strokeview_job_events';

/**
 * Several processes on one PostgreSQL: events go out with NOTIFY and come back to every process
 * (this one included) through a dedicated LISTEN connection, which reconnects when it drops.
 * Subscribers also re-read the job row periodically, so a notification lost during a reconnect
 * only delays an update.
 */
export async function postgresEventBus(
  url: string,
  log?: Logger,
  opts: {
    /** Tests: awaited before each reconnect attempt, so a test can hold the bus down with a gate. */
    beforeReconnect?: () => Promise<void>;
  } = {},
): Promise<JobEventBus> {
  const { default: pgDriver } = await import('pg'); // PostgreSQL only (see db/connect.ts)
  const local = localEventBus();
  const credentials = credentialFeed();
  const pool = new pgDriver.Pool({ connectionString: url, max: 2 });
  pool.on('error', () => {});
  let client: pg.Client | undefined;
  let closed = false;
  let retry: NodeJS.Timeout | undefined;
  let failures = 0;
  const connect = async (): Promise<void> => {
    const c = new pgDriver.Client({ connectionString: url, application_name: 'strokeview-events' });
    c.on('notification', (msg) => {
      if (msg.channel === CREDENTIALS_CHANNEL && msg.payload) return credentials.changed(msg.payload);
      if (msg.channel !== JOB_EVENTS_CHANNEL || !msg.payload) return;
      let event: JobProgressEvent;
      try {
        event = JSON.parse(msg.payload) as JobProgressEvent;
      } catch {
        return; // not ours
      }
      // A subscriber that throws must not become an unhandled rejection of this connection's handler.
      local.publish(event).catch((err: unknown) => log?.warn({ err, jobId: event.id }, 'a job progress subscriber failed'));
    });
    let lost = false;
    const onLost = (why: string) => {
      if (lost || closed) return;
      lost = true;
      // Changes made while nobody listens would go unheard: session caches stop until it is back.
      credentials.setLive(false);
      log?.warn({ err: why }, 'job events listener lost its connection; reconnecting');
      c.end().catch(() => {});
      reconnect();
    };
    c.on('error', (err) => onLost(err.message));
    c.on('end', () => onLost('connection ended'));
    try {
      await c.connect();
      await c.query(`LISTEN ${JOB_EVENTS_CHANNEL}; LISTEN ${CREDENTIALS_CHANNEL}`);
    } catch (err) {
      lost = true;
      c.end().catch(() => {});
      throw err;
    }
    client = c;
    failures = 0;
    if (!closed) credentials.setLive(true);
  };
  /**
   * Tries again until it works — a failed reconnect (the database still down) schedules the next,
   * backing off from 1 s to 30 s — so live progress resumes by itself after a database blip.
   */
  const reconnect = () => {
    if (closed || retry) return;
    const delay = Math.min(30_000, 1000 * 2 ** Math.min(failures, 5));
    retry = setTimeout(() => {
      void (opts.beforeReconnect?.() ?? Promise.resolve())
        .then(() => {
          retry = undefined;
          if (closed) return;
          return connect();
        })
        .then(
          () => log?.info('job events listener reconnected'),
          (err: Error) => {
            failures++;
            log?.warn({ err: err.message, attempt: failures }, 'job events listener could not reconnect; trying again');
            reconnect();
          },
        );
    }, delay);
    retry.unref?.();
  };
  await connect();
  return {
    async publish(event) {
      await pool.query('select pg_notify($1, $2)', [JOB_EVENTS_CHANNEL, JSON.stringify(event)]);
    },
    subscribe: local.subscribe,
    credentials: credentials.feed,
    async close() {
      closed = true;
      credentials.setLive(false);
      if (retry) clearTimeout(retry);
      await client?.end().catch(() => {});
      await pool.end().catch(() => {});
      await local.close();
    },
  };
}
