import { type Kysely, sql } from 'kysely';
import type { SegmentationMetrics } from '../../shared/models.js';
import { ACTIVE_STATUSES } from '../../shared/job-status.js';
import { JOB_COLUMNS } from './jobs.js';
import type { Database, JobRow, JobStatus, StudyRunRow } from './tables.js';

type Db = Kysely<Database>;

/**
 * Rows per statement for a run's inserts and look-ups: PostgreSQL takes at most 65,535 bind
 * parameters in one statement (a job row binds 6), so a run over a study of any size is written
 * in chunks of this many cases.
 */
export const RUN_CHUNK = 5000;

function chunked<T>(xs: T[], n = RUN_CHUNK): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}

const RUN_COLUMNS = ['id', 'study_id', 'model_id', 'created_by', 'rerun', 'cancel_requested', 'created_at'] as const;

export type StudyRunListed = StudyRunRow & { created_by_email: string | null };

const runs = (db: Db) =>
  db
    .selectFrom('study_runs as r')
    .leftJoin('users as u', 'u.id', 'r.created_by')
    .select([
      'r.id',
      'r.study_id',
      'r.model_id',
      'r.created_by',
      'r.rerun',
      'r.cancel_requested',
      'r.created_at',
      'u.email as created_by_email',
    ]);

export function findStudyRun(db: Db, id: string): Promise<StudyRunListed | undefined> {
  return runs(db).where('r.id', '=', id).executeTakeFirst();
}

export function listStudyRuns(db: Db, studyId: string): Promise<StudyRunListed[]> {
  return runs(db).where('r.study_id', '=', studyId).orderBy('r.created_at', 'desc').orderBy('r.id', 'desc').execute();
}

/** A run with its jobs' counts and timings, aggregated in the database (runs.list: one query for a page). */
export interface RunAggregate {
  total: number;
  queued: number;
  running: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  reused: number;
  /** Sum over its cases of each one's progress (a finished case 100). */
  progress_sum: number;
  version_sum: number;
  /** Mean wall time of the succeeded jobs it ran itself (a reused result took no time of it). */
  mean_job_ms: number | null;
  /** When each of its running jobs started (null: not recorded). */
  running_started: (Date | string | null)[] | null;
}

/**
 * A page of a study's runs, newest first, each with its aggregate: one statement (keyset paging
 * on created_at, id; `limit + 1` rows, the extra one saying there is a next page). A case whose
 * job was deleted (retention) counts as failed, as in summarizeRun.
 */
export async function listStudyRunAggregates(
  db: Db,
  studyId: string,
  page: { limit: number; cursor?: string | undefined },
): Promise<(StudyRunListed & RunAggregate)[]> {
  const st = sql`coalesce(j.status, 'failed')`;
  const rows = await sql<StudyRunListed & RunAggregate>`
    select r.id, r.study_id, r.model_id, r.created_by, r.rerun, r.cancel_requested, r.created_at, u.email as created_by_email,
      count(srj.case_id)::int as total,
      (count(*) filter (where ${st} = 'queued'))::int as queued,
      (count(*) filter (where ${st} = 'running'))::int as running,
      (count(*) filter (where ${st} = 'succeeded'))::int as succeeded,
      (count(*) filter (where srj.case_id is not null and ${st} = 'failed'))::int as failed,
      (count(*) filter (where ${st} = 'cancelled'))::int as cancelled,
      (count(*) filter (where srj.reused))::int as reused,
      coalesce(sum(case when ${st} in ('queued', 'running') then coalesce(j.progress, 0) else 100 end) filter (where srj.case_id is not null), 0)::float8 as progress_sum,
      coalesce(sum(j.version), 0)::float8 as version_sum,
      (avg(extract(epoch from (j.finished_at - j.started_at)) * 1000)
        filter (where j.status = 'succeeded' and not srj.reused and j.started_at is not null and j.finished_at is not null))::float8 as mean_job_ms,
      array_agg(j.started_at) filter (where j.status = 'running') as running_started
    from study_runs r
    left join users u on u.id = r.created_by
    left join study_run_jobs srj on srj.run_id = r.id
    left join jobs j on j.id = srj.job_id
    where r.study_id = ${studyId}
      ${page.cursor ? sql`and (r.created_at, r.id) < (select created_at, id from study_runs where id = ${page.cursor})` : sql``}
    group by r.id, u.email
    order by r.created_at desc, r.id desc
    limit ${page.limit + 1}`.execute(db);
  return rows.rows;
}

export function insertStudyRun(db: Db, v: { studyId: string; modelId: string; createdBy: string; rerun: boolean }): Promise<StudyRunRow> {
  return db
    .insertInto('study_runs')
    .values({ study_id: v.studyId, model_id: v.modelId, created_by: v.createdBy, rerun: v.rerun })
    .returning(RUN_COLUMNS)
    .executeTakeFirstOrThrow();
}

/**
 * Of these cases, the newest job of this one model that can answer a run: succeeded (preferred)
 * or still queued or running, not being cancelled, and visible to the run — the caller's own, or
 * one an earlier run of this study used. A case's volumes never change once it is made (an upload
 * makes a new case), so the same case is the same input.
 */
