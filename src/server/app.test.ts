import { TRPCError } from '@trpc/server';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { INTERNAL_ERROR_MESSAGE } from '../shared/errors.js';
import { appRouter } from './routers/_app.js';
import { makeTestApp } from './test/app.js';
import { describeEachDatabase } from './test/databases.js';
import { publicProcedure, router } from './trpc.js';

describe('before the database is ready', () => {
  it('/healthz is 200 while /readyz and /trpc answer 503 with Retry-After at once', async () => {
    const { app } = makeTestApp({});
    const health = await app.request('/healthz');
    expect(health.status).toBe(200);
    expect(await health.json()).toEqual({ status: 'ok' });

    const ready = await app.request('/readyz');
    expect(ready.status).toBe(503);
    expect(Number(ready.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await ready.json()).toMatchObject({ status: 'starting', database: 'pending' });

    const info = await app.request('/trpc/system.info');
    expect(info.status).toBe(503);
    expect(Number(info.headers.get('retry-after'))).toBeGreaterThan(0);
    const body = (await info.json()) as { error: { message: string; data: { httpStatus: number } } };
    expect(body.error.message).toMatch(/starting up/);
    expect(body.error.data.httpStatus).toBe(503);
  });

  it('a failed boot keeps answering 503 with the reason on /readyz', async () => {
    const t = makeTestApp({});
    t.readiness.markFailed('cannot reach DATABASE_URL');
    const ready = await t.app.request('/readyz');
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'failed', reason: 'cannot reach DATABASE_URL' });
  });
});

describeEachDatabase('HTTP app', (db) => {
  it('/readyz reports the database and migrations once ready', async () => {
    const { app } = makeTestApp({ database: db().handle });
    const res = await app.request('/readyz');
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      status: 'ready',
      database: 'ok',
      migrations: 'done',
      databaseKind: db().handle.kind,
    });
  });

  it('system.info goes client → Hono → tRPC → Kysely and back', async () => {
    const { app } = makeTestApp({ database: db().handle });
    const res = await app.request('/trpc/system.info');
    expect(res.status).toBe(200);
    const body = (await res.json()) as { result: { data: Record<string, unknown> } };
    expect(body.result.data).toEqual({
      version: '9.9.9-test',
      database: db().kind === 'pglite' ? 'embedded' : 'postgres',
      uptimeSeconds: 5,
      allowGuests: true,
      pacs: false,
    });
  });

  it('logs one line per request with method, path, status, duration and the X-Request-Id', async () => {
    const { app, logs } = makeTestApp({ database: db().handle });
    const res = await app.request('/trpc/system.info?input=%7B%7D');
    const id = res.headers.get('x-request-id');
    expect(id).toMatch(/^[0-9a-f-]{36}$/);
    const lines = logs.filter((l) => l.msg === 'request');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ reqId: id, method: 'GET', path: '/trpc/system.info', status: 200 });
    expect(typeof lines[0]?.durationMs).toBe('number');
    // The query string is never logged: it can carry tokens.
    expect(JSON.stringify(lines[0])).not.toContain('input=');
  });

  it('/ is a status page that passes the CSP (no script)', async () => {
    const { app } = makeTestApp({ database: db().handle });
    const res = await app.request('/');
    expect(res.status).toBe(200);
    const page = await res.text();
    expect(page).toContain('strokeview 9.9.9-test');
    expect(page).toMatch(/Status: <strong>ready<\/strong> · database: (embedded|postgres)/);
    expect(page).not.toContain('<script');
    expect(res.headers.get('content-security-policy')).toContain("default-src 'self'");
  });

  it('an unknown route is a JSON 404', async () => {
    const { app } = makeTestApp({ database: db().handle });
    const res = await app.request('/nope');
    expect(res.status).toBe(404);
  });

  it('masks internal errors: no stack, no SQL, the request id in the server log', async () => {
    const testRouter = router({
      ...appRouter._def.procedures,
      broken: publicProcedure.query(async ({ ctx }) => {
        await sql`select * from table_that_does_not_exist`.execute(ctx.db);
        return 'unreachable';
      }),
      strict: publicProcedure.input(z.object({ email: z.string().email(), age: z.number().int().min(0) })).query(({ input }) => input),
      forbidden: publicProcedure.query(() => {
        throw new TRPCError({ code: 'FORBIDDEN', message: 'You may not do that' });
      }),
    });
    const { app, logs } = makeTestApp({ database: db().handle, router: testRouter });

    const res = await app.request('/trpc/broken');
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).not.toMatch(/table_that_does_not_exist|select|stack|\.ts:/i);
    expect(JSON.parse(text).error.message).toBe(INTERNAL_ERROR_MESSAGE);
    const logged = logs.find((l) => l.msg === 'procedure failed');
    expect(logged?.reqId).toBe(res.headers.get('x-request-id'));
    expect(JSON.stringify(logged)).toContain('table_that_does_not_exist');

    const bad = await app.request(`/trpc/strict?input=${encodeURIComponent(JSON.stringify({ email: 'nope', age: -1 }))}`);
    expect(bad.status).toBe(400);
    const badBody = (await bad.json()) as { error: { message: string; data: Record<string, unknown> } };
    expect(badBody.error.data.fieldErrors).toEqual({
      email: [expect.stringMatching(/email/i)],
      age: [expect.stringMatching(/>=\s*0|greater/i)],
    });
    expect(badBody.error.message).toMatch(/^Invalid input: email: .*; age: /);
    expect(JSON.stringify(badBody)).not.toContain('stack');

    const forbidden = await app.request('/trpc/forbidden');
    expect(forbidden.status).toBe(403);
    expect(((await forbidden.json()) as { error: { message: string } }).error.message).toBe('You may not do that');
  });
});

