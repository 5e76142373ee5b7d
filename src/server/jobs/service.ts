import { type Kysely, sql } from 'kysely';
import type { PgBoss } from 'pg-boss';
import type { JobProgressEvent, JobResultView, JobView } from '../../shared/jobs.js';
import type { SegmentationMetrics } from '../../shared/models.js';
import { activeJobLimit, guestQueueLimit, newAccountQueueLimit } from '../auth/quotas.js';
import { type VolumeLinks, toVolumeDescriptor } from '../volumes/descriptors.js';
import { type Viewer, caseNames } from '../db/cases.js';
import { caseToEdit } from '../cases/access.js';
import { findVolumes } from '../db/volumes.js';
import {
  JOB_COLUMNS,
  activeJobIdsOf,
  countActiveGuestJobs,
  countActiveJobs,
  newAccountLoad,
  findJob,
  findJobByKey,
  insertJob,
  listJobs,
} from '../db/jobs.js';
import { toPage } from '../db/paging.js';
import { jobInMembersRun } from '../db/study-runs.js';
import { isTerminal } from '../../shared/job-status.js';
import * as transition from './transitions.js';
import type { Database, JobRow } from '../db/tables.js';
import type { Env } from '../env.js';
import { conflict, forbidden, invalid, notFound, tooMany } from '../errors.js';
import type { JobEventBus } from './events.js';
import type { StreamCaps } from './stream-limits.js';
import { type QueueJobData, SEGMENTATION_QUEUE } from './queue.js';

import type { LesionList } from '../../shared/lesions.js';

type Db = Kysely<Database>;

/** What a finished job stores in `jobs.result`. */
export interface StoredResult {
  maskVolumeId: string;
  perModel: { modelId: string; volumeId: string }[];
  metrics: SegmentationMetrics;
  notes?: string[];
  /** Absent on results stored before lesion lists existed. */
  lesions?: LesionList;
}

export interface JobSystem {
  boss: PgBoss;
  bus: JobEventBus;
  /** Open progress streams per user and session in this process (jobs/progress-stream.ts). */
  streams: StreamCaps;
  /** Set when this process runs workers: wakes them at once for a new job (no poll wait). */
  wake?: () => void;
}

export function toEvent(row: JobRow, at?: number): JobProgressEvent {
  return {
    id: row.id,
    status: row.status,
    progress: row.progress,
    message: row.message,
    version: row.version,
    error: row.error,
    ...(at ? { at } : {}),
  };
}

export async function publish(bus: JobEventBus, row: JobRow | undefined): Promise<void> {
  if (row) await bus.publish(toEvent(row, Date.now())).catch(() => {});
}

/** One job as the API returns it (see toJobViews). */
export async function toJobView(db: Db, row: JobRow, links: VolumeLinks): Promise<JobView> {
  return (await toJobViews(db, [row], links))[0]!;
}

/**
 * Jobs as the API returns them, with signed links to their masks: two queries for any number of
 * jobs (their cases' names, their mask volumes), not one per mask per job.
 */