export async function reusableJobs(
  db: Db,
  v: { studyId: string; userId: string; modelId: string; caseIds: string[]; liveUntil: Date },
): Promise<Map<string, JobRow>> {
  const best = new Map<string, JobRow>();
  for (const caseIds of chunked(v.caseIds)) {
    const rows = await db
      .selectFrom('jobs')
      .select(JOB_COLUMNS)
      .where('case_id', 'in', caseIds)
      .where('status', 'in', ['succeeded', ...ACTIVE_STATUSES])
      .where('cancel_requested', '=', false)
      // a result retention deletes soon would leave the run's row empty: the case runs again
      .where('expires_at', '>', v.liveUntil)
      .where(sql<boolean>`model_ids = ${JSON.stringify([v.modelId])}::jsonb`)
      .where((eb) =>
        eb.or([
          eb('owner_id', '=', v.userId),
          eb(
            'id',
            'in',
            eb
              .selectFrom('study_run_jobs as srj')
              .innerJoin('study_runs as r', 'r.id', 'srj.run_id')
              .select('srj.job_id')
              .where('r.study_id', '=', v.studyId)
              .where('srj.job_id', 'is not', null)
              .$narrowType<{ job_id: string }>(),
          ),
        ]),
      )
      .orderBy(sql`case when status = 'succeeded' then 0 else 1 end`)
      .orderBy('created_at', 'desc')
      .execute();
    for (const r of rows) if (!best.has(r.case_id)) best.set(r.case_id, r);
  }
  return best;
}

/** A run's jobs, one insert per RUN_CHUNK cases (the caller's transaction makes them all or none). */
export async function insertRunJobs(
  db: Db,
  v: { runId: string; ownerId: string; modelId: string; caseIds: string[]; expiresAt: Date },
): Promise<JobRow[]> {
  const out: JobRow[] = [];
  for (const caseIds of chunked(v.caseIds))
    out.push(
      ...(await db
        .insertInto('jobs')
        .values(
          caseIds.map((caseId) => ({
            owner_id: v.ownerId,
            case_id: caseId,
            model_ids: JSON.stringify([v.modelId]),
            expires_at: v.expiresAt,
            message: 'Waiting for a worker',
            study_run_id: v.runId,
          })),
        )
        .returning(JOB_COLUMNS)
        .execute()),
    );
  return out;
}

export async function linkRunJobs(db: Db, runId: string, links: { caseId: string; jobId: string; reused: boolean }[]): Promise<void> {
  for (const chunk of chunked(links))
    await db
      .insertInto('study_run_jobs')
      .values(chunk.map((l) => ({ run_id: runId, case_id: l.caseId, job_id: l.jobId, reused: l.reused })))
      .execute();
}

/** A run's row per case, as stored: the job's state, timings and metrics (not its lesion list). */
export interface RunCaseRow {
  case_id: string;
  case_name: string;
  subject_id: string | null;
  job_id: string | null;
  reused: boolean;
  status: JobStatus | null;
  progress: number | null;
  message: string | null;
  error: string | null;
  version: number | null;
  metrics: SegmentationMetrics | null;
  started_at: Date | null;
  finished_at: Date | null;
}

export function runCaseRows(db: Db, runId: string): Promise<RunCaseRow[]> {
  return db
    .selectFrom('study_run_jobs as srj')
    .innerJoin('cases as c', 'c.id', 'srj.case_id')
    .leftJoin('jobs as j', 'j.id', 'srj.job_id')
    .select([
      'srj.case_id',
      'c.name as case_name',
      'c.subject_id',
      'srj.job_id',
      'srj.reused',
      'j.status',
      'j.progress',
      'j.message',
      'j.error',
      'j.version',
      sql<SegmentationMetrics | null>`case when j.status = 'succeeded' then j.result -> 'metrics' end`.as('metrics'),
      'j.started_at',
      'j.finished_at',
    ])
    .where('srj.run_id', '=', runId)
    .orderBy('c.name')
    .orderBy('srj.case_id')
    .execute() as Promise<RunCaseRow[]>;
}

/**
 * What cancelling a run stops: its jobs still queued or running that some run queued (a single
 * job it reused is its owner's to cancel) and that no other run still wants (one not being
 * cancelled answers a case with the same job: it keeps it). A subquery of their ids.
 */
function cancellableRunJobIds(db: Db, runIds: string[]) {
  return db
    .selectFrom('jobs as cj')
    .innerJoin('study_run_jobs as mine', 'mine.job_id', 'cj.id')
    .select('cj.id')
    .where('mine.run_id', 'in', runIds)
    .where('cj.study_run_id', 'is not', null)
    .where('cj.status', 'in', [...ACTIVE_STATUSES])
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('study_run_jobs as other')
            .innerJoin('study_runs as r', 'r.id', 'other.run_id')
            .select('other.run_id')
            .whereRef('other.job_id', '=', 'cj.id')
            .where('other.run_id', 'not in', runIds)
            .where('r.cancel_requested', '=', false),
        ),
      ),
    );
}

