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
import { CancelledError } from '../segmentation/inference.js';
import { SegmentationInputError } from '../segmentation/pipeline.js';
import { claimJob, outcomeOf, watchJob } from './worker.js';

// The parts of a worker, each on its own (the whole runs in jobs.test.ts and processes.test.ts).

describe('outcomeOf: what a stopped run means for the job', () => {
  const at = { timedOut: false, draining: false, timeoutSeconds: 600 };
  it('a cancel is a cancel; the same abort after the timeout is a failure with the reason; while draining it goes back to the queue', () => {
    expect(outcomeOf(new CancelledError(), at)).toEqual({ kind: 'cancelled' });
    expect(outcomeOf(new CancelledError(), { ...at, timedOut: true })).toEqual({
      kind: 'failed',
      message: 'Timed out',
      error: 'The segmentation took longer than 600 s and was stopped',
    });
    expect(outcomeOf(new CancelledError(), { ...at, draining: true })).toEqual({ kind: 'handed-back' });
  });
  it("the case's data fails at once with its message; anything else is retried", () => {
    expect(outcomeOf(new SegmentationInputError('This case has no ADC'), at)).toEqual({ kind: 'failed', message: 'Failed', error: 'This case has no ADC' });
    expect(outcomeOf(new Error('ENOSPC'), at)).toEqual({ kind: 'retry' });
  });
});

describe('watchJob: the timeout on an injected clock', () => {
  afterEach(() => vi.useRealTimers());
  it('aborts exactly at JOB_TIMEOUT_S and says it timed out; dispose stops the clock', async () => {
    vi.useFakeTimers();
    const db = {} as never;
    const watch = watchJob({ db, bus: { publish: async () => {} } as never }, 'job-1', 5);
    vi.advanceTimersByTime(4999);
    expect(watch.signal.aborted).toBe(false);
    vi.advanceTimersByTime(1);
    expect(watch.signal.aborted).toBe(true);
    expect(watch.timedOut()).toBe(true);

    const other = watchJob({ db, bus: { publish: async () => {} } as never }, 'job-2', 5);
    other.dispose();
    vi.advanceTimersByTime(10_000);
    expect(other.signal.aborted).toBe(false);
    await watch.settle();
  });
});

describeEachDatabase('claimJob', (current) => {
  it('a job cancelled between reading it and claiming it is not run (#16 item 1): the claim touches nothing and returns null', async () => {
    const db = current().handle.db;
    const store = new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-claim-')));
    await seedDemoCases(db, store, 1);
    const caseId = (await db.selectFrom('cases').select('id').executeTakeFirstOrThrow()).id;
    const user = await insertUser(db, { email: 'claim@example.org', password_hash: null, role: 'user' });
    const job = await insertJob(db, { ownerId: user.id, caseId, modelIds: ['adc-dwi-v2'], idempotencyKey: null, expiresAt: new Date(Date.now() + 86_400_000) });

    // The interleaving, forced: right after the worker's read of the job row, the user cancels it.
    let interleaved = false;
    const cancelAfterRead: KyselyPlugin = {
      transformQuery: (args) => args.node,
      async transformResult(args) {
        if (!interleaved && args.result.rows.some((r) => (r as { id?: string }).id === job.id)) {
          interleaved = true;
          await updateJob(db, job.id, { status: 'cancelled', cancel_requested: true, message: 'Cancelled', finished_at: new Date() }, { statusIn: ['queued'] });
        }
        return args.result;
      },
    };
    const models = { models: new Map([['adc-dwi-v2', {} as never]]) } as never;
    const published: unknown[] = [];
    const claimed = await claimJob({ db: db.withPlugin(cancelAfterRead), bus: { publish: async (e: unknown) => void published.push(e) } as never, models }, job.id);
    expect(interleaved).toBe(true);
    expect(claimed).toBeNull();
    const row = await findJob(db, job.id);
    expect(row).toMatchObject({ status: 'cancelled', attempts: 0 });
    expect(published).toEqual([]);
  });
});
