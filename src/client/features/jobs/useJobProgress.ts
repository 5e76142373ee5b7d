import { skipToken } from '@tanstack/react-query';
import { useState } from 'react';
import { type JobProgressEvent, type JobStatus, type JobView, isTerminal } from '../../../shared/jobs.js';
import { trpc } from '../../trpc.js';

/** What the panel shows of a job while it runs. */
export interface JobProgress {
  status: JobStatus;
  progress: number;
  message: string;
  error: string | null;
}

export interface FollowedJob {
  /** The latest state known; null until the first event (or poll) arrives. */
  progress: JobProgress | null;
  /** How the job is followed: its live stream, or polling `jobs.byId` once the stream has failed. */
  source: 'stream' | 'polling';
  /** Succeeded, failed or cancelled. */
  ended: boolean;
  /** The ended job as `jobs.byId` returns it (its mask and metrics); null until then. */
  job: JobView | null;
}

/** How often a job is polled when its stream has failed. */
export const POLL_INTERVAL_MS = 1000;

const progressOf = (j: JobProgressEvent | JobView): JobProgress => ({
  status: j.status,
  progress: j.progress,
  message: j.message,
  error: j.error,
});

/**
 * Follows a job (none while `jobId` is null): its `jobs.onProgress` stream, or — when the stream
 * fails (refused past a stream cap, a proxy that cannot carry SSE) — polling `jobs.byId` until the
 * job ends; then the ended job itself, for its result.
 */
export function useJobProgress(jobId: string | null): FollowedJob {
  // Keyed by job, so a new job never shows the previous one's state or stream failure.
  const [streamed, setStreamed] = useState<JobProgressEvent | null>(null);
  const [failedFor, setFailedFor] = useState<string | null>(null);
  const live = jobId !== null && streamed?.id === jobId ? streamed : null;
  const streamFailed = jobId !== null && failedFor === jobId;
  const streamEnded = live !== null && isTerminal(live.status);

  trpc.jobs.onProgress.useSubscription(jobId !== null && !streamFailed && !streamEnded ? { id: jobId } : skipToken, {
    onData: (e) => setStreamed(e.data),
    onError: () => setFailedFor(jobId),
  });
  // One query serves both the polling and the ended job's result.
  const fetched = trpc.jobs.byId.useQuery(jobId !== null && (streamFailed || streamEnded) ? { id: jobId } : skipToken, {
    refetchInterval: (q) => (q.state.data && isTerminal(q.state.data.status) ? false : POLL_INTERVAL_MS),
  });

  const polled = jobId !== null && fetched.data?.id === jobId ? fetched.data : null;
  const progress = streamFailed && polled ? progressOf(polled) : live ? progressOf(live) : null;
  const ended = progress !== null && isTerminal(progress.status);
  return {
    progress,
    source: streamFailed ? 'polling' : 'stream',
    ended,
    job: ended && polled && isTerminal(polled.status) ? polled : null,
  };
}
