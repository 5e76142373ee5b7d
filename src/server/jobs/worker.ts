import type { Kysely } from 'kysely';
import type { PgBoss } from 'pg-boss';
import type { VolumeRole } from '../../shared/cases.js';
import { caseVolumes } from '../db/cases.js';
import { isTerminal } from '../../shared/job-status.js';
import { findJob } from '../db/jobs.js';
import { isDatabaseUnavailable } from '../db/unavailable.js';
import { isStorageUnavailable } from '../errors.js';
import type { Database, JobRow } from '../db/tables.js';
import type { Logger } from '../logger.js';
import type { LoadedModel, ModelRegistry } from '../segmentation/models.js';
import { segmentInPool } from '../segmentation/cpu.js';
import { type Progress, type Stage, rolesRead } from '../segmentation/pipeline.js';
import type { VolumeStore } from '../volumes/store.js';
import type { CpuPool } from '../workers/pool.js';
import type { JobEventBus } from './events.js';
import type { JobHold } from './hold.js';
import { createProgressThrottle } from './progress-throttle.js';
import { DEAD_LETTER_QUEUE, type QueueJobData, SEGMENTATION_QUEUE } from './queue.js';
import { outcomeOf, safeError, storeResult } from './outcome.js';
import { publish, reconcileQueue } from './service.js';
import * as transition from './transitions.js';
import type { Lease } from './transitions.js';
import { MiB } from '../../shared/units.js';

// One delivery of a job, claim to end, and the loop that takes deliveries from the queue. Kept in
// one file (~300 lines) on purpose: the claim, the watch (progress, cancel, timeout, lease, a
// database outage) and the ending of an attempt share one lease and one order of writes, and a
// reader checking that no path leaves a job half-ended needs them side by side. What an error
// means and how a result is stored are outcome.ts.

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
  /** How often an idle slot fetches while the queue's NOTIFY wakes it (s; default 5). Tests set it high. */
  backstopSeconds?: number;
  /** MAX_RUN_JOBS_IN_FLIGHT: a study run's jobs running at once in this process (0 or absent: no cap). */
  runJobsInFlight?: number;
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

type Deps = Pick<WorkerDeps, 'db' | 'bus' | 'onFinished'>;

