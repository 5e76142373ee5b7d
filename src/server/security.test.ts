import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { TRPCError } from '@trpc/server';
import { sql } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { PublicUser } from '../shared/auth.js';
import type { CaseDetail } from '../shared/cases.js';
import type { JobView } from '../shared/jobs.js';
import type { Affine } from '../shared/nifti.js';
import { ensureAdmin } from './auth/service.js';
import { phantomVolumes, seedDemoCases } from './cases/demo.js';
import { BootError, ensureWritableDataDir } from './data-dir.js';
import { insertJob } from './db/jobs.js';
import { createLogger } from './logger.js';
import { buildNifti, testVolume } from './nifti/fixtures.js';
import { PUBLIC_PROCEDURES, appRouter } from './routers/_app.js';
import { makeTestApp } from './test/app.js';
import { TestBrowser } from './test/browser.js';
import { describeEachDatabase } from './test/databases.js';
import { serveApp } from './test/live.js';
import { startJobRuntime } from './jobs/runtime.js';
import { publicProcedure, router } from './trpc.js';
import { createVolumeSigner } from './volumes/signing.js';
import { CpuPool } from './workers/pool.js';
import { parseEnv } from './env.js';
import { builtInModelsDir, loadModelRegistry } from './segmentation/models.js';

const models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });

/**
 * The security list of DESIGN.md (S1–S15) and the findings of #17 (F1–F11 and the extras), one
 * test each, over real HTTP: the app listens on a socket and every request goes through fetch.
 * Each would fail if the hole it names were opened again.
 */

const PASSWORD = 'correct horse battery';
const nii = testVolume;

function caseForm(files: Record<string, Uint8Array>, name = 'case'): FormData {
  const fd = new FormData();
  fd.set('name', name);
  for (const [role, bytes] of Object.entries(files)) fd.set(role, new File([new Uint8Array(bytes)], `${role}.nii.gz`));
  return fd;
}

const json = { 'content-type': 'application/json' };

