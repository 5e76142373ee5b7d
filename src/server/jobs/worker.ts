import type { Kysely } from 'kysely';
import type { Job, PgBoss } from 'pg-boss';
import type { VolumeRole } from '../../shared/cases.js';
import { caseVolumes, insertVolume } from '../db/cases.js';
import { findJob, linkJobVolume, updateJob } from '../db/jobs.js';
import type { Database, JobRow } from '../db/tables.js';
import type { Logger } from '../logger.js';
import { CancelledError } from '../segmentation/inference.js';
import type { ModelRegistry } from '../segmentation/models.js';
import { type Progress, SegmentationInputError, type Stage, runPipeline } from '../segmentation/pipeline.js';
import type { VolumeStore } from '../volumes/store.js';
import type { JobEventBus } from './events.js';
import type { JobHold } from './hold.js';
import { createProgressThrottle } from './progress-throttle.js';
import { DEAD_LETTER_QUEUE, type QueueJobData, SEGMENTATION_QUEUE } from './queue.js';
import { type StoredResult, publish } from './service.js';

export interface WorkerDeps {
  boss: PgBoss;
  db: Kysely<Database>;
  store: VolumeStore;
  models: ModelRegistry;
  bus: JobEventBus;
  log: Logger;
  concurrency: number;
  timeoutSeconds: number;
  /** Tests only: holds a job at a stage until the test releases it (see hold.ts). */
  hold?: JobHold;
  /** Called when a job finishes (metrics). */
  onFinished?: (status: string, seconds: number) => void;
}

export interface Workers {
  /** Wakes idle workers now (a job was just created in this process). */
  wake(): void;
  /** Stops claiming; running jobs get `graceMs` to finish, then are stopped and handed back for retry. */
  stop(graceMs: number): Promise<void>;
  /** Jobs running in this process now. */
  running(): number;
}

const PROGRESS_INTERVAL_MS = 200; // ≤ 5 progress writes per second per job

