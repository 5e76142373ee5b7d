import { type Server, createServer, request } from 'node:http';
import { gzipSync } from 'node:zlib';
import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { CaseDetail } from '../shared/cases.js';
import type { JobView } from '../shared/jobs.js';
import type { MaskVersionView } from '../shared/masks.js';
import { phantomVolumes } from './cases/demo.js';
import { createCase } from './cases/service.js';
import { parseEnv } from './env.js';
import type { JobHold } from './jobs/hold.js';
import { startJobRuntime } from './jobs/runtime.js';
import { createLogger } from './logger.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from './segmentation/models.js';
import { makeTestApp } from './test/app.js';
import { TestBrowser } from './test/browser.js';
import { describeEachDatabase } from './test/databases.js';
import { serveApp } from './test/live.js';
import { type TestS3, startTestS3 } from './test/s3.js';
import { S3VolumeStore } from './volumes/s3-store.js';
import type { VolumeStore } from './volumes/store.js';

// #28 faults of the object store, against a real s3rver that the test stops and starts again on
// the same port over the same folder (and, for 5xx, a proxy in front of it that answers 500):
// uploads, mask saves and volume reads get 503 + Retry-After naming the storage (never a 500),
// /readyz says `storage: unreachable`, jobs are retried as for a disk failure, and everything
// comes back by itself when the store does — nothing restarts.

const STORAGE = /object store \(STORAGE_URL\) is not answering/;

let s3: TestS3;
let models: ModelRegistry;
let bucket = 0;
beforeAll(async () => {
  s3 = await startTestS3();
  models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
});
afterAll(async () => {
  await models?.close();
  await s3?.close();
});

/** A fresh bucket on the shared s3rver (each test's objects apart), reached directly or through `endpoint`. */
async function freshStore(endpoint = s3.endpoint): Promise<S3VolumeStore> {
  const name = `faults-${++bucket}-${process.pid}`;
  await s3.createBucket(name);
  return new S3VolumeStore({ bucket: name, prefix: 'f/', endpoint, region: 'us-east-1', forcePathStyle: true });
}

