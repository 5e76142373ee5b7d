import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { sql } from 'kysely';
import { afterEach, expect, it, vi } from 'vitest';
import type { PublicUser } from '../shared/auth.js';
import { phantomVolumes, seedDemoCases } from './cases/demo.js';
import { uploadCase } from './cases/service.js';
import { databaseUnavailableMessage, isDatabaseUnavailable } from './db/unavailable.js';
import { parseEnv } from './env.js';
import { toTRPCError } from './error-shapes.js';
import { type JobRuntime, startJobRuntime } from './jobs/runtime.js';
import { createLogger } from './logger.js';
import { encodeNifti } from './nifti/write.js';
import { builtInModelsDir, loadModelRegistry } from './segmentation/models.js';
import { makeTestApp, testCpuPool } from './test/app.js';
import { TestBrowser } from './test/browser.js';
import { describeEachDatabase } from './test/databases.js';
import { serveApp } from './test/live.js';
import { FsVolumeStore } from './volumes/store.js';
import { multipart, sendChunked } from './test/multipart.js';

// Issue #23, the findings of the second attack round that live in uploads, quotas and faults
// (F1, F3, F4, F7, F10, F11); tokens are in security-tokens.test.ts, streams and /metrics in
// security-streams.test.ts, a database restarted under a job in faults-restart.test.ts.

const PASSWORD = 'correct horse battery';
const MiB = 1048576;

/** Starts a multipart POST, sends its first bytes and stalls; `finish()` sends the rest. */
function stalledUpload(url: string, headers: Record<string, string>, m: { body: Buffer; type: string }) {
  const u = new URL(url);
  const req = request({
    host: u.hostname,
    port: u.port,
    path: u.pathname,
    method: 'POST',
    headers: { ...headers, 'content-type': m.type, 'content-length': String(m.body.length) },
  });
  const answered = new Promise<{ status: number; body: string }>((resolve) =>
    req.on('response', (res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
    }),
  );
  req.on('error', () => {});
  req.write(m.body.subarray(0, 1000));
  return { answered, finish: () => req.end(m.body.subarray(1000)), abort: () => req.destroy() };
}

