import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { KyselyPlugin } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { seedDemoCases } from '../cases/demo.js';
import { findJob, insertJob, updateJob } from '../db/jobs.js';
import { insertUser } from '../db/users.js';
import { describeEachDatabase } from '../test/databases.js';
import { FsVolumeStore } from '../volumes/store.js';
import { cancelled, unprocessable } from '../errors.js';
import { outcomeOf, safeError } from './outcome.js';
import { claimJob, jobRunner, watchJob } from './worker.js';
import * as transition from './transitions.js';
import { gate } from './hold.js';
import { localEventBus } from './events.js';
import { createLogger } from '../logger.js';
import { builtInModelsDir, loadModelRegistry } from '../segmentation/models.js';
import { testCpuPool } from '../test/app.js';

// The parts of a worker, each on its own (the whole runs in jobs.test.ts and processes.test.ts).

describe('outcomeOf: what a stopped run means for the job', () => {
  const at = { timedOut: false, draining: false, timeoutSeconds: 600 };
  it('a cancel is a cancel; the same abort after the timeout is a failure with the reason; while draining it goes back to the queue', () => {
    expect(outcomeOf(cancelled(), at)).toEqual({ kind: 'cancelled' });
    expect(outcomeOf(cancelled(), { ...at, timedOut: true })).toEqual({
      kind: 'failed',
      message: 'Timed out',
      error: 'The segmentation took longer than 600 s and was stopped',
    });
    expect(outcomeOf(cancelled(), { ...at, draining: true })).toEqual({ kind: 'handed-back' });
  });
  it("the case's data fails at once with its message; anything else is retried", () => {
    expect(outcomeOf(unprocessable('This case has no ADC'), at)).toEqual({
      kind: 'failed',
      message: 'Failed',
      error: 'This case has no ADC',
    });
    expect(outcomeOf(new Error('ENOSPC'), at)).toEqual({ kind: 'retry' });
  });
});

describe('safeError: what a job owner may read of an unexplained failure', () => {
  it('system errors become plain phrases without server paths; others their first line', () => {
    const enoent = Object.assign(new Error("ENOENT: no such file or directory, open '/data/volumes/ab/abc.nii.gz'"), { code: 'ENOENT' });
    expect(safeError(enoent)).toBe('a stored file of this case is missing');
    expect(safeError(Object.assign(new Error('x'), { code: 'EWEIRD' }))).toBe('a system error (EWEIRD)');
    expect(safeError(new Error('first line\nsecond'))).toBe('first line');
  });
});

