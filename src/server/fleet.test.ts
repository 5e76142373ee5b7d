import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobView } from '../shared/jobs.js';
import { phantomVolumes } from './cases/demo.js';
import { readNifti } from './nifti/read.js';
import { createThrowawayPostgres } from './test/databases.js';
import { trpcClient } from './test/live.js';
import { type ServerProcess, freePort, startProcess } from './test/process.js';
import { type TestS3, startTestS3 } from './test/s3.js';

// #28: a fleet without shared disks. Two API replicas (no workers) and two `strokeview worker`
// processes on "other machines" share only PostgreSQL and an S3-compatible store (s3rver), each
// with its own empty DATA_DIR:
// - a case uploaded through replica A is segmented on a worker, which reads the inputs and writes
//   the mask through the store; replica B serves the mask's signed link; a corrected mask saved
//   through B downloads through A; no DATA_DIR ever holds a volume;
// - the auth rate limit is reached at the same total whichever replicas the requests hit;
// - the progress-stream cap holds across the replicas;
// - a worker SIGKILLed mid-job (held there by a gate: jobs/hold.ts, not by a slow model) loses
//   nothing: its lease lapses and the other worker finishes the job.

const pgUrl = process.env.TEST_DATABASE_URL;
if (!pgUrl) console.warn('fleet.test.ts skipped: TEST_DATABASE_URL is not set (the fleet needs a PostgreSQL server)');

const AUTH_RATE = 6;
const STREAM_CAP = 3;

