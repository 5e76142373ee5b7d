import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Kysely, PostgresDialect, sql } from 'kysely';
import pg from 'pg';
import { seededRandom } from '../src/server/nifti/fuzz.js';
import type { Affine } from '../src/shared/nifti.js';
import { writeNiftiGz } from '../src/server/nifti/write.js';
import { connectPostgres } from '../src/server/db/connect.js';
import { migrateToLatest } from '../src/server/db/migrate.js';
import type { Database } from '../src/server/db/tables.js';
import { createThrowawayPostgres } from '../src/server/test/databases.js';
import { makeTestApp, testCpuPool } from '../src/server/test/app.js';
import { CSV_COLUMNS, csvField, studyTable } from '../src/server/studies/table.js';
import { FsVolumeStore } from '../src/server/volumes/store.js';
import { percentile } from './util.js';

// #27 scale: a study of 1,000 cases made directly in the database (cases, their volumes, a
// succeeded job with metrics per case and run, two runs of two models, two raters' mask versions
// on some cases), then
//  a. the dashboard's query (studies.table, what /studies/:id reads) — median and p95 server time
//     of N calls, goal ≤ 50 ms — against the same SQL statements run bare on a pg pool (the
//     baseline), with EXPLAIN (ANALYZE, BUFFERS) of each statement;
//  b. the CSV export (GET /api/studies/:id/table.csv through the app in-process) of a study of
//     1,000 cases × 10 runs = 10,000 rows, rows/s (goal ≥ 10,000/s), against the same rows read
//     bare and written by a bare CSV writer.
// The run of 200 jobs over two worker processes is bench/study-run.ts.

const CASES = Number(process.env.BENCH_STUDY_CASES ?? 1000);
const CALLS = Number(process.env.BENCH_STUDY_CALLS ?? 30);
const RATED = Number(process.env.BENCH_STUDY_RATED ?? 20);
const CSV_RUNS = 10;
/** Other users' jobs in the table besides the study's (the jobs table holds everyone's): the plan at a larger table. */
const OTHER_JOBS = Number(process.env.BENCH_STUDY_OTHER_JOBS ?? 0);
process.env.TEST_DATABASE_URL ??= process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const rand = seededRandom(20261202);

const throwaway = await createThrowawayPostgres();
const handle = await connectPostgres(throwaway.url);
const db = handle.db;
const bare = new pg.Pool({ connectionString: throwaway.url, max: 4 });
const cpu = testCpuPool();
const store = new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-bench-studies-')));

async function ms(fn: () => Promise<unknown>, n: number): Promise<number[]> {
  for (let i = 0; i < 3; i++) await fn();
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return out;
}

const stat = (xs: number[]) => `median ${percentile(xs, 0.5).toFixed(1)} ms, p95 ${percentile(xs, 0.95).toFixed(1)} ms`;