/** An HTTP proxy in front of the store that passes requests through, or answers every one 500 (`failing`). */
async function faultyProxy(target: string): Promise<{ endpoint: string; failing: boolean; close(): Promise<void> }> {
  const to = new URL(target);
  const state = { failing: false };
  const server: Server = createServer((req, res) => {
    if (state.failing) {
      req.resume();
      res.writeHead(500, { 'content-type': 'application/xml' });
      res.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>',
      );
      return;
    }
    // The Host header goes through unchanged: the request's signature covers it.
    const up = request({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return Object.assign(state, {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  });
}

/** The store's reads wait while `closed` (a test's gate on "the retry is about to read its inputs"). */
function gatedReads(store: VolumeStore) {
  let open: () => void = () => {};
  let opened = Promise.resolve();
  let reached: () => void = () => {};
  const state = {
    reached: Promise.resolve(),
    close() {
      opened = new Promise<void>((r) => (open = r));
      state.reached = new Promise<void>((r) => (reached = r));
    },
    open: () => open(),
  };
  const read = async (sha256: string) => {
    reached();
    await opened;
    return store.read(sha256);
  };
  // A proxy, not a subclass or Object.create: the store's methods use its private fields.
  const wrapped = new Proxy(store, {
    get(target, prop) {
      if (prop === 'read') return read;
      const value: unknown = Reflect.get(target, prop, target);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { store: wrapped, gate: state };
}

const caseForm = (seed: number, name = `case ${seed}`) => {
  const volumes = phantomVolumes(seed);
  const form = new FormData();
  form.set('name', name);
  for (const role of ['dwi', 'adc'] as const) {
    form.set(role, new File([new Uint8Array(volumes.find((v) => v.role === role)!.stored)], `${role}.nii.gz`));
  }
  return form;
};

const maskForm = (caseId: string, seed: number) => {
  const form = new FormData();
  form.set('caseId', caseId);
  form.set('file', new File([new Uint8Array(phantomVolumes(seed).find((v) => v.role === 'mask')!.stored)], 'mask.nii.gz'));
  return form;
};

/** One positive click on an empty working mask of the case's grid. */
const refineInput = (caseId: string, dims: number[]) => ({
  caseId,
  from: { maskGz: gzipSync(new Uint8Array(dims[0]! * dims[1]! * dims[2]!)).toString('base64') },
  prompts: [{ voxel: dims.map((d) => Math.floor(d / 2)), positive: true }],
});

describeEachDatabase('the object store down or failing while the server runs', (current) => {
  const count = async (table: string) =>
    (await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(current().handle.db)).rows[0]!.n;

  /** The app on a socket over `store`, with a signed-in user who owns one case stored while the store was up. */
  async function serveOn(store: VolumeStore) {
    const t = makeTestApp({ database: current().handle, volumeStore: store });
    const server = await serveApp(t.app);
    const user = new TestBrowser(server.url);
    expect((await user.mutate('auth.register', { email: `s${bucket}@x.org`, password: 'correct horse battery' })).status).toBe(200);
    const created = await user.upload<CaseDetail>('cases.upload', caseForm(1));
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    const dwi = created.data.volumes.find((v) => v.role === 'dwi')!;
    const token = (await user.mutate<{ token: string }>('auth.tokens.create', { name: 'rest' })).data.token;
    return { t, server, user, token, caseId: created.data.id, dwiUrl: dwi.url, dims: dwi.dims };
  }

  /** Everything that needs the store answers 503 + Retry-After naming it; nothing half-stored. */
  async function expectStoreRefusals(s: Awaited<ReturnType<typeof serveOn>>, underneath: RegExp) {
    const [cases, volumes, versions] = [await count('cases'), await count('volumes'), await count('mask_versions')];
    const upload = await s.user.upload<CaseDetail>('cases.upload', caseForm(2, 'while the store is down'));
    expect(upload.status, JSON.stringify(upload.body)).toBe(503);
    expect(Number(upload.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(upload.body.error?.message).toMatch(STORAGE);
    const rest = await fetch(`${s.server.url}/api/cases`, {
      method: 'POST',
      headers: { authorization: `Bearer ${s.token}` },
      body: caseForm(3),
    });
    expect(rest.status).toBe(503);
    expect(Number(rest.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(((await rest.json()) as { message: string }).message).toMatch(STORAGE);
    const save = await s.user.upload<MaskVersionView>('masks.save', maskForm(s.caseId, 1));
    expect(save.status, JSON.stringify(save.body)).toBe(503);
    expect(Number(save.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(save.body.error?.message).toMatch(STORAGE);
    // A click refinement reads the case's volumes from the store (a procedure, not an upload).
    const refine = await s.user.mutate('masks.refine', refineInput(s.caseId, s.dims));
    expect(refine.status, JSON.stringify(refine.body)).toBe(503);
    expect(Number(refine.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(refine.body.error?.message).toMatch(STORAGE);
    const read = await fetch(s.dwiUrl);
    expect(read.status).toBe(503);
    expect(Number(read.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await read.text()).toMatch(STORAGE);
    const ready = await fetch(`${s.server.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(Number(ready.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await ready.json()).toMatchObject({
      status: 'unavailable',
      database: 'ok',
      storage: 'unreachable',
      reason: expect.stringMatching(STORAGE),
    });
    expect([await count('cases'), await count('volumes'), await count('mask_versions')]).toEqual([cases, volumes, versions]);
    // answered as an outage, not logged as a bug; the warning says what lay underneath
    expect(s.t.logs.filter((l) => l.level === 'error')).toEqual([]);
    const warnings = s.t.logs.filter((l) => l.level === 'warn').map((l) => `${l.msg}: ${l.err}`);
    expect(
      warnings.find((w) => /could not be stored/.test(w)),
      warnings.join('\n'),
    ).toMatch(underneath);
  }

  /** ...and all of it works again, in the same process. */
  async function expectBack(s: Awaited<ReturnType<typeof serveOn>>) {
    const ready = await fetch(`${s.server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', storage: 'ok' });
    const read = await fetch(s.dwiUrl);
    expect(read.status).toBe(200);
    await read.body?.cancel();
    expect((await s.user.upload<CaseDetail>('cases.upload', caseForm(4, 'after'))).status).toBe(200);
    expect((await s.user.upload<MaskVersionView>('masks.save', maskForm(s.caseId, 1))).status).toBe(200);
    const refine = await s.user.mutate('masks.refine', refineInput(s.caseId, s.dims));
    expect(refine.status, JSON.stringify(refine.body)).toBe(200);
  }

  it('s3rver stopped: uploads, mask saves and volume reads get 503 + Retry-After naming the storage, /readyz says so; all back when it restarts', async () => {
    const s = await serveOn(await freshStore());
    try {
      await s3.stop();
      try {
        await expectStoreRefusals(s, /did not answer \(ECONNREFUSED/);
      } finally {
        await s3.restart(); // same port, same folder: the same objects
      }
      await expectBack(s);
    } finally {
      await s.server.close();
    }
  });

  it('the store answering 500: the same 503s naming the storage; back when it answers again', async () => {
    const proxy = await faultyProxy(s3.endpoint);
    const s = await serveOn(await freshStore(proxy.endpoint));
    try {
      proxy.failing = true;
      await expectStoreRefusals(s, /did not answer \(HTTP 500/);
      proxy.failing = false;
      await expectBack(s);
    } finally {
      await s.server.close();
      await proxy.close();
    }
  });

  /** A job system on `store` in this process, a user, and a demo case stored while the store was up. */
  async function jobsOn(store: VolumeStore, hold?: JobHold) {
    const env = parseEnv({ NODE_ENV: 'test' });
    const runtime = await startJobRuntime({
      database: current().handle,
      store,
      models,
      env,
      log: createLogger({ level: 'silent' }),
      runWorker: true,
      ...(hold ? { hold } : {}),
    });
    const t = makeTestApp({ database: current().handle, models, volumeStore: store, jobs: runtime.jobs });
    const server = await serveApp(t.app);
    const caseId = await createCase(
      current().handle.db,
      store,
      { ownerId: null, name: 'demo', source: 'demo', subjectId: `s3-${bucket}` },
      phantomVolumes(104),
    );
    const user = new TestBrowser(server.url);
    await user.mutate('auth.register', { email: `j${bucket}@x.org`, password: 'correct horse battery' });
    const job = async () => (await user.mutate<JobView>('jobs.create', { caseId })).data;
    const byId = async (id: string) => (await user.query<JobView>('jobs.byId', { id })).data;
    const close = async () => {
      await server.close();
      await runtime.stop(2000);
    };
    return { t, user, job, byId, close };
  }

  it('the store goes away as a job stores its mask: the job is retried, and succeeds once the store is back', async () => {
    // Attempt 1 is held before it encodes (its inputs read); the store then stops and the mask's put
    // fails. The retry's first read of its inputs waits on a gate while the test restarts the store.
    let releaseEncode!: () => void;
    const encodeReleased = new Promise<void>((r) => (releaseEncode = r));
    let atEncode!: () => void;
    const encodeReached = new Promise<void>((r) => (atEncode = r));
    let encodes = 0;
    const hold: JobHold = async ({ stage }) => {
      if (stage !== 'encode' || ++encodes > 1) return;
      atEncode();
      await encodeReleased;
    };
    const { store, gate } = gatedReads(await freshStore());
    const j = await jobsOn(store, hold);
    try {
      const created = await j.job();
      await encodeReached;
      gate.close();
      await s3.stop();
      try {
        releaseEncode();
        await gate.reached; // attempt 2 is reading its inputs, its claim being written beside (worker.ts)
        await vi.waitFor(async () => expect(await j.byId(created.id)).toMatchObject({ status: 'running', attempts: 2, result: null }), {
          timeout: 60_000,
          interval: 50,
        });
      } finally {
        await s3.restart();
      }
      gate.open();
      let end: JobView | undefined;
      await vi.waitFor(
        async () => {
          end = await j.byId(created.id);
          expect(end.status).toBe('succeeded');
        },
        { timeout: 120_000, interval: 100 },
      );
      expect(end!.attempts).toBe(2);
      const mask = await fetch(end!.result!.mask.url);
      expect(mask.status).toBe(200);
      await mask.body?.cancel();
    } finally {
      await j.close();
    }
  });

  it("a store that stays down: the job fails after its retries with the storage's reason; no mask row", async () => {
    const j = await jobsOn(await freshStore());
    try {
      const links = await count('job_volumes');
      await s3.stop();
      try {
        const created = await j.job();
        let end: JobView | undefined;
        await vi.waitFor(
          async () => {
            end = await j.byId(created.id);
            expect(end.status).toBe('failed');
          },
          { timeout: 120_000, interval: 100 },
        );
        expect(end!.error).toBe('The job failed 3 time(s): the object store (STORAGE_URL) is not answering; giving up');
        expect(await count('job_volumes')).toBe(links);
      } finally {
        await s3.restart();
      }
    } finally {
      await j.close();
    }
  });
});