export async function toJobViews(db: Db, rows: JobRow[], links: VolumeLinks): Promise<JobView[]> {
  const done = rows.filter((r) => r.status === 'succeeded' && r.result);
  const storedOf = (r: JobRow) => r.result as StoredResult;
  const caseIds = [...new Set(done.map((r) => r.case_id))];
  const names = await caseNames(db, caseIds);
  const volumes = await findVolumes(
    db,
    done.flatMap((r) => [storedOf(r).maskVolumeId, ...storedOf(r).perModel.map((p) => p.volumeId)]),
  );
  const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
  return rows.map((row) => {
    let result: JobResultView | null = null;
    if (row.status === 'succeeded' && row.result) {
      const stored = storedOf(row);
      const caseName = names.get(row.case_id) ?? 'case';
      const descriptor = (volumeId: string, fileName: string, downloadName: string) => {
        const v = volumes.get(volumeId);
        return v ? toVolumeDescriptor(v, 'mask', links, fileName, downloadName) : undefined;
      };
      const mask = descriptor(stored.maskVolumeId, 'mask', `${caseName}_${row.model_ids.join('+')}_prediction`);
      if (mask) {
        const perModel = stored.perModel.flatMap((p) => {
          const d = descriptor(p.volumeId, `mask-${p.modelId}`, `${caseName}_${p.modelId}_prediction`);
          return d ? [{ modelId: p.modelId, mask: d }] : [];
        });
        result = { mask, perModel, metrics: stored.metrics, notes: stored.notes ?? [], lesions: stored.lesions ?? null };
      }
    }
    return {
      id: row.id,
      caseId: row.case_id,
      modelIds: row.model_ids,
      status: row.status,
      progress: row.progress,
      message: row.message,
      attempts: row.attempts,
      createdAt: new Date(row.created_at).toISOString(),
      startedAt: iso(row.started_at),
      finishedAt: iso(row.finished_at),
      expiresAt: new Date(row.expires_at).toISOString(),
      error: row.error,
      result,
    };
  });
}

/** A job the viewer may see: their own (admins: any). Anything else is NOT_FOUND. */
/** A page of the jobs a viewer may see (optionally of one case), newest first, as views. */
export async function listJobPage(
  db: Db,
  viewer: Viewer & { userId: string },
  opts: { caseId?: string | undefined; cursor?: string | undefined; limit: number },
  links: VolumeLinks,
): Promise<{ items: JobView[]; nextCursor: string | null }> {
  const rows = await listJobs(db, viewer, { ...opts, limit: opts.limit + 1 });
  const { page, nextCursor } = toPage(rows, opts.limit);
  return { items: await toJobViews(db, page, links), nextCursor };
}

/**
 * A job the viewer may read: one they may see (visibleJob), or one that answers a run of a study
 * they are a member of, on a case still in it — a co-rater opens the run's result. Reading only:
 * cancelling, following and listing stay the owner's (visibleJob).
 */
export async function readableJob(db: Db, viewer: Viewer, id: string): Promise<JobRow> {
  const row = await findJob(db, id);
  if (row && (viewer.admin || row.owner_id === viewer.userId)) return row;
  if (row && viewer.userId && (await jobInMembersRun(db, viewer.userId, id))) return row;
  throw notFound('No such job');
}

export async function visibleJob(db: Db, viewer: Viewer, id: string): Promise<JobRow> {
  const row = await findJob(db, id);
  if (!row || (!viewer.admin && row.owner_id !== viewer.userId)) {
    throw notFound('No such job');
  }
  return row;
}

/**
 * pg-boss hands out work by priority (higher first), then by age. A single job outranks every job
 * of a study run, so a job someone submits while a 250-case run is queued is taken by the next
 * worker that frees up — it waits for at most one run job per worker, never for the whole run.
 */
export const SINGLE_JOB_PRIORITY = 0;
export const RUN_JOB_PRIORITY = -10;

/**
 * Where a job row goes on the queue: its priority, and for a run's job the run as its pg-boss
 * group, which MAX_RUN_JOBS_IN_FLIGHT caps across every worker (see startWorkers).
 */
function queuePlace(row: JobRow): { priority: number; group?: { id: string } } {
  return row.study_run_id ? { priority: RUN_JOB_PRIORITY, group: { id: row.study_run_id } } : { priority: SINGLE_JOB_PRIORITY };
}

/**
 * Puts a job row on the queue under its own id (pg-boss ignores a second send of one id), so
 * enqueueing is idempotent: `reconcileQueue` may repeat it for a row whose first send never
 * happened (the process died between the insert and the send) without making two.
 */
export async function enqueue(db: Db, boss: PgBoss, row: JobRow): Promise<JobRow | undefined> {
  const data: QueueJobData = { jobId: row.id };
  const queueId = await boss.send(SEGMENTATION_QUEUE, data, { id: row.id, ...queuePlace(row) });
  return transition.enqueued(db, row.id, queueId ?? row.id);
}

