import { type Kysely, type Transaction, sql } from 'kysely';
import { ACTIVE_STATUSES, TERMINAL_STATUSES } from '../../shared/job-status.js';
import { compiledSelect } from './compiled.js';
import { afterCursor } from './paging.js';
import type { Database, JobRow, JobStatus } from './tables.js';

type Db = Kysely<Database> | Transaction<Database>;
export const JOB_COLUMNS = [
  'id',
  'owner_id',
  'case_id',
  'model_ids',
  'status',
  'progress',
  'message',
  'attempts',
  'error',
  'result',
  'version',
  'cancel_requested',
  'idempotency_key',
  'queue_job_id',
  'created_at',
  'started_at',
  'finished_at',
  'expires_at',
  'study_run_id',
] as const;

export async function findJob(db: Db, id: string): Promise<JobRow | undefined> {
  return (await jobQuery(db, null, id))[0];
}

/** Compiled once (db/compiled.ts): jobs.byId and every poll of a job read it. */
const jobQuery = compiledSelect(
  () => '',
  (db, _: null, id: string) => db.selectFrom('jobs').select(JOB_COLUMNS).where('id', '=', id),
);

export function findJobByKey(db: Db, ownerId: string, key: string): Promise<JobRow | undefined> {
  return db.selectFrom('jobs').select(JOB_COLUMNS).where('owner_id', '=', ownerId).where('idempotency_key', '=', key).executeTakeFirst();
}

export function insertJob(
  db: Db,
  v: { ownerId: string; caseId: string; modelIds: string[]; idempotencyKey: string | null; expiresAt: Date },
): Promise<JobRow> {
  return db
    .insertInto('jobs')
    .values({
      owner_id: v.ownerId,
      case_id: v.caseId,
      model_ids: JSON.stringify(v.modelIds),
      idempotency_key: v.idempotencyKey,
      expires_at: v.expiresAt,
      message: 'Waiting for a worker',
    })
    .returning(JOB_COLUMNS)
    .executeTakeFirstOrThrow();
}

/**
 * Applies a change and bumps the version; `onlyIf` guards it by the statuses expected and the
 * attempt number (see jobs/transitions.ts, the only caller that changes a status).
 */
export async function updateJob(
  db: Db,
  id: string,
  patch: Partial<{
    status: JobStatus;
    progress: number;
    message: string;
    attempts: number;
    error: string | null;
    result: string | null;
    cancel_requested: boolean;
    queue_job_id: string;
    started_at: Date;
    finished_at: Date;
  }>,
  onlyIf?: { statusIn: JobStatus[]; attempts?: number },
): Promise<JobRow | undefined> {
  let q = db
    .updateTable('jobs')
    .set({ ...patch, version: sql<number>`version + 1` })
    .where('id', '=', id);
  if (onlyIf) q = q.where('status', 'in', onlyIf.statusIn);
  if (onlyIf?.attempts !== undefined) q = q.where('attempts', '=', onlyIf.attempts);
  return q.returning(JOB_COLUMNS).executeTakeFirst();
}

export function listJobs(
  db: Db,
  viewer: { userId: string; admin: boolean },
  opts: { caseId?: string | undefined; cursor?: string | undefined; limit: number },
): Promise<JobRow[]> {
  let q = db.selectFrom('jobs').select(JOB_COLUMNS).orderBy('created_at', 'desc').orderBy('id', 'desc').limit(opts.limit);
  if (!viewer.admin) q = q.where('owner_id', '=', viewer.userId);
  if (opts.caseId) q = q.where('case_id', '=', opts.caseId);
  if (opts.cursor) q = q.where(afterCursor('jobs', opts.cursor, 'desc'));
  return q.execute();
}

export async function countActiveJobs(db: Db, ownerId?: string): Promise<number> {
  // A study run's jobs are admitted apart (studies/runs.ts): they never fill the single-job queue.
  let q = db
    .selectFrom('jobs')
    .select(({ fn }) => fn.countAll<string>().as('n'))
    .where('status', 'in', [...ACTIVE_STATUSES])
    .where('study_run_id', 'is', null);
  if (ownerId) q = q.where('owner_id', '=', ownerId);
  return Number((await q.executeTakeFirstOrThrow()).n);
}

/** A user's study-run jobs that are queued or running (the run admission cap, MAX_RUN_JOBS_PER_USER). */
export async function activeRunJobCount(db: Db, ownerId: string): Promise<number> {
  const row = await db
    .selectFrom('jobs')
    .select(({ fn }) => fn.countAll<string>().as('n'))
    .where('status', 'in', [...ACTIVE_STATUSES])
    .where('study_run_id', 'is not', null)
    .where('owner_id', '=', ownerId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

/** The ids of a user's jobs that are queued or running. */
export async function activeJobIdsOf(db: Db, ownerId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('jobs')
    .select('id')
    .where('owner_id', '=', ownerId)
    .where('status', 'in', [...ACTIVE_STATUSES])
    .execute();
  return rows.map((r) => r.id);
}

/** Jobs queued or running that belong to guest accounts, all together. */
export async function countActiveGuestJobs(db: Db): Promise<number> {
  const row = await activeJobsWithOwners(db).where('users.role', '=', 'guest').executeTakeFirstOrThrow();
  return Number(row.n);
}

/** Counts jobs queued or running, joined with their owners (for shares of the queue by kind of account). */
const activeJobsWithOwners = (db: Db) =>
  db
    .selectFrom('jobs')
    .innerJoin('users', 'users.id', 'jobs.owner_id')
    .select(({ fn }) => fn.countAll<string>().as('n'))
    .where('jobs.status', 'in', [...ACTIVE_STATUSES])
    .where('jobs.study_run_id', 'is', null);

/**
 * "New" accounts: registered within `hours` and with no job that ever succeeded — what a flood of
 * fresh registrations looks like. The active jobs they hold together, and whether `userId` is one.
 */
export async function newAccountLoad(db: Db, userId: string, hours: number): Promise<{ active: number; isNew: boolean }> {
  const since = new Date(Date.now() - hours * 3_600_000);
  const fresh = (u: string) =>
    sql<boolean>`(${sql.ref(`${u}.created_at`)} > ${since} and not exists (select 1 from jobs s where s.owner_id = ${sql.ref(`${u}.id`)} and s.status = 'succeeded'))`;
  const row = await activeJobsWithOwners(db).where('users.role', '<>', 'guest').where(fresh('users')).executeTakeFirstOrThrow();
  const me = await db.selectFrom('users as me').select(fresh('me').as('is_new')).where('me.id', '=', userId).executeTakeFirst();
  return { active: Number(row.n), isNew: Boolean(me?.is_new) };
}

export async function countJobsByStatus(db: Db): Promise<Record<string, number>> {
  const rows = await db
    .selectFrom('jobs')
    .select(['status', ({ fn }) => fn.countAll<string>().as('n')])
    .groupBy('status')
    .execute();
  return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
}

export async function linkJobVolume(db: Db, jobId: string, name: string, volumeId: string): Promise<void> {
  await db
    .insertInto('job_volumes')
    .values({ job_id: jobId, name, volume_id: volumeId })
    .onConflict((oc) => oc.columns(['job_id', 'name']).doUpdateSet({ volume_id: volumeId }))
    .execute();
}

export async function deleteExpiredJobs(db: Db, now: Date): Promise<number> {
  const r = await db
    .deleteFrom('jobs')
    .where('expires_at', '<=', now)
    .where('status', 'in', [...TERMINAL_STATUSES])
    .executeTakeFirst();
  return Number(r.numDeletedRows);
}
