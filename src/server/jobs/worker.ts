import type { Kysely } from 'kysely';
import type { Job, PgBoss } from 'pg-boss';
import type { VolumeRole } from '../../shared/cases.js';
import { caseVolumes, insertVolume } from '../db/cases.js';
import { findJob, linkJobVolume, updateJob } from '../db/jobs.js';
import type { Database, JobRow } from '../db/tables.js';
import type { Logger } from '../logger.js';
import { CancelledError } from '../segmentation/inference.js';
import type { LoadedModel, ModelRegistry } from '../segmentation/models.js';
import { type Progress, SegmentationInputError, type Stage } from '../segmentation/pipeline.js';
import type { VolumeStore } from '../volumes/store.js';
import type { CpuPool, SegmentResult } from '../workers/pool.js';
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
  /** Worker threads the pipeline runs in (the event loop only moves bytes and state). */
  cpu: CpuPool;
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
const TERMINAL = ['succeeded', 'failed', 'cancelled'];

type Deps = Pick<WorkerDeps, 'db' | 'bus' | 'onFinished'>;

/** Ends a job with a terminal status (guarded: a job that ended meanwhile is left alone) and tells subscribers. */
export async function finishJob(deps: Deps, jobId: string, patch: Parameters<typeof updateJob>[2]) {
  const updated = await updateJob(deps.db, jobId, { ...patch, finished_at: new Date() }, { statusIn: ['queued', 'running'] });
  await publish(deps.bus, updated);
  if (updated) {
    const started = updated.started_at ? new Date(updated.started_at).getTime() : Date.now();
    deps.onFinished?.(updated.status, (Date.now() - started) / 1000);
  }
  return updated;
}

/**
 * Claiming: turns a queued job into a running one for this worker, or ends it at once (cancelled
 * before it started, a model this worker lacks). Null when there is nothing to run — including
 * when the claiming update finds the job no longer queued or running (never the stale row).
 */
export async function claimJob(deps: Deps & { models: ModelRegistry }, jobId: string): Promise<{ row: JobRow; models: LoadedModel[] } | null> {
  const row = await findJob(deps.db, jobId);
  if (!row || TERMINAL.includes(row.status)) return null; // done already: nothing twice
  if (row.cancel_requested) {
    await finishJob(deps, jobId, { status: 'cancelled', message: 'Cancelled' });
    return null;
  }
  const models = row.model_ids.map((id) => deps.models.models.get(id));
  if (models.some((m) => !m)) {
    await finishJob(deps, jobId, { status: 'failed', error: `Model ${row.model_ids.join(', ')} is not available on this worker`, message: 'Failed' });
    return null;
  }
  const claimed = await updateJob(
    deps.db,
    jobId,
    {
      status: 'running',
      attempts: row.attempts + 1,
      progress: 1,
      message: row.attempts > 0 ? `Restarted (attempt ${row.attempts + 1})` : 'Started',
      ...(row.started_at ? {} : { started_at: new Date() }),
    },
    { statusIn: ['queued', 'running'] },
  );
  if (!claimed) return null;
  await publish(deps.bus, claimed);
  return { row: claimed, models: models as LoadedModel[] };
}

/**
 * The watch over a running job: its timeout, throttled progress writes (a cancel seen in a write
 * aborts), and the check at each stage (a test's hold, then a look at cancel_requested).
 */
export function watchJob(deps: Deps & Pick<WorkerDeps, 'hold'>, jobId: string, timeoutSeconds: number) {
  const controller = new AbortController();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutSeconds * 1000);
  let writing: Promise<void> = Promise.resolve();
  const throttle = createProgressThrottle<Progress>({
    intervalMs: PROGRESS_INTERVAL_MS,
    write: (p) => {
      writing = writing.then(async () => {
        const updated = await updateJob(deps.db, jobId, { progress: p.percent, message: p.message }, { statusIn: ['running'] });
        if (updated?.cancel_requested) controller.abort();
        await publish(deps.bus, updated);
      });
    },
  });
  return {
    signal: controller.signal,
    abort: () => controller.abort(),
    timedOut: () => timedOut,
    onProgress: (p: Progress) => throttle.report(p),
    checkpoint: async (stage: Stage) => {
      await deps.hold?.({ jobId, stage, signal: controller.signal });
      if ((await findJob(deps.db, jobId))?.cancel_requested) controller.abort();
    },
    /** Stops progress writes and waits for the one in flight. */
    async settle() {
      throttle.cancel();
      await writing.catch(() => {});
    },
    dispose: () => clearTimeout(timer),
  };
}

/** The process's peak resident memory while a job runs (threads share it), sampled every 100 ms. */
function watchMemory() {
  const start = process.memoryUsage.rss();
  let peak = start;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 100);
  timer.unref();
  return () => {
    clearInterval(timer);
    return { peakRssGrowthMb: Math.round((Math.max(peak, process.memoryUsage.rss()) - start) / 1048576) };
  };
}