/**
 * A study run's jobs on the queue in batches (one statement per 500, with the queue's own retry,
 * lease and dead-letter settings, at the run priority), each under its own id like `enqueue` —
 * so a batch repeated by reconcileQueue after a crash makes no second entry.
 */
export async function enqueueMany(db: Db, boss: PgBoss, rows: JobRow[]): Promise<void> {
  for (let i = 0; i < rows.length; i += 500) {
    const batch = rows.slice(i, i + 500);
    await boss.insert(
      SEGMENTATION_QUEUE,
      batch.map((row) => ({
        id: row.id,
        data: { jobId: row.id } satisfies QueueJobData,
        ...queuePlace(row),
      })),
    );
    await db
      .updateTable('jobs')
      .set({ queue_job_id: sql<string>`id::text`, version: sql<number>`version + 1` })
      .where(
        'id',
        'in',
        batch.map((r) => r.id),
      )
      .where('queue_job_id', 'is', null)
      .execute();
  }
}

/**
 * Queued rows with no queue entry — their process died between insert and send — are enqueued
 * (by their own id, so a row that was enqueued after all is not doubled). Runs at each worker
 * start and with the scheduled clean-up; `olderThanMs` leaves rows a live request is still sending.
 */
export async function reconcileQueue(db: Db, boss: PgBoss, olderThanMs = 60_000, now = Date.now()): Promise<number> {
  const orphans = await db
    .selectFrom('jobs')
    .select(JOB_COLUMNS)
    .where('status', '=', 'queued')
    .where('queue_job_id', 'is', null)
    .where('created_at', '<', new Date(now - olderThanMs))
    .execute();
  for (const row of orphans) await enqueue(db, boss, row);
  return orphans.length;
}

/** Test hooks: fault injection between the steps of creating a job. */
export interface CreateJobHooks {
  /** Runs after the row is inserted, before it is enqueued (a throw here is a crash there). */
  beforeEnqueue?: (row: JobRow) => Promise<void>;
}

