import { afterEach, describe, expect, it, vi } from 'vitest';
import { CancelledError } from '../segmentation/inference.js';
import { SegmentationInputError } from '../segmentation/pipeline.js';
import { outcomeOf, watchJob } from './worker.js';

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
