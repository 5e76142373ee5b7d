import { tracked } from '@trpc/server';
import type { StudyRunSummary } from '../../shared/studies.js';
import { viewerOf } from '../context.js';
import { activeRunJobIds, findStudyRun } from '../db/study-runs.js';
import { type LiveStreamInput, liveStream } from '../jobs/live-stream.js';
import { runSummary, visibleRun } from './runs.js';

/** At most this often the run's summary is re-read while its jobs report progress (each job writes ≤ 5 a second). */
export const RUN_EVENT_INTERVAL_MS = 250;

export interface RunStreamInput extends LiveStreamInput {
  runId: string;
  lastEventId: number | null | undefined;
  /** The clock the ETA is computed on (tests). */
  now?: () => number;
}

/**
 * A study run's live progress over the same SSE mechanism and the same event bus as a job's
 * (jobs/live-stream.ts: the same caps, wait and credential re-check): it listens to each of the
 * run's unfinished jobs, and on any change re-reads the run's summary (at most every
 * RUN_EVENT_INTERVAL_MS) and sends it when its counts or progress moved. The event id is the
 * run's version (the sum of its jobs' versions, which only grow), so a reconnect with
 * Last-Event-ID resumes. It ends with the first summary that is not `running`.
 */
export async function* runProgressStream(s: RunStreamInput) {
  const now = s.now ?? Date.now;
  await visibleRun(s.db, viewerOf(s.user), s.runId);
  let dirty = true;
  let first = true;
  let seen = s.lastEventId ?? 0;
  let last: StudyRunSummary | undefined;
  yield* liveStream(s, {
    subject: 'a run',
    async subscribe(notify) {
      const unsubscribes = (await activeRunJobIds(s.db, s.runId)).map((jobId) =>
        s.jobs.bus.subscribe(jobId, () => {
          dirty = true;
          notify();
        }),
      );
      return () => unsubscribes.forEach((u) => u());
    },
    pending: () => dirty,
    async *poll({ recheck }) {
      // a notification lost while the bus reconnected only delays an update
      if (recheck) dirty = true;
      if (!dirty) return false;
      // coalesce a burst of job progress into one summary
      if (!first) await new Promise((r) => setTimeout(r, RUN_EVENT_INTERVAL_MS));
      first = false;
      dirty = false;
      // cancel_requested lives on the run row: read it again with the jobs
      const current = await findStudyRun(s.db, s.runId);
      if (!current) return true; // its study was deleted
      const summary = await runSummary(s.db, current, now());
      if (summary.status !== 'running') {
        // resumed after the end: the client has seen the final state already
        if (summary.version > seen) yield tracked(String(summary.version), summary);
        return true;
      }
      const moved =
        !last ||
        last.status !== summary.status ||
        last.progress !== summary.progress ||
        last.queued !== summary.queued ||
        last.running !== summary.running ||
        last.cancelRequested !== summary.cancelRequested;
      if (moved && summary.version > seen) {
        seen = summary.version;
        yield tracked(String(summary.version), summary);
      }
      last = summary;
      return false;
    },
  });
}
