import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobProgressEvent, JobView } from '../../shared/jobs.js';
import { createThrowawayPostgres, testDatabaseKinds } from '../test/databases.js';
import { trpcClient } from '../test/live.js';
import { modelVariants } from '../test/models.js';
import { type ServerProcess, freePort, startProcess } from '../test/process.js';

// Real processes on one PostgreSQL: an API replica without workers, and `npm run worker`
// processes. This is the fleet shape: the job must run in a worker and its progress reach the
// API's subscribers through LISTEN/NOTIFY; a worker killed mid-job must not lose the job.

/** A variant of the built-in model under another id (a job names its models; the mask links say which). */
const variantModels = () => modelVariants({ slow: { patchSize: [56, 56, 40], overlap: 0.25 } });

/**
 * Holds every job of a spawned process at the start of inference until the test releases it
 * (see jobs/hold.ts): "a worker killed mid-job" is then mid-job by construction, however fast or
 * busy the CPU is.
 */
function fileHold() {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'sv-hold-')), 'release');
  return { env: { STROKEVIEW_TEST_HOLD: `infer:${file}` }, release: () => writeFileSync(file, '') };
}

/** Polls the job until `ok` (the deadline is generous: a busy machine runs at a third of its speed). */
async function waitForJob(client: ReturnType<typeof trpcClient>, id: string, ok: (j: JobView) => boolean, ms = 150_000): Promise<JobView> {
  const deadline = Date.now() + ms;
  for (;;) {
    const j = await client.jobs.byId.query({ id });
    if (ok(j)) return j;
    if (Date.now() > deadline) throw new Error(`job never reached the state; last: ${JSON.stringify(j).slice(0, 300)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function signUp(url: string): Promise<string> {
  const post = (proc: string, body: unknown, cookie?: string) =>
    fetch(`${url}/trpc/${proc}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin', ...(cookie ? { cookie } : {}) },
      body: JSON.stringify(body),
    });
  const reg = await post('auth.register', { email: `p${Date.now()}@x.org`, password: 'correct horse battery' });
  const cookie = reg.headers.getSetCookie()[0]!.split(';')[0]!;
  const tok = await post('auth.tokens.create', { name: 'proc' }, cookie);
  return ((await tok.json()) as { result: { data: { token: string } } }).result.data.token;
}

