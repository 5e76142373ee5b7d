import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { TRPCClientError } from '@trpc/client';
import { afterAll, afterEach, beforeAll, expect, it, vi } from 'vitest';
import type { JobProgressEvent, JobView } from '../../shared/jobs.js';
import { phantomVolumes, seedDemoCases } from '../cases/demo.js';
import { createCase } from '../cases/service.js';
import { createJob, reconcileQueue } from './service.js';
import { parseEnv } from '../env.js';
import { createLogger } from '../logger.js';
import { readNifti } from '../nifti/read.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from '../segmentation/models.js';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';
import { serveApp, trpcClient } from '../test/live.js';
import { FsVolumeStore } from '../volumes/store.js';
import { type JobHold, gate } from './hold.js';
import { type JobRuntime, startJobRuntime } from './runtime.js';

let models: ModelRegistry;
beforeAll(async () => {
  models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
});
afterAll(async () => {
  await models?.close();
});

/**
 * A job just created, as `jobs.create` answers it: the job as it stands once queued. A free worker
 * may already have claimed it (CI saw 'running' at 1 %), so it is queued at 0 % or running, never
 * further than a first step.
 */
function expectJustCreated(job: Pick<JobView, 'status' | 'progress'>): void {
  expect(['queued', 'running']).toContain(job.status);
  expect(job.progress).toBeLessThan(100);
}

