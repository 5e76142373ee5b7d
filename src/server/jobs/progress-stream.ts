import { tracked } from '@trpc/server';
import type { Kysely } from 'kysely';
import { type JobProgressEvent, TERMINAL_STATUSES } from '../../shared/jobs.js';
import { type Authenticated, type AuthUser, credentialIsLive } from '../auth/service.js';
import { viewerOf } from '../context.js';
import { findJob } from '../db/jobs.js';
import type { Database } from '../db/tables.js';
import type { Env } from '../env.js';
import { tooMany, unauthorized } from '../errors.js';
import { type JobSystem, toEvent, visibleJob } from './service.js';

/** The default of STREAM_RECHECK_MS: how often a stream re-reads its job and re-checks its credential. */
export const RECHECK_MS = 3000;

export const CREDENTIAL_ENDED = 'Your sign-in ended (signed out, token revoked or account disabled); sign in again to follow this job';

export interface ProgressStreamInput {
  db: Kysely<Database>;
  jobs: JobSystem;
  config: Pick<Env, 'MAX_STREAMS_PER_USER' | 'MAX_STREAMS_PER_SESSION'> & Partial<Pick<Env, 'STREAM_RECHECK_MS'>>;
  user: AuthUser;
  /** How the stream was authorized (session or API token): re-checked every STREAM_RECHECK_MS. */
  auth: Pick<Authenticated, 'via' | 'sessionId' | 'tokenId'> | null;
  jobId: string;
  /** Events up to this version were seen (the SSE client's Last-Event-ID on reconnect; validated by onProgressSchema). */
  lastEventId: number | null | undefined;
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
  const busy = (what: string) => (n: number) =>
    tooMany(`${what} ${n} live progress streams open; close a tab or wait for a job to finish`, 10);
  const claims = [
    { key: `user:${s.user.id}`, limit: s.config.MAX_STREAMS_PER_USER, refuse: busy('You have') },
    ...(s.auth?.sessionId
      ? [{ key: `session:${s.auth.sessionId}`, limit: s.config.MAX_STREAMS_PER_SESSION, refuse: busy('This browser has') }]
      : []),
  ];
  let release: () => void;
  try {
    release = await s.jobs.streams.acquire(claims);
  } catch (err) {
    s.signal?.removeEventListener('abort', onAbort);
    unsubscribe();
    throw err;
  }
  try {
    const recheckMs = s.config.STREAM_RECHECK_MS ?? RECHECK_MS;
    let seen = s.lastEventId ?? 0;
    const current = await findJob(s.db, s.jobId);
    if (!current) return;
    // Resumed after the end: the client has seen the final state already.
    if (current.version <= seen && TERMINAL_STATUSES.includes(current.status)) return;
    // Versions only grow, so an id ahead of the job is not one we sent (another job's, made up):
    // start over from the current state rather than skip every event until the job outgrows it.
    if (seen > current.version) seen = 0;
    pending.unshift(toEvent(current));
    // The credential is re-checked on a clock of its own: a busy job's events keep waking the
    // loop before the timer would fire, and must not postpone the check forever.
    let checkAt = Date.now() + recheckMs;
    for (;;) {
      while (pending.length) {
        const e = pending.shift()!;
        // Any terminal row ends the stream, sent or not: nothing follows it.
        if (TERMINAL_STATUSES.includes(e.status)) {
          if (e.version > seen) yield tracked(String(e.version), e);
          return;
        }
        if (e.version <= seen) continue;
        seen = e.version;
        yield tracked(String(e.version), e);
      }
      if (s.signal?.aborted) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, checkAt - Date.now()));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
      if (s.signal?.aborted) return;
      if (Date.now() >= checkAt) {
        checkAt = Date.now() + recheckMs;
        // Authorized once at the start; a sign-out, revoked token or disabled account since ends it.
        if (!s.auth || !(await credentialIsLive(s.db, s.auth))) throw unauthorized(CREDENTIAL_ENDED);
      }
      if (!pending.length) {
        const row = await findJob(s.db, s.jobId);
        if (!row) return; // deleted (retention, its case removed)
        if (row.version > seen || TERMINAL_STATUSES.includes(row.status)) pending.push(toEvent(row));
      }
    }
  } finally {
    s.signal?.removeEventListener('abort', onAbort);
    unsubscribe();
    release();
  }
}
