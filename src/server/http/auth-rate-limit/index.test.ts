import { Hono } from 'hono';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { authRateLimit, calledProcedures } from './index.js';

describe('authRateLimit', () => {
  it('reads the procedures of plain and batched calls', () => {
    expect(calledProcedures('/trpc/auth.signIn')).toEqual(['auth.signIn']);
    expect(calledProcedures('/trpc/auth.me,auth.signIn')).toEqual(['auth.me', 'auth.signIn']);
    // every spelling tRPC routes to the same procedure (it trims slashes and decodes batches)
    expect(calledProcedures('/trpc/auth.signIn/')).toEqual(['auth.signIn']);
    expect(calledProcedures('/trpc/auth.signIn//')).toEqual(['auth.signIn']);
    expect(calledProcedures('/trpc/auth%2EsignIn')).toEqual(['auth.signIn']);
    expect(calledProcedures('/trpc/auth.me%2Cauth.signIn/')).toEqual(['auth.me', 'auth.signIn']);
  });

  it('limits per client key, answers 429 with Retry-After, leaves other procedures alone, refuses batched sign-ins', async () => {
    const app = new Hono();
    app.use(
      '/trpc/*',
      authRateLimit({ procedures: ['auth.signIn'], limitPerMinute: 2, clientKey: (c) => c.req.header('x-client') ?? '?' }),
    );
    app.all('/trpc/*', (c) => c.text('ok'));
    const hit = (path: string, client = 'a') => app.request(path, { method: 'POST', headers: { 'x-client': client } });
    expect((await hit('/trpc/auth.signIn')).status).toBe(200);
    expect((await hit('/trpc/auth.signIn')).status).toBe(200);
    const third = await hit('/trpc/auth.signIn');
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await hit('/trpc/auth.signIn', 'b')).status).toBe(200);
    expect((await hit('/trpc/auth.me')).status).toBe(200);
    expect((await hit('/trpc/auth.signIn,auth.signIn?batch=1', 'c')).status).toBe(400);
    // a trailing slash is the same procedure to tRPC, so it is counted (it was not: finding 1)
    expect((await hit('/trpc/auth.signIn/', 'd')).status).toBe(200);
    expect((await hit('/trpc/auth.signIn/', 'd')).status).toBe(200);
    expect((await hit('/trpc/auth.signIn/', 'd')).status).toBe(429);
  });

  describe('the window, on a faked clock', () => {
    afterEach(() => {
      vi.useRealTimers();
    });

    it('a refused client is let in again once its minute is over, not before', async () => {
      vi.useFakeTimers({ now: new Date('2026-11-23T12:00:00Z') });
      const app = new Hono();
      app.use('/trpc/*', authRateLimit({ procedures: ['auth.signIn'], limitPerMinute: 1, clientKey: () => 'a' }));
      app.all('/trpc/*', (c) => c.text('ok'));
      const hit = () => app.request('/trpc/auth.signIn', { method: 'POST' });
      expect((await hit()).status).toBe(200);
      const refused = await hit();
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBe(60);
      await vi.advanceTimersByTimeAsync(59_000);
      const later = await hit();
      expect(later.status).toBe(429);
      expect(Number(later.headers.get('retry-after'))).toBe(1);
      await vi.advanceTimersByTimeAsync(1_000);
      expect((await hit()).status).toBe(200);
    });
  });
});
