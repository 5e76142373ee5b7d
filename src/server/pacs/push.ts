import type { Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import type { SegSource } from '../../shared/dicom.js';
import type { PacsPush } from '../../shared/pacs.js';
import { type Viewer, findCase } from '../db/cases.js';
import { findCaseDicom } from '../db/dicom.js';
import type { Database, PacsPushRow } from '../db/tables.js';
import { exportComputedAdc, exportSeg, resolveSource } from '../dicom/export.js';
import type { Env } from '../env.js';
import { isDomainError, notFound, unprocessable } from '../errors.js';
import type { Logger } from '../logger.js';
import type { VolumeStore } from '../volumes/store.js';
import type { CpuPool } from '../workers/pool.js';
import { requirePacs } from './service.js';

/**
 * "Send to PACS": a DICOM SEG (of a job's mask or a corrected version) stored in the
 * deployment's PACS with STOW-RS, as a durable job — and with it, when the import computed the
 * case's ADC, that ADC as a derived MR series in the same study (the same request). The `pacs_pushes` row is what users see;
 * pg-boss carries the work, so a push survives a restart and a PACS that is down or refuses is
 * retried (PACS_PUSH_RETRIES times, with backoff) before the push fails with the PACS's answer.
 * The SEG is built at each attempt from what is stored (the same bytes but for its new UIDs).
 */

type Db = Kysely<Database>;

export const PACS_PUSH_QUEUE = 'pacs-push';
/** Retries after the first attempt, with exponential backoff from PACS_PUSH_RETRY_DELAY_S. */
export const PACS_PUSH_RETRIES = 4;

export const toPushView = (r: PacsPushRow): PacsPush => ({
  id: r.id,
  caseId: r.case_id,
  source: r.job_id ? { jobId: r.job_id } : { maskVersionId: r.mask_version_id! },
  status: r.status,
  attempts: r.attempts,
  error: r.error,
  studyInstanceUid: r.study_instance_uid,
  seriesInstanceUid: r.series_instance_uid,
  sopInstanceUid: r.sop_instance_uid,
  adcSeriesInstanceUid: r.adc_series_instance_uid,
  createdAt: new Date(r.created_at).toISOString(),
  finishedAt: r.finished_at ? new Date(r.finished_at).toISOString() : null,
});

const COLUMNS = [
  'id',
  'owner_id',
  'case_id',
  'job_id',
  'mask_version_id',
  'status',
  'attempts',
  'error',
  'study_instance_uid',
  'series_instance_uid',
  'sop_instance_uid',
  'adc_series_instance_uid',
  'created_at',
  'finished_at',
] as const;

export async function findPush(db: Db, viewer: Viewer, id: string): Promise<PacsPushRow> {
  const row = await db.selectFrom('pacs_pushes').select(COLUMNS).where('id', '=', id).executeTakeFirst();
  if (!row || (!viewer.admin && row.owner_id !== viewer.userId)) throw notFound('No such PACS push');
  return row;
}

/** Queues a push after checking, now, everything that does not depend on the PACS (the source, the case's DICOM origin). */
export async function requestPush(
  deps: { db: Db; boss: PgBoss; config: Env },
  viewer: Viewer & { userId: string },
  source: SegSource,
): Promise<PacsPushRow> {
  requirePacs(deps.config);
  const from = await resolveSource(deps.db, viewer, source, () => null);
  const row = await findCase(deps.db, viewer, from.caseId);
  if (!row) throw notFound('No such case');
  if (!(await findCaseDicom(deps.db, from.caseId))) {
    throw unprocessable(`Case "${row.name}" was not imported from DICOM, so there is nothing in a PACS for a DICOM SEG to reference`, {
      field: 'caseId',
    });
  }
  const push = await deps.db
    .insertInto('pacs_pushes')
    .values({
      owner_id: viewer.userId,
      case_id: from.caseId,
      job_id: 'jobId' in source ? source.jobId : null,
      mask_version_id: 'maskVersionId' in source ? source.maskVersionId : null,
    })
    .returning(COLUMNS)
    .executeTakeFirstOrThrow();
  await deps.boss.send(PACS_PUSH_QUEUE, { pushId: push.id }, { id: push.id });
  return push;
}

export interface PushWorkerDeps {
  db: Db;
  boss: PgBoss;
  store: VolumeStore;
  cpu: CpuPool;
  env: Env;
  log: Logger;
  modelVersion: (id: string) => string | null;
}

/** One attempt of a push; throws (so pg-boss retries) only while retries are left and the failure may pass. */
export async function attemptPush(deps: PushWorkerDeps, pushId: string, retryCount: number): Promise<void> {
  const { db, log } = deps;
  const row = await db.selectFrom('pacs_pushes').select(COLUMNS).where('id', '=', pushId).executeTakeFirst();
  if (!row || row.status === 'succeeded' || row.status === 'failed') return;
  await db
    .updateTable('pacs_pushes')
    .set({ status: 'running', attempts: row.attempts + 1 })
    .where('id', '=', pushId)
    .execute();
  const owner = await db.selectFrom('users').select(['id', 'role']).where('id', '=', row.owner_id).executeTakeFirst();
  const viewer: Viewer = { userId: row.owner_id, admin: owner?.role === 'admin' };
  try {
    const pacs = requirePacs(deps.env);
    const source: SegSource = row.job_id ? { jobId: row.job_id } : { maskVersionId: row.mask_version_id! };
    const seg = await exportSeg(deps, viewer, source);
    // With it, the ADC the import computed (the PACS has no such series otherwise), in one STOW-RS request.
    const adc = await exportComputedAdc(deps, viewer, row.case_id);
    await pacs.store([seg.bytes, ...(adc?.files ?? [])]);
    await db
      .updateTable('pacs_pushes')
      .set({
        status: 'succeeded',
        error: null,
        study_instance_uid: seg.studyInstanceUid,
        series_instance_uid: seg.seriesInstanceUid,
        sop_instance_uid: seg.sopInstanceUid,
        adc_series_instance_uid: adc?.seriesInstanceUid ?? null,
        finished_at: new Date(),
      })
      .where('id', '=', pushId)
      .execute();
    log.info({ pushId, caseId: row.case_id, attempts: row.attempts + 1, adc: adc !== null }, 'DICOM SEG stored in the PACS');
  } catch (err) {
    const message = isDomainError(err) ? err.message : 'Internal error while sending to the PACS';
    const passing = !isDomainError(err) || isDomainError(err, 'unavailable');
    const retry = passing && retryCount < PACS_PUSH_RETRIES;
    await db
      .updateTable('pacs_pushes')
      .set(
        retry
          ? { status: 'queued', error: `${message}; retrying` }
          : {
              status: 'failed',
              error: passing ? `${message}; gave up after ${row.attempts + 1} attempts` : message,
              finished_at: new Date(),
            },
      )
      .where('id', '=', pushId)
      .execute();
    log.warn({ pushId, attempt: row.attempts + 1, retry, err: isDomainError(err) ? err.message : err }, 'PACS push failed');
    if (retry) throw err;
  }
}

export async function ensurePushQueue(boss: PgBoss, env: Env): Promise<void> {
  const options = { retryLimit: PACS_PUSH_RETRIES, retryDelay: env.PACS_PUSH_RETRY_DELAY_S, retryBackoff: true, expireInSeconds: 15 * 60 };
  try {
    if (await boss.getQueue(PACS_PUSH_QUEUE)) await boss.updateQueue(PACS_PUSH_QUEUE, options);
    else await boss.createQueue(PACS_PUSH_QUEUE, options);
  } catch (err) {
    if (!(await boss.getQueue(PACS_PUSH_QUEUE))) throw err;
  }
}

/** The push worker of a process that runs workers. */
export async function startPushWorker(deps: PushWorkerDeps): Promise<void> {
  await deps.boss.work<{ pushId: string }>(PACS_PUSH_QUEUE, { pollingIntervalSeconds: 1, batchSize: 1 }, async ([job]) => {
    if (job) await attemptPush(deps, job.data.pushId, job.retryCount);
  });
}
