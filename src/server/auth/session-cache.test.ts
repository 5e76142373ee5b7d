import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { PublicUser } from '../../shared/auth.js';
import { type DatabaseHandle, connectPostgres, fromPglite } from '../db/connect.js';
import { migrateToLatest } from '../db/migrate.js';
import { updateUser } from '../db/users.js';
import { type JobEventBus, localEventBus, postgresEventBus } from '../jobs/events.js';
import type { JobSystem } from '../jobs/service.js';
import { StreamLimits } from '../jobs/stream-limits.js';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { createThrowawayPostgres } from '../test/databases.js';
import { serveApp } from '../test/live.js';
import { PgliteThread } from '../db/pglite-thread.js';
import { sql } from 'kysely';
import { type CachedCredential, type CredentialChanges, SessionCache, credentialFeed, pgliteCredentialChanges } from './session-cache.js';
import { hashPassword } from './passwords.js';
import { insertUser } from '../db/users.js';

const PASSWORD = 'correct horse battery';

/** Resolves once the feed is live (PGlite's LISTEN is registered asynchronously). */
function untilLive(feed: CredentialChanges): Promise<void> {
  if (feed.live) return Promise.resolve();
  return new Promise((resolve) => {
    const off = feed.subscribe((e) => {
      if ('live' in e && e.live) {
        off();
        resolve();
      }
    });
  });
}

/** Resolves at the feed's next change of state to `live`. */
function untilState(feed: CredentialChanges, live: boolean): Promise<void> {
  if (feed.live === live) return Promise.resolve();
  return new Promise((resolve) => {
    const off = feed.subscribe((e) => {
      if ('live' in e && e.live === live) {
        off();
        resolve();
      }
    });
  });
}

const entry = (userId: string): CachedCredential =>
  ({ kind: 'session', session: { id: 's', user_id: userId }, user: { id: userId } }) as unknown as CachedCredential;

describe('SessionCache', () => {
  it('answers within its TTL, only while its feed is live, and never stores a look-up that raced a change', () => {
    let now = 0;
    const { feed, changed, setLive } = credentialFeed(true);
    const cache = new SessionCache(feed, { ttlMs: 1000, now: () => now });
    cache.store('a', entry('u1'), cache.generation);
    expect(cache.get('a')).toBeDefined();
    now = 1000;
    expect(cache.get('a')).toBeUndefined(); // past its TTL

    // A change announced while a look-up was in flight voids that look-up's store.
    const before = cache.generation;
    changed('u2');
    cache.store('a', entry('u1'), before);
    expect(cache.get('a')).toBeUndefined();

    cache.store('a', entry('u1'), cache.generation);
    cache.store('b', entry('u2'), cache.generation);
    changed('u1');
    expect(cache.get('a')).toBeUndefined();
    expect(cache.get('b')).toBeDefined();

    // The feed goes down: everything is forgotten and nothing is stored until it is back.
    setLive(false);
    expect(cache.get('b')).toBeUndefined();
    cache.store('b', entry('u2'), cache.generation);
    expect(cache.size).toBe(0);
    setLive(true);
    cache.store('b', entry('u2'), cache.generation);
    expect(cache.get('b')).toBeDefined();
  });

  it('stores nothing with a TTL of 0 or without a feed, and keeps at most maxEntries', () => {
    const { feed } = credentialFeed(true);
    const off = new SessionCache(feed, { ttlMs: 0 });
    off.store('a', entry('u'), off.generation);
    expect(off.size).toBe(0);
    const none = new SessionCache(undefined, { ttlMs: 1000 });
    none.store('a', entry('u'), none.generation);
    expect(none.size).toBe(0);
    const small = new SessionCache(feed, { ttlMs: 1000, maxEntries: 2 });
    for (const k of ['a', 'b', 'c']) small.store(k, entry(k), small.generation);
    expect(small.size).toBe(2);
    expect(small.get('a')).toBeUndefined();
  });
});

const noJobs = (bus: JobEventBus): JobSystem => ({
  boss: new Proxy({}, { get: () => () => Promise.reject(new Error('no job system here')) }) as JobSystem['boss'],
  bus,
  streams: new StreamLimits(),
});

