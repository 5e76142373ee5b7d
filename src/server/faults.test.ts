import { existsSync, mkdirSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import type { CaseDetail } from '../shared/cases.js';
import type { JobView } from '../shared/jobs.js';
import { phantomVolumes } from './cases/demo.js';
import { createCase } from './cases/service.js';
import { parseEnv } from './env.js';
import { startJobRuntime } from './jobs/runtime.js';
import { createLogger } from './logger.js';
import { buildNifti } from './nifti/fixtures.js';
import { builtInModelsDir, loadModelRegistry } from './segmentation/models.js';
import { describeEachDatabase } from './test/databases.js';
import { freePort, startProcess } from './test/process.js';
import { sha256Hex } from './volumes/store.js';
import { makeTestApp } from './test/app.js';
import { TestBrowser } from './test/browser.js';
import { type TestDatabase, openTestDatabase } from './test/databases.js';
import { serveApp } from './test/live.js';

// #16 fault tests on the whole server: PostgreSQL made unavailable while the server runs (the
// throwaway database stops accepting connections and its sessions are cut), then back.

describe.skipIf(!process.env.TEST_DATABASE_URL)('PostgreSQL unavailable while the server runs', () => {
  let database: TestDatabase;
  const admin = async (text: string) => {
    const c = new pg.Client({ connectionString: process.env.TEST_DATABASE_URL });
    await c.connect();
    try {
      await c.query(text);
    } finally {
      await c.end();
    }
  };
  const name = () => new URL(database.url!).pathname.slice(1);
  beforeAll(async () => {
    database = await openTestDatabase('postgres');
  });
  afterAll(async () => {
    await admin(`alter database ${name()} allow_connections true`).catch(() => {});
    await database?.dispose();
  });

  it('requests get 503 with Retry-After (not 500), /readyz follows, and both recover without a restart', async () => {
    const t = makeTestApp({ database: database.handle });
    const server = await serveApp(t.app);
    try {
      const b = new TestBrowser(server.url);
      await b.mutate('auth.register', { email: 'fault@x.org', password: 'correct horse battery' });
      const token = (await b.mutate<{ token: string }>('auth.tokens.create', { name: 'ci' })).data.token;
      expect((await b.query('cases.list')).status).toBe(200);

      await admin(`alter database ${name()} allow_connections false`);
      await admin(`select pg_terminate_backend(pid) from pg_stat_activity where datname = '${name()}' and pid <> pg_backend_pid()`);

      const signedIn = await b.query('cases.list');
      expect(signedIn.status).toBe(503);
      expect(signedIn.headers.get('retry-after')).toBe('5');
      expect(signedIn.body.error?.message).toBe('The database is unavailable right now; retry in a few seconds');
      const anonymous = await new TestBrowser(server.url).query('cases.list');
      expect(anonymous.status).toBe(503);
      expect(anonymous.headers.get('retry-after')).toBe('5');
      const rest = await fetch(`${server.url}/api/jobs`, { headers: { authorization: `Bearer ${token}` } });
      expect(rest.status).toBe(503);
      const upload = new FormData();
      upload.set('name', 'x');
      const up = await fetch(`${server.url}/trpc/cases.upload`, {
        method: 'POST',
        body: upload,
        headers: { cookie: b.cookieHeader()!, 'sec-fetch-site': 'same-origin' },
      });
      expect(up.status).toBe(503);
      expect((await fetch(`${server.url}/readyz`)).status).toBe(503);
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      // no request was logged as an internal error: the outage is a warning per request
      expect(t.logs.filter((l) => l.msg === 'procedure failed')).toEqual([]);
      expect(t.logs.some((l) => l.msg === 'database unavailable')).toBe(true);

      await admin(`alter database ${name()} allow_connections true`);
      await vi.waitFor(async () => expect((await fetch(`${server.url}/readyz`)).status).toBe(200), { timeout: 30_000, interval: 200 });
      const back = await b.query('cases.list');
      expect(back.status).toBe(200);
      expect((await fetch(`${server.url}/api/jobs`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    } finally {
      await server.close();
    }
  });
});

/** A failed write in DATA_DIR, injected: the disk fills up on the Nth file written. */
function diskFullAfter(store: { put: (...a: never[]) => unknown }, okWrites: number) {
  let writes = 0;
  const put = store.put.bind(store) as (...a: unknown[]) => Promise<unknown>;
  return vi
    .spyOn(store as never as { put: (...a: unknown[]) => Promise<unknown> }, 'put')
    .mockImplementation(async (...args: unknown[]) => {
      if (++writes > okWrites)
        throw Object.assign(new Error("ENOSPC: no space left on device, write '/data/volumes/ab/x.tmp'"), { code: 'ENOSPC' });
      return put(...args);
    });
}

const storedFiles = (root: string) =>
  readdirSync(root, { recursive: true })
    .map(String)
    .filter((f) => f.endsWith('.nii.gz') || f.includes('.tmp-'));

describeEachDatabase('a failed write in DATA_DIR', (current) => {
  afterEach(() => vi.restoreAllMocks());
  const count = async (table: string) =>
    (await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(current().handle.db)).rows[0]!.n;
  const nii = (seed: number) =>
    buildNifti({
      dim: [16, 16, 8],
      pixdim: [2, 2, 3],
      gzip: true,
      values: Array.from({ length: 2048 }, (_, i) => 700 + seed + 3 * (i % 100)),
    });

  it('an upload whose second file cannot be written: 503 saying so (no path), no row, no file', async () => {
    const t = makeTestApp({ database: current().handle });
    const server = await serveApp(t.app);
    try {
      const b = new TestBrowser(server.url);
      await b.mutate('auth.register', { email: 'disk@x.org', password: 'correct horse battery' });
      diskFullAfter(t.store as never, 1);
      const form = new FormData();
      form.set('name', 'full disk');
      form.set('dwi', new File([new Uint8Array(nii(1))], 'dwi.nii.gz'));
      form.set('adc', new File([new Uint8Array(nii(2))], 'adc.nii.gz'));
      const res = await b.upload<CaseDetail>('cases.upload', form);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBe('60');
      expect(res.body.error?.message).toBe('The files could not be stored: the server ran out of disk space; try again later');
      expect(await count('cases')).toBe(0);
      expect(await count('volumes')).toBe(0);
      expect(storedFiles(t.store.root)).toEqual([]);
    } finally {
      await server.close();
    }
  });

  it("a job whose mask cannot be written fails with the disk's reason after its retries; no mask row, no link", async () => {
    const models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
    const t = makeTestApp({ database: current().handle, models });
    const env = parseEnv({ NODE_ENV: 'test' });
    const runtime = await startJobRuntime({
      database: current().handle,
      store: t.store,
      models,
      env,
      log: createLogger({ level: 'silent' }),
      runWorker: true,
    });
    const server = await serveApp(makeTestApp({ database: current().handle, models, store: t.store, jobs: runtime.jobs }).app);
    try {
      const caseId = await createCase(
        current().handle.db,
        t.store,
        { ownerId: null, name: 'demo', source: 'demo', subjectId: 'disk' },
        phantomVolumes(104),
      );
      const volumesBefore = await count('volumes');
      const filesBefore = storedFiles(t.store.root).length;
      const b = new TestBrowser(server.url);
      await b.mutate('auth.register', { email: 'diskjob@x.org', password: 'correct horse battery' });
      diskFullAfter(t.store as never, 0);
      const job = (await b.mutate<JobView>('jobs.create', { caseId })).data;
      let end: JobView | undefined;
      await vi.waitFor(
        async () => {
          end = (await b.query<JobView>('jobs.byId', { id: job.id })).data;
          expect(end.status).toBe('failed');
        },
        { timeout: 120_000, interval: 100 },
      );
      expect(end!.error).toBe('The job failed 3 time(s): the server ran out of disk space; giving up');
      expect(await count('job_volumes')).toBe(0);
      expect(await count('volumes')).toBe(volumesBefore);
      expect(storedFiles(t.store.root).length).toBe(filesBefore);
    } finally {
      await server.close();
      await runtime.stop(1000);
      await models.close();
    }
  });
});

describe('SIGKILL during an upload', { timeout: 400_000 }, () => {
  it('leaves no rows; the spooled upload and orphan volume files are removed at the next start (the volumes just after ready)', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sv-kill-'));
    const env = { PORT: String(await freePort()), DATA_DIR: dataDir };
    const first = startProcess(env);
    try {
      await first.waitReady();
      const post = (proc: string, body: unknown, cookie?: string) =>
        fetch(`${first.url}/trpc/${proc}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin', ...(cookie ? { cookie } : {}) },
          body: JSON.stringify(body),
        });
      const reg = await post('auth.register', { email: 'kill@x.org', password: 'correct horse battery' });
      const cookie = reg.headers.getSetCookie()[0]!.split(';')[0]!;

      // An upload whose body arrives slowly: the first part is spooled, then the server is killed.
      const boundary = 'sv-kill-boundary';
      const dwi = buildNifti({ dim: [32, 32, 16], gzip: false });
      let push!: ReadableStreamDefaultController<Uint8Array>;
      const body = new ReadableStream<Uint8Array>({ start: (c) => void (push = c) });
      const upload = fetch(`${first.url}/trpc/cases.upload`, {
        method: 'POST',
        headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, cookie, 'sec-fetch-site': 'same-origin' },
        body,
        duplex: 'half',
      } as RequestInit).catch((e: unknown) => e);
      push.enqueue(
        new TextEncoder().encode(
          `--${boundary}\r\nContent-Disposition: form-data; name="name"\r\n\r\nkilled\r\n--${boundary}\r\nContent-Disposition: form-data; name="dwi"; filename="dwi.nii"\r\nContent-Type: application/octet-stream\r\n\r\n`,
        ),
      );
      push.enqueue(dwi.subarray(0, 20_000));
      const spool = path.join(dataDir, 'uploads');
      await vi.waitFor(
        () => {
          const folders = existsSync(spool) ? readdirSync(spool) : [];
          expect(folders.length).toBe(1);
          expect(readdirSync(path.join(spool, folders[0]!))).toContain('dwi.part');
        },
        { timeout: 60_000, interval: 50 },
      );
      first.child.kill('SIGKILL');
      await first.exited;
      push.error(new Error('client gone'));
      await upload;

      // What a crash between writing a volume file and committing its row would leave.
      const orphan = Buffer.from('not referenced by any row');
      const sha = sha256Hex(orphan);
      mkdirSync(path.join(dataDir, 'volumes', sha.slice(0, 2)), { recursive: true });
      writeFileSync(path.join(dataDir, 'volumes', sha.slice(0, 2), `${sha}.nii.gz`), orphan);
      writeFileSync(path.join(dataDir, 'volumes', '.tmp-0123456789abcdef'), 'half written');

      const second = startProcess({ ...env, LOG_LEVEL: 'info' });
      try {
        await second.waitReady();
        expect(readdirSync(spool)).toEqual([]);
        await second.waitForOutput!('orphan volume files swept');
        expect(existsSync(path.join(dataDir, 'volumes', sha.slice(0, 2), `${sha}.nii.gz`))).toBe(false);
        expect(existsSync(path.join(dataDir, 'volumes', '.tmp-0123456789abcdef'))).toBe(false);
      } finally {
        await second.stop();
      }
      const db = await PGlite.create({ dataDir: path.join(dataDir, 'pgdata') });
      try {
        const counts = await db.query<{ cases: number; volumes: number }>(
          'select (select count(*)::int from cases) as cases, (select count(*)::int from volumes) as volumes',
        );
        expect(counts.rows[0]).toEqual({ cases: 0, volumes: 0 });
      } finally {
        await db.close();
      }
    } finally {
      if (first.child.exitCode === null) first.child.kill('SIGKILL');
    }
  });
});
