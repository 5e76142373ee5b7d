import { type Kysely, sql } from 'kysely';
import type { z } from 'zod';
import type { StudyRunCase, StudyRunDetail, StudyRunStatus, StudyRunSummary, runStudySchema } from '../../shared/studies.js';
import type { Viewer } from '../db/cases.js';
import { deleteStudyRow, findStudy, studyCaseRows } from '../db/studies.js';
import { toPage } from '../db/paging.js';
import {
  type RunAggregate,
  type RunCaseRow,
  type StudyRunListed,
  activeRunIdsOfStudy,
  cancelRunJobs,
  findStudyRun,
  insertRunJobs,
  insertStudyRun,
  linkRunJobs,
  listStudyRunAggregates,
  markRunsCancelRequested,
  reusableJobs,
  runCaseRows,
} from '../db/study-runs.js';
import type { Database, JobRow } from '../db/tables.js';
import type { Env } from '../env.js';
import { invalid, notFound, tooMany } from '../errors.js';
import { activeRunJobCount } from '../db/jobs.js';
import { type JobSystem, enqueueMany, publish } from '../jobs/service.js';
import { SEGMENTATION_QUEUE } from '../jobs/queue.js';
import { requireRole, studyFor } from './service.js';

// A study run (#27): one model over a study's cases, as ordinary jobs on the one queue and its
// workers. What a run is, in one place:
// - Durable: the run row says what was asked; the jobs carry the work (pg-boss, leases, retries),
//   and the run's state is only ever derived from them — after a restart it is where its jobs are.
// - Idempotent per case: a case with a result of the same model (or a job of it still queued or
//   running) that the caller or an earlier run of this study made is answered by that job, unless
//   `rerun` is asked; a case's volumes never change once made, so the same case is the same input.
// - Admission: its jobs are enqueued at a lower pg-boss priority than single jobs (see
//   RUN_JOB_PRIORITY), so a worker that frees up takes a waiting single job first, and they are
//   not counted against the single-job caps (MAX_ACTIVE_JOBS_PER_USER, MAX_QUEUED_JOBS), so a
//   large run never makes `jobs.create` answer "the queue is full".
// - Who: the study's owners and editors (and admins) start and cancel runs; any member reads them.

type Db = Kysely<Database>;

export const RUNS_PAGE_DEFAULT = 20;
export const RUNS_PAGE_MAX = 100;

const iso = (d: Date | string | null) => (d ? new Date(d).toISOString() : null);

/**
 * Time left for a run, in ms: the work left (each queued job one mean wall time, each running one
 * what remains of a mean wall time) shared among the jobs running now (how many workers the run
 * has at the moment; at least one). Null before any job finished (no mean yet), 0 when nothing is
 * left. `now` is the caller's clock.
 */
export function estimateRunEta(o: { meanJobMs: number | null; queued: number; runningStartedAt: number[]; now: number }): number | null {
  const running = o.runningStartedAt.length;
  if (o.queued + running === 0) return 0;
  if (o.meanJobMs === null) return null;
  const mean = o.meanJobMs;
  const left = o.queued * mean + o.runningStartedAt.reduce((sum, started) => sum + Math.max(0, mean - (o.now - started)), 0);
  return left / Math.max(1, running);
}

/**
 * A run's counts from its rows, as listStudyRunAggregates computes them in the database: a row
 * whose job was deleted counts as failed; a finished case (succeeded, failed, cancelled) is 100 %
 * of its share of the progress; the mean job time is over the succeeded jobs the run itself ran
 * (a reused result took none of its time).
 */
