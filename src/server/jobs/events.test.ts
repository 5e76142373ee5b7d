import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobProgressEvent } from '../../shared/jobs.js';
import type { Logger } from '../logger.js';
import { createThrowawayPostgres } from '../test/databases.js';
import { type JobEventBus, postgresEventBus } from './events.js';

const admin = process.env.TEST_DATABASE_URL;

/** A logger that keeps its lines, so the test can wait for "could not reconnect". */
function recordingLogger() {
  const lines: string[] = [];
  const keep = (_obj: unknown, msg?: string) => void lines.push(msg ?? String(_obj));
  return { lines, log: { warn: keep, info: keep, error: keep, debug: keep } as unknown as Logger };
}

const waitFor = async (check: () => boolean | Promise<boolean>, what: string) => {
  for (let i = 0; i < 1200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
};

describe.skipIf(!admin)('the PostgreSQL job event bus', { timeout: 180_000 }, () => {
  let db: { url: string; drop(): Promise<void> };
  let bus: JobEventBus | undefined;
  const name = () => new URL(db.url).pathname.slice(1);
  const adminQuery = async (q: string) => {
    const c = new pg.Client({ connectionString: admin });
    await c.connect();
    try {
      return await c.query(q);
    } finally {
      await c.end();
    }
  };
  beforeAll(async () => {
    db = await createThrowawayPostgres();
  });
  afterAll(async () => {
    await bus?.close();
    await adminQuery(`alter database ${name()} allow_connections true`).catch(() => {});
    await db?.drop();
  });

  it('loses its LISTEN connection while the database refuses connections, keeps retrying, and delivers again once it is back (#16 item 7)', async () => {
    const { lines, log } = recordingLogger();
    bus = await postgresEventBus(db.url, log);
    const seen: JobProgressEvent[] = [];
    bus.subscribe('job-1', (e) => seen.push(e));
    const event = (version: number): JobProgressEvent => ({
      id: 'job-1',
      status: 'running',
      progress: version,
      message: 'x',
      version,
      error: null,
    });
    await bus.publish(event(1));
    await waitFor(() => seen.length === 1, 'the first event');

    // The database goes away for this process: no new connection is accepted, and the listener's is cut.
    await adminQuery(`alter database ${name()} allow_connections false`);
    await adminQuery(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name()}' and query ilike 'LISTEN%'`);
    await waitFor(() => lines.includes('job events listener could not reconnect; trying again'), 'a failed reconnect');

    // Back: the next attempt succeeds by itself, and events flow again.
    await adminQuery(`alter database ${name()} allow_connections true`);
    await waitFor(() => lines.includes('job events listener reconnected'), 'the reconnect');
    await bus.publish(event(2));
    await waitFor(() => seen.length === 2, 'an event after the reconnect');
    expect(seen.map((e) => e.version)).toEqual([1, 2]);
  });
});
