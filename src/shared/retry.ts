/**
 * The cold-start retry policy, as plain functions the viewer and the SDK share. A sleeping
 * Hugging Face Space (or a server still booting) answers 502/503/504 — often as a proxy's HTML
 * page — or refuses the connection for a while; that is worth waiting out. A 4xx is an answer:
 * never retried. Of the mutations only job creation retries, because it carries an idempotency
 * key (the same key returns the same job).
 */
export const RETRY_POLICY = {
  /** First wait; doubles each attempt. */
  baseMs: 1000,
  /** Longest single wait. */
  capMs: 30_000,
  /** Stop trying after this long since the first failure. */
  giveUpMs: 180_000,
} as const;

/** Mutations safe to send again (they carry an idempotency key). */
export const IDEMPOTENT_MUTATIONS: readonly string[] = ['jobs.create'];

const RETRYABLE_STATUSES = new Set([502, 503, 504]);

/**
 * An HTTP error from a response tRPC could not read (a proxy's HTML 503 page): tRPC would report
 * neither status nor data, so the fetch wrapper throws this instead, carrying both.
 */
export class HttpStatusError extends Error {
  override name = 'HttpStatusError';
  constructor(
    readonly status: number,
    /** Seconds from a Retry-After header, when there was one. */
    readonly retryAfterS: number | null,
    message = `The server answered ${status}`,
  ) {
    super(message);
  }
}

/** Parses Retry-After (seconds, or an HTTP date) into seconds; null when absent or unreadable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | null {
  if (!value) return null;
  const s = Number(value);
  if (Number.isFinite(s) && s >= 0) return s;
  const at = Date.parse(value);
  return Number.isFinite(at) ? Math.max(0, (at - now) / 1000) : null;
}

/**
 * Wraps fetch: a response that is not OK and not JSON (tRPC's errors are JSON) becomes an
 * HttpStatusError with its status and Retry-After, so the retry policy can tell a waking
 * backend from a bug.
 */
export function fetchWithStatus(base: typeof fetch = fetch): typeof fetch {
  return async (input, init) => {
    const res = await base(input, init);
    if (!res.ok && !(res.headers.get('content-type') ?? '').includes('application/json')) {
      throw new HttpStatusError(res.status, parseRetryAfter(res.headers.get('retry-after')));
    }
    return res;
  };
}

/** What the policy needs to know about a failure. */
export interface FailureFacts {
  /** HTTP status when there was a response; undefined for a network failure. */
  status?: number | undefined;
  retryAfterS?: number | null | undefined;
}

/** Reads status and Retry-After from whatever was thrown: an HttpStatusError, a tRPC client error, or a network error. */
export function failureFacts(err: unknown): FailureFacts {
  let e: unknown = err;
  for (let depth = 0; e && depth < 4; depth++) {
    if (e instanceof HttpStatusError) return { status: e.status, retryAfterS: e.retryAfterS };
    const data = (e as { data?: { httpStatus?: number } }).data;
    if (typeof data?.httpStatus === 'number') return { status: data.httpStatus, retryAfterS: null };
    e = (e as { cause?: unknown }).cause;
  }
  return {};
}

/** Retry this failure at all? 502/503/504 and network failures yes; any other status no. */
export function isRetryable(facts: FailureFacts): boolean {
  return facts.status === undefined || RETRYABLE_STATUSES.has(facts.status);
}

/** The wait before attempt `attempt` (1 = the first retry): doubling from 1 s, at least Retry-After, at most 30 s. */
export function retryDelayMs(attempt: number, retryAfterS?: number | null): number {
  const backoff = RETRY_POLICY.baseMs * 2 ** Math.max(0, attempt - 1);
  const asked = retryAfterS != null ? retryAfterS * 1000 : 0;
  return Math.min(RETRY_POLICY.capMs, Math.max(backoff, asked));
}

/** Time spent waiting after `failures` failures under the backoff alone (Retry-After aside): the policy's clock when a caller keeps no timestamps. */
export function backoffElapsedMs(failures: number): number {
  let total = 0;
  for (let a = 1; a < failures; a++) total += retryDelayMs(a);
  return total;
}

/** Whether to try again, given what failed, how long ago the first failure was, and what the call is. */
export function shouldRetry(opts: {
  facts: FailureFacts;
  /** ms since the first failure of this call. */
  elapsedMs: number;
  /** A query or subscription, or a mutation by its path. */
  kind: 'query' | 'subscription' | 'mutation';
  path?: string;
  /** Give up after this long (default RETRY_POLICY.giveUpMs); the SDK and CLI let callers shorten it. */
  giveUpMs?: number;
}): boolean {
  if (!isRetryable(opts.facts)) return false;
  if (opts.kind === 'mutation' && !IDEMPOTENT_MUTATIONS.includes(opts.path ?? '')) return false;
  return opts.elapsedMs < (opts.giveUpMs ?? RETRY_POLICY.giveUpMs);
}