export function aggregateRows(rows: RunCaseRow[]): RunAggregate {
  const a: RunAggregate = {
    total: rows.length,
    queued: 0,
    running: 0,
    succeeded: 0,
    failed: 0,
    cancelled: 0,
    reused: 0,
    progress_sum: 0,
    version_sum: 0,
    mean_job_ms: null,
    running_started: [],
  };
  const wall: number[] = [];
  for (const r of rows) {
    const status = r.status ?? 'failed';
    a[status]++;
    if (r.reused) a.reused++;
    a.progress_sum += status === 'queued' || status === 'running' ? (r.progress ?? 0) : 100;
    a.version_sum += r.version ?? 0;
    if (status === 'succeeded' && !r.reused && r.started_at && r.finished_at)
      wall.push(new Date(r.finished_at).getTime() - new Date(r.started_at).getTime());
    if (status === 'running') a.running_started!.push(r.started_at);
  }
  a.mean_job_ms = wall.length ? wall.reduce((x, y) => x + y, 0) / wall.length : null;
  return a;
}

/** A run's summary from its aggregate: status, N/M, progress (100 once nothing is left to do) and the ETA. */
export function summaryOf(run: StudyRunListed, a: RunAggregate, now: number): StudyRunSummary {
  const active = a.queued + a.running;
  const status: StudyRunStatus = active > 0 ? 'running' : a.cancelled > 0 ? 'cancelled' : a.failed > 0 ? 'failed' : 'succeeded';
  const runningStartedAt = (a.running_started ?? []).map((d) => (d ? new Date(d).getTime() : now));
  const eta = estimateRunEta({ meanJobMs: a.mean_job_ms, queued: a.queued, runningStartedAt, now });
  const progress = active === 0 || !a.total ? 100 : Math.round((a.progress_sum / a.total) * 10) / 10;
  return {
    id: run.id,
    studyId: run.study_id,
    modelId: run.model_id,
    createdAt: iso(run.created_at)!,
    createdBy: run.created_by_email,
    rerun: run.rerun,
    cancelRequested: run.cancel_requested,
    status,
    total: a.total,
    queued: a.queued,
    running: a.running,
    succeeded: a.succeeded,
    failed: a.failed,
    cancelled: a.cancelled,
    reused: a.reused,
    progress,
    meanJobSeconds: a.mean_job_ms === null ? null : a.mean_job_ms / 1000,
    etaSeconds: eta === null ? null : Math.round(eta / 100) / 10,
    version: (run.cancel_requested ? 1 : 0) + a.version_sum,
  };
}

/** A run's counts, progress and ETA from its rows. */
export function summarizeRun(run: StudyRunListed, rows: RunCaseRow[], now: number): StudyRunSummary {
  return summaryOf(run, aggregateRows(rows), now);
}

export function toRunCase(r: RunCaseRow): StudyRunCase {
  return {
    caseId: r.case_id,
    caseName: r.case_name,
    jobId: r.job_id,
    reused: r.reused,
    status: r.status ?? 'failed',
    progress: r.status === 'succeeded' ? 100 : (r.progress ?? 0),
    message: r.message ?? 'Its job was deleted (result retention)',
    error: r.job_id ? r.error : 'The job of this case was deleted (result retention); run the study again',
    metrics: r.metrics,
    startedAt: iso(r.started_at),
    finishedAt: iso(r.finished_at),
  };
}

/** A run a viewer may read (any member of its study); NOT_FOUND otherwise, as for its study. */
export async function visibleRun(db: Db, viewer: Viewer, id: string) {
  const run = await findStudyRun(db, id);
  const study = run ? await findStudy(db, viewer, run.study_id) : undefined;
  if (!run || !study) throw notFound('No such study run', { field: 'id' });
  return { run, study };
}

export async function getStudyRun(db: Db, viewer: Viewer, id: string, now = Date.now()): Promise<StudyRunDetail> {
  const { run } = await visibleRun(db, viewer, id);
  const rows = await runCaseRows(db, id);
  return { ...summarizeRun(run, rows, now), cases: rows.map(toRunCase) };
}

/** The summary alone (the progress stream sends it on every change). */
export async function runSummary(db: Db, run: StudyRunListed, now = Date.now()): Promise<StudyRunSummary> {
  return summarizeRun(run, await runCaseRows(db, run.id), now);
}