describe.skipIf(!testDatabaseKinds().includes('postgres'))('jobs across processes [postgres]', () => {
  let db: Awaited<ReturnType<typeof createThrowawayPostgres>>;
  const procs: ServerProcess[] = [];
  const dataDir = mkdtempSync(path.join(tmpdir(), 'sv-fleet-'));
  const modelsDir = variantModels();
  let api: ServerProcess;
  let client: ReturnType<typeof trpcClient>;
  let caseId: string;
  const env = () => ({
    DATABASE_URL: db.url,
    DATA_DIR: dataDir,
    MODELS_DIR: modelsDir,
    JOB_LEASE_S: '10',
    ORT_THREADS: '1',
    LOG_LEVEL: 'warn',
  });
  const worker = (extra: Record<string, string> = {}) => {
    const w = startProcess({ ...env(), ...extra }, 'src/server/worker.ts');
    procs.push(w);
    return w;
  };

  beforeAll(async () => {
    db = await createThrowawayPostgres();
    api = startProcess({ ...env(), PORT: String(await freePort()), RUN_WORKER: 'false', DEMO_CASES: '1' });
    procs.push(api);
    await api.waitReady();
    client = trpcClient(api.url, await signUp(api.url));
    caseId = (await client.cases.list.query()).items[0]!.id;
  }, 300_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await db?.drop();
  });

  const follow = (id: string, onEvent?: (e: JobProgressEvent) => void) =>
    new Promise<JobProgressEvent[]>((resolve, reject) => {
      const events: JobProgressEvent[] = [];
      const sub = client.jobs.onProgress.subscribe(
        { id },
        {
          onData: (e) => {
            events.push(e.data);
            onEvent?.(e.data);
            if (['succeeded', 'failed', 'cancelled'].includes(e.data.status)) {
              sub.unsubscribe();
              resolve(events);
            }
          },
          onError: reject,
        },
      );
    });

  it('API + npm run worker: the job runs in the worker and the API subscriber sees its progress', async () => {
    const w = worker();
    const job = await client.jobs.create.mutate({ caseId });
    const events = await follow(job.id);
    expect(events.some((e) => e.status === 'running' && e.progress > 0 && e.progress < 100)).toBe(true);
    expect(events.at(-1)).toMatchObject({ status: 'succeeded', progress: 100 });
    const done = await client.jobs.byId.query({ id: job.id });
    expect(done.result?.metrics.dice).toBeGreaterThan(0.85);
    expect(await w.stop('SIGTERM')).toBe(0); // drains and exits cleanly
  }, 300_000);

  it('a worker killed with SIGKILL mid-job: after its lease expires another worker finishes the job, once', async () => {
    const hold = fileHold();
    const a = worker(hold.env);
    const job = await client.jobs.create.mutate({ caseId, modelIds: ['slow'] });
    const done = follow(job.id);
    // Held at the start of inference: running, and it stays so until released.
    await waitForJob(client, job.id, (j) => j.status === 'running' && j.progress >= 30);
    a.child.kill('SIGKILL');
    await a.exited;
    hold.release();
    const b = worker();
    const events = await done;
    expect(events.at(-1)?.status).toBe('succeeded');
    const end = await client.jobs.byId.query({ id: job.id });
    expect(end.attempts).toBe(2);
    expect(end.result?.mask.url).toBeTruthy();
    const check = new pg.Client({ connectionString: db.url });
    await check.connect();
    try {
      const { rows } = await check.query('select name from job_volumes where job_id = $1', [job.id]);
      expect(rows.map((r) => r.name).sort()).toEqual(['mask', 'model:slow']);
      const stuck = await check.query(`select count(*)::int as n from jobs where status = 'running'`);
      expect(stuck.rows[0].n).toBe(0);
    } finally {
      await check.end();
    }
    await b.stop('SIGTERM');
  }, 300_000);

  it('SIGTERM drains: a job still running after the grace period goes back to the queue and another worker finishes it', async () => {
    const hold = fileHold(); // never released for worker a: its job is still running when the grace ends
    const a = worker({ SHUTDOWN_GRACE_S: '1', ...hold.env });
    const job = await client.jobs.create.mutate({ caseId, modelIds: ['slow'] });
    const done = follow(job.id);
    await waitForJob(client, job.id, (j) => j.status === 'running' && j.progress >= 30);
    expect(await a.stop('SIGTERM')).toBe(0);
    expect((await client.jobs.byId.query({ id: job.id })).status).toBe('queued');
    const b = worker();
    const events = await done;
    expect(events.some((e) => e.status === 'queued' && /previous one shut down/.test(e.message))).toBe(true);
    expect(events.at(-1)?.status).toBe('succeeded');
    expect((await client.jobs.byId.query({ id: job.id })).attempts).toBe(2);
    await b.stop('SIGTERM');
  }, 300_000);
});

describe('jobs survive a crash of the one embedded process', () => {
  it('SIGKILL mid-job, restart on the same DATA_DIR: the restarted process takes the job over after its lease and finishes it', async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sv-embedded-crash-'));
    const port = String(await freePort());
    const env = { DATA_DIR: dataDir, PORT: port, MODELS_DIR: variantModels(), JOB_LEASE_S: '10', ORT_THREADS: '1', DEMO_CASES: '1' };
    const hold = fileHold();
    const first = startProcess({ ...env, ...hold.env });
    let second: ServerProcess | undefined;
    try {
      await first.waitReady();
      const client = trpcClient(first.url, await signUp(first.url));
      const caseId = (await client.cases.list.query()).items[0]!.id;
      const job = await client.jobs.create.mutate({ caseId, modelIds: ['slow'] });
      await waitForJob(client, job.id, (j) => j.status === 'running' && j.progress >= 30);
      first.child.kill('SIGKILL');
      await first.exited;
      second = startProcess(env);
      await second.waitReady();
      const end = await waitForJob(client, job.id, (j) => ['succeeded', 'failed', 'cancelled'].includes(j.status));
      expect(end.status).toBe('succeeded');
      expect(end.attempts).toBe(2);
    } finally {
      await first.stop('SIGKILL');
      await second?.stop('SIGTERM');
    }
  }, 400_000);
});
