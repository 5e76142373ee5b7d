import { tracked } from '@trpc/server';
import { type JobProgressEvent, TERMINAL_STATUSES } from '../../shared/jobs.js';
import { viewerOf } from '../context.js';
import { findJob } from '../db/jobs.js';
import { type LiveStreamInput, liveStream } from './live-stream.js';
import { toEvent, visibleJob } from './service.js';

export { CREDENTIAL_ENDED, RECHECK_MS } from './live-stream.js';

export interface ProgressStreamInput extends LiveStreamInput {
  jobId: string;
  /** Events up to this version were seen (the SSE client's Last-Event-ID on reconnect; validated by onProgressSchema). */
  lastEventId: number | null | undefined;
}

/**
 * A job's live progress: its state now, then every change, each with its version as the event id
 * (a reconnect with Last-Event-ID resumes without repeats), ending at a terminal state. The caps,
 * the wait and the credential re-check are the live stream's (jobs/live-stream.ts).
 */
export async function* progressStream(s: ProgressStreamInput) {
  await visibleJob(s.db, viewerOf(s.user), s.jobId);
  const pending: JobProgressEvent[] = [];
  let seen = s.lastEventId ?? 0;
  let started = false;
  yield* liveStream(s, {
    subject: 'a job',
    subscribe: (notify) =>
      s.jobs.bus.subscribe(s.jobId, (e) => {
        pending.push(e);
        notify();
      }),
    pending: () => pending.length > 0,
    async *poll() {
      if (!started) {
        started = true;
        const current = await findJob(s.db, s.jobId);
        if (!current) return true;
        // Resumed after the end: the client has seen the final state already.
        if (current.version <= seen && TERMINAL_STATUSES.includes(current.status)) return true;
        // Versions only grow, so an id ahead of the job is not one we sent (another job's, made up):
        // start over from the current state rather than skip every event until the job outgrows it.
        if (seen > current.version) seen = 0;
        pending.unshift(toEvent(current));
      } else if (!pending.length) {
        // woken by the clock: read the row (a notification may have been lost)
        const row = await findJob(s.db, s.jobId);
        if (!row) return true; // deleted (retention, its case removed)
        if (row.version > seen || TERMINAL_STATUSES.includes(row.status)) pending.push(toEvent(row));
      }
      while (pending.length) {
        const e = pending.shift()!;
        // Any terminal row ends the stream, sent or not: nothing follows it.
        if (TERMINAL_STATUSES.includes(e.status)) {
          if (e.version > seen) yield tracked(String(e.version), e);
          return true;
        }
        if (e.version <= seen) continue;
        seen = e.version;
        yield tracked(String(e.version), e);
      }
      return false;
    },
  });
}
