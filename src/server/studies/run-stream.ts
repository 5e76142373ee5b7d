import { tracked } from '@trpc/server';
import type { Kysely } from 'kysely';
import type { StudyRunSummary } from '../../shared/studies.js';
import { type Authenticated, type AuthUser, credentialIsLive } from '../auth/service.js';
import { viewerOf } from '../context.js';
import { activeRunJobIds, findStudyRun } from '../db/study-runs.js';
import type { Database } from '../db/tables.js';
import type { Env } from '../env.js';
import { tooMany, unauthorized } from '../errors.js';
import { CREDENTIAL_ENDED, RECHECK_MS } from '../jobs/progress-stream.js';
import type { JobSystem } from '../jobs/service.js';
import { runSummary, visibleRun } from './runs.js';

/** At most this often the run's summary is re-read while its jobs report progress (each job writes ≤ 5 a second). */
export const RUN_EVENT_INTERVAL_MS = 250;

export interface RunStreamInput {
  db: Kysely<Database>;
  jobs: JobSystem;
  config: Pick<Env, 'MAX_STREAMS_PER_USER' | 'MAX_STREAMS_PER_SESSION'> & Partial<Pick<Env, 'STREAM_RECHECK_MS'>>;
  user: AuthUser;
  auth: Pick<Authenticated, 'via' | 'sessionId' | 'tokenId'> | null;
  runId: string;
  lastEventId: number | null | undefined;
  signal: AbortSignal | undefined;
  /** The clock the ETA is computed on (tests). */
  now?: () => number;
}

/**
 * A study run's live progress over the same SSE mechanism and the same event bus as a job's
 * (jobs/progress-stream.ts): it listens to each of the run's unfinished jobs, and on any change
 * re-reads the run's summary (at most every RUN_EVENT_INTERVAL_MS) and sends it when its counts
 * or progress moved. The event id is the run's version (the sum of its jobs' versions, which only
 * grow), so a reconnect with Last-Event-ID resumes. It ends with the first summary that is not
 * `running`; it counts against the same per-user and per-session stream caps.
 */
export async function* runProgressStream(s: RunStreamInput) {
  const now = s.now ?? Date.now;
  await visibleRun(s.db, viewerOf(s.user), s.runId);
  let dirty = true;
  let wake: (() => void) | undefined;
  const unsubscribes = (await activeRunJobIds(s.db, s.runId)).map((jobId) =>
    s.jobs.bus.subscribe(jobId, () => {
      dirty = true;
      wake?.();
    }),
  );
  const unsubscribeAll = () => unsubscribes.forEach((u) => u());
  const onAbort = () => wake?.();
  s.signal?.addEventListener('abort', onAbort, { once: true });
  const busy = (what: string) => (n: number) =>
    tooMany(`${what} ${n} live progress streams open; close a tab or wait for a run to finish`, 10);
  let release: () => void;
  try {
    release = await s.jobs.streams.acquire([
      { key: `user:${s.user.id}`, limit: s.config.MAX_STREAMS_PER_USER, refuse: busy('You have') },
      ...(s.auth?.sessionId
        ? [{ key: `session:${s.auth.sessionId}`, limit: s.config.MAX_STREAMS_PER_SESSION, refuse: busy('This browser has') }]
        : []),
    ]);
  } catch (err) {
    s.signal?.removeEventListener('abort', onAbort);
    unsubscribeAll();
    throw err;
  }
  try {
    const recheckMs = s.config.STREAM_RECHECK_MS ?? RECHECK_MS;
    let seen = s.lastEventId ?? 0;
    let last: StudyRunSummary | undefined;
    let checkAt = Date.now() + recheckMs;
    for (;;) {
      if (dirty) {
        dirty = false;
        // cancel_requested lives on the run row: read it again with the jobs
        const current = await findStudyRun(s.db, s.runId);
        if (!current) return; // its study was deleted
        const summary = await runSummary(s.db, current, now());
        const moved =
          !last ||
          last.status !== summary.status ||
          last.progress !== summary.progress ||
          last.queued !== summary.queued ||
          last.running !== summary.running ||
          last.cancelRequested !== summary.cancelRequested;
        if (summary.status !== 'running') {
          // resumed after the end: the client has seen the final state already
          if (summary.version > seen) yield tracked(String(summary.version), summary);
          return;
        }
        if (moved && summary.version > seen) {
          seen = summary.version;
          yield tracked(String(summary.version), summary);
        }
        last = summary;
      }
      if (s.signal?.aborted) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, checkAt - Date.now()));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        if (dirty) wake();
      });
      wake = undefined;
      if (s.signal?.aborted) return;
      if (Date.now() >= checkAt) {
        checkAt = Date.now() + recheckMs;
        if (!s.auth || !(await credentialIsLive(s.db, s.auth))) throw unauthorized(CREDENTIAL_ENDED);
        // a notification lost while the bus reconnected only delays an update
        dirty = true;
      }
      // coalesce a burst of job progress into one summary
      if (dirty) await new Promise((r) => setTimeout(r, RUN_EVENT_INTERVAL_MS));
    }
  } finally {
    s.signal?.removeEventListener('abort', onAbort);
    unsubscribeAll();
    release();
  }
}