describe('the session cache on the embedded database', () => {
  const handles: DatabaseHandle[] = [];
  afterAll(async () => {
    for (const h of handles) await h.close();
  });

  async function setup() {
    // The engine the server runs embedded: PGlite on its own thread, whose notifications must still
    // arrive before the answer to the statement that committed them.
    const handle = fromPglite(await PgliteThread.open({ moreStartParams: [] }));
    handles.push(handle);
    await migrateToLatest(handle.db);
    const feed = pgliteCredentialChanges(handle.pglite!);
    await untilLive(feed);
    const sessions = new SessionCache(feed, { ttlMs: 30_000 });
    const t = makeTestApp({ database: handle, sessions, jobs: noJobs(localEventBus()) });
    const signedIn = async (email: string) => {
      const b = new TestBrowser(t.app);
      expect((await b.mutate('auth.register', { email, password: PASSWORD })).status).toBe(200);
      return b;
    };
    const me = async (b: TestBrowser, headers: Record<string, string> = {}) =>
      (await b.query<PublicUser | null>('auth.me', undefined, headers)).data;
    return { handle, sessions, t, signedIn, me };
  }

  it('a second request is answered from the cache; sign-out refuses the cookie at once', async () => {
    const { sessions, t, signedIn, me } = await setup();
    const b = await signedIn('a@example.org');
    const cookie = b.cookieHeader()!;
    expect((await me(b))?.email).toBe('a@example.org');
    const hits = sessions.hits;
    expect((await me(b))?.email).toBe('a@example.org');
    expect(sessions.hits).toBe(hits + 1);

    expect((await b.mutate('auth.signOut')).status).toBe(200);
    // The old cookie, replayed: anonymous at once.
    const replay = new TestBrowser(t.app, { headers: { cookie } });
    expect(await me(replay)).toBeNull();
  });

  it('a change made outside any request (another code path, an operator) is heard through the database: disable, role, token revocation', async () => {
    const { handle, sessions, signedIn, me } = await setup();
    const b = await signedIn('b@example.org');
    const user = (await me(b))!;
    await me(b);
    expect(sessions.size).toBe(1);
    // Straight through the repository: no router drops anything, only the trigger's notification.
    await updateUser(handle.db, user.id, { role: 'guest' });
    expect(sessions.size).toBe(0);
    expect((await me(b))?.role).toBe('guest');
    await updateUser(handle.db, user.id, { disabled_at: new Date() });
    expect(await me(b)).toBeNull();

    const c = await signedIn('c@example.org');
    const created = await c.mutate<{ token: string; info: { id: string } }>('auth.tokens.create', { name: 'laptop' });
    const bearer = { authorization: `Bearer ${created.data.token}` };
    expect((await me(c, bearer))?.email).toBe('c@example.org');
    expect((await me(c, bearer))?.email).toBe('c@example.org');
    await handle.db.updateTable('api_tokens').set({ revoked_at: new Date() }).execute();
    const refused = await c.query('auth.me', undefined, bearer);
    expect(refused.status).toBe(401);
  });

  it('password change and admin disable through the API refuse the old credentials at once', async () => {
    const { handle, t, signedIn, me } = await setup();
    await insertUser(handle.db, { email: 'admin@example.org', password_hash: await hashPassword(PASSWORD), role: 'admin' });
    const admin = new TestBrowser(t.app);
    expect((await admin.mutate('auth.signIn', { email: 'admin@example.org', password: PASSWORD })).status).toBe(200);

    const d = await signedIn('d@example.org');
    const oldCookie = d.cookieHeader()!;
    await me(d);
    expect((await d.mutate('auth.changePassword', { current: PASSWORD, next: 'another horse battery' })).status).toBe(200);
    expect(await me(new TestBrowser(t.app, { headers: { cookie: oldCookie } }))).toBeNull();
    expect((await me(d))?.email).toBe('d@example.org'); // the fresh session works

    const user = (await me(d))!;
    await me(d);
    expect((await admin.mutate('admin.users.disable', { id: user.id })).status).toBe(200);
    expect(await me(d)).toBeNull();
  });
});

