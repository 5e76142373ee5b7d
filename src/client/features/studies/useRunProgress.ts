import { skipToken } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import type { StudyRunSummary } from '../../../shared/studies.js';
import { trpc } from '../../trpc.js';

/** How often a run is polled when its stream has failed. */
export const RUN_POLL_INTERVAL_MS = 1000;

/** The cases of a run that have ended (succeeded, failed or cancelled). */
export const finishedOf = (r: Pick<StudyRunSummary, 'succeeded' | 'failed' | 'cancelled'>) => r.succeeded + r.failed + r.cancelled;

export interface FollowedRun {
  /** The latest summary known; null until the first event (or poll) arrives. */
  run: StudyRunSummary | null;
  /** Its live stream (`studies.runs.onProgress`), or polling `studies.runs.byId` once the stream has failed. */
  source: 'stream' | 'polling';
}

/**
 * Follows a running study run (none while `runId` is null) as the jobs' useJobProgress follows a
 * job: its SSE stream, polling `studies.runs.byId` only when the stream fails (refused past a
 * stream cap, a proxy that cannot carry SSE), until the run is no longer running.
 */
export function useRunProgress(runId: string | null): FollowedRun {
  // Keyed by run, so a new run never shows the previous one's state or stream failure.
  const [streamed, setStreamed] = useState<StudyRunSummary | null>(null);
  const [failedFor, setFailedFor] = useState<string | null>(null);
  const live = runId !== null && streamed?.id === runId ? streamed : null;
  const streamFailed = runId !== null && failedFor === runId;
  const streamEnded = live !== null && live.status !== 'running';

  trpc.studies.runs.onProgress.useSubscription(runId !== null && !streamFailed && !streamEnded ? { id: runId } : skipToken, {
    onData: (e) => setStreamed(e.data),
    onError: () => setFailedFor(runId),
  });
  const polled = trpc.studies.runs.byId.useQuery(runId !== null && streamFailed ? { id: runId } : skipToken, {
    refetchInterval: (q) => (q.state.data && q.state.data.status !== 'running' ? false : RUN_POLL_INTERVAL_MS),
  });
  const fromPoll = streamFailed && polled.data?.id === runId ? polled.data : null;
  return { run: fromPoll ?? live, source: streamFailed ? 'polling' : 'stream' };
}

/**
 * Calls `onChange` when a followed run's finished count changes and once when it stops running —
 * not on every progress event, so the table (and the agreement behind it) is fetched once per
 * finished case, not once a second.
 */
export function useOnFinishedChange(run: StudyRunSummary | null, onChange: (ended: boolean) => void): void {
  const key = run ? `${run.id}:${finishedOf(run)}:${run.status === 'running' ? 'running' : 'ended'}` : null;
  useEffect(() => {
    if (key === null || !run) return;
    onChange(run.status !== 'running');
    // only the key matters: a new summary with the same counts is not a change
  }, [key]);
}