/** A page of a study's runs, newest first, with their progress: one query (listStudyRunAggregates). */
export async function pageRunsOfStudy(
  db: Db,
  viewer: Viewer,
  input: { studyId: string; limit?: number | undefined; cursor?: string | undefined },
  now = Date.now(),
): Promise<{ items: StudyRunSummary[]; nextCursor: string | null }> {
  await studyFor(db, viewer, input.studyId);
  const limit = input.limit ?? RUNS_PAGE_DEFAULT;
  const { page, nextCursor } = toPage(await listStudyRunAggregates(db, input.studyId, { limit, cursor: input.cursor }), limit);
  return { items: page.map((r) => summaryOf(r, r, now)), nextCursor };
}

/** runs.list (an array, kept for its callers): the newest RUNS_PAGE_MAX runs, one query. */
export async function listRunsOfStudy(db: Db, viewer: Viewer, studyId: string, now = Date.now()): Promise<StudyRunSummary[]> {
  return (await pageRunsOfStudy(db, viewer, { studyId, limit: RUNS_PAGE_MAX }, now)).items;
}

/**
 * Starts a run: in one transaction (under the study's run lock, so two runs started at once do
 * not both queue a case) the run row, its new jobs and its row per case; then the new jobs go on
 * the queue. A job whose send is lost (a crash here) is enqueued by reconcileQueue, at its run's
 * priority. Returns the run's id.
 */
