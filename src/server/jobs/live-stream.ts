import type { Kysely } from 'kysely';
import { type Authenticated, type AuthUser, credentialIsLive } from '../auth/service.js';
import type { Database } from '../db/tables.js';
import type { Env } from '../env.js';
import { tooMany, unauthorized } from '../errors.js';
import type { JobSystem } from './service.js';

/** The default of STREAM_RECHECK_MS: how often a stream re-reads what it follows and re-checks its credential. */
export const RECHECK_MS = 3000;

export const CREDENTIAL_ENDED = 'Your sign-in ended (signed out, token revoked or account disabled); sign in again to follow this job';

/** What every live progress stream (a job's, a study run's) stands on. */
export interface LiveStreamInput {
  db: Kysely<Database>;
  jobs: JobSystem;
  config: Pick<Env, 'MAX_STREAMS_PER_USER' | 'MAX_STREAMS_PER_SESSION'> & Partial<Pick<Env, 'STREAM_RECHECK_MS'>>;
  user: AuthUser;
  /** How the stream was authorized (session or API token): re-checked every STREAM_RECHECK_MS. */
  auth: Pick<Authenticated, 'via' | 'sessionId' | 'tokenId'> | null;
  signal: AbortSignal | undefined;
}

export interface LiveStreamParts<Y> {
  /** What it follows, for the refusal at the caps: "a job", "a run". */
  subject: string;
  /** Listens to the event bus; `notify` wakes the stream. Returns how to stop listening. */
  subscribe(notify: () => void): Promise<() => void> | (() => void);
  /**
   * Reads what changed and yields its events; true ends the stream. Called once at the start,
   * then after every wake: a notification, or the recheck clock (`recheck`: nothing may have
   * been heard — a notification lost while the bus reconnected — so read again).
   */
  poll(wake: { recheck: boolean }): AsyncGenerator<Y, boolean>;
  /** Whether a notification came while `poll` ran (then the stream does not wait). */
  pending(): boolean;
}

/**
 * The skeleton of a live progress stream over SSE: it counts against the per-user and
 * per-session stream caps from its first event to its end however it ends; it sleeps until a
 * notification, its abort or the recheck clock; and on that clock — its own, so a busy job's
 * events cannot postpone it forever — it re-checks the credential it was authorized with (a
 * sign-out, a revoked token or a disabled account since ends it, 401).
 */
export async function* liveStream<Y>(s: LiveStreamInput, parts: LiveStreamParts<Y>): AsyncGenerator<Y, void> {
  let wake: (() => void) | undefined;
  const unsubscribe = await parts.subscribe(() => wake?.());
  // One abort listener for the whole stream (one per wait would pile up: MaxListenersExceeded).
  const onAbort = () => wake?.();
  s.signal?.addEventListener('abort', onAbort, { once: true });
  const busy = (what: string) => (n: number) =>
    tooMany(`${what} ${n} live progress streams open; close a tab or wait for ${parts.subject} to finish`, 10);
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
    unsubscribe();
    throw err;
  }
  try {
    const recheckMs = s.config.STREAM_RECHECK_MS ?? RECHECK_MS;
    let checkAt = Date.now() + recheckMs;
    let recheck = false;
    for (;;) {
      if (yield* parts.poll({ recheck })) return;
      if (s.signal?.aborted) return;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, checkAt - Date.now()));
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
        if (parts.pending()) wake();
      });
      wake = undefined;
      if (s.signal?.aborted) return;
      recheck = Date.now() >= checkAt;
      if (recheck) {
        checkAt = Date.now() + recheckMs;
        // authorized once at the start: it must still hold
        if (!s.auth || !(await credentialIsLive(s.db, s.auth))) throw unauthorized(CREDENTIAL_ENDED);
      }
    }
  } finally {
    s.signal?.removeEventListener('abort', onAbort);
    unsubscribe();
    release();
  }
}
