import { afterEach, expect, it } from 'vitest';
import { StrokeviewError, createClient } from '../sdk/index.js';
import type { PublicUser } from '../shared/auth.js';
import { testVolume } from './nifti/fixtures.js';
import { PUBLIC_PROCEDURES, SESSION_PROCEDURES, appRouter } from './routers/_app.js';
import { makeTestApp } from './test/app.js';
import { TestBrowser } from './test/browser.js';
import { describeEachDatabase } from './test/databases.js';
import { serveApp } from './test/live.js';

/**
 * #23 findings 5 and 6, over real HTTP: an API token cannot manage tokens or change the password
 * (a leaked token must not become the account), wrong current passwords count in the per-account
 * failure limit, and a bearer token the server does not accept is a 401 everywhere — never
 * silently anonymous. Each test failed on the code before the fix.
 */

const PASSWORD = 'correct horse battery';
const BOGUS = 'svt_not_a_real_token';

describeEachDatabase('API tokens and refused bearers over real HTTP', (current) => {
  const open: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  async function serve(env: Record<string, string> = {}) {
    const t = makeTestApp({ database: current().handle, env });
    const server = await serveApp(t.app);
    open.push(server);
    const db = current().handle.db;
    const browser = (headers: Record<string, string> = {}) => new TestBrowser(server.url, { headers });
    /** A registered user's browser (a session cookie) and an API token made from it. */
    const user = async (email: string) => {
      const b = browser();
      expect((await b.mutate<{ user: PublicUser }>('auth.register', { email, password: PASSWORD })).status).toBe(200);
      const created = await b.mutate<{ token: string; info: { id: string } }>('auth.tokens.create', { name: 'laptop' });
      expect(created.status).toBe(200);
      return {
        b,
        token: created.data.token,
        tokenId: created.data.info.id,
        bearer: browser({ authorization: `Bearer ${created.data.token}` }),
      };
    };
    return { ...t, url: server.url, db, browser, user };
  }

  const challenge = (res: { headers: Headers }) => res.headers.get('www-authenticate') ?? '';

  it('token management and changePassword need a session: the procedures are an exact, tested list', () => {
    const procedures = Object.entries(appRouter._def.procedures as unknown as Record<string, { _def: { meta?: { access?: string } } }>);
    const sessionOnly = procedures.filter(([, p]) => p._def.meta?.access === 'session').map(([name]) => name);
    expect(sessionOnly.sort()).toEqual([...SESSION_PROCEDURES].sort());
    expect([...SESSION_PROCEDURES].sort()).toEqual(['auth.changePassword', 'auth.tokens.create', 'auth.tokens.list', 'auth.tokens.revoke']);
    for (const name of SESSION_PROCEDURES) expect(PUBLIC_PROCEDURES as readonly string[]).not.toContain(name);
  });

  it('an API token cannot create, list or revoke tokens (403); revoking it leaves no child that works', async () => {
    const s = await serve();
    const a = await s.user('f5-mint@x.org');
    // The token still works for what it is for.
    expect((await a.bearer.query<PublicUser>('auth.me')).data).toMatchObject({ email: 'f5-mint@x.org' });

    const child = await a.bearer.mutate<{ token: string }>('auth.tokens.create', { name: 'child' });
    expect(child.status).toBe(403);
    expect(child.body.error?.message).toMatch(/signed-in browser session/);
    expect((await a.bearer.query('auth.tokens.list')).status).toBe(403);
    expect((await a.bearer.mutate('auth.tokens.revoke', { id: a.tokenId })).status).toBe(403);

    // The owner revokes the leaked token from the browser: nothing it made outlives it.
    expect((await a.b.mutate('auth.tokens.revoke', { id: a.tokenId })).status).toBe(200);
    const live = await s.db.selectFrom('api_tokens').select('id').where('revoked_at', 'is', null).execute();
    expect(live).toEqual([]);
    if (child.data?.token) {
      expect((await s.browser({ authorization: `Bearer ${child.data.token}` }).query('auth.me')).status).toBe(401);
    }
  });

  it('a bearer token cannot change the password (403), and the owner’s sessions and tokens survive', async () => {
    const s = await serve();
    const a = await s.user('f5-takeover@x.org');
    const res = await a.bearer.mutate('auth.changePassword', { current: PASSWORD, next: 'the attacker chose this' });
    expect(res.status).toBe(403);
    expect(res.setCookies).toEqual([]);
    expect((await a.b.query<PublicUser>('auth.me')).data).toMatchObject({ email: 'f5-takeover@x.org' });
    expect((await a.bearer.query<PublicUser>('auth.me')).data).toMatchObject({ email: 'f5-takeover@x.org' });
    expect((await s.browser().mutate('auth.signIn', { email: 'f5-takeover@x.org', password: PASSWORD })).status).toBe(200);
  });

  it('a session token sent as a bearer is refused: only the cookie carries a session', async () => {
    const s = await serve();
    const a = await s.user('f5-svs@x.org');
    const session = a.b.cookies.get('strokeview_session')!;
    const res = await s.browser({ authorization: `Bearer ${session}` }).mutate('auth.tokens.create', { name: 'sneaky' });
    expect(res.status).toBe(401);
    expect(challenge(res)).toMatch(/^Bearer error="invalid_token"/);
  });

  it('30 wrong current passwords: the per-account failure limit answers 429 with Retry-After, shared with sign-in', async () => {
    // The default limit (5 failures per 15 minutes); nothing here waits on the window.
    const s = await serve({ SIGN_IN_FAILURES_MAX: '5' });
    const a = await s.user('f5-guess@x.org');
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 30; i++) {
      last = await a.b.mutate('auth.changePassword', { current: `guess number ${i}`, next: 'a brand new password' });
      statuses.push(last.status);
    }
    expect(statuses.slice(0, 5)).toEqual([400, 400, 400, 400, 400]);
    expect(new Set(statuses.slice(5))).toEqual(new Set([429]));
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(60);
    expect(last!.body.error?.message).toMatch(/Too many wrong passwords/);
    // The right password waits out the window too, and so does a sign-in: one counter per account.
    expect((await a.b.mutate('auth.changePassword', { current: PASSWORD, next: 'a brand new password' })).status).toBe(429);
    expect((await s.browser().mutate('auth.signIn', { email: 'f5-guess@x.org', password: PASSWORD })).status).toBe(429);
    // Nothing was changed or revoked along the way.
    expect((await a.bearer.query<PublicUser>('auth.me')).data).toMatchObject({ email: 'f5-guess@x.org' });
  });

  it('a right current password clears the failures it follows', async () => {
    const s = await serve({ SIGN_IN_FAILURES_MAX: '5' });
    const a = await s.user('f5-clear@x.org');
    for (let i = 0; i < 4; i++) {
      expect((await a.b.mutate('auth.changePassword', { current: `guess ${i}`, next: 'a brand new password' })).status).toBe(400);
    }
    expect((await a.b.mutate('auth.changePassword', { current: PASSWORD, next: 'a brand new password' })).status).toBe(200);
    expect(await s.db.selectFrom('sign_in_failures').select('id').execute()).toEqual([]);
  });

  it('a bogus bearer is a 401 with WWW-Authenticate on public and private procedures, /trpc, /api and uploads', async () => {
    const s = await serve();
    const headers = { authorization: `Bearer ${BOGUS}` };
    const b = s.browser(headers);
    const form = () => {
      const fd = new FormData();
      fd.set('name', 'x');
      for (const role of ['dwi', 'adc']) fd.set(role, new File([new Uint8Array(testVolume())], `${role}.nii.gz`));
      return fd;
    };
    const answers: [string, Response][] = [
      ['system.info', await b.request('/trpc/system.info')],
      ['cases.list', await b.request('/trpc/cases.list')],
      ['jobs.list', await b.request('/trpc/jobs.list')],
      ['batch', await b.request(`/trpc/system.info,cases.list?batch=1&input=${encodeURIComponent('{}')}`)],
      ['GET /api/cases', await fetch(`${s.url}/api/cases`, { headers })],
      ['GET /api/me', await fetch(`${s.url}/api/me`, { headers })],
      ['cases.upload', await b.request('/trpc/cases.upload', { method: 'POST', body: form() })],
      ['POST /api/cases', await fetch(`${s.url}/api/cases`, { method: 'POST', headers, body: form() })],
    ];
    for (const [where, res] of answers) {
      const text = await res.text();
      expect({ where, status: res.status }).toEqual({ where, status: 401 });
      expect({ where, challenge: challenge(res) }).toEqual({
        where,
        challenge: expect.stringMatching(/^Bearer error="invalid_token", error_description="The API token was refused/),
      });
      expect({ where, text }).toEqual({ where, text: expect.stringContaining('The API token was refused (unknown, revoked or expired)') });
      expect({ where, text }).toEqual({ where, text: expect.stringContaining('invalid_token') });
    }
    // Without a token the same public reads answer as before.
    expect((await fetch(`${s.url}/trpc/system.info`)).status).toBe(200);
    expect((await fetch(`${s.url}/api/cases`)).status).toBe(200);
  });

  it('the SDK says the token was refused (StrokeviewError.tokenRefused), and a working token is not', async () => {
    const s = await serve();
    const a = await s.user('f6-sdk@x.org');
    const err = await createClient({ url: s.url, token: BOGUS, retry: false })
      .cases.list.query({})
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StrokeviewError);
    expect(err).toMatchObject({
      code: 'UNAUTHORIZED',
      status: 401,
      tokenRefused: true,
      message: expect.stringMatching(/token was refused/),
    });
    expect(await createClient({ url: s.url, token: a.token, retry: false }).cases.list.query({})).toMatchObject({ items: [] });
    const anonymous = await createClient({ url: s.url, retry: false })
      .jobs.list.query({})
      .catch((e: unknown) => e);
    expect(anonymous).toMatchObject({ code: 'UNAUTHORIZED', tokenRefused: false });
  });

  it('malformed, revoked and expired bearers are refused the same way', async () => {
    const s = await serve();
    const a = await s.user('f6-states@x.org');
    const refused = async (authorization: string) => {
      const res = await s.browser({ authorization }).request('/trpc/system.info');
      await res.body?.cancel();
      return { authorization: authorization.slice(0, 20), status: res.status, challenge: challenge(res).split(',')[0] };
    };
    const expected = (authorization: string) => ({
      authorization: authorization.slice(0, 20),
      status: 401,
      challenge: 'Bearer error="invalid_token"',
    });
    for (const malformed of ['Bearer', 'Bearer ', 'Bearer two words', 'Bearer not-our-prefix', 'bearer svt_']) {
      expect(await refused(malformed)).toEqual(expected(malformed));
    }
    await s.db
      .updateTable('api_tokens')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .execute();
    expect(await refused(`Bearer ${a.token}`)).toEqual(expected(`Bearer ${a.token}`));
    await s.db.updateTable('api_tokens').set({ expires_at: null }).execute();
    expect((await a.bearer.request('/trpc/system.info')).status).toBe(200);
    await a.b.mutate('auth.tokens.revoke', { id: a.tokenId });
    expect(await refused(`Bearer ${a.token}`)).toEqual(expected(`Bearer ${a.token}`));
  });

  it('a stale session cookie still reads public procedures as anonymous, and is cleared', async () => {
    const s = await serve();
    const a = await s.user('f6-cookie@x.org');
    await s.db
      .updateTable('sessions')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .execute();
    const me = await a.b.query('auth.me');
    expect(me.status).toBe(200);
    expect(me.data).toBeNull();
    expect(me.setCookies.join('\n')).toMatch(/strokeview_session=; .*Max-Age=0/);
    expect(challenge(me)).toBe('');
    const unknown = s.browser();
    unknown.cookies.set('strokeview_session', 'svs_not_a_real_session');
    expect((await unknown.query('system.info')).status).toBe(200);
    expect((await unknown.query('jobs.list')).status).toBe(401); // private ones still need a sign-in
  });
});