/** Tells subscribers and the metrics about a job that reached a terminal status (nothing when the change did not apply). */
async function finished(deps: Deps, updated: JobRow | undefined): Promise<JobRow | undefined> {
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
export async function claimJob(
  deps: Deps & { models: ModelRegistry },
  jobId: string,
  /** Called with the job as it is being claimed (runJob starts reading its inputs there). */
  claiming?: (row: JobRow, models: LoadedModel[]) => void,
): Promise<{ row: JobRow; lease: Lease; models: LoadedModel[] } | null> {
  const row = await findJob(deps.db, jobId);
  if (!row || isTerminal(row.status)) return null; // done already: nothing twice
  if (row.cancel_requested) {
    await finished(deps, await transition.end(deps.db, { jobId }, { status: 'cancelled' }));
    return null;
  }
  const models = row.model_ids.map((id) => deps.models.models.get(id));
  if (models.some((m) => !m)) {
    const error = `Model ${row.model_ids.join(', ')} is not available on this worker`;
    await finished(deps, await transition.end(deps.db, { jobId }, { status: 'failed', message: 'Failed', error }));
    return null;
  }
  claiming?.(row, models as LoadedModel[]);
  // Guarded by the attempt read above: of two workers claiming at once, one wins.
  const claimed = await transition.claim(deps.db, row);
  if (!claimed) return null;
  await publish(deps.bus, claimed);
  return { row: claimed, lease: { jobId, attempt: claimed.attempts }, models: models as LoadedModel[] };
}

/**
 * The watch over a running job: its timeout, throttled progress writes (a cancel seen in a write
 * aborts), and the check at each stage (a test's hold, then a look at cancel_requested).
 *
 * Its database work runs beside the pipeline, not in its await chain, so a failure there (the
 * database restarting) would reject with nobody listening — which ends a Node process. Every
 * such failure is caught here instead: it stops the pipeline and is kept as `failure()`, the
 * reason this attempt ends (retried like any unexplained error; pg-boss redelivers the job).
 */
export function watchJob(deps: Deps & Pick<WorkerDeps, 'hold' | 'log'>, lease: Lease, timeoutSeconds: number) {
  const { jobId } = lease;
  const controller = new AbortController();
  let timedOut = false;
  // Set when a write of ours did not apply: another attempt holds the job (or it ended). The
  // pipeline is stopped and nothing more is written.
  let lost = false;
  const lose = () => {
    lost = true;
    controller.abort();
  };
  let failure: unknown;
  const fail = (err: unknown) => {
    if (failure === undefined) {
      failure = err;
      deps.log.warn(
        { jobId, attempt: lease.attempt, err: (err as Error)?.message ?? String(err), databaseUnavailable: isDatabaseUnavailable(err) },
        'database error during the job; this attempt stops and the job will be retried',
      );
    }
    controller.abort();
  };
  const timer = setTimeout(() => {
    timedOut = true;
    controller.abort();
  }, timeoutSeconds * 1000);
  let writing: Promise<void> = Promise.resolve();
  const throttle = createProgressThrottle<Progress>({
    intervalMs: PROGRESS_INTERVAL_MS,
    write: (p) => {
      // Each link handles its own rejection: the chain never holds a rejected promise.
      writing = writing
        .then(async () => {
          if (lost || failure !== undefined) return;
          const updated = await transition.progress(deps.db, lease, { progress: p.percent, message: p.message });
          if (!updated) return lose();
          if (updated.cancel_requested) controller.abort();
          await publish(deps.bus, updated);
        })
        .catch(fail);
    },
  });
  return {
    signal: controller.signal,
    abort: () => controller.abort(),
    timedOut: () => timedOut,
    lost: () => lost,
    /** The database error that stopped this attempt (the pipeline then only reports "cancelled"). */
    failure: () => failure,
    onProgress: (p: Progress) => throttle.report(p),
    checkpoint: async (stage: Stage) => {
      await deps.hold?.({ jobId, stage, signal: controller.signal });
      let row: JobRow | undefined;
      try {
        row = await findJob(deps.db, jobId);
      } catch (err) {
        // The pool turns a failed checkpoint into an abort: kept, so the job is retried, not "cancelled".
        fail(err);
        throw err;
      }
      if (!row || row.status !== 'running' || row.attempts !== lease.attempt) return lose();
      if (row.cancel_requested) controller.abort();
    },
    /** Stops progress writes and waits for the one in flight (which never rejects). */
    async settle() {
      throttle.cancel();
      await writing;
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
    return { peakRssGrowthMb: Math.round((Math.max(peak, process.memoryUsage.rss()) - start) / MiB) };
  };
}

/**
 * Runs one delivery of a job, start to end: claim, pipeline in the CPU pool, store and succeed —
 * or fail, cancel, requeue. Exported so a test can run two attempts of one job side by side.
 * Throws (so the queue retries) only for a retry or a hand-back; returns otherwise.
 */
export function jobRunner(
  deps: Omit<WorkerDeps, 'boss' | 'concurrency'>,
  state: { active: Map<string, () => void>; draining: () => boolean } = { active: new Map(), draining: () => false },
) {
  const { db, log } = deps;
  const { active } = state;
  /** The volumes a run of `models` on the case reads, fetched together: on an object store each is a round trip. */
  const readInputs = async (caseId: string, models: LoadedModel[]) => {
    const roles = rolesRead(models);
    const volumes = (await caseVolumes(db, caseId)).filter((v) => roles.has(v.role));
    const read = await Promise.all(volumes.map((v) => deps.store.read(v.sha256)));
    const bytes: Partial<Record<VolumeRole, Uint8Array>> = {};
    for (const [i, v] of volumes.entries()) bytes[v.role] = read[i]!;
    return bytes;
  };
  return async function runJob(jobId: string): Promise<void> {
    // The inputs are fetched while the claim is written, not after: the store's round trips and
    // the database's overlap. A claim lost to another worker drops them unread.
    let inputs: ReturnType<typeof readInputs> | undefined;
    const claimed = await claimJob(deps, jobId, (row, models) => {
      inputs = readInputs(row.case_id, models);
      inputs.catch(() => {}); // its error is the job's: met where it is awaited below
    });
    if (!claimed) return;
    const { lease } = claimed;
    const watch = watchJob(deps, lease, deps.timeoutSeconds);
    active.set(jobId, watch.abort);
    const memory = watchMemory();
    const lostIt = () =>
      log.warn({ jobId, attempt: lease.attempt }, 'job taken over by another attempt (or ended); stopped without writing');
    try {
      const result = await segmentInPool(deps.cpu, {
        volumes: await inputs!,
        models: claimed.models,
        provider: deps.models.provider.active,
        threads: deps.models.provider.threads,
        signal: watch.signal,
        onProgress: watch.onProgress,
        checkpoint: watch.checkpoint,
      });
      await watch.settle();
      if (watch.lost()) return lostIt();
      const done = await finished(deps, await transition.succeed(db, lease, (trx) => storeResult(trx, deps.store, result)));
      if (!done) return lostIt();
      log.info({ jobId, ...memory(), timingsMs: result.timings }, 'job succeeded');
    } catch (thrown) {
      await watch.settle();
      if (watch.lost()) return lostIt();
      // A database error beside the pipeline stopped it: that error, not the abort it caused, is why.
      const err = watch.failure() ?? thrown;
      const outcome = outcomeOf(err, { timedOut: watch.timedOut(), draining: state.draining(), timeoutSeconds: deps.timeoutSeconds });
      log.info({ jobId, outcome: outcome.kind, ...memory() }, 'job stopped');
      try {
        if (outcome.kind === 'failed')
          await finished(deps, await transition.end(db, lease, { status: 'failed', message: outcome.message, error: outcome.error }));
        else if (outcome.kind === 'cancelled') await finished(deps, await transition.end(db, lease, { status: 'cancelled' }));
        else {
          const outage = isDatabaseUnavailable(err);
          // An outage is the database's or the object store's, not a bug: a warning (for the
          // database, watchJob already logged its own).
          if (outcome.kind === 'retry' && isStorageUnavailable(err))
            log.warn(
              { jobId, attempt: lease.attempt, err: (err as Error).message },
              'the object store is unavailable; the job will be retried',
            );
          else if (outcome.kind === 'retry' && !outage) log.error({ jobId, err }, 'segmentation failed unexpectedly; it will be retried');
          else if (outcome.kind === 'retry' && watch.failure() === undefined)
            log.warn({ jobId, attempt: lease.attempt, err: (err as Error).message }, 'database error during the job; it will be retried');
          // The real error is kept on the row while it waits: if the retries run out, it is what the user reads.
          const message = outcome.kind === 'handed-back' ? 'Waiting for a worker (the previous one shut down)' : 'Retrying after an error';
          const why = outage ? 'the database became unavailable while it ran' : safeError(err);
          const requeued = await transition.requeue(db, lease, message, outcome.kind === 'retry' ? why : undefined);
          if (!requeued) return lostIt();
          await publish(deps.bus, requeued);
        }
      } catch (recording) {
        // The database is still away: the row keeps saying "running" under this attempt. Thrown to
        // the queue, whose retry (or, if it cannot record that either, the lapsed lease) redelivers
        // the job; the next attempt's claim takes the row over by its attempt number.
        log.warn(
          { jobId, attempt: lease.attempt, err: (recording as Error).message },
          "could not record the attempt's end; the queue will retry the job",
        );
        throw recording;
      }
      if (outcome.kind === 'retry' || outcome.kind === 'handed-back')
        throw outcome.kind === 'handed-back' ? new Error('worker shut down before the job finished') : err;
    } finally {
      watch.dispose();
      active.delete(jobId);
    }
  };
}

/** Runs segmentation jobs from the queue: in the API process by default, or alone (`npm run worker`). */
export async function startWorkers(deps: WorkerDeps): Promise<Workers> {
  const { boss, db } = deps;
  const log = deps.log;
  const active = new Map<string, () => void>();
  let draining = false;
  const runJob = jobRunner(deps, { active, draining: () => draining });

  // pg-boss waits out its NOTIFY backstop after every fetch, also after one that just ran a job
  // with more queued behind it (only a NOTIFY that arrived meanwhile skips the wait): the jobs of a
  // study run, queued in one go, started one per slot every 5 s (40 jobs of 0.3 s took 96 s on two
  // workers). So every slot of this worker is woken when a job ends — a slot that finds the queue
  // empty goes back to waiting — and `wake` wakes them all, not only the first.
  const work: { id?: string } = {};
  const wakeAll = () => {
    for (const slot of boss.getWipData()) if (slot.workId === work.id) boss.notifyWorker(slot.id);
  };
  work.id = await boss.work<QueueJobData>(
    SEGMENTATION_QUEUE,
    {
      localConcurrency: deps.concurrency,
      batchSize: 1,
      pollingIntervalSeconds: 0.5,
      notifyPollingIntervalSeconds: deps.backstopSeconds ?? 5,
      // A run's jobs are one pg-boss group (jobs/service.ts queuePlace). pg-boss keeps the count
      // per process: its fetch skips a group at the cap, and a job that a racing slot fetched past
      // it is handed back before it starts — so a second run's (or a single job's) work is taken
      // instead of waiting behind the first run. (Its fleet-wide count, `groupConcurrency`, reads
      // the active rows without a lock: slots woken together by one NOTIFY overshoot it, measured.)
      ...(deps.runJobsInFlight && deps.runJobsInFlight < deps.concurrency ? { localGroupConcurrency: deps.runJobsInFlight } : {}),
    },
    async ([job]) => {
      if (!job) return;
      try {
        await runJob(job.data.jobId);
      } finally {
        wakeAll();
      }
    },
  );
  // Retries ran out (the job's worker died every time): say so on the job.
  await boss.work<QueueJobData>(DEAD_LETTER_QUEUE, { pollingIntervalSeconds: 2 }, async ([job]) => {
    if (!job) return;
    const row = await findJob(db, job.data.jobId);
    if (row && !isTerminal(row.status)) {
      // The last attempt's own error when there was one; otherwise its worker died each time.
      const error = row.error
        ? `The job failed ${row.attempts} time(s): ${row.error}; giving up`
        : `The job was stopped ${row.attempts} time(s) before it could finish (the worker crashed or was shut down); giving up`;
      await finished(deps, await transition.end(db, { jobId: row.id }, { status: 'failed', message: 'Failed', error }));
    }
  });
  log.info({ concurrency: deps.concurrency }, 'segmentation workers started');
  // Rows whose process died between insert and enqueue: put on the queue now (never doubled).
  const orphans = await reconcileQueue(db, boss);
  if (orphans > 0) log.warn({ jobs: orphans }, 'queued jobs that never reached the queue were enqueued');

  return {
    wake: wakeAll,
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