/** Stores the job's masks (content-addressed: a retried job adds nothing) and links them. */
export async function storeResult(deps: Pick<WorkerDeps, 'db' | 'store'>, jobId: string, result: SegmentResult): Promise<StoredResult> {
  // Every mask is uint8 on the DWI grid: the header facts come from the result, not a re-read.
  const save = async (bytes: Buffer) => {
    const put = await deps.store.put(bytes);
    return insertVolume(deps.db, {
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
  await linkJobVolume(deps.db, jobId, 'mask', maskVolumeId);
  const perModel: StoredResult['perModel'] = [];
  for (const m of result.perModel) {
    const volumeId = result.perModel.length === 1 ? maskVolumeId : await save(m.maskNifti);
    await linkJobVolume(deps.db, jobId, `model:${m.modelId}`, volumeId);
    perModel.push({ modelId: m.modelId, volumeId });
  }
  return { maskVolumeId, perModel, metrics: result.metrics, notes: result.notes };
}

/** What a failed run means for the job. */
export type Outcome =
  | { kind: 'failed'; message: string; error: string }
  | { kind: 'cancelled' }
  /** Shutting down: back to the queue for another worker. */
  | { kind: 'handed-back' }
  /** Unexplained: back to the queue to be retried (pg-boss counts the attempts). */
  | { kind: 'retry' };

export function outcomeOf(err: unknown, at: { timedOut: boolean; draining: boolean; timeoutSeconds: number }): Outcome {
  if (err instanceof CancelledError) {
    if (at.timedOut) return { kind: 'failed', message: 'Timed out', error: `The segmentation took longer than ${at.timeoutSeconds} s and was stopped` };
    return at.draining ? { kind: 'handed-back' } : { kind: 'cancelled' };
  }
  // The case's data is the problem: retrying cannot help.
  if (err instanceof SegmentationInputError) return { kind: 'failed', message: 'Failed', error: err.message };
  return { kind: 'retry' };
}

/** Runs segmentation jobs from the queue: in the API process by default, or alone (`npm run worker`). */
export async function startWorkers(deps: WorkerDeps): Promise<Workers> {
  const { boss, db, log } = deps;
  const active = new Map<string, () => void>();
  let draining = false;

  const handle = async (queued: Job<QueueJobData>) => {
    const jobId = queued.data.jobId;
    const claimed = await claimJob(deps, jobId);
    if (!claimed) return;
    const watch = watchJob(deps, jobId, deps.timeoutSeconds);
    active.set(jobId, watch.abort);
    const memory = watchMemory();
    try {
      const volumes = await caseVolumes(db, claimed.row.case_id);
      const bytes: Partial<Record<VolumeRole, Uint8Array>> = {};
      for (const v of volumes) bytes[v.role as VolumeRole] = await deps.store.read(v.sha256);
      const result = await deps.cpu.segment({
        volumes: bytes,
        models: claimed.models,
        provider: deps.models.provider.active,
        threads: deps.models.provider.threads,
        signal: watch.signal,
        onProgress: watch.onProgress,
        checkpoint: watch.checkpoint,
      });
      await watch.settle();
      const stored = await storeResult(deps, jobId, result);
      await finishJob(deps, jobId, { status: 'succeeded', progress: 100, message: 'Done', result: JSON.stringify(stored), error: null });
      log.info({ jobId, ...memory(), timingsMs: result.timings }, 'job succeeded');
    } catch (err) {
      await watch.settle();
      const outcome = outcomeOf(err, { timedOut: watch.timedOut(), draining, timeoutSeconds: deps.timeoutSeconds });
      log.info({ jobId, outcome: outcome.kind, ...memory() }, 'job stopped');
      if (outcome.kind === 'failed') await finishJob(deps, jobId, { status: 'failed', message: outcome.message, error: outcome.error });
      else if (outcome.kind === 'cancelled') await finishJob(deps, jobId, { status: 'cancelled', message: 'Cancelled' });
      else {
        if (outcome.kind === 'retry') log.error({ jobId, err }, 'segmentation failed unexpectedly; it will be retried');
        const message = outcome.kind === 'handed-back' ? 'Waiting for a worker (the previous one shut down)' : 'Retrying after an error';
        await updateJob(db, jobId, { status: 'queued', message }, { statusIn: ['running'] }).then((u) => publish(deps.bus, u));
        throw outcome.kind === 'handed-back' ? new Error('worker shut down before the job finished') : err;
      }
    } finally {
      watch.dispose();
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
      await finishJob(deps, row.id, {
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
      for (const abort of active.values()) abort();
      while (active.size > 0 && Date.now() < deadline + 2000) await new Promise((r) => setTimeout(r, 50));
      await stopping;
    },
  };
}