/** Runs segmentation jobs from the queue: in the API process by default, or alone (`npm run worker`). */
export async function startWorkers(deps: WorkerDeps): Promise<Workers> {
  const { boss, db, log } = deps;
  const active = new Map<string, AbortController>();
  let draining = false;

  const finish = async (row: JobRow, patch: Parameters<typeof updateJob>[2]) => {
    const updated = await updateJob(db, row.id, { ...patch, finished_at: new Date() }, { statusIn: ['queued', 'running'] });
    await publish(deps.bus, updated);
    if (updated) {
      const started = updated.started_at ? new Date(updated.started_at).getTime() : Date.now();
      deps.onFinished?.(updated.status, (Date.now() - started) / 1000);
    }
    return updated;
  };

  const handle = async (queued: Job<QueueJobData>) => {
    const jobId = queued.data.jobId;
    let row = await findJob(db, jobId);
    if (!row || ['succeeded', 'failed', 'cancelled'].includes(row.status)) return; // done already: nothing twice
    if (row.cancel_requested) {
      await finish(row, { status: 'cancelled', message: 'Cancelled' });
      return;
    }
    const models = row.model_ids.map((id) => deps.models.models.get(id));
    if (models.some((m) => !m)) {
      await finish(row, { status: 'failed', error: `Model ${row.model_ids.join(', ')} is not available on this worker`, message: 'Failed' });
      return;
    }
    row =
      (await updateJob(
        db,
        jobId,
        {
          status: 'running',
          attempts: row.attempts + 1,
          progress: 1,
          message: row.attempts > 0 ? `Restarted (attempt ${row.attempts + 1})` : 'Started',
          ...(row.started_at ? {} : { started_at: new Date() }),
        },
        { statusIn: ['queued', 'running'] },
      )) ?? row;
    await publish(deps.bus, row);

    const controller = new AbortController();
    active.set(jobId, controller);
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      controller.abort();
    }, deps.timeoutSeconds * 1000);
    // At most one progress write per PROGRESS_INTERVAL_MS (≤ 5/s), the latest report in each slot.
    let writing: Promise<void> = Promise.resolve();
    const throttle = createProgressThrottle<Progress>({
      intervalMs: PROGRESS_INTERVAL_MS,
      write: (p) => {
        writing = writing.then(async () => {
          const updated = await updateJob(db, jobId, { progress: p.percent, message: p.message }, { statusIn: ['running'] });
          if (updated?.cancel_requested) controller.abort();
          await publish(deps.bus, updated);
        });
      },
    });
    const onProgress = (p: Progress) => throttle.report(p);
    // Each stage begins with a look at the row: a cancel requested meanwhile stops the job there,
    // even when no progress write has happened since (a test's hold, a long stage).
    const checkpoint = async (stage: Stage) => {
      await deps.hold?.({ jobId, stage, signal: controller.signal });
      if ((await findJob(db, jobId))?.cancel_requested) controller.abort();
    };
    try {
      const volumes = await caseVolumes(db, row.case_id);
      const byRole = new Map(volumes.map((v) => [v.role, v.sha256]));
      const result = await runPipeline({
        read: async (role: VolumeRole) => (byRole.has(role) ? deps.store.read(byRole.get(role)!) : undefined),
        models: models as NonNullable<(typeof models)[number]>[],
        signal: controller.signal,
        onProgress,
        checkpoint,
      });
      throttle.cancel();
      await writing;
      // Content-addressed: storing the same mask again (a retried job) adds nothing.
      // Every mask is uint8 on the DWI grid: the header facts come from the result, not a re-read.
      const save = async (bytes: Buffer) => {
        const put = await deps.store.put(bytes);
        return insertVolume(db, {
          sha256: put.sha256,
          bytes: bytes.length,
          dims: result.dims,
          voxelSizeMm: result.voxelSizeMm,
          datatype: 'uint8',
          affine: result.affine,
          frames: 1,
        });
      };
      const maskVolumeId = await save(result.maskNifti);
      await linkJobVolume(db, jobId, 'mask', maskVolumeId);
      const perModel: StoredResult['perModel'] = [];
      for (const m of result.perModel) {
        const volumeId = m.maskNifti === result.maskNifti ? maskVolumeId : await save(m.maskNifti);
        await linkJobVolume(db, jobId, `model:${m.modelId}`, volumeId);
        perModel.push({ modelId: m.modelId, volumeId });
      }
      const stored: StoredResult = { maskVolumeId, perModel, metrics: result.metrics, notes: result.notes };
      await finish(row, { status: 'succeeded', progress: 100, message: 'Done', result: JSON.stringify(stored), error: null });
    } catch (err) {
      throttle.cancel();
      await writing.catch(() => {});
      if (err instanceof CancelledError) {
        if (timedOut) {
          await finish(row, { status: 'failed', message: 'Timed out', error: `The segmentation took longer than ${deps.timeoutSeconds} s and was stopped` });
        } else if (draining) {
          // shutting down: hand the job back to the queue for another worker
          await updateJob(db, jobId, { status: 'queued', message: 'Waiting for a worker (the previous one shut down)' }, { statusIn: ['running'] }).then((u) => publish(deps.bus, u));
          throw new Error('worker shut down before the job finished');
        } else {
          await finish(row, { status: 'cancelled', message: 'Cancelled' });
        }
        return;
      }
      if (err instanceof SegmentationInputError) {
        // the case's data is the problem: retrying cannot help
        await finish(row, { status: 'failed', message: 'Failed', error: err.message });
        return;
      }
      log.error({ jobId, err }, 'segmentation failed unexpectedly; it will be retried');
      await updateJob(db, jobId, { status: 'queued', message: 'Retrying after an error' }, { statusIn: ['running'] }).then((u) => publish(deps.bus, u));
      throw err;
    } finally {
      clearTimeout(timer);
      active.delete(jobId);
    }
  };

  const workerId = await boss.work<QueueJobData>(
    SEGMENTATION_QUEUE,
    { localConcurrency: deps.concurrency, batchSize: 1, pollingIntervalSeconds: 0.5, notifyPollingIntervalSeconds: 5 },
    async ([job]) => {
      if (job) await handle(job);
    },
  );
  // Retries ran out (the job's worker died every time): say so on the job.
  await boss.work<QueueJobData>(DEAD_LETTER_QUEUE, { pollingIntervalSeconds: 2 }, async ([job]) => {
    if (!job) return;
    const row = await findJob(db, job.data.jobId);
    if (row && ['queued', 'running'].includes(row.status)) {
      await finish(row, {
        status: 'failed',
        message: 'Failed',
        error: `The job was stopped ${row.attempts} time(s) before it could finish (the worker crashed or was shut down); giving up`,
      });
    }
  });
  log.info({ concurrency: deps.concurrency }, 'segmentation workers started');

  return {
    wake: () => boss.notifyWorker(workerId),
    running: () => active.size,
    async stop(graceMs) {
      draining = true;
      const stopping = boss.offWork(SEGMENTATION_QUEUE, { wait: false }).catch(() => {});
      const deadline = Date.now() + graceMs;
      while (active.size > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      for (const c of active.values()) c.abort();
      while (active.size > 0 && Date.now() < deadline + 2000) await new Promise((r) => setTimeout(r, 50));
      await stopping;
    },
  };
}
