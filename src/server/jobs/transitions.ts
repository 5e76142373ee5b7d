import type { Kysely } from 'kysely';
import { ACTIVE_STATUSES } from '../../shared/job-status.js';
import { linkJobVolume, updateJob } from '../db/jobs.js';
import type { Database, JobRow } from '../db/tables.js';

type Db = Kysely<Database>;

/**
 * The one place a job's status changes (queued → running → succeeded | failed | cancelled, and
 * running → queued for a retry). Every change is guarded by the status it expects and, for a
 * worker's writes, by the attempt it claimed: a worker whose job was taken over (its lease
 * expired, a newer attempt claimed it) or ended meanwhile gets `null` — "not applied" — and must
 * stop at once, writing nothing more. Each returns the new row when it applied.
 */

/** A worker's hold on a job: the attempt number its claim wrote. */
export interface Lease {
  jobId: string;
  attempt: number;
}

/** queued (or running under a lapsed lease) → running, as attempt `row.attempts + 1`; null if someone else claimed or it ended. */
export function claim(db: Db, row: JobRow): Promise<JobRow | undefined> {
  return updateJob(
    db,
    row.id,
    {
      status: 'running',
      attempts: row.attempts + 1,
      progress: 1,
      message: row.attempts > 0 ? `Restarted (attempt ${row.attempts + 1})` : 'Started',
      ...(row.started_at ? {} : { started_at: new Date() }),
    },
    { statusIn: [...ACTIVE_STATUSES], attempts: row.attempts },
  );
}

/** A running job's progress, written only by the attempt that holds it. */
export function progress(db: Db, lease: Lease, p: { progress: number; message: string }): Promise<JobRow | undefined> {
  return updateJob(db, lease.jobId, p, { statusIn: ['running'], attempts: lease.attempt });
}

/**
 * running → succeeded, in one transaction with saving the result: the job row is locked and its
 * lease checked first (a worker that lost the job stores nothing), then `save` stores the masks
 * (under their hashes' locks) and says what to write, then the guarded update and the links.
 */
export async function succeed(
  db: Db,
  lease: Lease,
  save: (trx: Db) => Promise<{ json: string; links: { name: string; volumeId: string }[] }>,
): Promise<JobRow | undefined> {
  return db.transaction().execute(async (trx) => {
    const held = await trx
      .selectFrom('jobs')
      .select('id')
      .where('id', '=', lease.jobId)
      .where('status', '=', 'running')
      .where('attempts', '=', lease.attempt)
      .forUpdate()
      .executeTakeFirst();
    if (!held) return undefined;
    const result = await save(trx);
    const done = await updateJob(
      trx,
      lease.jobId,
      { status: 'succeeded', progress: 100, message: 'Done', result: result.json, error: null, finished_at: new Date() },
      { statusIn: ['running'], attempts: lease.attempt },
    );
    if (!done) throw new Error('the job changed while it was locked'); // cannot happen: rolls back
    for (const l of result.links) await linkJobVolume(trx, lease.jobId, l.name, l.volumeId);
    return done;
  });
}

/**
 * → failed or cancelled. A worker passes its lease (only its own attempt can end the job); the
 * claim step (cancelled before it started, a missing model), the dead-letter queue and the queue
 * failing pass just the id, guarded by the status alone.
 */
export function end(
  db: Db,
  who: Lease | { jobId: string },
  outcome: { status: 'failed'; message: string; error: string } | { status: 'cancelled'; message?: string },
): Promise<JobRow | undefined> {
  const patch =
    outcome.status === 'failed'
      ? { status: 'failed' as const, message: outcome.message, error: outcome.error, finished_at: new Date() }
      : { status: 'cancelled' as const, message: outcome.message ?? 'Cancelled', finished_at: new Date() };
  return updateJob(db, who.jobId, patch, {
    statusIn: 'attempt' in who ? ['running'] : [...ACTIVE_STATUSES],
    ...('attempt' in who ? { attempts: who.attempt } : {}),
  });
}

/**
 * running → queued for another attempt (a retry, or a shutdown handing it back), by its own
 * attempt only. `error` keeps why this attempt failed, for the final message if retries run out.
 */
export function requeue(db: Db, lease: Lease, message: string, error?: string): Promise<JobRow | undefined> {
  return updateJob(
    db,
    lease.jobId,
    { status: 'queued', message, ...(error ? { error } : {}) },
    { statusIn: ['running'], attempts: lease.attempt },
  );
}

/** A queued job cancelled by its owner before any worker took it. */
export function cancelQueued(db: Db, jobId: string): Promise<JobRow | undefined> {
  return updateJob(
    db,
    jobId,
    { status: 'cancelled', cancel_requested: true, message: 'Cancelled', finished_at: new Date() },
    { statusIn: ['queued'] },
  );
}

/** Asks a queued or running job to stop (the worker sees it at its next stage or patch). */
export function requestCancel(db: Db, jobId: string): Promise<JobRow | undefined> {
  return updateJob(db, jobId, { cancel_requested: true, message: 'Cancelling…' }, { statusIn: [...ACTIVE_STATUSES] });
}

/** The queue entry's id, recorded once the job is enqueued. */
export function enqueued(db: Db, jobId: string, queueJobId: string): Promise<JobRow | undefined> {
  return updateJob(db, jobId, { queue_job_id: queueJobId });
}
