import { tracked } from '@trpc/server';
import type { Kysely } from 'kysely';
import { type JobProgressEvent, TERMINAL_STATUSES } from '../../shared/jobs.js';
import type { AuthUser } from '../auth/service.js';
import { viewerOf } from '../context.js';
import { findJob } from '../db/jobs.js';
import type { Database } from '../db/tables.js';
import type { Env } from '../env.js';
import type { JobEventBus } from './events.js';
import { type JobSystem, toEvent, visibleJob } from './service.js';
import { StreamLimits } from './stream-limits.js';

/** Open streams per user and session, one count per job system (its event bus). */
const streamCounts = new WeakMap<JobEventBus, StreamLimits>();
function streamsOf(bus: JobEventBus): StreamLimits {
  let limits = streamCounts.get(bus);
  if (!limits) streamCounts.set(bus, (limits = new StreamLimits()));
  return limits;
}

/** How often a subscriber re-reads the job even without events (a lost notification only delays). */
const RECHECK_MS = 3000;

export interface ProgressStreamInput {
  db: Kysely<Database>;
  jobs: JobSystem;
  config: Pick<Env, 'MAX_STREAMS_PER_USER' | 'MAX_STREAMS_PER_SESSION'>;
  user: AuthUser;
  sessionId: string | undefined;
  jobId: string;
  /** Events up to this version were seen (the SSE client's Last-Event-ID on reconnect). */
  lastEventId: string | null | undefined;
  signal: AbortSignal | undefined;
}

/**
 * A job's live progress: its state now, then every change, each with its version as the event id
 * (a reconnect with Last-Event-ID resumes without repeats), ending at a terminal state. Counted
 * against the per-user and per-session stream caps from the first event to the end, however it ends.
 */
export async function* progressStream(s: ProgressStreamInput) {
  await visibleJob(s.db, viewerOf(s.user), s.jobId);
  const pending: JobProgressEvent[] = [];
  let wake: (() => void) | undefined;
  const unsubscribe = s.jobs.bus.subscribe(s.jobId, (e) => {
    pending.push(e);
    wake?.();
  });
  // One abort listener for the whole stream (one per wait would pile up: MaxListenersExceeded).
  const onAbort = () => wake?.();
  s.signal?.addEventListener('abort', onAbort, { once: true });
  const busy = (what: string) => (n: number) => `${what} ${n} live progress streams open; close a tab or wait for a job to finish`;
  const claims = [
    { key: `user:${s.user.id}`, limit: s.config.MAX_STREAMS_PER_USER, message: busy('You have') },
    ...(s.sessionId ? [{ key: `session:${s.sessionId}`, limit: s.config.MAX_STREAMS_PER_SESSION, message: busy('This browser has') }] : []),
  ];
  let release: () => void;
  try {
    release = streamsOf(s.jobs.bus).acquire(claims);
  } catch (err) {
    s.signal?.removeEventListener('abort', onAbort);
    unsubscribe();
    throw err;
  }
  try {
    let seen = Number(s.lastEventId ?? 0) || 0;
    const current = await findJob(s.db, s.jobId);
    if (!current) return;
    // Resumed after the end: the client has seen the final state already.
    if (current.version <= seen && TERMINAL_STATUSES.includes(current.status)) return;
    pending.unshift(toEvent(current));
    for (;;) {
      while (pending.length) {
        const e = pending.shift()!;
        if (e.version <= seen) continue;
        seen = e.version;
        yield tracked(String(e.version), e);
        if (TERMINAL_STATUSES.includes(e.status)) return;
      }
      if (s.signal?.aborted) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, RECHECK_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
      if (!pending.length) {
        const row = await findJob(s.db, s.jobId);
        if (!row) return; // deleted (retention, its case removed)
        if (row.version > seen) pending.push(toEvent(row));
      }
    }
  } finally {
    s.signal?.removeEventListener('abort', onAbort);
    unsubscribe();
    release();
  }
}
