import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobView } from '../shared/jobs.js';
import { createThrowawayPostgres } from './test/databases.js';
import { trpcClient } from './test/live.js';
import { type ServerProcess, freePort, startProcess } from './test/process.js';
import { type TestS3, startTestS3 } from './test/s3.js';

// #28: a fleet without shared disks. An API replica (no workers) and a `strokeview worker` on
// "another machine" share only PostgreSQL and an S3-compatible store (s3rver), each with its own
// empty DATA_DIR. A job uploaded through replica A runs on the worker, which reads the inputs and
// writes the mask through the store; replica B serves the mask's signed link.

const pgUrl = process.env.TEST_DATABASE_URL;
if (!pgUrl) console.warn('fleet.test.ts skipped: TEST_DATABASE_URL is not set (the fleet needs a PostgreSQL server)');

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

describe.skipIf(!pgUrl)('a fleet on PostgreSQL + an object store, no shared DATA_DIR', () => {
  let s3: TestS3;
  let db: { url: string; drop(): Promise<void> };
  const procs: ServerProcess[] = [];
  beforeAll(async () => {
    s3 = await startTestS3();
    await s3.createBucket('fleet-volumes');
    db = await createThrowawayPostgres();
  }, 60_000);
  afterAll(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await db?.drop();
    await s3?.close();
  }, 60_000);

  it('a job created through replica A runs on a worker elsewhere; its mask is in the bucket and served through replica B', async () => {
    const shared = {
      DATABASE_URL: db.url,
      SECRET_KEY: 'fleet-test-secret-key-shared-by-every-replica',
      ORT_THREADS: '1',
      ...s3.env('fleet-volumes', 'prod'),
    };
    const dirs = {
      a: mkdtempSync(path.join(tmpdir(), 'sv-fleet-a-')),
      b: mkdtempSync(path.join(tmpdir(), 'sv-fleet-b-')),
      w: mkdtempSync(path.join(tmpdir(), 'sv-fleet-w-')),
    };
    const a = startProcess({ ...shared, DATA_DIR: dirs.a, PORT: String(await freePort()), RUN_WORKER: 'false', DEMO_CASES: '1' });
    procs.push(a);
    await a.waitReady();
    const b = startProcess({ ...shared, DATA_DIR: dirs.b, PORT: String(await freePort()), RUN_WORKER: 'false', MIGRATE_ON_BOOT: 'false' });
    procs.push(b);
    const worker = startProcess({ ...shared, DATA_DIR: dirs.w }, 'src/cli/index.ts', ['worker']);
    procs.push(worker);
    await b.waitReady();
    expect(await (await fetch(`${b.url}/readyz`)).json()).toMatchObject({ storage: 'ok' });

    const token = await signUp(a.url);
    const viaA = trpcClient(a.url, token);
    const viaB = trpcClient(b.url, token);
    const caseId = (await viaA.cases.list.query()).items[0]!.id;
    const job = await viaA.jobs.create.mutate({ caseId });
    let end: JobView | undefined;
    const deadline = Date.now() + 300_000; // a limit on a hang, not a speed requirement
    while (Date.now() < deadline) {
      const j = await viaB.jobs.byId.query({ id: job.id });
      if (['succeeded', 'failed', 'cancelled'].includes(j.status)) {
        end = j;
        break;
      }
      if (worker.child.exitCode !== null) throw new Error(`the worker exited:\n${worker.output()}`);
      await new Promise((r) => setTimeout(r, 250));
    }
    expect(end?.status, `job: ${JSON.stringify(end)}\nworker:\n${worker.output().slice(-3000)}`).toBe('succeeded');

    // The mask's signed link, issued by B, served by B (and by A: every replica shares SECRET_KEY).
    const maskUrl = end!.result!.mask.url;
    expect(maskUrl.startsWith(b.url)).toBe(true);
    const fromB = await fetch(maskUrl);
    expect(fromB.status).toBe(200);
    expect(fromB.headers.get('etag')).toMatch(/^"[0-9a-f]{64}"$/);
    const maskBytes = Buffer.from(await fromB.arrayBuffer());
    expect(maskBytes.subarray(0, 2)).toEqual(Buffer.from([0x1f, 0x8b])); // a .nii.gz
    const fromA = await fetch(maskUrl.replace(b.url, a.url), { headers: { range: 'bytes=0-99' } });
    expect(fromA.status).toBe(206);

    // The bytes are in the bucket, under the prefix; no machine keeps volumes in its DATA_DIR.
    const client = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true });
    const listed = await client.send(new ListObjectsV2Command({ Bucket: 'fleet-volumes', Prefix: 'prod/volumes/' }));
    client.destroy();
    const keys = (listed.Contents ?? []).map((o) => o.Key!);
    const sha = fromB.headers.get('etag')!.replaceAll('"', '');
    expect(keys).toContain(`prod/volumes/${sha.slice(0, 2)}/${sha}.nii.gz`);
    for (const dir of Object.values(dirs)) expect(filesUnder(dir).filter((f) => f.endsWith('.nii.gz'))).toEqual([]);

    for (const p of [worker, a, b]) expect(await p.stop('SIGTERM')).toBe(0);
  }, 420_000);
});