export async function startStudyRun(
  db: Db,
  jobs: JobSystem,
  cfg: Pick<Env, 'RESULT_RETENTION_DAYS'> & Partial<Pick<Env, 'MAX_RUN_JOBS_PER_USER'>>,
  viewer: Viewer & { userId: string },
  input: z.infer<typeof runStudySchema> & { modelId: string },
  knownModels: Set<string>,
): Promise<string> {
  const study = await studyFor(db, viewer, input.studyId);
  requireRole(viewer, study, ['owner', 'editor'], 'run models on it');
  if (!knownModels.has(input.modelId)) throw invalid(`Unknown model: ${input.modelId}`, { field: 'modelId' });
  const inStudy = (await studyCaseRows(db, input.studyId)).map((c) => c.id);
  let caseIds = inStudy;
  if (input.caseIds) {
    const members = new Set(inStudy);
    const asked = [...new Set(input.caseIds)];
    const outside = asked.filter((id) => !members.has(id));
    if (outside.length) throw invalid(`Not in this study: ${outside.join(', ')}`, { field: 'caseIds' });
    caseIds = asked;
  }
  if (!caseIds.length) throw invalid('The study has no cases to run; add cases first', { field: 'studyId' });

  const { runId, queued } = await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('study-run:' || ${input.studyId}))`.execute(trx);
    // admission: a cap on a user's run jobs in flight (across their studies, under the user's own
    // lock), so runs cannot grow the queue without bound (a case reused from a live run counts too)
    await sql`select pg_advisory_xact_lock(hashtext('study-run-user:' || ${viewer.userId}))`.execute(trx);
    const userJobs = await activeRunJobCount(trx, viewer.userId);
    const cap = cfg.MAX_RUN_JOBS_PER_USER ?? 2000;
    if (userJobs + caseIds.length > cap)
      throw tooMany(
        `You have ${userJobs} study-run job(s) queued or running; this run would add up to ${caseIds.length} (at most ${cap} at once): wait for your runs to finish`,
        60,
      );
    const run = await insertStudyRun(trx, { studyId: input.studyId, modelId: input.modelId, createdBy: viewer.userId, rerun: input.rerun });
    const reuse = input.rerun
      ? new Map<string, JobRow>()
      : await reusableJobs(trx, {
          studyId: input.studyId,
          userId: viewer.userId,
          modelId: input.modelId,
          caseIds,
          liveUntil: new Date(Date.now() + reuseMinLifeMs(cfg.RESULT_RETENTION_DAYS)),
        });
    const fresh = await insertRunJobs(trx, {
      runId: run.id,
      ownerId: viewer.userId,
      modelId: input.modelId,
      caseIds: caseIds.filter((id) => !reuse.has(id)),
      expiresAt: new Date(Date.now() + cfg.RESULT_RETENTION_DAYS * 86_400_000),
    });
    await linkRunJobs(trx, run.id, [
      ...[...reuse.values()].map((j) => ({ caseId: j.case_id, jobId: j.id, reused: true })),
      ...fresh.map((j) => ({ caseId: j.case_id, jobId: j.id, reused: false })),
    ]);
    return { runId: run.id, queued: fresh };
  });
  // A failed send leaves rows queued without a queue entry: reconcileQueue sends them later.
  await enqueueMany(db, jobs.boss, queued).catch((err: unknown) =>
    console.warn(`study run ${runId}: queueing its jobs failed (reconcileQueue sends them later): ${(err as Error).message}`),
  );
  jobs.wake?.();
  return runId;
}

/**
 * How long a result must still be kept for a run to reuse it: a day, or half the retention
 * period when that is shorter (a result younger than that is always reused). A result retention
 * deletes sooner would leave the run's row "deleted" days later; the case runs again instead.
 */
export function reuseMinLifeMs(retentionDays: number): number {
  return Math.min(86_400_000, (retentionDays * 86_400_000) / 2);
}

/**
 * Cancels runs' jobs in bulk: the runs marked cancel-requested, then their cancellable jobs in
 * two set-based updates (queued → cancelled now, running → asked to stop at their next stage),
 * the queued ones taken off pg-boss's queue in one call, every changed job announced on the bus.
 * Returns how many jobs it stopped.
 */
export async function cancelRuns(db: Db, jobs: JobSystem, runIds: string[]): Promise<number> {
  // Not under the study's run lock: announcing a cancel talks to the event bus, which on PGlite
  // (one connection) cannot run inside a transaction. A run started in the same instant may reuse
  // a job this cancel stops; its case then shows cancelled (run it again with rerun).
  await markRunsCancelRequested(db, runIds);
  return announceCancelled(jobs, await cancelRunJobs(db, runIds));
}

/** After the rows changed: the cancelled jobs off pg-boss's queue in one call, every changed job on the bus. */
async function announceCancelled(jobs: JobSystem, changed: { cancelled: JobRow[]; requested: JobRow[] }): Promise<number> {
  const queueIds = changed.cancelled.flatMap((r) => (r.queue_job_id ? [r.queue_job_id] : []));
  if (queueIds.length) await jobs.boss.cancel(SEGMENTATION_QUEUE, queueIds).catch(() => {});
  for (const row of [...changed.cancelled, ...changed.requested]) await publish(jobs.bus, row);
  return changed.cancelled.length + changed.requested.length;
}

/**
 * Cancels a run as a whole: every job of it that is still queued (at once) or running (at its
 * next stage) — except a single job it reused (its owner's) and a job another run, not being
 * cancelled, shares (that run keeps it). Owners and editors only.
 */
export async function cancelStudyRun(db: Db, jobs: JobSystem, viewer: Viewer, id: string): Promise<number> {
  const { study } = await visibleRun(db, viewer, id);
  requireRole(viewer, study, ['owner', 'editor'], 'cancel its runs');
  return cancelRuns(db, jobs, [id]);
}

/**
 * Deletes a study (its owner; its cases, masks and results stay). Its runs still in flight are
 * cancelled first, as their cancel would: otherwise the run rows' deletion would leave their jobs
 * running on as single jobs nobody asked for, each in its author's job list. A researcher who
 * deletes a study means its work to stop; refusing until they cancel each run would only add a
 * step. The cancel and the delete are one transaction under the study's run lock (a run started
 * at the same moment waits, then finds no study); the queue and the bus hear of it after.
 */
export async function deleteStudyAndRuns(db: Db, jobs: JobSystem, viewer: Viewer, id: string): Promise<number> {
  requireRole(viewer, await studyFor(db, viewer, id), ['owner'], 'delete it');
  const changed = await db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(hashtext('study-run:' || ${id}))`.execute(trx);
    const runIds = await activeRunIdsOfStudy(trx, id);
    await markRunsCancelRequested(trx, runIds);
    const out = await cancelRunJobs(trx, runIds);
    await deleteStudyRow(trx, id);
    return out;
  });
  return announceCancelled(jobs, changed);
}