export async function createJob(
  db: Db,
  jobs: JobSystem,
  cfg: Parameters<typeof activeJobLimit>[0] & Pick<Env, 'RESULT_RETENTION_DAYS' | 'NEW_ACCOUNT_HOURS'>,
  viewer: Viewer & { userId: string },
  input: { caseId: string; modelIds: string[]; idempotencyKey?: string | undefined },
  knownModels: Set<string>,
  hooks: CreateJobHooks = {},
): Promise<JobRow> {
  // The same key for the same request returns the same job; for another request it is a mistake
  // the caller must hear about (silently returning the old job would hide it).
  const sameRequest = (existing: JobRow) => {
    const models = [...new Set(input.modelIds)];
    if (existing.case_id === input.caseId && existing.model_ids.join() === models.join()) return existing;
    throw conflict(
      `This idempotency key was already used for another request (case ${existing.case_id}, model ${existing.model_ids.join(', ')}); use a new key`,
    );
  };
  if (input.idempotencyKey) {
    const existing = await findJobByKey(db, viewer.userId, input.idempotencyKey);
    if (existing) return sameRequest(existing);
  }
  await caseToEdit(db, viewer, input.caseId);
  const unknown = input.modelIds.filter((m) => !knownModels.has(m));
  if (unknown.length) {
    throw invalid(`Unknown model${unknown.length > 1 ? 's' : ''}: ${unknown.join(', ')}`);
  }
  const mine = activeJobLimit(cfg, viewer.guest ? 'guest' : 'user');
  if (mine === 0) {
    throw forbidden('Guests cannot run segmentations on this server; create an account');
  }
  let row: JobRow;
  try {
    // One admission at a time: the caps are counted and the row inserted under one lock, so
    // parallel creates cannot all pass a count taken before any of them had inserted.
    row = await db.transaction().execute(async (trx) => {
      await sql`select pg_advisory_xact_lock(hashtextextended('strokeview:job-admission', 0))`.execute(trx);
      if ((await countActiveJobs(trx, viewer.userId)) >= mine) {
        throw tooMany(
          `You already have ${mine} segmentation${mine > 1 ? 's' : ''} queued or running; wait for one to finish${viewer.guest ? ' (or create an account for more)' : ''}`,
          30,
        );
      }
      // Guests together get a share of the queue, so a crowd of throw-away guests cannot fill it.
      if (viewer.guest && (await countActiveGuestJobs(trx)) >= guestQueueLimit(cfg)) {
        throw tooMany('The queue is full for guests right now; try again in a minute, or create an account', 60);
      }
      // New accounts together get a share too: free registration is as cheap as a guest.
      if (!viewer.guest) {
        const fresh = await newAccountLoad(trx, viewer.userId, cfg.NEW_ACCOUNT_HOURS);
        if (fresh.isNew && fresh.active >= newAccountQueueLimit(cfg)) {
          throw tooMany('The queue is busy with new accounts right now; try again in a minute', 60);
        }
      }
      if ((await countActiveJobs(trx)) >= cfg.MAX_QUEUED_JOBS) {
        throw tooMany('The segmentation queue is full; try again in a minute', 60);
      }
      return insertJob(trx, {
        ownerId: viewer.userId,
        caseId: input.caseId,
        modelIds: [...new Set(input.modelIds)],
        idempotencyKey: input.idempotencyKey ?? null,
        expiresAt: new Date(Date.now() + cfg.RESULT_RETENTION_DAYS * 86_400_000),
      });
    });
  } catch (err) {
    // the same key sent twice at once: the unique index lets one in; both get that job
    if ((err as { code?: string }).code === '23505' && input.idempotencyKey) {
      const existing = await findJobByKey(db, viewer.userId, input.idempotencyKey);
      if (existing) return sameRequest(existing);
    }
    throw err;
  }
  try {
    await (hooks.beforeEnqueue?.(row) ?? Promise.resolve());
    row = (await enqueue(db, jobs.boss, row)) ?? row;
  } catch (err) {
    await transition.end(db, { jobId: row.id }, { status: 'failed', message: 'Failed', error: 'The job could not be queued' });
    throw err;
  }
  jobs.wake?.();
  return row;
}

/**
 * Cancels a job: a queued one at once (and its queue entry), a running one at its next stage or
 * patch (the worker sees `cancel_requested` and stops). Cancelling a finished job changes nothing.
 */
export async function cancelJob(db: Db, jobs: JobSystem, viewer: Viewer, id: string): Promise<JobRow> {
  const row = await visibleJob(db, viewer, id);
  return (await cancelJobRow(db, jobs, row)) ?? (await visibleJob(db, viewer, id));
}

/**
 * The cancel itself, for a row the caller may cancel (its owner, or a study run's editors):
 * undefined when it ended meanwhile.
 */
export async function cancelJobRow(db: Db, jobs: JobSystem, row: JobRow): Promise<JobRow | undefined> {
  if (isTerminal(row.status)) return row;
  if (row.status === 'queued') {
    const cancelled = await transition.cancelQueued(db, row.id);
    if (cancelled) {
      if (row.queue_job_id) await jobs.boss.cancel(SEGMENTATION_QUEUE, row.queue_job_id).catch(() => {});
      await publish(jobs.bus, cancelled);
      return cancelled;
    }
  }
  const requested = await transition.requestCancel(db, row.id);
  await publish(jobs.bus, requested);
  return requested;
}

/**
 * Cancels every queued or running job of a user (their account was disabled) by the owner's own
 * cancel path, so a running one is stopped by its worker like any other cancel. Returns how many.
 */
export async function cancelUserJobs(db: Db, jobs: JobSystem, userId: string): Promise<number> {
  const ids = await activeJobIdsOf(db, userId);
  for (const id of ids) await cancelJob(db, jobs, { userId, admin: false }, id);
  return ids.length;
}