describe.skipIf(!process.env.TEST_DATABASE_URL)('the session cache across two replicas on one PostgreSQL', () => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  async function replica(url: string, opts: { beforeReconnect?: () => Promise<void> } = {}) {
    const handle = await connectPostgres(url);
    const bus = await postgresEventBus(url, undefined, opts);
    closers.push(
      () => handle.close(),
      () => bus.close(),
    );
    const sessions = new SessionCache(bus.credentials, { ttlMs: 30_000 });
    const t = makeTestApp({ database: handle, sessions, jobs: noJobs(bus) });
    // Over real HTTP: a replayed cookie reaches the replica on a socket, as it would behind a balancer.
    const server = await serveApp(t.app);
    closers.push(() => server.close());
    return {
      handle,
      bus,
      sessions,
      url: server.url,
      browser: (cookie?: string) => new TestBrowser(server.url, cookie ? { headers: { cookie } } : {}),
    };
  }

  async function twoReplicas(opts: { beforeReconnectB?: () => Promise<void> } = {}) {
    const db = await createThrowawayPostgres();
    closers.push(() => db.drop());
    const migrator = await connectPostgres(db.url);
    await migrateToLatest(migrator.db);
    await migrator.close();
    const a = await replica(db.url);
    const b = await replica(db.url, opts.beforeReconnectB ? { beforeReconnect: opts.beforeReconnectB } : {});
    return { a, b, url: db.url };
  }

  const me = async (b: TestBrowser) => (await b.query<PublicUser | null>('auth.me')).data;

  it('sign-out on replica A: replica B, which had the session cached, refuses the cookie at once', async () => {
    const { a, b } = await twoReplicas();
    const onA = a.browser();
    expect((await onA.mutate('auth.register', { email: 'r@example.org', password: PASSWORD })).status).toBe(200);
    const cookie = onA.cookieHeader()!;
    const onB = b.browser(cookie);
    expect((await me(onB))?.email).toBe('r@example.org');
    const hits = b.sessions.hits;
    expect((await me(onB))?.email).toBe('r@example.org');
    expect(b.sessions.hits).toBe(hits + 1); // B answers from its cache

    expect((await onA.mutate('auth.signOut')).status).toBe(200);
    expect(await me(onB)).toBeNull();

    // Revoking an API token on A: B, which had it cached, refuses it at once.
    const onA2 = a.browser();
    await onA2.mutate('auth.register', { email: 's@example.org', password: PASSWORD });
    const created = await onA2.mutate<{ token: string; info: { id: string } }>('auth.tokens.create', { name: 'ci' });
    const bearer = { authorization: `Bearer ${created.data.token}` };
    const tokenOnB = new TestBrowser(b.url, { headers: bearer });
    expect((await me(tokenOnB))?.email).toBe('s@example.org');
    expect((await me(tokenOnB))?.email).toBe('s@example.org');
    expect((await onA2.mutate('auth.tokens.revoke', { id: created.data.info.id })).status).toBe(200);
    expect((await tokenOnB.query('auth.me')).status).toBe(401);
  });

  it('a replica whose bus is down caches nothing, so a sign-out elsewhere is still refused at once; caching resumes when the bus is back', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const { a, b, url } = await twoReplicas({ beforeReconnectB: () => held });
    const onA = a.browser();
    await onA.mutate('auth.register', { email: 't@example.org', password: PASSWORD });
    const cookie = onA.cookieHeader()!;
    const onB = b.browser(cookie);
    await me(onB);
    await me(onB);
    expect(b.sessions.size).toBe(1);

    // Cut B's (and A's) LISTEN connection; B's reconnect waits on the gate.
    const down = untilState(b.bus.credentials!, false);
    const admin = await connectPostgres(url);
    closers.push(() => admin.close());
    await sql`select pg_terminate_backend(pid) from pg_stat_activity where application_name = 'strokeview-events' and datname = current_database()`.execute(
      admin.db,
    );
    await down;
    expect(b.sessions.caching).toBe(false);
    expect(b.sessions.size).toBe(0);

    const hits = b.sessions.hits;
    expect((await me(onB))?.email).toBe('t@example.org');
    expect((await me(onB))?.email).toBe('t@example.org');
    expect(b.sessions.hits).toBe(hits); // every request went to the database
    expect(b.sessions.size).toBe(0);

    expect((await onA.mutate('auth.signOut')).status).toBe(200);
    expect(await me(onB)).toBeNull();

    // The bus comes back: B caches again.
    const up = untilState(b.bus.credentials!, true);
    release();
    await up;
    const again = a.browser();
    await again.mutate('auth.signIn', { email: 't@example.org', password: PASSWORD });
    const onB2 = b.browser(again.cookieHeader()!);
    await me(onB2);
    const before = b.sessions.hits;
    await me(onB2);
    expect(b.sessions.hits).toBe(before + 1);
  });
});
