import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type ServerProcess, freePort, startProcess } from '../src/server/test/process.js';
import { type TestS3, startTestS3 } from '../src/server/test/s3.js';

// The soak harness (#16): bench/soak.ts and bench/study-run.ts stand on it.

export interface Cluster {
  api: ServerProcess;
  workers: (ServerProcess | undefined)[];
  startWorker(i: number): Promise<void>;
  /** The API's DATA_DIR (shared by the workers unless on the fleet layout). */
  dataDir: string;
  /** Every process's DATA_DIR (fleet: one each). */
  dataDirs: string[];
  /** The volumes' SHA-256s the store holds: files under the shared DATA_DIR, or the bucket's objects. */
  storedVolumes(): Promise<Set<string>>;
  url: string;
  stop(): Promise<void>;
}

/**
 * An API process and two worker processes (the build's) on one database: a shared DATA_DIR, or on
 * the fleet layout (#28) each process its own empty DATA_DIR and every volume in an s3rver bucket.
 */
export async function cluster(
  databaseUrl: string,
  opts: { fleet?: boolean; bucket?: string; env?: Record<string, string> } = {},
): Promise<Cluster> {
  const FLEET = opts.fleet ?? false;
  const BUCKET = opts.bucket ?? 'soak-volumes';
  const dataDir = mkdtempSync(path.join(tmpdir(), 'sv-soak-'));
  const dataDirs = [dataDir];
  let s3: TestS3 | undefined;
  if (FLEET) {
    s3 = await startTestS3();
    await s3.createBucket(BUCKET);
  }
  const common = {
    DATABASE_URL: databaseUrl,
    DATA_DIR: dataDir,
    SECRET_KEY: 's'.repeat(40),
    JOB_LEASE_S: '10',
    LOG_LEVEL: 'error',
    ...(s3 ? s3.env(BUCKET, 'soak/') : {}),
  };
  const api = startProcess({
    ...common,
    PORT: String(await freePort()),
    RUN_WORKER: 'false',
    DEMO_CASES: '1',
    MAX_ACTIVE_JOBS_PER_USER: '1000',
    MAX_QUEUED_JOBS: '10000',
    AUTH_RATE_PER_MIN: '1000',
    ...opts.env,
  });
  await api.waitReady();
  const workers: (ServerProcess | undefined)[] = [undefined, undefined];
  const workerDirs = FLEET ? [0, 1].map((i) => mkdtempSync(path.join(tmpdir(), `sv-soak-w${i}-`))) : [dataDir, dataDir];
  if (FLEET) dataDirs.push(...workerDirs);
  const startWorker = async (i: number) => {
    const env = { ...common, DATA_DIR: workerDirs[i]!, LOG_LEVEL: 'info', WORKER_CONCURRENCY: '1', CPU_THREADS: '1', ORT_THREADS: '1' };
    // the fleet's workers as a deployment starts them: `strokeview worker`, migrations already done
    const w = FLEET
      ? startProcess({ ...env, MIGRATE_ON_BOOT: 'false' }, 'src/cli/index.ts', ['worker'])
      : startProcess(env, 'src/server/worker.ts');
    workers[i] = w;
    // ready when it says so (a worker has no HTTP port)
    for (;;) {
      if (w.output().includes('worker ready')) return;
      if (w.child.exitCode !== null) throw new Error(`worker exited:\n${w.output()}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  };
  return {
    api,
    workers,
    startWorker,
    dataDir,
    dataDirs,
    async storedVolumes() {
      if (s3) {
        const store = s3.store(BUCKET, { prefix: 'soak/' });
        const out = new Set<string>();
        for await (const o of store.list()) out.add(o.sha256);
        return out;
      }
      const root = path.join(dataDir, 'volumes');
      return new Set(
        readdirSync(root, { recursive: true })
          .map(String)
          .filter((f) => f.endsWith('.nii.gz'))
          .map((f) => path.basename(f, '.nii.gz')),
      );
    },
    url: api.url,
    async stop() {
      await Promise.all(workers.map((w) => w?.stop('SIGTERM')));
      await api.stop('SIGTERM');
      await s3?.close();
    },
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a bench client reading JSON it just asked for
type Json = any;

/** A registered user's tRPC caller over HTTP (queries for `.list`, `.byId`, `.page`; mutations otherwise). */
export async function session(url: string, email: string): Promise<(proc: string, input?: unknown) => Promise<Json>> {
  const post = (proc: string, body: unknown, cookie?: string) =>
    fetch(`${url}/trpc/${proc}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin', ...(cookie ? { cookie } : {}) },
      body: JSON.stringify(body),
    });
  const reg = await post('auth.register', { email, password: 'correct horse battery staple' });
  const cookie = reg.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  return async (proc, input) => {
    const isQuery = proc.endsWith('.list') || proc.endsWith('.byId') || proc.endsWith('.page');
    const res = isQuery
      ? await fetch(`${url}/trpc/${proc}?input=${encodeURIComponent(JSON.stringify(input ?? {}))}`, { headers: { cookie } })
      : await post(proc, input ?? {}, cookie);
    const body = (await res.json()) as { result?: { data: unknown }; error?: { message: string } };
    if (!res.ok) throw new Error(`${proc}: ${res.status} ${body.error?.message}`);
    return body.result!.data;
  };
}