describeEachDatabase('hostile and faulty world, round two (#23)', (current) => {
  const open: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const o of open.splice(0).reverse()) await o.close();
  });

  async function serve(env: Record<string, string> = {}, extra: Partial<Parameters<typeof makeTestApp>[0]> = {}) {
    const uploadDir = mkdtempSync(path.join(tmpdir(), 'sv-r2-spool-'));
    const t = makeTestApp({ database: current().handle, env, uploadDir, ...extra });
    const server = await serveApp(t.app);
    open.push(server);
    await seedDemoCases(current().handle.db, t.store, 1);
    const browser = () => new TestBrowser(server.url);
    const user = async (email: string) => {
      const b = browser();
      const r = await b.mutate<{ user: PublicUser }>('auth.register', { email, password: PASSWORD });
      expect(r.status, JSON.stringify(r.body)).toBe(200);
      return b;
    };
    const guest = async () => {
      const b = browser();
      expect((await b.mutate('auth.guest')).status).toBe(200);
      return b;
    };
    const demoCase = async (b: TestBrowser) =>
      (await b.query<{ items: { id: string; demo: boolean }[] }>('cases.list')).data.items.find((c) => c.demo)!.id;
    const spooled = () => readdirSync(uploadDir).length;
    return { ...t, url: server.url, browser, user, guest, demoCase, spooled, db: current().handle.db };
  }

  /** A mask on the demo case's grid (the phantom DWI), gzipped: `extra` bytes of zeros after the gzip data. */
  function demoMask(opts: { trailingZeros?: number; value?: number } = {}): Buffer {
    const dwi = phantomVolumes(101).find((v) => v.role === 'dwi')!.facts;
    const data = new Uint8Array(dwi.dims[0] * dwi.dims[1] * dwi.dims[2]);
    data[1000] = opts.value ?? 1;
    const gz = gzipSync(encodeNifti({ dims: dwi.dims, affine: dwi.affine, datatype: 'uint8', data }));
    return Buffer.concat([gz, Buffer.alloc(opts.trailingZeros ?? 0)]);
  }

  const maskForm = (caseId: string, file: Buffer) => {
    const fd = new FormData();
    fd.set('caseId', caseId);
    fd.set('file', new File([new Uint8Array(file)], 'mask.nii.gz'));
    return fd;
  };

  it('F1 anonymous 400 MiB chunked bodies to every large-body route get 401 before the body is read (nothing spooled)', async () => {
    const s = await serve();
    const type = { 'content-type': 'multipart/form-data; boundary=x' };
    for (const route of ['/trpc/masks.save', '/api/masks', '/trpc/cases.upload', '/api/cases']) {
      const r = await sendChunked(`${s.url}${route}`, type, 400 * MiB);
      expect(r.status, route).toBe(401);
      // the answer came while most of the body was still unsent: the server did not wait for it
      expect(r.sent, route).toBeLessThan(200 * MiB);
    }
    expect(s.spooled()).toBe(0);
  });

  it("F3 masks.save: a guest's size cap, zero padding after the gzip data refused, version caps per role", async () => {
    const s = await serve({ GUEST_MAX_UPLOAD_MB: '1', GUEST_MAX_MASK_VERSIONS: '2', MAX_MASK_VERSIONS: '3' });
    const g = await s.guest();
    const caseId = await s.demoCase(g);
    const padded = await g.upload('masks.save', maskForm(caseId, demoMask({ trailingZeros: 2 * MiB })));
    expect(padded.status).toBe(413); // past the guest's 1 MiB
    const user = await s.user('f3@x.org');
    const trailing = await user.upload('masks.save', maskForm(caseId, demoMask({ trailingZeros: 4096 })));
    expect(trailing.status).toBe(422);
    expect(trailing.body.error?.message).toMatch(/4096 bytes after the end of its gzip data/);
    expect(trailing.body.error?.data.fieldErrors).toEqual({ file: [trailing.body.error!.message] });
    for (let i = 0; i < 2; i++) expect((await g.upload('masks.save', maskForm(caseId, demoMask()))).status).toBe(200);
    const third = await g.upload('masks.save', maskForm(caseId, demoMask()));
    expect(third.status).toBe(403);
    expect(third.body.error?.message).toMatch(/Guests may keep 2 corrected masks/);
    for (let i = 0; i < 3; i++) expect((await user.upload('masks.save', maskForm(caseId, demoMask()))).status).toBe(200);
    expect((await user.upload('masks.save', maskForm(caseId, demoMask()))).status).toBe(403);
    const stored = await sql<{ n: number }>`select count(*)::int as n from mask_versions`.execute(s.db);
    expect(stored.rows[0]!.n).toBe(5);
  });

  it('F4 one account holds one upload slot (a guest cannot starve others), and an idle body is cut with 408', async () => {
    const s = await serve({ MAX_CONCURRENT_UPLOADS: '2' });
    const g = await s.guest();
    const caseId = await s.demoCase(g);
    const cookie = { cookie: g.cookieHeader()!, 'sec-fetch-site': 'same-origin' };
    const first = stalledUpload(`${s.url}/trpc/masks.save`, cookie, multipart({ caseId, file: demoMask() }));
    // the first upload holds its slot once it is spooling (not a moment sooner: no race on speed)
    await vi.waitFor(() => expect(s.spooled()).toBe(1), { timeout: 60_000, interval: 50 });
    // the guest's second upload while the first holds its slot: refused, not queued behind it
    const second = stalledUpload(`${s.url}/trpc/masks.save`, cookie, multipart({ caseId, file: demoMask() }));
    second.finish();
    const refused = await second.answered;
    expect(refused.status).toBe(429);
    expect(JSON.parse(refused.body).error.message).toMatch(/You have 1 upload in progress/);
    // another user still uploads while the guest's connection idles
    const other = await s.user('f4@x.org');
    expect((await other.upload('masks.save', maskForm(caseId, demoMask()))).status).toBe(200);
    first.finish();
    expect((await first.answered).status).toBe(200);
    expect((await g.upload('masks.save', maskForm(caseId, demoMask()))).status).toBe(200);

    // a body that stops sending: cut with 408 once it has been idle, its slot and spool freed
    // (the same store: the demo case's files are there)
    const idleServer = await serve({ UPLOAD_IDLE_TIMEOUT_S: '1' }, { store: s.store });
    const g2 = await idleServer.guest();
    const cookie2 = { cookie: g2.cookieHeader()!, 'sec-fetch-site': 'same-origin' };
    const stalled = stalledUpload(
      `${idleServer.url}/trpc/masks.save`,
      cookie2,
      multipart({ caseId: await idleServer.demoCase(g2), file: demoMask() }),
    );
    const idle = await stalled.answered;
    expect(idle.status).toBe(408);
    expect(JSON.parse(idle.body).error.message).toMatch(/No data arrived for 1 s/);
    expect(idleServer.spooled()).toBe(0);
    expect((await g2.upload('masks.save', maskForm(await idleServer.demoCase(g2), demoMask()))).status).toBe(200);
  });

  it('F7 fresh accounts together get a share of the queue; an account with history is still admitted', async () => {
    const models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
    const env = { MAX_QUEUED_JOBS: '4', NEW_ACCOUNT_QUEUE_SHARE: '0.5', MAX_ACTIVE_JOBS_PER_USER: '3' };
    // a queue without workers: jobs stay queued, so what is admitted can be counted
    const runtime: JobRuntime = await startJobRuntime({
      database: current().handle,
      store: new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-r2-jobs-'))),
      models,
      env: parseEnv({ NODE_ENV: 'test', ...env }),
      log: createLogger({ level: 'silent' }),
      runWorker: false,
    });
    open.push({ close: async () => (await runtime.stop(2000), await models.close()) });
    const s = await serve(env, { models, jobs: runtime.jobs });
    const create = async (b: TestBrowser) => b.mutate('jobs.create', { caseId: await s.demoCase(b) });
    const fresh = await Promise.all(['a', 'b', 'c'].map((n) => s.user(`f7-${n}@x.org`)));
    expect((await create(fresh[0]!)).status).toBe(200);
    expect((await create(fresh[0]!)).status).toBe(200);
    const third = await create(fresh[1]!);
    expect(third.status).toBe(429);
    expect(third.body.error?.message).toMatch(/busy with new accounts/);
    // an account whose job once succeeded is not new: it gets the rest of the queue
    const known = await s.user('f7-known@x.org');
    const me = (await known.query<{ id: string }>('auth.me')).data;
    const caseId = await s.demoCase(known);
    await sql`insert into jobs (owner_id, case_id, model_ids, status, expires_at) values (${me.id}, ${caseId}, ${JSON.stringify(['adc-core-v1'])}, 'succeeded', now() + interval '1 day')`.execute(
      s.db,
    );
    expect((await create(known)).status).toBe(200);
  });

  it('F10 parallel uploads by a guest at the case cap store exactly one case (count and insert under the owner lock)', async () => {
    const s = await serve({ GUEST_MAX_CASES: '1' });
    const g = await s.guest();
    const me = (await g.query<{ id: string; role: 'guest' }>('auth.me')).data;
    const dir = mkdtempSync(path.join(tmpdir(), 'sv-r2-files-'));
    const files = Object.fromEntries(
      phantomVolumes(101).map((v) => {
        const p = path.join(dir, `${v.role}.nii.gz`);
        writeFileSync(p, v.stored);
        return [v.role, p];
      }),
    );
    const cpu = testCpuPool();
    const deps = { db: s.db, store: s.store, cpu, config: s.env, log: createLogger({ level: 'silent' }) };
    // straight to the domain: in one process the upload slot already serialises a guest's uploads;
    // across replicas only the lock does
    const results = await Promise.allSettled(
      [1, 2, 3, 4].map((i) => uploadCase(deps, { id: me.id, email: 'g', role: 'guest' } as never, { name: `race ${i}`, files })),
    );
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((r) => r.status === 'rejected'))
      expect((r as PromiseRejectedResult).reason).toMatchObject({ kind: 'forbidden' });
    const owned = await sql<{ n: number }>`select count(*)::int as n from cases where owner_id = ${me.id}`.execute(s.db);
    expect(owned.rows[0]!.n).toBe(1);
  });

  it('F11 a full disk: the database saying so is a 503 naming the disk; /readyz says so too', async () => {
    const pgliteFull = new Error('could not extend file "base/5/16390": No space left on device');
    const pgFull = Object.assign(new Error('could not extend file'), { code: '53100' });
    for (const err of [pgliteFull, pgFull]) {
      expect(isDatabaseUnavailable(err)).toBe(true);
      const mapped = toTRPCError(err);
      expect(mapped.code).toBe('SERVICE_UNAVAILABLE');
      expect(mapped.message).toBe(databaseUnavailableMessage(err));
      expect(mapped.message).toMatch(/ran out of disk space/);
    }
    const s = await serve({ MIN_FREE_DISK_MB: String(1e12) });
    const ready = await fetch(`${s.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ status: 'unavailable', disk: 'full' });
    const fine = await serve({ MIN_FREE_DISK_MB: '1' });
    expect(await (await fetch(`${fine.url}/readyz`)).json()).toMatchObject({ status: 'ready', disk: 'ok' });
  });
});
