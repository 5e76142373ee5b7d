import { describe, expect, it } from 'vitest';
import { HttpStatusError, failureFacts, fetchWithStatus, isRetryable, parseRetryAfter, retryDelayMs, shouldRetry } from './retry.js';

describe('the cold-start retry policy', () => {
  it('retries 502/503/504 and network failures; never a 4xx or a 500', () => {
    for (const status of [502, 503, 504, undefined]) expect(isRetryable({ status })).toBe(true);
    for (const status of [400, 401, 403, 404, 409, 413, 422, 429, 500]) expect(isRetryable({ status })).toBe(false);
  });

  it('backs off from 1 s, doubling, capped at 30 s; honours a longer Retry-After', () => {
    expect([1, 2, 3, 4, 5, 6, 7, 8].map((a) => retryDelayMs(a))).toEqual([1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]);
    expect(retryDelayMs(1, 5)).toBe(5000);
    expect(retryDelayMs(5, 2)).toBe(16000);
    expect(retryDelayMs(1, 120)).toBe(30000);
  });

  it('gives up after about 3 minutes', () => {
    const facts = { status: 503 };
    expect(shouldRetry({ facts, elapsedMs: 179_000, kind: 'query' })).toBe(true);
    expect(shouldRetry({ facts, elapsedMs: 180_000, kind: 'query' })).toBe(false);
  });

  it('of the mutations, only job creation (idempotency key) retries', () => {
    const facts = { status: 503 };
    expect(shouldRetry({ facts, elapsedMs: 0, kind: 'mutation', path: 'jobs.create' })).toBe(true);
    expect(shouldRetry({ facts, elapsedMs: 0, kind: 'mutation', path: 'auth.signIn' })).toBe(false);
    expect(shouldRetry({ facts, elapsedMs: 0, kind: 'mutation', path: 'jobs.cancel' })).toBe(false);
    expect(shouldRetry({ facts: { status: 404 }, elapsedMs: 0, kind: 'query' })).toBe(false);
  });

  it('reads Retry-After in seconds or as a date', () => {
    expect(parseRetryAfter('7')).toBe(7);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6);
    expect(parseRetryAfter(null)).toBeNull();
    expect(parseRetryAfter('soon')).toBeNull();
  });

  it("the fetch wrapper turns a proxy's HTML 503 into an error carrying the status; JSON errors pass to tRPC", async () => {
    const html = fetchWithStatus(
      async () =>
        new Response('<html>Space is waking up</html>', { status: 503, headers: { 'content-type': 'text/html', 'retry-after': '3' } }),
    );
    const err = await html('http://x/trpc/cases.list').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(HttpStatusError);
    expect(failureFacts(err)).toEqual({ status: 503, retryAfterS: 3 });
    const json = fetchWithStatus(
      async () => new Response('{"error":{}}', { status: 404, headers: { 'content-type': 'application/json' } }),
    );
    expect((await json('http://x')).status).toBe(404);
  });

  it('finds the status inside a tRPC client error, or none for a network failure', () => {
    expect(failureFacts({ data: { httpStatus: 404 } })).toEqual({ status: 404, retryAfterS: null });
    expect(failureFacts({ cause: new HttpStatusError(502, null) })).toEqual({ status: 502, retryAfterS: null });
    expect(failureFacts(new TypeError('Failed to fetch'))).toEqual({});
  });
});
