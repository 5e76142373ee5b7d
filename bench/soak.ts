import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { seededRandom } from '../src/server/nifti/fuzz.js';
import { createThrowawayPostgres } from '../src/server/test/databases.js';
import { type ServerProcess, freePort, startProcess } from '../src/server/test/process.js';
import { type TestS3, startTestS3 } from '../src/server/test/s3.js';

// #16 soak: an API process and two worker processes (npm start's build) on a throwaway database
// of the local PostgreSQL, sharing one DATA_DIR. SOAK_JOBS jobs (default 200) are created by
// several users; a seeded random fifth are cancelled at random moments; the workers are SIGKILLed
// at random moments and started again (SOAK_KILLS times, default 2 each). At the end: every job
// terminal, every succeeded job's masks in the database and on disk, no file without a
// referenced row, no row without its file. The baseline is the same jobs with no kills and no
// cancels, measured first in the same run (throughput ratio).
//
// SOAK_LAYOUT=fleet (#28) runs the same on the fleet layout instead: no shared DATA_DIR (each
// process its own, empty), every volume in an s3rver bucket on loopback (STORAGE_URL=s3://…), the
// workers `strokeview worker`; the invariants then hold between the rows and the bucket's objects,
// and no DATA_DIR may hold a volume. SOAK_BASELINE=0 skips the baseline run (a busy machine).

const JOBS = Number(process.env.SOAK_JOBS ?? 200);
const KILLS = Number(process.env.SOAK_KILLS ?? 2);
const FLEET = process.env.SOAK_LAYOUT === 'fleet';
const BASELINE = process.env.SOAK_BASELINE !== '0';
const BUCKET = 'soak-volumes';
const rand = seededRandom(20261130);
process.env.TEST_DATABASE_URL ??= process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