describeEachDatabase('HTTP limits', (db) => {
  it('a /trpc body over the limit is 413; a batch over the cap is 400', async () => {
    const { app } = makeTestApp({ database: db().handle, env: { TRPC_MAX_BODY_BYTES: '2048', TRPC_MAX_BATCH: '3' } });
    const big = await app.request('/trpc/auth.signIn', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'content-length': '5000' },
      body: JSON.stringify({ email: 'a@b.org', password: 'x'.repeat(4900) }),
    });
    expect(big.status).toBe(413);
    const batch = await app.request(`/trpc/system.info,system.info,system.info,system.info?batch=1&input=${encodeURIComponent('{}')}`);
    expect(batch.status).toBe(400);
    const ok = await app.request(`/trpc/system.info,system.info?batch=1&input=${encodeURIComponent('{}')}`);
    expect(ok.status).toBe(200);
  });

  it('with EMBED_ORIGINS the session cookie is SameSite=None; Secure; Partitioned and frame-ancestors allows the embedder', async () => {
    const { app } = makeTestApp({ database: db().handle, env: { EMBED_ORIGINS: 'https://huggingface.co' } });
    const res = await app.request('/trpc/auth.guest', {
      method: 'POST',
      headers: { 'sec-fetch-site': 'same-origin', 'content-type': 'application/json' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.getSetCookie()[0]).toMatch(/; Secure; SameSite=None; Partitioned/);
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'self' https://huggingface.co");
    // Embedded: no COOP/COEP by default (they would break the embedding page).
    expect(res.headers.get('cross-origin-embedder-policy')).toBeNull();
  });

  it('a cookie-carrying POST from https://evil.example is 403; from an allowed origin it is 200', async () => {
    const allowed = 'https://owner-stroke-viewer-frontend.hf.space';
    const { app } = makeTestApp({ database: db().handle, env: { ALLOWED_ORIGINS: allowed } });
    const guest = await app.request('/trpc/auth.guest', {
      method: 'POST',
      headers: { 'sec-fetch-site': 'same-origin', 'content-type': 'application/json' },
    });
    const cookie = guest.headers.getSetCookie()[0]!.split(';')[0]!;
    const evil = await app.request('/trpc/auth.signOut', {
      method: 'POST',
      headers: { cookie, origin: 'https://evil.example', 'content-type': 'application/json' },
    });
    expect(evil.status).toBe(403);
    const good = await app.request('/trpc/auth.signOut', {
      method: 'POST',
      headers: { cookie, origin: allowed, 'content-type': 'application/json' },
    });
    expect(good.status).toBe(200);
    expect(good.headers.get('access-control-allow-origin')).toBe(allowed);
  });

  it('PUBLIC_URL on https: __Host- cookie and HSTS', async () => {
    const { app } = makeTestApp({ database: db().handle, env: { PUBLIC_URL: 'https://owner-strokeview.hf.space' } });
    const res = await app.request('/trpc/auth.guest', {
      method: 'POST',
      headers: { 'sec-fetch-site': 'same-origin', 'content-type': 'application/json' },
    });
    expect(res.headers.getSetCookie()[0]).toMatch(
      /^__Host-strokeview_session=svs_[^;]+; Max-Age=\d+; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
    );
    expect(res.headers.get('strict-transport-security')).toMatch(/max-age=31536000/);
  });
});

describeEachDatabase('models over HTTP', (db) => {
  it('/readyz names the models and the execution provider, saying plainly when a GPU was asked for and not found; models.list is public', async () => {
    const { builtInModelsDir, loadModelRegistry } = await import('./segmentation/models.js');
    const models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cuda', threads: 1 });
    try {
      const { app } = makeTestApp({ database: db().handle, models });
      const res = await app.request('/readyz');
      expect(res.status).toBe(200);
      const body = (await res.json()) as {
        models: { loaded: string[]; interactive: string[] };
        executionProvider: Record<string, unknown>;
      };
      expect(body.models.loaded.sort()).toEqual(['adc-core-v1', 'adc-dwi-v2']);
      expect(body.models.interactive).toEqual(['click-grow-v1']);
      expect(body.executionProvider).toMatchObject({ requested: 'cuda', active: 'cpu', gpuMissing: true });
      expect(String(body.executionProvider.warning)).toMatch(/GPU \(CUDA\) was requested but none could be used/);
      const list = await app.request('/trpc/models.list');
      const items = ((await list.json()) as { result: { data: { id: string; kind: string }[] } }).result.data;
      // the default model first, the interactive one (click refinement) last
      expect(items).toEqual([
        expect.objectContaining({ id: 'adc-dwi-v2', kind: 'rule-based', method: 'rule-based' }),
        expect.objectContaining({ id: 'adc-core-v1', kind: 'rule-based', method: 'rule-based' }),
        expect.objectContaining({ id: 'click-grow-v1', kind: 'interactive', method: 'rule-based' }),
      ]);
    } finally {
      await models.close();
    }
  });
});
