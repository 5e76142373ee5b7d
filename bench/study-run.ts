import pg from 'pg';
import { createThrowawayPostgres } from '../src/server/test/databases.js';
import { cluster, session } from './cluster.js';
import { percentile } from './util.js';

// #27 scale: a study run of BENCH_RUN_JOBS jobs (default 200) over two worker processes on the
// local PostgreSQL (the soak harness: an API process, two worker processes of the build, one
// DATA_DIR). The study's cases are made in the database (each a case of the demo phantom's
// volumes, so every job is the same work); the run's progress is sampled every 500 ms over
// studies.runs.byId. When a third of the run is done another user submits one single job. At the
// end: every job terminal, the sampled progress and done counts monotone, and that single job's
// queued→started time against the median job time of the same run (the goal: it starts within one
// job's time — a worker that frees up takes it before the run's waiting jobs).

const JOBS = Number(process.env.BENCH_RUN_JOBS ?? 200);
process.env.TEST_DATABASE_URL ??= process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

interface Sample {
  at: number;
  progress: number;
  done: number;
  status: string;
}

const db = await createThrowawayPostgres();
const c = await cluster(db.url);
const client = new pg.Client({ connectionString: db.url });
try {
  await c.startWorker(0);
  await c.startWorker(1);
  await client.connect();
  const researcher = await session(c.url, 'researcher@bench.org');
  const clinician = await session(c.url, 'clinician@bench.org');
  const [demo] = (await researcher('cases.list')).items;
  const owner = (await client.query(`select id from users where email = 'researcher@bench.org'`)).rows[0].id as string;
  // JOBS cases of the demo's volumes, the researcher's own
  const made = await client.query(
    `with c as (insert into cases (owner_id, name, source, subject_id)
       select $1, 'sub-' || lpad(i::text, 4, '0'), 'upload', lpad(i::text, 4, '0') from generate_series(1, $2::int) i returning id)
     insert into case_volumes (case_id, role, volume_id) select c.id, cv.role, cv.volume_id from c cross join case_volumes cv where cv.case_id = $3
     returning case_id`,
    [owner, JOBS, demo.id],
  );
  const caseIds = [...new Set(made.rows.map((r: { case_id: string }) => r.case_id))];
  const study = await researcher('studies.create', { name: 'Bench run' });
  for (let i = 0; i < caseIds.length; i += 100)
    await researcher('studies.cases.add', { studyId: study.id, caseIds: caseIds.slice(i, i + 100) });
  console.log(
    `\nStudy run — ${JOBS} jobs (${demo.name}) over two worker processes (WORKER_CONCURRENCY=1, ORT_THREADS=1 each) on the local PostgreSQL`,
  );
  const t0 = performance.now();
  const run = await researcher('studies.run', { studyId: study.id });
  const samples: Sample[] = [];
  let single: { id: string; at: number } | undefined;
  let last;
  for (;;) {
    last = await researcher('studies.runs.byId', { id: run.id });
    const done = last.succeeded + last.failed + last.cancelled;
    samples.push({ at: performance.now() - t0, progress: last.progress, done, status: last.status });
    if (!single && done >= Math.ceil(JOBS / 3)) {
      const job = await clinician('jobs.create', { caseId: demo.id });
      single = { id: job.id, at: performance.now() - t0 };
    }
    if (last.status !== 'running') break;
    await new Promise((r) => setTimeout(r, 500));
  }
  const seconds = (performance.now() - t0) / 1000;
  // the single job, until it ends (it may still be running when the run is done)
  let singleJob;
  for (;;) {
    singleJob = await clinician('jobs.byId', { id: single!.id });
    if (['succeeded', 'failed', 'cancelled'].includes(singleJob.status)) break;
    await new Promise((r) => setTimeout(r, 250));
  }
  const byStatus = Object.fromEntries(
    (await client.query('select status, count(*)::int n from jobs where study_run_id = $1 group by status', [run.id])).rows.map((r) => [
      r.status,
      r.n,
    ]),
  );
  const terminal = (byStatus.succeeded ?? 0) + (byStatus.failed ?? 0) + (byStatus.cancelled ?? 0);
  const monotone = samples.every((s, i) => i === 0 || (s.progress >= samples[i - 1]!.progress && s.done >= samples[i - 1]!.done));
  const durations = (last.cases as { startedAt: string | null; finishedAt: string | null }[])
    .filter((x) => x.startedAt && x.finishedAt)
    .map((x) => new Date(x.finishedAt!).getTime() - new Date(x.startedAt!).getTime());
  const medianJob = percentile(durations, 0.5);
  const wait = new Date(singleJob.startedAt).getTime() - new Date(singleJob.createdAt).getTime();
  console.log(
    `  ${JOBS} jobs in ${seconds.toFixed(0)} s (${(JOBS / seconds).toFixed(2)} jobs/s); terminal ${terminal}/${JOBS} (succeeded ${byStatus.succeeded ?? 0}, failed ${byStatus.failed ?? 0}, cancelled ${byStatus.cancelled ?? 0}); run ${last.status}, progress ${last.progress}`,
  );
  console.log(
    `  progress sampled ${samples.length}× (every 500 ms): monotone ${monotone ? 'yes' : 'NO'} (${samples[0]!.progress} → ${samples.at(-1)!.progress}; done ${samples[0]!.done} → ${samples.at(-1)!.done})`,
  );
  console.log(
    `  median job ${(medianJob / 1000).toFixed(2)} s (p95 ${(percentile(durations, 0.95) / 1000).toFixed(2)} s); another user's single job submitted at ${(single!.at / 1000).toFixed(0)} s: queued→started ${(wait / 1000).toFixed(2)} s = ${(wait / medianJob).toFixed(2)}× a job  goal ≤ 1× ${wait <= medianJob ? 'ok' : 'MISSED'}; it ${singleJob.status}`,
  );
  console.log(`  invariants: ${terminal === JOBS && monotone && singleJob.status === 'succeeded' ? 'ok' : 'MISSED'}`);
} finally {
  await client.end().catch(() => {});
  await c.stop().catch(() => {});
  await db.drop().catch(() => {});
}
