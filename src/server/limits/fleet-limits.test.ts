import { request } from 'node:http';
import { afterEach, expect, it, vi } from 'vitest';
import { phantomVolumes } from '../cases/demo.js';
import { type DatabaseHandle, connectPostgres } from '../db/connect.js';
import { countLeases } from '../db/fleet-limits.js';
import { tooMany } from '../errors.js';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';
import { serveApp } from '../test/live.js';
import { multipart } from '../test/multipart.js';
import { FleetLeases } from './leases.js';

// #28: the limits that protect the service hold across replicas. Two app instances ("replicas")
// on one database — on PostgreSQL each with its own connection pool, as two processes would be —
// and each limit is reached at the same total whichever replica the requests hit.

describeEachDatabase('limits counted across the fleet', (current) => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  /** A second replica's own connection to the same database (PGlite: the same embedded database). */
  async function secondHandle(): Promise<DatabaseHandle> {
    const db = current();
    if (db.kind !== 'postgres') return db.handle;
    const h = await connectPostgres(db.url!, { max: 3 });
    closers.push(() => h.close());
    return h;
  }

  async function twoReplicas(env: Record<string, string>) {
    const a = makeTestApp({ database: current().handle, env });
    const b = makeTestApp({ database: await secondHandle(), env });
    return [a, b] as const;
  }

  it('the auth rate limit: AUTH_RATE_PER_MIN sign-ins in all, alternating replicas; the next one gets 429 on either', async () => {
    const replicas = await twoReplicas({ AUTH_RATE_PER_MIN: '4' });
    const signIn = (i: number) =>
      replicas[i % 2]!.app.request('/trpc/auth.signIn', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin' },
        body: JSON.stringify({ email: `nobody${i}@example.org`, password: 'not the password at all' }),
      });
    const statuses: number[] = [];
    for (let i = 0; i < 6; i++) statuses.push((await signIn(i)).status);
    expect(statuses.slice(0, 4).every((s) => s !== 429)).toBe(true);
    expect(statuses.slice(4)).toEqual([429, 429]);
    const refused = await signIn(7);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('stream caps: a user’s streams count on every replica; a dead replica’s leases stop counting once they expire', async () => {
    let clock = Date.parse('2026-12-02T03:00:00Z');
    const now = () => clock;
    const a = new FleetLeases(() => current().handle.db, { kind: 'stream', leaseMs: 30_000, now });
    const second = await secondHandle();
    const b = new FleetLeases(() => second.db, { kind: 'stream', leaseMs: 30_000, now });
    closers.push(async () => (a.stop(), b.stop()));
    const claims = [{ key: 'user:u1', limit: 2, refuse: (n: number) => tooMany(`You have ${n} live progress streams open`, 10) }];
    const releaseA = await a.acquire(claims);
    await b.acquire(claims); // B holds one and then "dies": never releases, never renews
    await expect(a.acquire(claims)).rejects.toMatchObject({ kind: 'too-many', message: 'You have 2 live progress streams open' });
    await expect(b.acquire(claims)).rejects.toMatchObject({ kind: 'too-many' });
    // Another user is not affected.
    const other = await b.acquire([{ ...claims[0]!, key: 'user:u2' }]);
    other();
    // A released: one free again, anywhere.
    releaseA();
    await vi.waitFor(async () => expect(await countLeases(current().handle.db, 'stream', 'user:u1', new Date(clock))).toBe(1));
    const again = await a.acquire(claims);
    await expect(a.acquire(claims)).rejects.toMatchObject({ kind: 'too-many' });
    // Time passes: A renews what it holds (its heartbeat); B, dead, does not — its lease expires.
    clock += 20_000;
    await a.renew();
    clock += 20_000;
    await a.renew();
    expect(await countLeases(current().handle.db, 'stream', 'user:u1', new Date(clock))).toBe(1);
    const afterDeath = await a.acquire(claims);
    afterDeath();
    again();
  });

  it('uploads: MAX_UPLOADS_IN_FLIGHT across replicas (503 on the other one), and one account’s cap counted fleet-wide (429)', async () => {
    const env = { MAX_UPLOADS_IN_FLIGHT: '1', MAX_CONCURRENT_UPLOADS: '4', MAX_UPLOADS_PER_USER: '1' };
    const replicas = await twoReplicas(env);
    const tokens: string[] = [];
    for (const [i, who] of ['ann', 'bob'].entries()) {
      const browser = new TestBrowser(replicas[i]!.app);
      await browser.mutate('auth.register', { email: `${who}@example.org`, password: 'correct horse battery' });
      tokens.push((await browser.mutate<{ token: string }>('auth.tokens.create', { name: who })).data.token);
    }
    const servers = await Promise.all(replicas.map((r) => serveApp(r.app)));
    for (const s of servers) closers.push(() => s.close());
    const files = Object.fromEntries(phantomVolumes(101).map((v) => [v.role, v.stored])) as Record<string, Buffer>;
    const form = multipart({ name: 'fleet', dwi: files.dwi!, adc: files.adc! });

    // Ann's upload on replica A, held open mid-body: it holds the fleet's only slot.
    const u = new URL(`${servers[0]!.url}/api/cases`);
    const held = request({
      host: u.hostname,
      port: u.port,
      path: u.pathname,
      method: 'POST',
      headers: { authorization: `Bearer ${tokens[0]}`, 'content-type': form.type, 'content-length': String(form.body.length) },
    });
    held.on('error', () => {});
    held.write(form.body.subarray(0, 1024));
    await vi.waitFor(async () => expect(await countLeases(current().handle.db, 'upload', 'fleet', new Date())).toBe(1), {
      timeout: 30_000,
    });

    const post = (i: number, token: string) =>
      fetch(`${servers[i]!.url}/api/cases`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': form.type },
        body: new Uint8Array(form.body),
      });
    // Bob on replica B: the fleet is full (B itself has no upload in flight).
    const full = await post(1, tokens[1]!);
    expect(full.status).toBe(503);
    expect(full.headers.get('retry-after')).toBe('5');
    expect(await full.text()).toMatch(/The service is processing 1 uploads/);
    // Ann on replica B: her own cap, counted fleet-wide, says it first... or the fleet does; both refuse.
    expect([429, 503]).toContain((await post(1, tokens[0]!)).status);

    // Ann's upload ends (the connection drops): the slot is free on every replica.
    held.destroy();
    await vi.waitFor(async () => expect(await countLeases(current().handle.db, 'upload', 'fleet', new Date())).toBe(0), {
      timeout: 30_000,
    });
    const ok = await post(1, tokens[1]!);
    expect(ok.status, await ok.clone().text()).toBe(200);
  });

  it('uploads: one account’s cap holds across replicas when the fleet has room', async () => {
    const replicas = await twoReplicas({ MAX_UPLOADS_IN_FLIGHT: '8', MAX_UPLOADS_PER_USER: '1' });
    const browser = new TestBrowser(replicas[0]!.app);
    await browser.mutate('auth.register', { email: 'cap@example.org', password: 'correct horse battery' });
    const token = (await browser.mutate<{ token: string }>('auth.tokens.create', { name: 'cap' })).data.token;
    const servers = await Promise.all(replicas.map((r) => serveApp(r.app)));
    for (const s of servers) closers.push(() => s.close());
    const files = Object.fromEntries(phantomVolumes(102).map((v) => [v.role, v.stored])) as Record<string, Buffer>;
    const form = multipart({ name: 'cap', dwi: files.dwi!, adc: files.adc! });
    const u = new URL(`${servers[0]!.url}/api/cases`);
    const held = request({
      host: u.hostname,
      port: u.port,
      path: u.pathname,
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': form.type, 'content-length': String(form.body.length) },
    });
    held.on('error', () => {});
    held.write(form.body.subarray(0, 1024));
    await vi.waitFor(async () => expect(await countLeases(current().handle.db, 'upload', 'fleet', new Date())).toBe(1), {
      timeout: 30_000,
    });
    const second = await fetch(`${servers[1]!.url}/api/cases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': form.type },
      body: new Uint8Array(form.body),
    });
    expect(second.status).toBe(429);
    expect(await second.text()).toMatch(/You have 1 upload in progress/);
    held.destroy();
  });
});