describeEachDatabase('security over real HTTP', (current) => {
  const open: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
    vi.restoreAllMocks();
  });

  /** The real app on a real socket; `browser()` is a cookie-keeping client over fetch. */
  async function serve(env: Record<string, string> = {}, extra: Partial<Parameters<typeof makeTestApp>[0]> = {}) {
    const t = makeTestApp({ database: current().handle, env, ...extra });
    const server = await serveApp(t.app);
    open.push(server);
    const browser = (headers: Record<string, string> = {}) => new TestBrowser(server.url, { headers });
    const user = async (email: string, headers: Record<string, string> = {}) => {
      const b = browser(headers);
      const r = await b.mutate<{ user: PublicUser }>('auth.register', { email, password: PASSWORD });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return b;
    };
    return { ...t, url: server.url, browser, user, db: current().handle.db };
  }

  // ───────────────────────── DESIGN.md security list ─────────────────────────

  it('S1 session cookie: HttpOnly, Secure, Path=/, SameSite=Lax; embedded: None + Partitioned; https: __Host-', async () => {
    const plain = await serve();
    const c1 = (await plain.browser().mutate('auth.guest')).setCookies[0]!;
    expect(c1).toMatch(/^strokeview_session=svs_[\w-]+; Max-Age=\d+; Path=\/; HttpOnly; Secure; SameSite=Lax$/);
    const embedded = await serve({ EMBED_ORIGINS: 'https://huggingface.co' });
    expect((await embedded.browser().mutate('auth.guest')).setCookies[0]).toMatch(/; Secure; SameSite=None; Partitioned/);
    const https = await serve({ PUBLIC_URL: 'https://owner-strokeview.hf.space' });
    expect((await https.browser().mutate('auth.guest')).setCookies[0]).toMatch(
      /^__Host-strokeview_session=.*; Path=\/; HttpOnly; Secure; SameSite=Lax$/,
    );
  });

  it('S2 session tokens: 256-bit random, only their SHA-256 stored', async () => {
    const s = await serve();
    const b = await s.user('s2@x.org');
    const token = b.cookies.get('strokeview_session')!;
    const secret = Buffer.from(token.replace(/^svs_/, ''), 'base64url');
    expect(secret.length).toBeGreaterThanOrEqual(32);
    const rows = await s.db.selectFrom('sessions').select('token_hash').execute();
    expect(rows).toEqual([{ token_hash: createHash('sha256').update(token).digest('hex') }]);
  });

  it('S3 a new session on every sign-in, capped by the absolute lifetime; sign-out deletes it', async () => {
    const s = await serve({ SESSION_IDLE_DAYS: '7', SESSION_MAX_DAYS: '30' });
    const a = await s.user('s3@x.org');
    const first = a.cookies.get('strokeview_session');
    await a.mutate('auth.signIn', { email: 's3@x.org', password: PASSWORD });
    expect(a.cookies.get('strokeview_session')).not.toBe(first);
    const sessions = await s.db.selectFrom('sessions').select(['expires_at', 'created_at']).execute();
    expect(sessions).toHaveLength(2);
    for (const row of sessions)
      expect(new Date(row.expires_at).getTime() - new Date(row.created_at).getTime()).toBeLessThanOrEqual(30 * 86_400_000);
    const second = a.cookies.get('strokeview_session')!;
    await a.mutate('auth.signOut');
    expect(await s.db.selectFrom('sessions').select('id').execute()).toHaveLength(1); // the first sign-in's session stays
    const replay = s.browser();
    replay.cookies.set('strokeview_session', second);
    expect((await replay.query('auth.me')).data).toBeNull();
  });

  it('S4 a password change ends every session and API token of that user', async () => {
    const s = await serve();
    const a = await s.user('s4@x.org');
    const token = (await a.mutate<{ token: string }>('auth.tokens.create', { name: 'ci' })).data.token;
    const elsewhere = s.browser();
    await elsewhere.mutate('auth.signIn', { email: 's4@x.org', password: PASSWORD });
    expect((await a.mutate('auth.changePassword', { current: PASSWORD, next: 'a brand new password' })).status).toBe(200);
    expect((await elsewhere.query('auth.me')).data).toBeNull();
    expect((await s.browser({ authorization: `Bearer ${token}` }).query('auth.tokens.list')).status).toBe(401);
  });

  it('S5 CSRF: a cross-site cookie POST is 403, a form post is 403, a GET mutation is refused', async () => {
    const s = await serve();
    const a = await s.user('s5@x.org');
    const cookie = a.cookieHeader()!;
    const crossSite = await fetch(`${s.url}/trpc/auth.signOut`, {
      method: 'POST',
      headers: { ...json, cookie, origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    });
    expect(crossSite.status).toBe(403);
    const formPost = await fetch(`${s.url}/trpc/auth.tokens.create`, {
      method: 'POST',
      headers: { cookie, 'content-type': 'application/x-www-form-urlencoded', origin: 'https://evil.example' },
      body: 'name=x',
    });
    expect(formPost.status).toBe(403);
    const get = await fetch(`${s.url}/trpc/auth.signOut`, { headers: { cookie, 'sec-fetch-site': 'same-origin' } });
    expect(get.status).toBe(405);
    expect((await a.query('auth.me')).data).not.toBeNull(); // still signed in: nothing above acted
  });

  it('S6 CORS: the exact allowlist; a look-alike origin gets no Allow-Origin, and never * with credentials', async () => {
    const allowed = 'https://owner-strokeview.hf.space';
    const s = await serve({ ALLOWED_ORIGINS: allowed });
    const ask = (origin: string) => fetch(`${s.url}/trpc/system.info`, { headers: { origin } });
    const good = await ask(allowed);
    expect(good.headers.get('access-control-allow-origin')).toBe(allowed);
    expect(good.headers.get('access-control-allow-credentials')).toBe('true');
    for (const evil of [
      'https://evil-owner-strokeview.hf.space',
      'http://owner-strokeview.hf.space',
      'null',
      'https://owner-strokeview.hf.space.evil.example',
    ]) {
      const res = await ask(evil);
      expect(res.headers.get('access-control-allow-origin'), evil).toBeNull();
      expect(res.headers.get('access-control-allow-credentials'), evil).toBeNull();
    }
  });

  it('S7 security headers on every response; CORP, ETag and immutable on volumes', async () => {
    const s = await serve({ PUBLIC_URL: 'https://owner-strokeview.hf.space' });
    await seedDemoCases(s.db, s.store, 1);
    for (const p of ['/healthz', '/trpc/system.info', '/nowhere']) {
      const res = await fetch(`${s.url}${p}`);
      const csp = res.headers.get('content-security-policy') ?? '';
      expect(csp, p).toContain("object-src 'none'");
      expect(csp, p).toContain("base-uri 'none'");
      expect(csp, p).toContain("frame-ancestors 'self'");
      expect(res.headers.get('x-content-type-options'), p).toBe('nosniff');
      expect(res.headers.get('referrer-policy'), p).toBeTruthy();
      expect(Number(/max-age=(\d+)/.exec(res.headers.get('strict-transport-security') ?? '')?.[1]), p).toBeGreaterThanOrEqual(31_536_000);
      expect(res.headers.get('cross-origin-opener-policy'), p).toBe('same-origin');
    }
    const { items } = (await s.browser().query<{ items: { id: string }[] }>('cases.list')).data;
    const detail = (await s.browser().query<CaseDetail>('cases.byId', { id: items[0]!.id })).data;
    const volume = await fetch(`${s.url}${new URL(detail.volumes[0]!.url).pathname}`);
    expect(volume.status).toBe(200);
    expect(volume.headers.get('cross-origin-resource-policy')).toBeTruthy();
    expect(volume.headers.get('etag')).toBeTruthy();
    expect(volume.headers.get('cache-control')).toContain('immutable');
  });

  it('S8 body limits: a large /trpc body is 413, a batch over the cap is 400', async () => {
    const s = await serve({ TRPC_MAX_BODY_BYTES: '2048', TRPC_MAX_BATCH: '3' });
    const big = await fetch(`${s.url}/trpc/auth.signIn`, {
      method: 'POST',
      headers: { ...json, 'sec-fetch-site': 'same-origin' },
      body: JSON.stringify({ email: 'a@b.org', password: 'x'.repeat(5000) }),
    });
    expect(big.status).toBe(413);
    const batch = await fetch(`${s.url}/trpc/${Array(4).fill('system.info').join(',')}?batch=1&input=${encodeURIComponent('{}')}`);
    expect(batch.status).toBe(400);
  });

  it('S9 uploads: magic bytes and payload size checked, 422 naming the file; client file names never reach the disk; nothing half-written', async () => {
    const uploadDir = mkdtempSync(path.join(tmpdir(), 'sv-sec-uploads-'));
    const s = await serve({}, { uploadDir });
    const a = await s.user('s9@x.org');
    const notNifti = await a.upload('cases.upload', caseForm({ dwi: new Uint8Array(4096).fill(7), adc: nii() }));
    expect(notNifti.status).toBe(422);
    expect(notNifti.body.error?.message).toMatch(/^DWI: Not a NIfTI file/);
    const truncated = await a.upload('cases.upload', caseForm({ dwi: nii({ truncate: 100 }), adc: nii() }));
    expect(truncated.status).toBe(422);
    expect(truncated.body.error?.message).toMatch(/DWI: The (voxel data is truncated|gzip data is corrupt)/);
    // a hostile file name: stored under server-made names only
    const fd = caseForm({ adc: nii() });
    fd.set('dwi', new File([new Uint8Array(nii())], '../../../../etc/evil.nii.gz'));
    expect((await a.upload('cases.upload', fd)).status).toBe(200);
    const stored = readdirSync(s.store.root, { recursive: true }).map(String);
    expect(stored.some((f) => f.includes('evil'))).toBe(false);
    expect(readdirSync(uploadDir)).toEqual([]);
    expect((await sql<{ n: number }>`select count(*)::int as n from cases`.execute(s.db)).rows[0]!.n).toBe(1);
  });

  it('S9 a chunked upload (no Content-Length) is authenticated before its body is read: an anonymous one gets 401 while it is still sending', async () => {
    // Found while writing the SIGKILL test (#16): Hono's bodyLimit read a chunked body into memory
    // — all of it, unauthenticated — before the streamed upload could refuse it.
    const s = await serve();
    let push!: ReadableStreamDefaultController<Uint8Array>;
    const body = new ReadableStream<Uint8Array>({ start: (c) => void (push = c) });
    push.enqueue(new TextEncoder().encode('--b\r\nContent-Disposition: form-data; name="dwi"; filename="dwi.nii"\r\n\r\n'));
    push.enqueue(new Uint8Array(65536));
    // the body never ends: only an answer given before reading it can arrive
    const res = await fetch(`${s.url}/trpc/cases.upload`, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=b', 'sec-fetch-site': 'same-origin' },
      body,
      duplex: 'half',
    } as RequestInit);
    expect(res.status).toBe(401);
    push.error(new Error('done'));
  });

  it('S10 rate limits key on the real client address behind the trusted proxies: 429 with Retry-After', async () => {
    const s = await serve({ TRUSTED_PROXY_HOPS: '1', AUTH_RATE_PER_MIN: '2' });
    const from = (chain: string) => s.browser({ 'x-forwarded-for': chain });
    const attempt = (chain: string) => from(chain).mutate('auth.signIn', { email: 'nobody@x.org', password: 'wrong password' });
    expect((await attempt('203.0.113.7')).status).toBe(401);
    expect((await attempt('203.0.113.7')).status).toBe(401);
    // a forged left-most entry does not give a new key: the proxy's own entry (right-most) counts
    const third = await attempt('198.51.100.1, 203.0.113.7');
    expect(third.status).toBe(429);
    expect(Number(third.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await attempt('203.0.113.8')).status).toBe(401);
  });

  it("S11 authorization: another user's case and job are NOT_FOUND; the public procedures are an exact list", async () => {
    const s = await serve();
    const alice = await s.user('alice@x.org');
    const bob = await s.user('bob@x.org');
    const mine = await alice.upload<CaseDetail>('cases.upload', caseForm({ dwi: nii(), adc: nii() }));
    const aliceId = (await alice.query<PublicUser>('auth.me')).data.id;
    const job = await insertJob(s.db, {
      ownerId: aliceId,
      caseId: mine.data.id,
      modelIds: ['adc-core-v1'],
      idempotencyKey: null,
      expiresAt: new Date(Date.now() + 86_400_000),
    });
    expect((await bob.query('cases.byId', { id: mine.data.id })).body.error?.data.code).toBe('NOT_FOUND');
    expect((await bob.query('jobs.byId', { id: job.id })).body.error?.data.code).toBe('NOT_FOUND');
    expect((await bob.mutate('cases.delete', { id: mine.data.id })).body.error?.data.code).toBe('NOT_FOUND');
    const publicNow = Object.entries(appRouter._def.procedures as unknown as Record<string, { _def: { meta?: { access?: string } } }>)
      .filter(([, p]) => !p._def.meta?.access)
      .map(([name]) => name)
      .sort();
    expect(publicNow).toEqual([...PUBLIC_PROCEDURES].sort());
  });

  it('S12 internal errors are masked (no stack, no SQL) and logged with the request id', async () => {
    const testRouter = router({
      ...appRouter._def.procedures,
      boom: publicProcedure.query(async ({ ctx }) => {
        await sql`select * from no_such_table_here`.execute(ctx.db);
      }),
    });
    const s = await serve({ NODE_ENV: 'production', SECRET_KEY: 'k'.repeat(40) }, { router: testRouter });
    const res = await fetch(`${s.url}/trpc/boom`);
    expect(res.status).toBe(500);
    const text = await res.text();
    expect(text).not.toMatch(/no_such_table_here|select|stack|\.ts:/i);
    const reqId = res.headers.get('x-request-id');
    expect(s.logs.some((l) => l.reqId === reqId && JSON.stringify(l).includes('no_such_table_here'))).toBe(true);
  });

  it('S13 until ready, /trpc answers 503 with Retry-After at once and /readyz says why', async () => {
    const t = makeTestApp({});
    const server = await serveApp(t.app);
    open.push(server);
    const res = await fetch(`${server.url}/trpc/system.info`);
    expect(res.status).toBe(503);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('S14 jobs: a per-user cap (429 + Retry-After), and a queued job cancelled at once', async () => {
    const env = parseEnv({ NODE_ENV: 'test', MAX_ACTIVE_JOBS_PER_USER: '1' });
    const t0 = makeTestApp({ database: current().handle });
    const runtime = await startJobRuntime({
      database: current().handle,
      store: t0.store,
      models: models,
      env,
      log: createLogger({ level: 'silent' }),
      runWorker: false,
    });
    open.push({ close: () => runtime.stop(1000) });
    const s = await serve({ MAX_ACTIVE_JOBS_PER_USER: '1' }, { jobs: runtime.jobs, store: t0.store });
    await seedDemoCases(s.db, s.store, 1);
    const a = await s.user('s14@x.org');
    const [demo] = (await a.query<{ items: { id: string }[] }>('cases.list')).data.items;
    const job = await a.mutate<JobView>('jobs.create', { caseId: demo!.id });
    expect(job.data.status).toBe('queued');
    const second = await a.mutate('jobs.create', { caseId: demo!.id });
    expect(second.status).toBe(429);
    expect(Number(second.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((await a.mutate<JobView>('jobs.cancel', { id: job.data.id })).data.status).toBe('cancelled');
    expect((await a.mutate('jobs.create', { caseId: demo!.id })).status).toBe(200);
  });

  it('S15 an unwritable DATA_DIR stops the boot with a clear error', () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'sv-sec-')), 'a-file');
    writeFileSync(file, 'x');
    expect(() => ensureWritableDataDir(path.join(file, 'data'))).toThrow(BootError);
    expect(() => ensureWritableDataDir(path.join(file, 'data'))).toThrow(
      /DATA_DIR .* is not writable \(ENOTDIR\); set DATA_DIR to a writable folder/,
    );
  });

  // ───────────────────────── #17 findings ─────────────────────────

  it('F1 the auth rate limit counts /trpc/auth.signIn/ (trailing slash) and every other spelling tRPC runs', async () => {
    const s = await serve({ AUTH_RATE_PER_MIN: '3' });
    const b = s.browser();
    const spellings = ['auth.signIn/', 'auth.signIn//', 'auth%2EsignIn'];
    for (const p of spellings) {
      const res = await b.request(`/trpc/${p}`, {
        method: 'POST',
        headers: json,
        body: JSON.stringify({ email: 'v@x.org', password: 'wrong password' }),
      });
      expect(res.status, p).not.toBe(429);
    }
    const fourth = await b.mutate('auth.signIn', { email: 'v@x.org', password: 'wrong password' });
    expect(fourth.status).toBe(429);
    const guestSlash = await b.request('/trpc/auth.guest/', { method: 'POST', headers: json });
    expect(guestSlash.status).toBe(429);
  });

  it('F2 thirty parallel wrong passwords for one email: at most SIGN_IN_FAILURES_MAX are checked, the rest get 429', async () => {
    const s = await serve({ AUTH_RATE_PER_MIN: '1000', SIGN_IN_FAILURES_MAX: '5' });
    await s.user('victim@x.org');
    const tries = await Promise.all(
      Array.from({ length: 30 }, (_, i) => s.browser().mutate('auth.signIn', { email: 'victim@x.org', password: `guess number ${i}` })),
    );
    const statuses = tries.map((t) => t.status);
    expect(statuses.filter((x) => x === 401).length).toBeLessThanOrEqual(5);
    expect(statuses.filter((x) => x !== 401).every((x) => x === 429)).toBe(true);
    // Fewer may have been checked (an attempt counts the in-flight ones too); topped up one at a
    // time, exactly SIGN_IN_FAILURES_MAX wrong passwords are ever checked, then even the right one waits.
    let checked = statuses.filter((x) => x === 401).length;
    for (let i = 0; i < 10; i++) {
      const more = await s.browser().mutate('auth.signIn', { email: 'victim@x.org', password: 'one more guess' });
      if (more.status !== 401) break;
      checked++;
    }
    expect(checked).toBe(5);
    expect((await s.browser().mutate('auth.signIn', { email: 'victim@x.org', password: PASSWORD })).status).toBe(429);
  });

  it('F3 decompression bombs: header limits before any inflation — voxel cap, lying vox_offset, per-upload inflate budget', async () => {
    const s = await serve({ MAX_INFLATED_MB: '8' });
    const a = await s.user('f3@x.org');
    // 1024×1024×128 of float32 zeros: ~1 MB as gzip, 512 MiB declared
    const header = (dim: number[], voxOffset?: number) => {
      const h = buildNifti({ dim: [1, 1, 1] }).subarray(0, 352);
      const v = new DataView(h.buffer, h.byteOffset, h.byteLength);
      v.setInt16(40, dim.length, true);
      dim.forEach((d, i) => v.setInt16(42 + 2 * i, d, true));
      if (voxOffset !== undefined) v.setFloat32(108, voxOffset, true);
      return h;
    };
    const huge = gzipSync(Buffer.concat([header([1024, 1024, 128]), Buffer.alloc(1 << 20)]));
    const big = await a.upload('cases.upload', caseForm({ dwi: huge, adc: huge }));
    expect(big.status).toBe(422);
    expect(big.body.error?.message).toMatch(/DWI: The volume has 134,217,728 voxels, over the limit of 67,108,864/);
    // a 1×1×1 volume whose vox_offset pads it to 128 MiB
    const padded = gzipSync(Buffer.concat([header([1, 1, 1], 128 * 1048576), Buffer.alloc(1 << 20)]));
    const pad = await a.upload('cases.upload', caseForm({ dwi: padded, adc: nii() }));
    expect(pad.status).toBe(422);
    expect(pad.body.error?.message).toMatch(/DWI: Bad header: vox_offset is 134217728, but the file has no header extensions/);
    // two honest headers that together would inflate past the budget (8 MiB): refused before inflating
    const sixMib = gzipSync(Buffer.concat([header([128, 128, 96]), Buffer.alloc(1024)]));
    const budget = await a.upload('cases.upload', caseForm({ dwi: sixMib, adc: sixMib }));
    expect(budget.status).toBe(422);
    expect(budget.body.error?.message).toMatch(/would take 12 MiB once decompressed, over the limit of 8\.0 MiB per upload/);
    expect((await sql<{ n: number }>`select count(*)::int as n from volumes`.execute(s.db)).rows[0]!.n).toBe(0);
  });

  it('F4 a raw .nii upload is decoded and gzipped in a worker thread, not on the event loop', async () => {
    const s = await serve();
    const a = await s.user('f4@x.org');
    const run = vi.spyOn(CpuPool.prototype, 'run');
    const raw = nii({ gzip: false });
    const res = await a.upload<CaseDetail>('cases.upload', caseForm({ dwi: raw, adc: raw }));
    expect(res.status).toBe(200);
    // the files went to the pool (whose tasks run on threadId > 0: workers/pool.test.ts) as paths
    const prepares = run.mock.calls.filter(([task]) => task.name === 'prepareCase');
    expect(prepares).toHaveLength(1);
    const { files } = prepares[0]![1] as { files: Record<string, unknown> };
    expect(Object.values(files).every((f) => typeof f === 'string')).toBe(true);
    const onDisk = readdirSync(s.store.root, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.nii.gz'));
    expect(onDisk.length).toBeGreaterThan(0);
  });

  it('F5 /metrics labels stay a fixed set: 300 made-up procedure paths add no series', async () => {
    const s = await serve();
    const series = async () =>
      (await (await fetch(`${s.url}/metrics`)).text()).split('\n').filter((l) => l.startsWith('strokeview_http_requests_total{')).length;
    await fetch(`${s.url}/trpc/made.up.0`);
    const before = await series();
    for (let i = 1; i < 300; i++) await fetch(`${s.url}/trpc/made.up.${i}`, { method: i % 2 ? 'GET' : 'POST' });
    const after = await series();
    expect(after - before).toBeLessThanOrEqual(2); // at most the POST variant of the same "(unknown)" label, and /metrics itself
    const text = await (await fetch(`${s.url}/metrics`)).text();
    expect(text).not.toContain('made.up');
    expect(text).toContain('route="/trpc/(unknown)"');
  });

  it('F6 progress streams are capped per session: the next one is refused with TOO_MANY_REQUESTS naming the cap', async () => {
    const s = await serve({ MAX_STREAMS_PER_SESSION: '3', MAX_STREAMS_PER_USER: '5' });
    const a = await s.user('f6@x.org');
    const [c] = [(await a.upload<CaseDetail>('cases.upload', caseForm({ dwi: nii(), adc: nii() }))).data];
    const me = (await a.query<PublicUser>('auth.me')).data;
    const job = await insertJob(s.db, {
      ownerId: me.id,
      caseId: c!.id,
      modelIds: ['adc-core-v1'],
      idempotencyKey: null,
      expiresAt: new Date(Date.now() + 86_400_000),
    });
    const url = `${s.url}/trpc/jobs.onProgress?input=${encodeURIComponent(JSON.stringify({ id: job.id }))}`;
    const streams: AbortController[] = [];
    const openStream = async (cookie: string) => {
      const ctl = new AbortController();
      streams.push(ctl);
      const res = await fetch(url, { headers: { cookie, accept: 'text/event-stream' }, signal: ctl.signal });
      const reader = res.body!.getReader();
      let text = '';
      // read past the "connected" event until the job's state or the refusal arrives
      while (!/"status":|TOO_MANY_REQUESTS|serialized-error/.test(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        text += new TextDecoder().decode(value);
      }
      return text;
    };
    try {
      for (let i = 0; i < 3; i++) expect(await openStream(a.cookieHeader()!)).toMatch(/"status":"queued"/);
      const refused = await openStream(a.cookieHeader()!);
      expect(refused).toMatch(/TOO_MANY_REQUESTS/);
      expect(refused).toMatch(/This browser has 3 live progress streams open/);
      // another session of the same user: within the user's cap (5) it may open 2 more, not 3
      const other = s.browser();
      await other.mutate('auth.signIn', { email: 'f6@x.org', password: PASSWORD });
      expect(await openStream(other.cookieHeader()!)).toMatch(/"status":"queued"/);
      expect(await openStream(other.cookieHeader()!)).toMatch(/"status":"queued"/);
      expect(await openStream(other.cookieHeader()!)).toMatch(/You have 5 live progress streams open/);
    } finally {
      for (const s2 of streams) s2.abort();
    }
    // closed streams are given back
    await vi.waitFor(async () => {
      const again = await openStream(a.cookieHeader()!);
      expect(again).toMatch(/"status":"queued"/);
    });
    for (const s2 of streams) s2.abort();
  });

  it('F7 guests get a share of the queue, not all of it: a real user still gets in', async () => {
    const env = parseEnv({ NODE_ENV: 'test', MAX_QUEUED_JOBS: '10', GUEST_QUEUE_SHARE: '0.2' });
    const t0 = makeTestApp({ database: current().handle });
    const runtime = await startJobRuntime({
      database: current().handle,
      store: t0.store,
      models: models,
      env,
      log: createLogger({ level: 'silent' }),
      runWorker: false,
    });
    open.push({ close: () => runtime.stop(1000) });
    const s = await serve({ MAX_QUEUED_JOBS: '10', GUEST_QUEUE_SHARE: '0.2' }, { jobs: runtime.jobs, store: t0.store });
    await seedDemoCases(s.db, s.store, 1);
    const guests = await Promise.all(
      Array.from({ length: 4 }, async () => {
        const g = s.browser();
        await g.mutate('auth.guest');
        return g;
      }),
    );
    const [demo] = (await guests[0]!.query<{ items: { id: string }[] }>('cases.list')).data.items;
    const created = [];
    for (const g of guests) created.push(await g.mutate('jobs.create', { caseId: demo!.id }));
    expect(created.map((r) => r.status)).toEqual([200, 200, 429, 429]);
    expect(created[2]!.body.error?.message).toMatch(/The queue is full for guests right now/);
    // a guest's own cap is 1
    expect((await guests[0]!.mutate('jobs.create', { caseId: demo!.id })).status).toBe(429);
    const real = await s.user('f7@x.org');
    expect((await real.mutate('jobs.create', { caseId: demo!.id })).status).toBe(200);
  });

  it('F7 guests: smaller uploads and at most GUEST_MAX_CASES cases', async () => {
    const s = await serve({ GUEST_MAX_CASES: '1', GUEST_MAX_UPLOAD_MB: '0.01' });
    const g = s.browser();
    await g.mutate('auth.guest');
    const tooBig = await g.upload('cases.upload', caseForm({ dwi: nii({ gzip: false }), adc: nii({ gzip: false }) }));
    expect(tooBig.status).toBe(413);
    expect((await g.upload('cases.upload', caseForm({ dwi: nii(), adc: nii() }))).status).toBe(200);
    const second = await g.upload('cases.upload', caseForm({ dwi: nii(), adc: nii() }));
    expect(second.status).toBe(403);
    expect(second.body.error?.message).toMatch(/Guests may keep 1 cases/);
    const user = await s.user('f7b@x.org');
    expect((await user.upload('cases.upload', caseForm({ dwi: nii({ gzip: false }), adc: nii({ gzip: false }) }))).status).toBe(200);
  });

  it('F8 registering the ADMIN_EMAIL address gives a user, not an admin', async () => {
    const s = await serve({ ADMIN_EMAIL: 'boss@x.org', ADMIN_PASSWORD: 'the admin secret!' });
    const squatter = await s.user('boss@x.org');
    expect((await squatter.query<PublicUser>('auth.me')).data.role).toBe('user');
    expect((await squatter.query('admin.users.list')).status).toBe(403);
    expect(await ensureAdmin(s.db, { email: 'boss@x.org', password: 'the admin secret!' })).toBe('refused');
  });

  it('F9 cookie tossing: on https only the __Host- cookie signs in, and sign-out clears both names', async () => {
    const s = await serve({ PUBLIC_URL: 'https://owner-strokeview.hf.space' });
    const a = s.browser();
    await a.mutate('auth.register', { email: 'f9@x.org', password: PASSWORD });
    const token = a.cookies.get('__Host-strokeview_session')!;
    const tossed = s.browser();
    tossed.cookies.set('strokeview_session', token);
    expect((await tossed.query('auth.me')).data).toBeNull();
    const out = await a.mutate('auth.signOut');
    const cleared = out.setCookies.filter((c) => /Max-Age=0/.test(c)).map((c) => c.split('=')[0]);
    expect(cleared.sort()).toEqual(['__Host-strokeview_session', 'strokeview_session']);
  });

  it('F10 a NUL in a search is a 400, a broken %-escape is a 400', async () => {
    const s = await serve();
    const b = await s.user('f10@x.org');
    expect((await b.query('cases.list', { search: 'a\u0000b' })).status).toBe(400);
    expect((await fetch(`${s.url}/trpc/%E0%A4%A`)).status).toBe(400);
    expect(s.logs.filter((l) => l.level === 'error')).toEqual([]);
  });

  it('F11 NaN, infinite and singular affines are refused with a 422 naming the file', async () => {
    const s = await serve();
    const a = await s.user('f11@x.org');
    const nan: Affine = [
      [Number.NaN, 0, 0, 0],
      [0, 2, 0, 0],
      [0, 0, 3, 0],
      [0, 0, 0, 1],
    ];
    const singular: Affine = [
      [2, 0, 0, 0],
      [0, 0, 0, 0],
      [0, 0, 3, 0],
      [0, 0, 0, 1],
    ];
    const inf: Affine = [
      [2, 0, 0, Number.POSITIVE_INFINITY],
      [0, 2, 0, 0],
      [0, 0, 3, 0],
      [0, 0, 0, 1],
    ];
    for (const [name, bad, pattern] of [
      ['NaN', nan, /NaN or infinite/],
      ['singular', singular, /singular/],
      ['infinite', inf, /NaN or infinite/],
    ] as const) {
      const res = await a.upload('cases.upload', caseForm({ dwi: nii({ affine: bad, qform: false }), adc: nii() }));
      expect(res.status, name).toBe(422);
      expect(res.body.error?.message, name).toMatch(pattern);
      expect(res.body.error?.message, name).toMatch(/^DWI: /);
    }
    expect((await sql<{ n: number }>`select count(*)::int as n from cases`.execute(s.db)).rows[0]!.n).toBe(0);
  });

  // ───────────────────────── #17 "also" ─────────────────────────

  it('signed links have one spelling: flipping the unused bits of the last payload character is refused', async () => {
    const signer = createVolumeSigner('test-secret-key-that-is-long-enough-for-hmac', 3600);
    const s = await serve();
    await seedDemoCases(s.db, s.store, 1);
    const { items } = (await s.browser().query<{ items: { id: string }[] }>('cases.list')).data;
    const detail = (await s.browser().query<CaseDetail>('cases.byId', { id: items[0]!.id })).data;
    const link = new URL(detail.volumes[0]!.url).pathname;
    const token = /\/files\/v\/([^/]+)/.exec(link)![1]!;
    const [payload, mac] = token.split('.') as [string, string];
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
    const last = alphabet.indexOf(payload.at(-1)!);
    const twin = `${payload.slice(0, -1)}${alphabet[last ^ 1]}.${mac}`;
    expect(Buffer.from(twin.split('.')[0]!, 'base64url')).toEqual(Buffer.from(payload, 'base64url'));
    expect(signer.verify(twin)).toEqual({ ok: false, reason: 'malformed' });
    expect((await fetch(`${s.url}${link}`)).status).toBe(200);
    expect((await fetch(`${s.url}${link.replace(token, twin)}`)).status).toBe(403);
  });

  it("database errors are logged without the statement's parameters", async () => {
    const s = await serve();
    const lines: string[] = [];
    const log = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(l) } });
    await s.user('secret-address@x.org');
    let err: unknown;
    try {
      await s.db.insertInto('users').values({ email: 'secret-address@x.org', password_hash: 'h', role: 'user' }).execute();
    } catch (e) {
      err = e;
    }
    expect((err as { code?: string }).code).toBe('23505');
    log.error({ err: new TRPCError({ code: 'INTERNAL_SERVER_ERROR', cause: err }).cause }, 'procedure failed');
    expect(lines.join('')).toContain('23505');
    expect(lines.join('')).not.toContain('secret-address');
  });

  it('a preflight from an origin not on the list is a plain 403 without CORS headers', async () => {
    const s = await serve({ ALLOWED_ORIGINS: 'https://owner-strokeview.hf.space' });
    const res = await fetch(`${s.url}/trpc/auth.signIn`, {
      method: 'OPTIONS',
      headers: {
        origin: 'https://evil.example',
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type',
      },
    });
    expect(res.status).toBe(403);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
    const allowed = await fetch(`${s.url}/trpc/auth.signIn`, {
      method: 'OPTIONS',
      headers: { origin: 'https://owner-strokeview.hf.space', 'access-control-request-method': 'POST' },
    });
    expect(allowed.status).toBe(204);
  });
});

describe('phantom sanity', () => {
  it('the demo volumes used above are valid uploads', () => {
    expect(
      phantomVolumes(1)
        .map((v) => v.role)
        .sort(),
    ).toEqual(['adc', 'dwi', 'flair', 'mask']);
  });
});