try {
  await migrateToLatest(db);
  const t = makeTestApp({ database: handle, store });
  const register = async (email: string) => {
    const res = await t.app.request('/trpc/auth.register', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin' },
      body: JSON.stringify({ email, password: 'correct horse battery staple' }),
    });
    if (!res.ok) throw new Error(`register: ${res.status} ${await res.text()}`);
    const cookie = res.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    const user = await db.selectFrom('users').select('id').where('email', '=', email).executeTakeFirstOrThrow();
    return { id: user.id, cookie };
  };
  const owner = await register('owner@bench.org');
  const rater = await register('rater@bench.org');

  // ---- the rows ------------------------------------------------------------------------------
  const t0 = performance.now();
  const affine: Affine = [
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 2, 0],
    [0, 0, 0, 1],
  ];
  const grid = { dims: [32, 32, 8] as [number, number, number], affine };
  const maskFile = async (seed: number) => {
    const data = new Uint8Array(32 * 32 * 8);
    for (let i = 0; i < data.length; i++) data[i] = (i * 7 + seed) % 11 < 3 ? 1 : 0;
    const bytes = writeNiftiGz({ ...grid, datatype: 'uint8', data });
    const { sha256 } = await store.put(new Uint8Array(bytes));
    return db
      .insertInto('volumes')
      .values({
        sha256,
        bytes: bytes.length,
        dims: JSON.stringify(grid.dims),
        voxel_size_mm: JSON.stringify([1, 1, 2]),
        datatype: 'uint8',
        affine: JSON.stringify(grid.affine),
      })
      .onConflict((oc) => oc.column('sha256').doNothing())
      .returning('id')
      .executeTakeFirst()
      .then(async (r) => r?.id ?? (await db.selectFrom('volumes').select('id').where('sha256', '=', sha256).executeTakeFirstOrThrow()).id);
  };
  const dwi = await maskFile(0);
  const study = async (name: string) =>
    (await db.insertInto('studies').values({ name, created_by: owner.id }).returning('id').executeTakeFirstOrThrow()).id;
  const dashboardStudy = await study('Bench cohort');
  const csvStudy = await study('Bench cohort, ten models');
  await db
    .insertInto('study_members')
    .values([
      { study_id: dashboardStudy, user_id: owner.id, role: 'owner' },
      { study_id: dashboardStudy, user_id: rater.id, role: 'editor' },
      { study_id: csvStudy, user_id: owner.id, role: 'owner' },
    ])
    .execute();
  const cases: string[] = [];
  for (let i = 0; i < CASES; i += 500) {
    const rows = Array.from({ length: Math.min(500, CASES - i) }, (_, k) => ({
      owner_id: owner.id,
      name: `sub-${String(i + k + 1).padStart(4, '0')}`,
      source: 'upload' as const,
      subject_id: String(i + k + 1).padStart(4, '0'),
    }));
    cases.push(...(await db.insertInto('cases').values(rows).returning('id').execute()).map((r) => r.id));
  }
  const chunks = <T>(xs: T[], n = 500) => Array.from({ length: Math.ceil(xs.length / n) }, (_, i) => xs.slice(i * n, i * n + n));
  for (const c of chunks(cases)) {
    await db
      .insertInto('case_volumes')
      .values(c.flatMap((id) => [{ case_id: id, role: 'dwi' as const, volume_id: dwi }]))
      .execute();
    for (const s of [dashboardStudy, csvStudy])
      await db
        .insertInto('study_cases')
        .values(c.map((id) => ({ study_id: s, case_id: id, added_by: owner.id })))
        .execute();
  }
  const rated = cases.slice(0, RATED);
  const modelMask = new Map<string, string>();
  for (const [i, id] of rated.entries()) modelMask.set(id, await maskFile(100 + i));
  const metrics = () => {
    const trueMl = rand() * 80;
    const predictedMl = trueMl * (0.7 + rand() * 0.6);
    const lp = Math.floor(rand() * 5);
    const lt = Math.floor(rand() * 5);
    return {
      dice: rand(),
      predictedMl,
      trueMl,
      absVolumeDiffMl: Math.abs(predictedMl - trueMl),
      lesionCountPredicted: lp,
      lesionCountTrue: lt,
      lesionCountDiff: Math.abs(lp - lt),
      lesionF1: rand(),
    };
  };
  const started = new Date(Date.now() - 3_600_000);
  const makeRun = async (studyId: string, modelId: string) => {
    const run = (
      await db
        .insertInto('study_runs')
        .values({ study_id: studyId, model_id: modelId, created_by: owner.id })
        .returning('id')
        .executeTakeFirstOrThrow()
    ).id;
    for (const c of chunks(cases)) {
      const jobs = await db
        .insertInto('jobs')
        .values(
          c.map((caseId) => ({
            owner_id: owner.id,
            case_id: caseId,
            model_ids: JSON.stringify([modelId]),
            status: 'succeeded' as const,
            progress: 100,
            message: 'Done',
            result: JSON.stringify({ maskVolumeId: modelMask.get(caseId) ?? dwi, metrics: metrics() }),
            version: 5,
            started_at: started,
            finished_at: new Date(started.getTime() + 2000 + Math.floor(rand() * 2000)),
            expires_at: new Date(Date.now() + 30 * 86_400_000),
            study_run_id: run,
          })),
        )
        .returning(['id', 'case_id'])
        .execute();
      await db
        .insertInto('study_run_jobs')
        .values(jobs.map((j) => ({ run_id: run, case_id: j.case_id, job_id: j.id })))
        .execute();
    }
    return run;
  };
  await makeRun(dashboardStudy, 'adc-dwi-v2');
  await makeRun(dashboardStudy, 'adc-core-v1');
  for (let i = 0; i < CSV_RUNS; i++) await makeRun(csvStudy, `bench-model-${i}`);
  for (const [i, caseId] of rated.entries())
    for (const [k, author] of [owner.id, rater.id].entries())
      await db
        .insertInto('mask_versions')
        .values({
          case_id: caseId,
          author_id: author,
          version: 1,
          volume_id: await maskFile(200 + i * 2 + k),
          voxels: 1000,
          volume_ml: 2,
        })
        .execute();
  if (OTHER_JOBS > 0)
    await sql`insert into jobs (owner_id, case_id, model_ids, status, progress, message, result, version, expires_at)
      select ${rater.id}, ${cases[0]!}, '["adc-dwi-v2"]'::jsonb, 'succeeded', 100, 'Done', '{"metrics":{"dice":0.5}}'::jsonb, 5, now() + interval '30 days'
      from generate_series(1, ${OTHER_JOBS}::int)`.execute(db);
  await sql`analyze`.execute(db);
  const totalJobs = (await db.selectFrom('jobs').select(db.fn.countAll<string>().as('n')).executeTakeFirstOrThrow()).n;
  console.log(
    `\nStudies — ${CASES} cases, 2 runs on the dashboard's study (${RATED} cases with two raters' versions), ${CSV_RUNS} runs on the CSV's; ${totalJobs} job rows, made in ${((performance.now() - t0) / 1000).toFixed(1)} s on the local PostgreSQL`,
  );

  // ---- a. the dashboard's query ------------------------------------------------------------------
  const viewer = { userId: owner.id, admin: false };
  // the statements studies.table runs, captured by a logging Kysely over the same database
  const statements: { sql: string; parameters: readonly unknown[] }[] = [];
  const logged = new Kysely<Database>({
    dialect: new PostgresDialect({ pool: bare }),
    log: (e) => {
      if (e.level === 'query') statements.push({ sql: e.query.sql, parameters: e.query.parameters });
    },
  });
  // the first call: every rater comparison made (later calls find them in the table's cache)
  const c0 = performance.now();
  const table = await studyTable({ db: logged, store, cpu }, viewer, { studyId: dashboardStudy });
  const coldMs = performance.now() - c0;
  console.log(
    `  studies.table: ${table.rows.length} rows, ${table.agreement.cases.length} rated cases, ${statements.length} SQL statements; the first call (every rated case's masks compared in the CPU pool) ${coldMs.toFixed(0)} ms`,
  );
  const server = await ms(() => studyTable({ db, store, cpu }, viewer, { studyId: dashboardStudy }), CALLS);
  const baseline = await ms(async () => {
    for (const s of statements) await bare.query(s.sql, s.parameters as unknown[]);
  }, CALLS);
  const agreementOff = await ms(async () => {
    for (const s of statements) if (!/mask_versions/.test(s.sql)) await bare.query(s.sql, s.parameters as unknown[]);
  }, CALLS);
  const http = await ms(async () => {
    const res = await t.app.request(`/trpc/studies.table?input=${encodeURIComponent(JSON.stringify({ studyId: dashboardStudy }))}`, {
      headers: { cookie: owner.cookie },
    });
    if (!res.ok) throw new Error(`studies.table: ${res.status}`);
    await res.arrayBuffer();
  }, CALLS);
  const med = percentile(server, 0.5);
  const baseMed = percentile(baseline, 0.5);
  console.log(
    `  studies.table (service, ${CALLS} calls)         ${stat(server)}  goal ≤ 50 ms ${percentile(server, 0.95) <= 50 ? 'ok' : 'MISSED'}`,
  );
  console.log(`  studies.table over HTTP in-process (tRPC)     ${stat(http)}`);
  console.log(
    `  baseline: its ${statements.length} statements bare on pg    ${stat(baseline)}  (without the agreement's: ${stat(agreementOff)})`,
  );
  console.log(`  ratio service/bare SQL ${(med / baseMed).toFixed(2)}×`);
  console.log('  EXPLAIN (ANALYZE, BUFFERS) of each statement:');
  for (const s of statements) {
    const plan = await bare.query(`explain (analyze, buffers) ${s.sql}`, s.parameters as unknown[]);
    const lines = plan.rows.map((r: Record<string, string>) => r['QUERY PLAN']!);
    console.log(`    -- ${s.sql.replace(/\s+/g, ' ').slice(0, 150)}…`);
    for (const l of lines) console.log(`       ${l}`);
  }

  // ---- b. the CSV export -------------------------------------------------------------------------
  const csv = async () => {
    const res = await t.app.request(`/api/studies/${csvStudy}/table.csv`, { headers: { cookie: owner.cookie } });
    if (!res.ok) throw new Error(`table.csv: ${res.status} ${await res.text()}`);
    const text = await res.text();
    return text.split('\r\n').length - 2;
  };
  const rows = await csv();
  const csvMs = await ms(csv, 5);
  const bareCsv = async () => {
    const r = await bare.query(
      `select r.id run_id, r.model_id, c.id case_id, c.name case_name, c.subject_id, j.id job_id, j.status, j.result -> 'metrics' m
         from study_runs r join study_run_jobs srj on srj.run_id = r.id join cases c on c.id = srj.case_id left join jobs j on j.id = srj.job_id
        where r.study_id = $1 order by r.created_at desc, c.name`,
      [csvStudy],
    );
    let out = `${CSV_COLUMNS.map(([h]) => h).join(',')}\r\n`;
    for (const x of r.rows as Record<string, never>[]) {
      const m = (x.m ?? {}) as Record<string, number | null>;
      out += [
        x.run_id,
        x.model_id,
        x.case_id,
        x.case_name,
        x.subject_id,
        x.job_id,
        x.status,
        m.dice,
        m.absVolumeDiffMl,
        m.lesionCountDiff,
        m.lesionF1,
        m.predictedMl,
        m.trueMl,
        m.lesionCountPredicted,
        m.lesionCountTrue,
      ]
        .map((v) => csvField((v ?? null) as string | number | null))
        .join(',');
      out += '\r\n';
    }
    return out.length;
  };
  const bareMs = await ms(bareCsv, 5);
  const rate = rows / (percentile(csvMs, 0.5) / 1000);
  const bareRate = rows / (percentile(bareMs, 0.5) / 1000);
  console.log(
    `  CSV export, ${rows} rows through GET table.csv  median ${percentile(csvMs, 0.5).toFixed(0)} ms = ${Math.round(rate)} rows/s  goal ≥ 10,000 rows/s ${rate >= 10_000 ? 'ok' : 'MISSED'}`,
  );
  console.log(
    `  baseline: one bare query + a bare CSV writer   median ${percentile(bareMs, 0.5).toFixed(0)} ms = ${Math.round(bareRate)} rows/s; ratio export/bare ${(rate / bareRate).toFixed(2)}×`,
  );
  await logged.destroy().catch(() => {});
} finally {
  await cpu.destroy().catch(() => {});
  await bare.end().catch(() => {});
  await handle.close().catch(() => {});
  await throwaway.drop();
}