async function signUp(url: string): Promise<string> {
  const post = (proc: string, body: unknown, cookie?: string) =>
    fetch(`${url}/trpc/${proc}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin', ...(cookie ? { cookie } : {}) },
      body: JSON.stringify(body),
    });
  const reg = await post('auth.register', { email: `fleet${Date.now()}@x.org`, password: 'correct horse battery' });
  const cookie = reg.headers.getSetCookie()[0]!.split(';')[0]!;
  const tok = await post('auth.tokens.create', { name: 'fleet' }, cookie);
  return ((await tok.json()) as { result: { data: { token: string } } }).result.data.token;
}

const filesUnder = (dir: string): string[] => readdirSync(dir, { recursive: true }).map(String);
/** Volumes kept in a DATA_DIR as storage: everything but the read-through cache's copies (VOLUME_CACHE_MB). */
const volumeFiles = (dir: string) =>
  filesUnder(dir).filter((f) => (f.endsWith('.nii.gz') || f.endsWith('.nii')) && !f.startsWith(path.join('cache', 'volumes')));
const nonzero = (data: ArrayLike<number>): number => {
  let n = 0;
  for (let i = 0; i < data.length; i++) if (data[i]) n++;
  return n;
};
const TERMINAL = ['succeeded', 'failed', 'cancelled'];

/** A gate file per worker (jobs/hold.ts): present = open; deleted = jobs wait at inference. */
function workerGate() {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'sv-fleet-hold-')), 'open');
  writeFileSync(file, '');
  return {
    env: { STROKEVIEW_TEST_HOLD: `infer:${file}` },
    arm: () => rmSync(file, { force: true }),
    open: () => writeFileSync(file, ''),
    held: (): { pid: number; jobId: string } | undefined =>
      existsSync(`${file}.held`) ? (JSON.parse(readFileSync(`${file}.held`, 'utf8')) as { pid: number; jobId: string }) : undefined,
  };
}

/**
 * A jobs.onProgress stream over SSE with a bearer token: `first` resolves with the text up to the
 * job's first state or the refusal; `abort` closes it (the replica then gives its lease back).
 */
function openStream(url: string, token: string, jobId: string) {
  const ctl = new AbortController();
  const first = (async () => {
    const res = await fetch(`${url}/trpc/jobs.onProgress?input=${encodeURIComponent(JSON.stringify({ id: jobId }))}`, {
      headers: { authorization: `Bearer ${token}`, accept: 'text/event-stream' },
      signal: ctl.signal,
    });
    const reader = res.body!.getReader();
    const decoder = new TextDecoder();
    let text = '';
    while (!/"status":|TOO_MANY_REQUESTS|serialized-error/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    return text;
  })();
  first.catch(() => {});
  return { first, abort: () => ctl.abort() };
}

describe.skipIf(!pgUrl)('a fleet on PostgreSQL + an object store, no shared DATA_DIR: two API replicas, two workers', () => {
  let s3: TestS3;
  let db: { url: string; drop(): Promise<void> };
  const procs: ServerProcess[] = [];
  const dirs: Record<string, string> = {};
  let a: ServerProcess;
  let b: ServerProcess;
  const workers: { proc: ServerProcess; gate: ReturnType<typeof workerGate> }[] = [];
  let token: string;
  let viaA: ReturnType<typeof trpcClient>;
  let viaB: ReturnType<typeof trpcClient>;
  let caseId: string;

  const waitForJob = async (id: string, ok: (j: JobView) => boolean, what: string): Promise<JobView> => {
    const deadline = Date.now() + 300_000; // a limit on a hang, not a speed requirement
    for (;;) {
      const j = await viaB.jobs.byId.query({ id });
      if (ok(j)) return j;
      if (Date.now() > deadline) {
        const logs = workers.map((w, i) => `worker ${i + 1}:\n${w.proc.output().slice(-2000)}`).join('\n');
        throw new Error(`the job never ${what}; last: ${JSON.stringify(j).slice(0, 400)}\n${logs}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  };

  beforeAll(async () => {
    s3 = await startTestS3();
    await s3.createBucket('fleet-volumes');
    db = await createThrowawayPostgres();
    const shared = {
      DATABASE_URL: db.url,
      SECRET_KEY: 'fleet-test-secret-key-shared-by-every-replica',
      ORT_THREADS: '1',
      // the shortest lease pg-boss is given (env.ts' floor): a killed worker's job is taken over after it
      JOB_LEASE_S: '10',
      ...s3.env('fleet-volumes', 'prod'),
    };
    const replica = {
      RUN_WORKER: 'false',
      TRUSTED_PROXY_HOPS: '1',
      AUTH_RATE_PER_MIN: String(AUTH_RATE),
      MAX_STREAMS_PER_USER: String(STREAM_CAP),
    };
    for (const k of ['a', 'b', 'w1', 'w2']) dirs[k] = mkdtempSync(path.join(tmpdir(), `sv-fleet-${k}-`));
    a = startProcess({ ...shared, ...replica, DATA_DIR: dirs.a!, PORT: String(await freePort()) });
    procs.push(a);
    await a.waitReady(); // A migrates; the others start on the migrated database
    b = startProcess({ ...shared, ...replica, DATA_DIR: dirs.b!, PORT: String(await freePort()), MIGRATE_ON_BOOT: 'false' });
    procs.push(b);
    for (const k of ['w1', 'w2']) {
      const gate = workerGate();
      const proc = startProcess(
        { ...shared, ...gate.env, DATA_DIR: dirs[k]!, MIGRATE_ON_BOOT: 'false', LOG_LEVEL: 'info' },
        'src/cli/index.ts',
        ['worker'],
      );
      procs.push(proc);
      workers.push({ proc, gate });
    }
    await b.waitReady();
    await Promise.all(workers.map((w) => w.proc.waitForOutput!('segmentation workers started')));
    token = await signUp(a.url);
    viaA = trpcClient(a.url, token);
    viaB = trpcClient(b.url, token);
  }, 400_000);

  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await db?.drop();
    await s3?.close();
  }, 60_000);

  it('a case uploaded through A is segmented on a worker; B serves the mask; a corrected mask saved through B downloads through A', async () => {
    expect(await (await fetch(`${b.url}/readyz`)).json()).toMatchObject({ storage: 'ok' });
    const volumes = phantomVolumes(3);
    const form = new FormData();
    form.set('name', 'fleet upload');
    for (const role of ['dwi', 'adc', 'mask'] as const) {
      form.set(role, new Blob([new Uint8Array(volumes.find((v) => v.role === role)!.stored)]), `${role}.nii.gz`);
    }
    const uploaded = await viaA.cases.upload.mutate(form);
    caseId = uploaded.id;

    const job = await viaA.jobs.create.mutate({ caseId });
    const end = await waitForJob(job.id, (j) => TERMINAL.includes(j.status), 'ended');
    expect(end.status, `job: ${JSON.stringify(end)}`).toBe('succeeded');

    // The mask's signed link, issued by B, served by B (and by A: every replica shares SECRET_KEY).
    const maskUrl = end.result!.mask.url;
    expect(maskUrl.startsWith(b.url)).toBe(true);
    const fromB = await fetch(maskUrl);
    expect(fromB.status).toBe(200);
    expect(fromB.headers.get('etag')).toMatch(/^"[0-9a-f]{64}"$/);
    const maskBytes = Buffer.from(await fromB.arrayBuffer());
    expect(maskBytes.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b])); // a .nii.gz
    const fromA = await fetch(maskUrl.replace(b.url, a.url), { headers: { range: 'bytes=0-99' } });
    expect(fromA.status).toBe(206);

    // A corrected mask (the case's own ground truth, which differs from the prediction) saved through B…
    const prediction = readNifti(maskBytes);
    const corrected = volumes.find((v) => v.role === 'mask')!.stored;
    const correctedVoxels = nonzero(readNifti(corrected).data);
    const save = new FormData();
    save.set('caseId', caseId);
    save.set('jobId', job.id);
    save.set('note', 'fixed on replica B');
    save.set('file', new Blob([new Uint8Array(corrected)]), 'corrected.nii.gz');
    const version = await viaB.masks.save.mutate(save);
    expect(version.voxels).toBe(correctedVoxels);
    // …is listed by A and downloads through A, with the case's grid and exactly the drawn voxels.
    const listed = await viaA.masks.list.query({ caseId });
    expect(listed.items.map((v) => v.id)).toContain(version.id);
    const fromAVersion = listed.items.find((v) => v.id === version.id)!;
    expect(fromAVersion.volume.downloadUrl.startsWith(a.url)).toBe(true);
    const download = await fetch(fromAVersion.volume.downloadUrl);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-disposition')).toMatch(/attachment; filename=".*_corrected_v1\.nii\.gz"/);
    const saved = readNifti(Buffer.from(await download.arrayBuffer()));
    expect(saved.dims).toEqual(prediction.dims);
    expect(saved.affine).toEqual(prediction.affine);
    expect(nonzero(saved.data)).toBe(correctedVoxels);

    // The bytes are in the bucket, under the prefix; no machine keeps volumes in its DATA_DIR.
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true });
    const listedKeys = await client.send(new ListObjectsV2Command({ Bucket: 'fleet-volumes', Prefix: 'prod/volumes/' }));
    client.destroy();
    const keys = (listedKeys.Contents ?? []).map((o) => o.Key!);
    for (const etag of [fromB.headers.get('etag')!, download.headers.get('etag')!]) {
      const sha = etag.replaceAll('"', '');
      expect(keys).toContain(`prod/volumes/${sha.slice(0, 2)}/${sha}.nii.gz`);
    }
    for (const dir of Object.values(dirs)) expect(volumeFiles(dir)).toEqual([]);
  }, 400_000);

  it('the auth rate limit is reached at the same total whichever replicas the requests hit', async () => {
    const guest = (url: string, address: string) =>
      fetch(`${url}/trpc/auth.guest`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin', 'x-forwarded-for': address },
        body: '{}',
      });
    // One client address per pattern (the key is the address behind one trusted proxy hop).
    const patterns: Record<string, ('a' | 'b')[]> = {
      'all through A': ['a', 'a', 'a', 'a', 'a', 'a', 'a', 'b'],
      'alternating A and B': ['a', 'b', 'a', 'b', 'a', 'b', 'a', 'b'],
      'mostly B': ['b', 'b', 'a', 'b', 'b', 'b', 'b', 'a'],
    };
    let n = 0;
    for (const [name, pattern] of Object.entries(patterns)) {
      // A fixed window of a minute: should a (very) slow machine see it roll over mid-sequence, more
      // than AUTH_RATE calls pass; that run is repeated on a fresh address (a per-replica count
      // fails every attempt: alternating replicas would let all eight through).
      for (let attempt = 0; ; attempt++) {
        const address = `203.0.113.${++n}`;
        const statuses: number[] = [];
        for (const replica of pattern) {
          const res = await guest(replica === 'a' ? a.url : b.url, address);
          statuses.push(res.status);
          if (res.status === 429) expect(Number(res.headers.get('retry-after')), name).toBeGreaterThan(0);
          await res.body?.cancel();
        }
        const expected = [...Array<number>(AUTH_RATE).fill(200), 429, 429];
        if (attempt < 2 && JSON.stringify(statuses) !== JSON.stringify(expected)) continue;
        expect(statuses, name).toEqual(expected);
        break;
      }
    }
  }, 120_000);

  it('a job held mid-run: the stream cap holds across replicas; its worker SIGKILLed, the other worker finishes it', async () => {
    for (const w of workers) w.gate.arm();
    const job = await viaA.jobs.create.mutate({ caseId });
    // Held at the start of inference on whichever worker claimed it: running, and it stays so.
    await waitForJob(job.id, (j) => j.status === 'running' && workers.some((w) => w.gate.held()?.jobId === job.id), 'was held');
    const holder = workers.find((w) => w.gate.held()?.jobId === job.id)!;
    const other = workers.find((w) => w !== holder)!;
    expect(holder.gate.held()!.pid).toBe(holder.proc.child.pid);

    // The stream cap: STREAM_CAP streams in all, opened on either replica; the next is refused on both.
    const streams = [openStream(a.url, token, job.id), openStream(a.url, token, job.id), openStream(b.url, token, job.id)];
    try {
      for (const s of streams) expect(await s.first).toMatch(/"status":"running"/);
      for (const url of [b.url, a.url]) {
        const refused = openStream(url, token, job.id);
        const text = await refused.first;
        refused.abort();
        expect(text).toMatch(/TOO_MANY_REQUESTS/);
        expect(text).toMatch(new RegExp(`You have ${STREAM_CAP} live progress streams open`));
      }
      // A stream closed on A gives its place back to the fleet: B may open one.
      streams.shift()!.abort();
      const deadline = Date.now() + 120_000;
      for (;;) {
        const again = openStream(b.url, token, job.id);
        const text = await again.first;
        if (/"status":"running"/.test(text)) {
          streams.push(again);
          break;
        }
        again.abort();
        if (Date.now() > deadline) throw new Error(`the closed stream's lease was never given back: ${text}`);
        await new Promise((r) => setTimeout(r, 200));
      }
    } finally {
      for (const s of streams) s.abort();
    }

    // SIGKILL the worker holding the job; the other (its gate open) takes it over once the lease lapses.
    other.gate.open();
    holder.proc.child.kill('SIGKILL');
    expect(await holder.proc.exited).toBe('SIGKILL');
    const end = await waitForJob(job.id, (j) => TERMINAL.includes(j.status), 'ended');
    expect(end.status, JSON.stringify(end)).toBe('succeeded');
    expect(end.attempts).toBe(2);
    expect(other.proc.output()).toContain(job.id); // "job succeeded" in the survivor's log
    const mask = await fetch(end.result!.mask.url);
    expect(mask.status).toBe(200);
    await mask.body?.cancel();
    const check = new pg.Client({ connectionString: db.url });
    await check.connect();
    try {
      const running = await check.query(`select count(*)::int as n from jobs where status = 'running'`);
      expect(running.rows[0].n).toBe(0);
      const links = await check.query('select name from job_volumes where job_id = $1', [job.id]);
      expect(links.rows.map((r: { name: string }) => r.name).sort()).toEqual(['mask', ...end.modelIds.map((m) => `model:${m}`)]);
    } finally {
      await check.end();
    }
    for (const dir of Object.values(dirs)) expect(volumeFiles(dir)).toEqual([]);
    for (const p of [other.proc, a, b]) expect(await p.stop('SIGTERM')).toBe(0);
  }, 420_000);
});