/**
 * Cancels these runs' cancellable jobs in two set-based statements: the queued ones end now
 * (cancelled), the running ones are asked to stop (their worker ends them at its next stage).
 * Returns the rows each statement changed; the caller takes them off the queue and announces them.
 */
export async function cancelRunJobs(db: Db, runIds: string[]): Promise<{ cancelled: JobRow[]; requested: JobRow[] }> {
  if (!runIds.length) return { cancelled: [], requested: [] };
  const cancelled = await db
    .updateTable('jobs')
    .set({ status: 'cancelled', cancel_requested: true, message: 'Cancelled', finished_at: new Date(), version: sql<number>`version + 1` })
    .where('id', 'in', cancellableRunJobIds(db, runIds))
    .where('status', '=', 'queued')
    .returning(JOB_COLUMNS)
    .execute();
  const requested = await db
    .updateTable('jobs')
    .set({ cancel_requested: true, message: 'Cancelling…', version: sql<number>`version + 1` })
    .where('id', 'in', cancellableRunJobIds(db, runIds))
    .where('status', '=', 'running')
    .where('cancel_requested', '=', false)
    .returning(JOB_COLUMNS)
    .execute();
  return { cancelled, requested };
}

/** A study's runs that still have a job queued or running (deleting the study cancels them first). */
export async function activeRunIdsOfStudy(db: Db, studyId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('study_runs as r')
    .select('r.id')
    .where('r.study_id', '=', studyId)
    .where(({ exists, selectFrom }) =>
      exists(
        selectFrom('study_run_jobs as srj')
          .innerJoin('jobs as j', 'j.id', 'srj.job_id')
          .select('srj.job_id')
          .whereRef('srj.run_id', '=', 'r.id')
          .where('j.status', 'in', [...ACTIVE_STATUSES]),
      ),
    )
    .execute();
  return rows.map((r) => r.id);
}

export async function markRunsCancelRequested(db: Db, ids: string[]): Promise<void> {
  if (ids.length) await db.updateTable('study_runs').set({ cancel_requested: true }).where('id', 'in', ids).execute();
}

/** The ids of a run's jobs that may still change (its progress stream listens to these). */
export async function activeRunJobIds(db: Db, runId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('study_run_jobs as srj')
    .innerJoin('jobs as j', 'j.id', 'srj.job_id')
    .select('j.id')
    .where('srj.run_id', '=', runId)
    .where('j.status', 'in', [...ACTIVE_STATUSES])
    .execute();
  return rows.map((r) => r.id);
}

/** The stored file of each succeeded job's mask, by job id. */
export async function jobMaskFiles(db: Db, jobIds: string[]): Promise<Map<string, string>> {
  if (!jobIds.length) return new Map();
  const rows = await db
    .selectFrom('jobs as j')
    .innerJoin('volumes as v', (join) => join.on(sql<boolean>`v.id = (j.result ->> 'maskVolumeId')::uuid`))
    .select(['j.id', 'v.sha256'])
    .where('j.id', 'in', jobIds)
    .where('j.status', '=', 'succeeded')
    .execute();
  return new Map(rows.map((r) => [r.id, r.sha256]));
}

/** Each study member's latest saved version of each of the study's cases, with its stored file. */
export function latestVersionsByRater(db: Db, studyId: string) {
  return db
    .selectFrom('mask_versions as mv')
    .innerJoin('study_cases as sc', (join) => join.onRef('sc.case_id', '=', 'mv.case_id').on('sc.study_id', '=', studyId))
    .innerJoin('study_members as sm', (join) => join.onRef('sm.user_id', '=', 'mv.author_id').on('sm.study_id', '=', studyId))
    .innerJoin('users as u', 'u.id', 'mv.author_id')
    .innerJoin('cases as c', 'c.id', 'mv.case_id')
    .innerJoin('volumes as v', 'v.id', 'mv.volume_id')
    .distinctOn(['mv.case_id', 'mv.author_id'])
    .select([
      'mv.id',
      'mv.case_id',
      'c.name as case_name',
      'c.subject_id',
      'mv.author_id',
      'u.email',
      'v.sha256',
      'mv.volume_ml',
      'mv.created_at',
    ])
    .orderBy('mv.case_id')
    .orderBy('mv.author_id')
    .orderBy('mv.version', 'desc')
    .execute();
}

/** Whether this job answers a run of a study the user is a member of, on a case still in that study. */
export async function jobInMembersRun(db: Db, userId: string, jobId: string): Promise<boolean> {
  const row = await db
    .selectFrom('study_run_jobs as srj')
    .innerJoin('study_runs as r', 'r.id', 'srj.run_id')
    .innerJoin('study_members as m', (join) => join.onRef('m.study_id', '=', 'r.study_id').on('m.user_id', '=', userId))
    .innerJoin('study_cases as sc', (join) => join.onRef('sc.study_id', '=', 'r.study_id').onRef('sc.case_id', '=', 'srj.case_id'))
    .select('srj.run_id')
    .where('srj.job_id', '=', jobId)
    .limit(1)
    .executeTakeFirst();
  return row !== undefined;
}