interface Cluster {
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

async function cluster(databaseUrl: string): Promise<Cluster> {
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

async function session(url: string, email: string): Promise<(proc: string, input?: unknown) => Promise<Json>> {
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
    const isQuery = proc.endsWith('.list') || proc.endsWith('.byId');
    const res = isQuery
      ? await fetch(`${url}/trpc/${proc}?input=${encodeURIComponent(JSON.stringify(input ?? {}))}`, { headers: { cookie } })
      : await post(proc, input ?? {}, cookie);
    const body = (await res.json()) as { result?: { data: unknown }; error?: { message: string } };
    if (!res.ok) throw new Error(`${proc}: ${res.status} ${body.error?.message}`);
    return body.result!.data;
  };
}

async function run(label: string, opts: { cancels: boolean; kills: number }) {
  const db = await createThrowawayPostgres();
  const c = await cluster(db.url);
  const t0 = performance.now();
  let killed = 0;
  let cancelled = 0;
  try {
    await c.startWorker(0);
    await c.startWorker(1);
    const users = await Promise.all(Array.from({ length: 4 }, (_, i) => session(c.url, `soak${i}@bench.org`)));
    const [demo] = (await users[0]!('cases.list')).items;
    const ids: string[] = [];
    for (let i = 0; i < JOBS; i++)
      ids.push((await users[i % 4]!('jobs.create', { caseId: demo.id, idempotencyKey: `soak-${label}-${i}` })).id);
    // kill moments: after a random number of finished jobs
    const killAt = Array.from({ length: opts.kills * 2 }, () => Math.floor(rand() * JOBS * 0.8)).sort((a, b) => a - b);
    const toCancel = new Set(opts.cancels ? ids.filter(() => rand() < 0.2) : []);
    const owner = (id: string) => users[ids.indexOf(id) % 4]!;
    for (;;) {
      const all: { id: string; status: string }[] = [];
      for (const u of users) {
        let cursor: string | null = null;
        do {
          const page: { items: { id: string; status: string }[]; nextCursor: string | null } = await u('jobs.list', {
            limit: 100,
            ...(cursor ? { cursor } : {}),
          });
          all.push(...page.items);
          cursor = page.nextCursor;
        } while (cursor);
      }
      const done = all.filter((j) => ['succeeded', 'failed', 'cancelled'].includes(j.status)).length;
      // a kill is due: it waits for a moment when a job is running (a kill between jobs tests nothing)
      while (killAt.length && done >= killAt[0]! && all.some((j) => j.status === 'running')) {
        killAt.shift();
        const i = Math.floor(rand() * 2);
        const runningNow = all.filter((j) => j.status === 'running').length;
        if (process.env.SOAK_VERBOSE) console.log(`            kill worker ${i} at ${done} done, ${runningNow} running`);
        c.workers[i]?.child.kill('SIGKILL');
        await c.workers[i]?.exited;
        killed++;
        await c.startWorker(i);
      }
      for (const id of [...toCancel]) {
        if (rand() < 0.1) {
          toCancel.delete(id);
          await owner(id)('jobs.cancel', { id });
          cancelled++;
        }
      }
      if (done === ids.length) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    const seconds = (performance.now() - t0) / 1000;
    // invariants, read straight from the database and the disk
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const byStatus = Object.fromEntries(
        (await client.query('select status, count(*)::int n from jobs group by status')).rows.map((r) => [r.status, r.n]),
      );
      const succeededWithoutMask = (
        await client.query(
          `select count(*)::int n from jobs j where status = 'succeeded' and not exists (select 1 from job_volumes jv where jv.job_id = j.id and jv.name = 'mask')`,
        )
      ).rows[0].n;
      const volumes: { sha256: string; referenced: boolean }[] = (
        await client.query(
          `select v.sha256, (exists (select 1 from case_volumes cv where cv.volume_id = v.id) or exists (select 1 from job_volumes jv where jv.volume_id = v.id) or exists (select 1 from mask_versions mv where mv.volume_id = v.id)) as referenced from volumes v`,
        )
      ).rows;
      const files = await c.storedVolumes();
      const rowsWithoutFile = volumes.filter((v) => !files.has(v.sha256)).length;
      // the fleet keeps no volume on any machine's disk (outside each worker's read-through cache, VOLUME_CACHE_MB)
      const onDisk = FLEET
        ? c.dataDirs
            .flatMap((d) => (existsSync(d) ? readdirSync(d, { recursive: true }).map(String) : []))
            .filter((f) => f.endsWith('.nii.gz') && !f.startsWith(path.join('cache', 'volumes'))).length
        : 0;
      const referenced = new Set(volumes.filter((v) => v.referenced).map((v) => v.sha256));
      const filesUnreferenced = [...files].filter((f) => !referenced.has(f)).length;
      const terminal = (byStatus.succeeded ?? 0) + (byStatus.failed ?? 0) + (byStatus.cancelled ?? 0);
      const attempts = (
        await client.query(
          'select max(attempts)::int m, sum(attempts)::int s, count(*) filter (where attempts >= 2)::int retried from jobs',
        )
      ).rows[0];
      console.log(
        `  ${label.padEnd(9)} ${JOBS} jobs in ${seconds.toFixed(0)} s (${(JOBS / seconds).toFixed(2)} jobs/s); workers SIGKILLed ${killed}×, cancels sent ${cancelled}`,
      );
      console.log(
        `            terminal ${terminal}/${JOBS} (succeeded ${byStatus.succeeded ?? 0}, failed ${byStatus.failed ?? 0}, cancelled ${byStatus.cancelled ?? 0}); attempts max ${attempts.m}, total ${attempts.s}; ${attempts.retried} jobs ran again after their worker was killed`,
      );
      console.log(
        `            succeeded without a mask ${succeededWithoutMask}; volume rows without ${FLEET ? 'an object' : 'a file'} ${rowsWithoutFile}; ${FLEET ? 'objects' : 'files'} without a referenced row ${filesUnreferenced} (${FLEET ? 'objects' : 'files'} ${files.size}, rows ${volumes.length})${FLEET ? `; volumes in any DATA_DIR ${onDisk}` : ''}`,
      );
      const ok = terminal === JOBS && succeededWithoutMask === 0 && rowsWithoutFile === 0 && filesUnreferenced === 0 && onDisk === 0;
      return { seconds, ok };
    } finally {
      await client.end();
    }
  } finally {
    await c.stop().catch(() => {});
    await db.drop().catch(() => {});
  }
}

console.log(
  FLEET
    ? `\nSoak (fleet layout) — ${JOBS} jobs, an API process and two \`strokeview worker\` processes on the local PostgreSQL, each its own empty DATA_DIR, volumes in an s3rver bucket`
    : `\nSoak — ${JOBS} jobs, an API process and two worker processes on the local PostgreSQL, one DATA_DIR`,
);
const base = BASELINE ? await run('baseline', { cancels: false, kills: 0 }) : undefined;
const soak = await run('soak', { cancels: true, kills: KILLS });
console.log(
  `  ${base ? `throughput ratio soak/baseline ${(base.seconds / soak.seconds).toFixed(2)}×; ` : ''}invariants: ${(base?.ok ?? true) && soak.ok ? 'ok' : 'MISSED'}`,
);