describe('watchJob: the timeout on an injected clock', () => {
  afterEach(() => vi.useRealTimers());
  it('aborts exactly at JOB_TIMEOUT_S and says it timed out; dispose stops the clock', async () => {
    vi.useFakeTimers();
    const db = {} as never;
    const watch = watchJob(
      { db, bus: { publish: async () => {} } as never, log: createLogger({ level: 'silent' }) },
      { jobId: 'job-1', attempt: 1 },
      5,
    );
    vi.advanceTimersByTime(4999);
    expect(watch.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(watch.signal.aborted).toBe(true);
    expect(watch.timedOut()).toBe(true);

    const other = watchJob(
      { db, bus: { publish: async () => {} } as never, log: createLogger({ level: 'silent' }) },
      { jobId: 'job-2', attempt: 1 },
      5,
    );
    other.dispose();
    vi.advanceTimersByTime(10_000);
    expect(other.signal.aborted).toBe(false);
    await watch.settle();
  });
});

/** A job row on a seeded demo case, owned by a fresh user. */
async function jobOnDemoCase(db: Parameters<typeof insertJob>[0], modelId: string, email: string) {
  const store = new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-worker-')));
  await seedDemoCases(db, store, 1);
  const caseId = (await db.selectFrom('cases').select('id').executeTakeFirstOrThrow()).id;
  const user = await insertUser(db, { email, password_hash: null, role: 'user' });
  const job = await insertJob(db, {
    ownerId: user.id,
    caseId,
    modelIds: [modelId],
    idempotencyKey: null,
    expiresAt: new Date(Date.now() + 86_400_000),
  });
  return { store, job };
}

/** Forces an interleaving: runs `then` once, right after the first query that returns the job's row. */
function afterReadOf(jobId: string, then: () => Promise<unknown>) {
  const state = { interleaved: false };
  const plugin: KyselyPlugin = {
    transformQuery: (args) => args.node,
    async transformResult(args) {
      if (!state.interleaved && args.result.rows.some((r) => (r as { id?: string }).id === jobId)) {
        state.interleaved = true;
        await then();
      }
      return args.result;
    },
  };
  return { plugin, state };
}

describeEachDatabase('claimJob', (current) => {
  it('a job cancelled between reading it and claiming it is not run (#16 item 1): the claim touches nothing and returns null', async () => {
    const db = current().handle.db;
    const { job } = await jobOnDemoCase(db, 'adc-dwi-v2', 'claim@example.org');
    // The interleaving, forced: right after the worker's read of the job row, the user cancels it.
    const cancel = afterReadOf(job.id, () =>
      updateJob(
        db,
        job.id,
        { status: 'cancelled', cancel_requested: true, message: 'Cancelled', finished_at: new Date() },
        { statusIn: ['queued'] },
      ),
    );
    const models = { models: new Map([['adc-dwi-v2', {} as never]]) } as never;
    const published: unknown[] = [];
    const claimed = await claimJob(
      { db: db.withPlugin(cancel.plugin), bus: { publish: async (e: unknown) => void published.push(e) } as never, models },
      job.id,
    );
    expect(cancel.state.interleaved).toBe(true);
    expect(claimed).toBeNull();
    const row = await findJob(db, job.id);
    expect(row).toMatchObject({ status: 'cancelled', attempts: 0 });
    expect(published).toEqual([]);
  });
});

describeEachDatabase('two attempts of one job (#16 item 2)', (current) => {
  async function setup() {
    const db = current().handle.db;
    return { db, ...(await jobOnDemoCase(db, 'adc-core-v1', 'lease@example.org')) };
  }

  it('two workers claiming at once: the attempt guard lets exactly one in', async () => {
    const { db, job } = await setup();
    // Forced: right after worker A reads the row, worker B claims it.
    const b = afterReadOf(job.id, async () =>
      expect(await transition.claim(db, (await findJob(db, job.id))!)).toMatchObject({ attempts: 1 }),
    );
    const models = { models: new Map([['adc-core-v1', {} as never]]) } as never;
    const a = await claimJob({ db: db.withPlugin(b.plugin), bus: { publish: async () => {} } as never, models }, job.id);
    expect(b.state.interleaved).toBe(true);
    expect(a).toBeNull();
    expect(await findJob(db, job.id)).toMatchObject({ status: 'running', attempts: 1 });
  });

  it("a lease takeover while the first worker is held mid-pipeline: released, its writes are refused and the second attempt's result stands", async () => {
    const { db, store, job } = await setup();
    const models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
    try {
      const lines: Record<string, unknown>[] = [];
      const log = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(JSON.parse(l)) } });
      const deps = { db, store, models, cpu: testCpuPool(), bus: localEventBus(), log, timeoutSeconds: 600 };
      const held = gate('infer');
      const first = jobRunner({ ...deps, hold: held.hold })(job.id);
      await held.reached;
      expect(await findJob(db, job.id)).toMatchObject({ status: 'running', attempts: 1 });
      // The lease lapses (as when the first worker stops heart-beating): the queue delivers the
      // job again and a second worker runs it to the end.
      await jobRunner(deps)(job.id);
      const afterSecond = (await findJob(db, job.id))!;
      expect(afterSecond).toMatchObject({ status: 'succeeded', attempts: 2, progress: 100 });
      const linksAfterSecond = await db.selectFrom('job_volumes').selectAll().where('job_id', '=', job.id).execute();
      // The first worker is let go: every write it tries is refused, and it stops.
      held.release();
      await first;
      const final = (await findJob(db, job.id))!;
      expect(final.version).toBe(afterSecond.version);
      expect(final).toMatchObject({ status: 'succeeded', attempts: 2, result: afterSecond.result });
      expect(await db.selectFrom('job_volumes').selectAll().where('job_id', '=', job.id).execute()).toEqual(linksAfterSecond);
      expect(lines.some((l) => l.msg === 'job taken over by another attempt (or ended); stopped without writing' && l.attempt === 1)).toBe(
        true,
      );
    } finally {
      await models.close();
    }
  });
});
