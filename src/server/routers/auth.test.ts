import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import type { PublicUser } from '../../shared/auth.js';
import { ensureAdmin } from '../auth/service.js';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';
import { PUBLIC_PROCEDURES, SESSION_PROCEDURES, appRouter } from './_app.js';

const PASSWORD = 'correct horse battery';
const sha256 = (s: string) => createHash('sha256').update(s).digest('hex');

describeEachDatabase('auth', (current) => {
  const setup = (env: Record<string, string> = {}) => {
    const t = makeTestApp({ database: current().handle, env });
    return { ...t, browser: () => new TestBrowser(t.app) };
  };
  const db = () => current().handle.db;

  it('register → flagged cookie → me → signOut → me is null; only token hashes are stored', async () => {
    const { browser } = setup();
    const b = browser();
    const reg = await b.mutate<{ user: PublicUser }>('auth.register', { email: 'Ada@Example.org', password: PASSWORD });
    expect(reg.status).toBe(200);
    expect(reg.data.user).toMatchObject({ email: 'ada@example.org', role: 'user' });
    const [cookie] = reg.setCookies;
    expect(cookie).toMatch(/^strokeview_session=svs_[\w-]{43};/);
    expect(cookie).toMatch(/; HttpOnly/);
    expect(cookie).toMatch(/; Secure/); // localhost counts as a secure context
    expect(cookie).toMatch(/; Path=\//);
    expect(cookie).toMatch(/; SameSite=Lax/);
    expect(cookie).not.toMatch(/Partitioned/);

    const me = await b.query<PublicUser>('auth.me');
    expect(me.data).toMatchObject({ email: 'ada@example.org' });

    const token = b.cookies.get('strokeview_session')!;
    const rows = await db().selectFrom('sessions').select(['token_hash']).execute();
    expect(rows).toEqual([{ token_hash: sha256(token) }]);
    const all = JSON.stringify((await sql`select * from sessions`.execute(db())).rows, (_k, v) => (typeof v === 'bigint' ? String(v) : v));
    expect(all).not.toContain(token);

    const out = await b.mutate('auth.signOut');
    expect(out.status).toBe(200);
    expect(out.setCookies[0]).toMatch(/Max-Age=0/);
    expect(await db().selectFrom('sessions').select('id').execute()).toEqual([]);
    // Even replaying the old cookie gets nobody.
    const replay = new TestBrowser(setup().app);
    replay.cookies.set('strokeview_session', token);
    expect((await replay.query('auth.me')).data).toBeNull();
  });

  it('validates input with field messages and refuses a second account for one email', async () => {
    const { browser } = setup();
    const short = await browser().mutate('auth.register', { email: 'not-an-email', password: 'short' });
    expect(short.status).toBe(400);
    expect(short.body.error?.data.fieldErrors).toEqual({
      email: ['Enter a valid email address'],
      password: ['Password must be at least 10 characters'],
    });
    expect((await browser().mutate('auth.register', { email: 'x@y.org', password: 'p'.repeat(257) })).status).toBe(400);
    expect((await browser().mutate('auth.register', { email: 'x@y.org', password: PASSWORD })).status).toBe(200);
    const dup = await browser().mutate('auth.register', { email: 'X@Y.ORG', password: PASSWORD });
    expect(dup.status).toBe(409);
    expect(dup.body.error?.message).toBe('An account with this email already exists');
  });

  it('one message for unknown email and wrong password; a new session on every sign-in', async () => {
    const { browser } = setup();
    await browser().mutate('auth.register', { email: 'u@x.org', password: PASSWORD });
    const wrong = await browser().mutate('auth.signIn', { email: 'u@x.org', password: 'wrong password!' });
    const unknown = await browser().mutate('auth.signIn', { email: 'nobody@x.org', password: 'wrong password!' });
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body.error?.message).toBe(unknown.body.error?.message);
    expect(wrong.setCookies).toEqual([]);

    const a = browser();
    const b = browser();
    expect((await a.mutate('auth.signIn', { email: 'U@x.org', password: PASSWORD })).status).toBe(200);
    expect((await b.mutate('auth.signIn', { email: 'u@x.org', password: PASSWORD })).status).toBe(200);
    expect(a.cookies.get('strokeview_session')).not.toBe(b.cookies.get('strokeview_session'));
    const { rows } = await sql<{ n: number }>`select count(*)::int as n from sessions`.execute(db());
    expect(rows[0]?.n).toBe(3); // register + two sign-ins
  });

  it('6 wrong passwords for one email → 429 with Retry-After, whatever X-Forwarded-For says', async () => {
    const { app } = setup({ TRUSTED_PROXY_HOPS: '1', AUTH_RATE_PER_MIN: '100' });
    await new TestBrowser(app).mutate('auth.register', { email: 'victim@x.org', password: PASSWORD });
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 6; i++) {
      // A different spoofed client address each time, as an attacker would send.
      const b = new TestBrowser(app, { headers: { 'x-forwarded-for': `10.0.0.${i}, 203.0.113.7` } });
      last = await b.mutate('auth.signIn', { email: 'victim@x.org', password: `guess number ${i}` });
      statuses.push(last.status);
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429]);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(60);
    expect(last!.body.error?.message).toMatch(/Too many failed sign-ins/);
    // Even the right password waits out the window.
    const right = await new TestBrowser(app).mutate('auth.signIn', { email: 'victim@x.org', password: PASSWORD });
    expect(right.status).toBe(429);
  });

  it('10 sign-in/register calls per client per minute; a spoofed leftmost X-Forwarded-For does not reset it', async () => {
    const { app } = setup({ TRUSTED_PROXY_HOPS: '1' });
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 11; i++) {
      const b = new TestBrowser(app, { headers: { 'x-forwarded-for': `198.51.100.${i}, 203.0.113.9` } });
      last = await b.mutate('auth.signIn', { email: `n${i}@x.org`, password: 'whatever-it-is' });
      statuses.push(last.status);
    }
    expect(statuses.slice(0, 10).every((s) => s === 401)).toBe(true);
    expect(statuses[10]).toBe(429);
    expect(Number(last!.headers.get('retry-after'))).toBeGreaterThan(0);
    // Another real client (a different address appended by the proxy) is unaffected.
    const other = new TestBrowser(app, { headers: { 'x-forwarded-for': '203.0.113.10' } });
    expect((await other.mutate('auth.register', { email: 'fresh@x.org', password: PASSWORD })).status).toBe(200);
  });

  it('sliding expiry renews at most hourly, capped by the absolute lifetime; expired sessions are gone', async () => {
    // The rows are aged here by SQL, which the session cache (SESSION_CACHE_S) would not see for
    // its TTL — only changes the app makes reach it; the cache has its own tests (auth/session-cache.test.ts).
    const { browser } = setup({ SESSION_CACHE_S: '0' });
    const b = browser();
    await b.mutate('auth.register', { email: 's@x.org', password: PASSWORD });
    const [before] = await db().selectFrom('sessions').select(['id', 'expires_at', 'created_at']).execute();

    // Seen a minute ago: no renewal, no cookie.
    const quiet = await b.query('auth.me');
    expect(quiet.setCookies).toEqual([]);

    // Seen two hours ago: renewed to now + 7 days and the cookie re-sent.
    await sql`update sessions set last_seen_at = now() - interval '2 hours', expires_at = now() + interval '1 day'`.execute(db());
    const renewed = await b.query('auth.me');
    expect(renewed.setCookies[0]).toMatch(/^strokeview_session=svs_/);
    const [after] = await db().selectFrom('sessions').select(['expires_at']).execute();
    const days = (new Date(after!.expires_at).getTime() - Date.now()) / 86_400_000;
    expect(days).toBeGreaterThan(6.9);
    expect(days).toBeLessThanOrEqual(7);
    expect(before).toBeDefined();

    // Created 29.5 days ago: renewal stops at the 30-day absolute lifetime.
    await sql`update sessions set created_at = now() - interval '29.5 days', last_seen_at = now() - interval '2 hours'`.execute(db());
    await b.query('auth.me');
    const [capped] = await db().selectFrom('sessions').select(['expires_at']).execute();
    const hoursLeft = (new Date(capped!.expires_at).getTime() - Date.now()) / 3_600_000;
    expect(hoursLeft).toBeGreaterThan(11);
    expect(hoursLeft).toBeLessThanOrEqual(12);

    // Past its expiry: signed out, the row deleted and the cookie cleared.
    await sql`update sessions set expires_at = now() - interval '1 second'`.execute(db());
    const expired = await b.query('auth.me');
    expect(expired.data).toBeNull();
    expect(expired.setCookies[0]).toMatch(/Max-Age=0/);
    expect(await db().selectFrom('sessions').select('id').execute()).toEqual([]);
  });

  it('a password change deletes every session and token and keeps this client signed in', async () => {
    const { app, browser } = setup();
    const here = browser();
    await here.mutate('auth.register', { email: 'c@x.org', password: PASSWORD });
    const elsewhere = browser();
    await elsewhere.mutate('auth.signIn', { email: 'c@x.org', password: PASSWORD });
    const tok = await here.mutate<{ token: string }>('auth.tokens.create', { name: 'cli' });
    const bearer = new TestBrowser(app, { headers: { authorization: `Bearer ${tok.data.token}` } });
    expect((await bearer.query('auth.me')).data).toMatchObject({ email: 'c@x.org' });

    const wrong = await here.mutate('auth.changePassword', { current: 'not the password', next: 'a brand new password' });
    expect(wrong.status).toBe(400);
    const ok = await here.mutate('auth.changePassword', { current: PASSWORD, next: 'a brand new password' });
    expect(ok.status).toBe(200);

    expect((await here.query('auth.me')).data).toMatchObject({ email: 'c@x.org' });
    expect((await elsewhere.query('auth.me')).data).toBeNull();
    expect((await bearer.query('auth.me')).status).toBe(401); // the token is gone: refused, not anonymous
    expect(await db().selectFrom('api_tokens').select('id').execute()).toEqual([]);
    expect((await browser().mutate('auth.signIn', { email: 'c@x.org', password: PASSWORD })).status).toBe(401);
    expect((await browser().mutate('auth.signIn', { email: 'c@x.org', password: 'a brand new password' })).status).toBe(200);
  });

  it('API tokens: shown once, hashed at rest, work as Bearer, listed without secrets, revocable', async () => {
    const { app, browser } = setup();
    const b = browser();
    await b.mutate('auth.register', { email: 't@x.org', password: PASSWORD });
    const created = await b.mutate<{ token: string; info: { id: string; name: string } }>('auth.tokens.create', {
      name: 'notebook',
      expiresInDays: 30,
    });
    expect(created.data.token).toMatch(/^svt_[\w-]{43}$/);
    const stored = await db().selectFrom('api_tokens').select(['token_hash']).execute();
    expect(stored).toEqual([{ token_hash: sha256(created.data.token) }]);

    const sdk = new TestBrowser(app, { headers: { authorization: `Bearer ${created.data.token}` } });
    expect((await sdk.query<PublicUser>('auth.me')).data).toMatchObject({ email: 't@x.org' });
    // Managing tokens needs the browser session: a token cannot list (or mint) tokens.
    expect((await sdk.query('auth.tokens.list')).status).toBe(403);
    const list = await b.query<{ id: string; name: string }[]>('auth.tokens.list');
    expect(list.data).toHaveLength(1);
    expect(JSON.stringify(list.data)).not.toContain(created.data.token);
    expect(list.data[0]).toMatchObject({ name: 'notebook', revokedAt: null });

    // Someone else cannot revoke it.
    const other = browser();
    await other.mutate('auth.register', { email: 'o@x.org', password: PASSWORD });
    expect((await other.mutate('auth.tokens.revoke', { id: created.data.info.id })).status).toBe(404);

    expect((await b.mutate('auth.tokens.revoke', { id: created.data.info.id })).status).toBe(200);
    // Revoked or forged, a presented token is refused outright (not treated as anonymous).
    expect((await sdk.query('auth.me')).status).toBe(401);
    expect((await new TestBrowser(app, { headers: { authorization: 'Bearer svt_forged' } }).query('auth.me')).status).toBe(401);
  });

  it('guests get a short-lived account; ALLOW_GUESTS=false turns it off', async () => {
    const { browser } = setup();
    const g = browser();
    const res = await g.mutate<{ user: PublicUser; expiresAt: string }>('auth.guest');
    expect(res.status).toBe(200);
    expect(res.data.user.role).toBe('guest');
    const hours = (new Date(res.data.expiresAt).getTime() - Date.now()) / 3_600_000;
    expect(hours).toBeGreaterThan(23.9);
    expect(hours).toBeLessThanOrEqual(24);
    expect((await g.query<PublicUser>('auth.me')).data.role).toBe('guest');
    expect((await g.mutate('auth.tokens.create', { name: 'x' })).status).toBe(403);

    const off = makeTestApp({ database: current().handle, env: { ALLOW_GUESTS: 'false' } });
    expect((await new TestBrowser(off.app).mutate('auth.guest')).status).toBe(403);
  });

  it('registering the ADMIN_EMAIL address makes a user, not an admin; the boot-time ensureAdmin promotes it only with ADMIN_PASSWORD', async () => {
    // #17 finding 8: whoever registered ADMIN_EMAIL first became admin, unverified.
    const { browser } = setup({ ADMIN_EMAIL: 'boss@x.org', ADMIN_PASSWORD: 'the admin secret!' });
    const squatter = browser();
    const reg = await squatter.mutate<{ user: PublicUser }>('auth.register', { email: 'Boss@x.org', password: 'the squatters guess' });
    expect(reg.data.user.role).toBe('user');
    expect(await ensureAdmin(db(), { email: 'boss@x.org', password: 'the admin secret!' })).toBe('refused');
    expect((await squatter.query('admin.users.list')).status).toBe(403);

    // the operator's own account (its password is the secret) is promoted; a missing one created
    await browser().mutate('auth.register', { email: 'ops@x.org', password: 'the admin secret!' });
    expect(await ensureAdmin(db(), { email: 'ops@x.org', password: 'the admin secret!' })).toBe('promoted');
    expect(await ensureAdmin(db(), { email: 'root@x.org', password: 'the admin secret!' })).toBe('created');
    expect(await ensureAdmin(db(), { email: 'root@x.org', password: 'the admin secret!' })).toBe('unchanged');
    const roles = await db().selectFrom('users').select(['email', 'role']).orderBy('email').execute();
    expect(roles).toEqual([
      { email: 'boss@x.org', role: 'user' },
      { email: 'ops@x.org', role: 'admin' },
      { email: 'root@x.org', role: 'admin' },
    ]);
  });

  it('admins: others get 403; disable signs a user out everywhere', async () => {
    const { app, browser } = setup();
    await ensureAdmin(db(), { email: 'boss@x.org', password: PASSWORD });
    const admin = browser();
    const signedIn = await admin.mutate<{ user: PublicUser }>('auth.signIn', { email: 'Boss@x.org', password: PASSWORD });
    expect(signedIn.data.user.role).toBe('admin');
    const user = browser();
    const u = await user.mutate<{ user: PublicUser }>('auth.register', { email: 'plain@x.org', password: PASSWORD });
    const tok = await user.mutate<{ token: string }>('auth.tokens.create', { name: 'ci' });

    expect((await user.query('admin.users.list')).status).toBe(403);
    const list = await admin.query<{ items: PublicUser[]; nextCursor: string | null }>('admin.users.list');
    expect(list.data.items.map((i) => i.email)).toEqual(['boss@x.org', 'plain@x.org']);
    const page = await admin.query<{ items: PublicUser[]; nextCursor: string | null }>('admin.users.list', { limit: 1 });
    expect(page.data.items).toHaveLength(1);
    const next = await admin.query<{ items: PublicUser[] }>('admin.users.list', { limit: 1, cursor: page.data.nextCursor });
    expect(next.data.items[0]?.email).toBe('plain@x.org');

    const disabled = await admin.mutate<PublicUser>('admin.users.disable', { id: u.data.user.id });
    expect(disabled.data.disabled).toBe(true);
    expect((await user.query('auth.me')).data).toBeNull();
    const bearer = new TestBrowser(app, { headers: { authorization: `Bearer ${tok.data.token}` } });
    expect((await bearer.query('auth.tokens.list')).status).toBe(401);
    const again = await browser().mutate('auth.signIn', { email: 'plain@x.org', password: PASSWORD });
    expect(again.status).toBe(403);
    expect(again.body.error?.message).toBe('This account is disabled');

    const promoted = await admin.mutate<PublicUser>('admin.users.setRole', { id: u.data.user.id, role: 'admin' });
    expect(promoted.data.role).toBe('admin');
  });

  it('every non-public procedure answers 401 without a session; the public list is exact', async () => {
    const { browser } = setup();
    const b = browser();
    const procedures = Object.entries(
      appRouter._def.procedures as unknown as Record<string, { _def: { type: string; meta?: { access?: string } } }>,
    );
    const publicOnes = procedures.filter(([, p]) => !p._def.meta?.access).map(([path]) => path);
    expect(publicOnes.sort()).toEqual([...PUBLIC_PROCEDURES].sort());
    // The ones an API token may not call (they would let a leaked token take the account) are an exact list too.
    const sessionOnes = procedures.filter(([, p]) => p._def.meta?.access === 'session').map(([path]) => path);
    expect(sessionOnes.sort()).toEqual([...SESSION_PROCEDURES].sort());
    for (const [path, proc] of procedures) {
      if ((PUBLIC_PROCEDURES as readonly string[]).includes(path)) continue;
      if (proc._def.type === 'subscription') {
        // an SSE stream: the refusal arrives as the stream's error event
        const res = await b.request(`/trpc/${path}?input=${encodeURIComponent('{}')}`, { headers: { accept: 'text/event-stream' } });
        expect({ path, body: (await res.text()).includes('UNAUTHORIZED') }).toEqual({ path, body: true });
        continue;
      }
      const res = proc._def.type === 'query' ? await b.query(path) : await b.mutate(path, {});
      expect({ path, status: res.status }).toEqual({ path, status: 401 });
    }
  });

  it('mutations are POST only', async () => {
    const { browser } = setup();
    const res = await browser().query('auth.signOut');
    expect(res.status).toBe(405);
  });

  it('logs never contain passwords, tokens or cookies', async () => {
    const { browser, logs } = setup();
    const b = browser();
    await b.mutate('auth.register', { email: 'log@x.org', password: PASSWORD });
    await b.mutate('auth.signIn', { email: 'log@x.org', password: 'wrong password here' });
    const tok = await b.mutate<{ token: string }>('auth.tokens.create', { name: 'x' });
    await b.query('auth.me', undefined, { authorization: `Bearer ${tok.data.token}` });
    await b.mutate('auth.changePassword', { current: PASSWORD, next: 'another long password' });
    const text = JSON.stringify(logs);
    expect(logs.length).toBeGreaterThan(4);
    for (const secret of [PASSWORD, 'wrong password here', 'another long password', tok.data.token, 'svs_', 'svt_']) {
      expect(text).not.toContain(secret);
    }
  });
});

describe('session cookie flags by deployment', () => {
  it('https (PUBLIC_URL) → __Host- prefix, Secure; embed mode → SameSite=None; Secure; Partitioned', async () => {
    const { cookiePolicy, serializeSessionCookie } = await import('../auth/cookies.js');
    const https = serializeSessionCookie(
      cookiePolicy({ https: true, hostname: 'x.hf.space', embedded: false }),
      'svs_t',
      new Date(Date.now() + 60_000),
    );
    expect(https).toMatch(/^__Host-strokeview_session=svs_t; Max-Age=\d+; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    const embed = serializeSessionCookie(
      cookiePolicy({ https: true, hostname: 'x.hf.space', embedded: true }),
      'svs_t',
      new Date(Date.now() + 60_000),
    );
    expect(embed).toMatch(/; Secure; SameSite=None; Partitioned$/);
    const plainLan = serializeSessionCookie(
      cookiePolicy({ https: false, hostname: '192.168.1.5', embedded: false }),
      'svs_t',
      new Date(Date.now() + 60_000),
    );
    expect(plainLan).not.toMatch(/Secure/);
  });
});
