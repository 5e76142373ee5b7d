import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import pg from 'pg';
import { seededRandom } from '../src/server/nifti/fuzz.js';
import { createThrowawayPostgres } from '../src/server/test/databases.js';
import { cluster, session } from './cluster.js';

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

async function run(label: string, opts: { cancels: boolean; kills: number }) {
  const db = await createThrowawayPostgres();
  const c = await cluster(db.url, { fleet: FLEET, bucket: BUCKET });
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