describeEachDatabase('segmentation jobs', (current) => {
  const running: { stop(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const r of running.splice(0).reverse()) await r.stop();
  });

  async function setup(
    opts: { env?: Record<string, string>; runWorker?: boolean; hold?: JobHold; backstopSeconds?: number; jobsGate?: Promise<void> } = {},
  ) {
    const env = parseEnv({ NODE_ENV: 'test', ...opts.env });
    const store = new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-jobs-')));
    const database = current().handle;
    const runtime: JobRuntime = await startJobRuntime({
      database,
      store,
      models,
      env,
      log: createLogger({ level: 'silent' }),
      runWorker: opts.runWorker ?? true,
      ...(opts.hold ? { hold: opts.hold } : {}),
      ...(opts.backstopSeconds ? { workerBackstopSeconds: opts.backstopSeconds } : {}),
    });
    running.push({ stop: () => runtime.stop(2000) });
    // A server just restarted hands its procedures a job system still starting (#29): jobsGate holds it.
    const jobs = opts.jobsGate ? opts.jobsGate.then(() => runtime.jobs) : runtime.jobs;
    const t = makeTestApp({ database, models, store, jobs, env: opts.env ?? {} });
    const server = (await serveApp(t.app)) as Awaited<ReturnType<typeof serveApp>> & { bearer: string };
    running.push({ stop: () => server.close() });
    await seedDemoCases(database.db, store, 1);
    const browser = new TestBrowser(t.app);
    await browser.mutate('auth.register', { email: 'j@x.org', password: 'correct horse battery' });
    const token = (await browser.mutate<{ token: string }>('auth.tokens.create', { name: 'test' })).data.token;
    const client = trpcClient(server.url, token);
    Object.assign(server, { bearer: `Bearer ${token}` });
    const [demo] = (await client.cases.list.query()).items;
    return { ...t, store, client, caseId: demo!.id, server, browser, runtime, env };
  }

  /** Collects progress events until the subscription ends (a terminal state). */
  function follow(client: ReturnType<typeof trpcClient>, id: string): Promise<JobProgressEvent[]> {
    return new Promise((resolve, reject) => {
      const events: JobProgressEvent[] = [];
      const sub = client.jobs.onProgress.subscribe(
        { id },
        {
          onData: (e) => {
            events.push(e.data);
            if (['succeeded', 'failed', 'cancelled'].includes(e.data.status)) {
              sub.unsubscribe();
              resolve(events);
            }
          },
          onError: reject,
        },
      );
    });
  }

  async function waitFor(client: ReturnType<typeof trpcClient>, id: string, ok: (j: JobView) => boolean, ms = 90_000) {
    const deadline = Date.now() + ms;
    for (;;) {
      const j = await client.jobs.byId.query({ id });
      if (ok(j)) return j;
      if (Date.now() > deadline) throw new Error(`job never reached the state; last: ${JSON.stringify(j).slice(0, 300)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  it('jobs.create while the job system is still starting (a restart, #29) waits for it, then queues and runs; other procedures answer meanwhile', async () => {
    let release!: () => void;
    const { client, caseId } = await setup({ jobsGate: new Promise<void>((r) => (release = r)) });
    let settled = false;
    const creating = client.jobs.create.mutate({ caseId }).finally(() => (settled = true));
    expect((await client.cases.list.query()).items.length).toBeGreaterThan(0);
    expect(settled).toBe(false);
    release();
    const job = await creating;
    expectJustCreated(job);
    expect((await follow(client, job.id)).at(-1)).toMatchObject({ status: 'succeeded' });
  });

  it('create → live progress over SSE rises → succeeded with metrics and a mask URL; byId agrees', async () => {
    const { client, caseId } = await setup();
    const job = await client.jobs.create.mutate({ caseId });
    expect(job).toMatchObject({ modelIds: ['adc-dwi-v2'] });
    expectJustCreated(job);
    const events = await follow(client, job.id);
    const progress = events.map((e) => e.progress);
    expect(progress).toEqual([...progress].sort((a, b) => a - b));
    expect(events.at(-1)).toMatchObject({ status: 'succeeded', progress: 100 });
    const versions = events.map((e) => e.version);
    expect(new Set(versions).size).toBe(versions.length);

    const done = await client.jobs.byId.query({ id: job.id });
    expect(done.status).toBe('succeeded');
    expect(done.attempts).toBe(1);
    expect(done.result?.metrics.dice).toBeGreaterThan(0.9);
    expect(done.result?.notes).toEqual(['ADC in 10⁻⁶ mm²/s, as the model expects']);
    expect(done.result?.metrics.lesionCountTrue).toBeGreaterThan(0);
    expect(new Date(done.expiresAt).getTime() - Date.now()).toBeGreaterThan(29 * 86_400_000);
    const mask = await fetch(done.result!.mask.url);
    expect(mask.status).toBe(200);
    const decoded = readNifti(new Uint8Array(await mask.arrayBuffer()));
    expect(decoded.dims).toEqual([112, 112, 73]);
    expect(decoded.datatype).toBe('uint8');

    const list = await client.jobs.list.query({ caseId });
    expect(list.items.map((j) => j.id)).toEqual([job.id]);
  });

  it('a subscription resumed with the last event id sends only what is newer, and ends at once after the end', async () => {
    const { client, caseId, server } = await setup();
    const job = await client.jobs.create.mutate({ caseId });
    const events = await follow(client, job.id);
    const last = events.at(-1)!;
    const sse = (lastEventId: number) =>
      fetch(
        `${server.url}/trpc/jobs.onProgress?input=${encodeURIComponent(JSON.stringify({ id: job.id, lastEventId: String(lastEventId) }))}`,
        {
          headers: { accept: 'text/event-stream', authorization: server.bearer },
          signal: AbortSignal.timeout(8000),
        },
      ).then((r) => r.text());
    const resumedEarlier = await sse(last.version - 1);
    expect(resumedEarlier).toContain(`id: ${last.version}`);
    expect(resumedEarlier).not.toContain(`id: ${last.version - 1}\n`);
    const afterEnd = await sse(last.version);
    expect(afterEnd).not.toMatch(/^id: /m);
  });

  it('a subscription over 1,000 events adds no listener per event (no MaxListenersExceededWarning)', async () => {
    const { client, caseId, runtime } = await setup({ runWorker: false });
    const job = await client.jobs.create.mutate({ caseId });
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.name);
    process.on('warning', onWarning);
    try {
      let received = 0;
      let gotFirst!: (version: number) => void;
      const first = new Promise<number>((r) => (gotFirst = r));
      const done = new Promise<void>((resolve, reject) => {
        const sub = client.jobs.onProgress.subscribe(
          { id: job.id },
          {
            onData: (e) => {
              received++;
              if (received === 1) gotFirst(e.data.version);
              if (e.data.message === 'event 1000') {
                sub.unsubscribe();
                resolve();
              }
            },
            onError: reject,
          },
        );
      });
      const base = await first;
      for (let n = 1; n <= 1000; n++) {
        await runtime.jobs.bus.publish({
          id: job.id,
          status: 'queued',
          progress: 0,
          message: `event ${n}`,
          version: base + n,
          error: null,
          at: Date.now(),
        });
        // let the stream deliver it (each event ends one wait of the generator)
        await new Promise((r) => setImmediate(r));
      }
      await done;
      expect(received).toBe(1001);
      expect(warnings).not.toContain('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('the same idempotency key returns the same job', async () => {
    const { client, caseId } = await setup({ runWorker: false });
    const a = await client.jobs.create.mutate({ caseId, idempotencyKey: 'retry-key-1234' });
    const b = await client.jobs.create.mutate({ caseId, idempotencyKey: 'retry-key-1234' });
    expect(b.id).toBe(a.id);
    expect((await client.jobs.list.query()).items).toHaveLength(1);
    // The same key for another request is a 409 naming the conflict, not the old job (#16 item 4).
    const err = (await client.jobs.create
      .mutate({ caseId, modelIds: ['adc-core-v1'], idempotencyKey: 'retry-key-1234' })
      .catch((e: unknown) => e)) as {
      data?: { httpStatus?: number; code?: string };
      message: string;
    };
    expect(err.data).toMatchObject({ httpStatus: 409, code: 'CONFLICT' });
    expect(err.message).toMatch(
      /^This idempotency key was already used for another request \(case [0-9a-f-]{36}, model adc-dwi-v2\); use a new key$/,
    );
    expect((await client.jobs.list.query()).items).toHaveLength(1);
  });

  it('cancel: a queued job at once', async () => {
    const { client, caseId } = await setup({ runWorker: false });
    const job = await client.jobs.create.mutate({ caseId });
    const cancelled = await client.jobs.cancel.mutate({ id: job.id });
    expect(cancelled.status).toBe('cancelled');
    expect((await follow(client, job.id)).at(-1)?.status).toBe('cancelled');
  });

  it('cancel: a job held running mid-pipeline stops at its next stage and ends cancelled', async () => {
    const held = gate('infer');
    const { client, caseId } = await setup({ hold: held.hold });
    const job = await client.jobs.create.mutate({ caseId });
    expect(await held.reached).toBe(job.id);
    const running = await waitFor(client, job.id, (j) => j.progress >= 30);
    expect(running.status).toBe('running'); // provably running: held at the start of inference
    await client.jobs.cancel.mutate({ id: job.id });
    held.release();
    const end = await waitFor(client, job.id, (j) => j.status === 'cancelled');
    expect(end.result).toBeNull();
    expect(end.progress).toBeLessThan(85);
  });

  it('jobs queued behind a running one start as soon as it ends, not at the idle poll (NOTIFY backstop)', async () => {
    // The backstop is an hour: a slot that waited for it after a job would leave the third job
    // queued past the test's timeout. The second and third are queued while the first is held, so
    // their NOTIFYs arrive during it; nothing wakes the slot after the second but the end of a job.
    // It can fail only on PostgreSQL: the embedded queue has no NOTIFY, so its slots poll every 0.5 s.
    const held = gate('infer');
    const { client, caseId } = await setup({ hold: held.hold, backstopSeconds: 3600 });
    const first = await client.jobs.create.mutate({ caseId });
    expect(await held.reached).toBe(first.id);
    const second = await client.jobs.create.mutate({ caseId });
    const third = await client.jobs.create.mutate({ caseId });
    held.release();
    for (const job of [first, second, third])
      expect((await waitFor(client, job.id, (j) => j.status === 'succeeded')).status).toBe('succeeded');
  });

  it('JOB_TIMEOUT_S: a job still running past the timeout fails with the reason', async () => {
    const held = gate('infer'); // never released: only the timeout can end the job
    const { client, caseId } = await setup({ env: { JOB_TIMEOUT_S: '1' }, hold: held.hold });
    const job = await client.jobs.create.mutate({ caseId });
    const end = await waitFor(client, job.id, (j) => j.status === 'failed');
    expect(end.error).toBe('The segmentation took longer than 1 s and was stopped');
    expect(end.message).toBe('Timed out');
  });

  it('caps: more active jobs than allowed per user → 429 TOO_MANY_REQUESTS with Retry-After', async () => {
    const { client, caseId, browser } = await setup({ runWorker: false, env: { MAX_ACTIVE_JOBS_PER_USER: '1' } });
    await client.jobs.create.mutate({ caseId });
    const err = await client.jobs.create.mutate({ caseId }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TRPCClientError);
    expect((err as { data?: { httpStatus?: number } }).data?.httpStatus).toBe(429);
    const raw = await browser.mutate('jobs.create', { caseId });
    expect(raw.status).toBe(429);
    expect(Number(raw.headers.get('retry-after'))).toBeGreaterThan(0);
  });

  it('the cap check and the insert do not race: eight parallel creates with a cap of 1 admit exactly one (#16 item 4)', async () => {
    const { caseId, browser } = await setup({ runWorker: false, env: { MAX_ACTIVE_JOBS_PER_USER: '1' } });
    const results = await Promise.all(
      Array.from({ length: 8 }, (_, i) => browser.mutate('jobs.create', { caseId, idempotencyKey: `parallel-create-${i}` })),
    );
    expect(results.map((r) => r.status).sort()).toEqual([200, 429, 429, 429, 429, 429, 429, 429]);
    const active = await current().handle.db.selectFrom('jobs').select('id').where('status', 'in', ['queued', 'running']).execute();
    expect(active).toHaveLength(1);
  });

  it('a deterministic input problem fails at once with its message (no retry)', async () => {
    const { client, store } = await setup();
    const noAdc = phantomVolumes(101).filter((v) => v.role !== 'adc');
    const caseId = await createCase(
      current().handle.db,
      store,
      { ownerId: null, name: 'no adc', source: 'demo', subjectId: 'no-adc' },
      noAdc,
    );
    const job = await client.jobs.create.mutate({ caseId });
    const end = await waitFor(client, job.id, (j) => j.status === 'failed');
    expect(end.error).toBe('This case has no ADC, which model adc-dwi-v2 needs');
    expect(end.attempts).toBe(1);
  });

  it('a crash between insert and enqueue leaves no orphan: the row is enqueued by the reconciler, runs, and frees the cap (#16 item 3)', async () => {
    const { client, caseId, runtime, env } = await setup({ env: { MAX_ACTIVE_JOBS_PER_USER: '1' } });
    const db = current().handle.db;
    const me = await db.selectFrom('users').select('id').where('email', '=', 'j@x.org').executeTakeFirstOrThrow();
    // The process "dies" right after the insert: the create never reaches the queue.
    void createJob(db, runtime.jobs, env, { userId: me.id, admin: false }, { caseId, modelIds: ['adc-dwi-v2'] }, new Set(['adc-dwi-v2']), {
      beforeEnqueue: () => new Promise<never>(() => {}),
    });
    let orphan: JobView | undefined;
    await vi.waitFor(async () => {
      orphan = (await client.jobs.list.query({})).items[0];
      expect(orphan?.status).toBe('queued');
    });
    expect(
      (await db.selectFrom('jobs').select('queue_job_id').where('id', '=', orphan!.id).executeTakeFirstOrThrow()).queue_job_id,
    ).toBeNull();
    // Without the reconciler this row would sit queued forever and hold the user's only slot.
    expect(await reconcileQueue(db, runtime.jobs.boss, 0)).toBe(1);
    expect(await reconcileQueue(db, runtime.jobs.boss, 0)).toBe(0);
    const done = await waitFor(client, orphan!.id, (j) => j.status === 'succeeded');
    expect(done.attempts).toBe(1);
    // the slot is free again
    expectJustCreated(await client.jobs.create.mutate({ caseId }));
  });

  it('when retries run out, the job fails with the real error of its last attempt, not "the worker crashed" (#16 item 4)', async () => {
    const { client, store } = await setup();
    const broken = phantomVolumes(103);
    const caseId = await createCase(
      current().handle.db,
      store,
      { ownerId: null, name: 'broken', source: 'demo', subjectId: 'broken' },
      broken,
    );
    // the case's DWI file vanishes from disk (rows stay): every attempt fails the same way
    const dwi = broken.find((v) => v.role === 'dwi')!;
    const sha = createHash('sha256').update(dwi.stored).digest('hex');
    rmSync(path.join(store.root, sha.slice(0, 2), `${sha}.nii.gz`));
    const job = await client.jobs.create.mutate({ caseId });
    const end = await waitFor(client, job.id, (j) => j.status === 'failed');
    expect(end.error).toBe('The job failed 3 time(s): a stored file of this case is missing; giving up');
    expect(end.error).not.toMatch(/\/|ENOENT/);
  });

  it("another user's job is NOT_FOUND for byId, cancel and onProgress; an unknown model is a 400", async () => {
    const { client, caseId, server, app } = await setup({ runWorker: false });
    const job = await client.jobs.create.mutate({ caseId });
    const other = new TestBrowser(app);
    await other.mutate('auth.register', { email: 'other@x.org', password: 'correct horse battery' });
    const token = (await other.mutate<{ token: string }>('auth.tokens.create', { name: 'o' })).data.token;
    const stranger = trpcClient(server.url, token);
    for (const call of [() => stranger.jobs.byId.query({ id: job.id }), () => stranger.jobs.cancel.mutate({ id: job.id })]) {
      const e = await call().catch((x: unknown) => x);
      expect((e as { data?: { code?: string } }).data?.code).toBe('NOT_FOUND');
    }
    const sse = await fetch(`${server.url}/trpc/jobs.onProgress?input=${encodeURIComponent(JSON.stringify({ id: job.id }))}`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
    });
    expect(await sse.text()).toMatch(/NOT_FOUND|No such job/);
    const bad = await client.jobs.create.mutate({ caseId, modelIds: ['nope'] }).catch((x: unknown) => x);
    expect((bad as Error).message).toBe('Unknown model: nope');
  });

  it('/metrics reports jobs by status and HTTP requests', async () => {
    const { client, caseId, server } = await setup({ runWorker: false });
    await client.jobs.create.mutate({ caseId });
    const text = await (await fetch(`${server.url}/metrics`)).text();
    expect(text).toMatch(/strokeview_jobs\{status="queued"\} 1/);
    expect(text).toMatch(/strokeview_queue_depth 1/);
    expect(text).toMatch(/strokeview_http_requests_total\{method="POST",route="\/trpc\/jobs.create",status="200"\} 1/);
  });
});
