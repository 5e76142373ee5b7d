import { DEFAULT_REFINE_LIMITS, RefineSessions } from './refine/sessions.js';
import { SessionCache, pgliteCredentialChanges } from './auth/session-cache.js';
import { BootError, ensureWritableDataDir, resolveSecretKey } from './data-dir.js';
import { type DatabaseHandle, connectDatabase, redactUrl } from './db/connect.js';
import type { OpenedEmbedded } from './db/embedded.js';
import { migrateToLatest } from './db/migrate.js';
import type { Env } from './env.js';
import { type JobRuntime, startJobRuntime } from './jobs/runtime.js';
import { startQueue, stopQueue } from './jobs/queue.js';
import type { PgBoss } from 'pg-boss';
import type { Logger } from './logger.js';
import type { Services } from './readiness.js';
import { type ModelRegistry, loadConfiguredModels } from './segmentation/models.js';
import { type VolumeSigner, createVolumeSigner } from './volumes/signing.js';
import { describeVolumeStore, openVolumeStore, s3StoreOf } from './volumes/backends.js';
import { storageMisconfiguration } from './errors.js';
import type { VolumeStore } from './volumes/store.js';
import { CpuPool, poolSize } from './workers/pool.js';

/**
 * What one process opens, once, for its role: the server (everything), a worker alone (no
 * signer: it serves no links) and a local CLI task (the database and the store: no queue, no
 * models). Whatever is opened is closed by one `stop()`, in reverse order.
 */
export type RuntimeRole = 'server' | 'worker' | 'task';

export interface TaskRuntime {
  readonly env: Env;
  readonly dataDir: string;
  readonly database: DatabaseHandle;
  /** Names of the migrations this boot applied (none when the role skips migrating). */
  readonly applied: string[];
  readonly store: VolumeStore;
  /**
   * Stops the job system (running jobs get up to `graceMs`, then go back to the queue), waits for
   * `drained` — the HTTP server's requests in flight still use the pool and the models — then
   * closes the rest. A failing step is logged and the others still run.
   */
  stop(graceMs?: number, drained?: Promise<unknown>): Promise<void>;
}

export interface WorkerRuntime extends TaskRuntime {
  readonly models: ModelRegistry;
  /** Worker threads for CPU-heavy work (uploads, the pipeline). */
  readonly cpu: CpuPool;
  readonly jobs: JobRuntime;
}

export interface ServerRuntime extends TaskRuntime {
  readonly models: ModelRegistry;
  readonly cpu: CpuPool;
  /**
   * The job system, still starting when the server is ready (#29): pg-boss's start and its queues
   * are not needed to answer, so they run after ready; what needs the queue awaits it.
   */
  readonly jobs: Promise<JobRuntime>;
  readonly signer: VolumeSigner;
  /** What the request handlers are given once ready. */
  readonly services: Services;
}

export interface RuntimeOptions {
  /** DATA_DIR already proven writable (the server checks it before it listens); else checked here. */
  dataDir?: string;
  /** The server resolves it before it listens, so a bad key fails before anything else. */
  secretKey?: string;
  /** Tasks go without: their output is the command's, not log lines. */
  log?: Logger;
  /** Aborted (a signal during boot): opening stops before its next step and closes what it opened. */
  signal?: AbortSignal;
  /** The server's work on the migrated database before models load (admin account, demo cases). */
  prepare?: (opened: { database: DatabaseHandle; store: VolumeStore }) => Promise<void>;
  /** Metrics: a job ended (server only). */
  onJobFinished?: (status: string, seconds: number) => void;
  /**
   * The server on the embedded database: its job system starts once this resolves (start-server.ts:
   * a moment after ready; tests: a gate). A rejection (a stop first) means it never starts.
   */
  jobsAfter?: Promise<void>;
  /** The server: the job system failed to start after ready (the boot's own failures reject openRuntime). */
  onJobsFailed?: (err: unknown) => void;
  /** Filled with each boot phase's duration in ms as it finishes (the server logs them at ready). */
  phases?: BootPhases;
  /**
   * The embedded database, already opening (the server's entry starts it before the rest of its
   * modules load); used when DATABASE_URL is unset. Its phase is then `awaitDatabase`: the wait left.
   */
  embedded?: Promise<OpenedEmbedded>;
  /** The model sessions, already loading (start-early.ts); its `models` phase is measured there. */
  models?: Promise<ModelRegistry>;
}

/** Boot phase → milliseconds it took, in the order they ran. */
export type BootPhases = Record<string, number>;

/** Runs one boot phase and records how long it took. */
export async function timedPhase<T>(phases: BootPhases | undefined, name: string, fn: () => Promise<T> | T): Promise<T> {
  const t0 = performance.now();
  try {
    return await fn();
  } finally {
    if (phases) phases[name] = Math.round(performance.now() - t0);
  }
}

/** Thrown by `openRuntime` when its signal was aborted: the process is stopping, not failing. */
export class BootAborted extends Error {
  override name = 'BootAborted';
  constructor() {
    super('stopped before it was ready');
  }
}

type WithLog = RuntimeOptions & { log: Logger };

export function openRuntime(env: Env, role: 'server', opts: WithLog): Promise<ServerRuntime>;
export function openRuntime(env: Env, role: 'worker', opts: WithLog): Promise<WorkerRuntime>;
export function openRuntime(env: Env, role: 'task', opts?: RuntimeOptions): Promise<TaskRuntime>;
export async function openRuntime(env: Env, role: RuntimeRole, opts: RuntimeOptions = {}): Promise<TaskRuntime> {
  const { log, signal, phases } = opts;
  const timed = <T>(name: string, fn: () => Promise<T> | T) => timedPhase(phases, name, fn);
  const closers: { name: string; close: () => Promise<void> }[] = [];
  let drainJobs: ((graceMs: number) => Promise<void>) | undefined;
  const closeAll = async (graceMs = 0, drained?: Promise<unknown>) => {
    const step = async (name: string, fn: () => Promise<unknown>) => {
      try {
        await fn();
      } catch (err) {
        log?.error({ err }, `stopping ${name} failed`);
      }
    };
    const drain = drainJobs;
    drainJobs = undefined;
    if (drain) await step('the job system', () => drain(graceMs));
    await drained;
    for (const c of closers.splice(0).reverse()) await step(c.name, c.close);
  };
  const next = async () => {
    if (!signal?.aborted) return;
    await closeAll();
    throw new BootAborted();
  };

  // Models load while the database opens and migrates (they need nothing from it): on a warm
  // restart these are the two longest waits before ready, and onnxruntime builds its sessions off
  // the event loop. Closed with everything else when boot fails.
  if (role !== 'task' && !log) throw new TypeError(`openRuntime(env, '${role}') needs a logger`);
  const modelsLoading = role === 'task' ? undefined : (opts.models ?? timed('models', () => loadConfiguredModels(env, log!)));
  if (modelsLoading) {
    modelsLoading.catch(() => {}); // awaited (and its failure thrown) below
    closers.push({ name: 'the models', close: async () => (await modelsLoading.catch(() => undefined))?.close() });
  }
  try {
    const dataDir = opts.dataDir ?? ensureWritableDataDir(env.DATA_DIR);
    const embedded = env.DATABASE_URL ? undefined : opts.embedded;
    const database = await timed(embedded ? 'awaitDatabase' : 'openDatabase', () =>
      connectDatabase({ databaseUrl: env.DATABASE_URL, dataDir, ...(embedded ? { embedded } : {}) }),
    );
    closers.push({ name: 'the database', close: () => database.close() });
    await next();
    log?.info({ database: database.kind, where: env.DATABASE_URL ? redactUrl(env.DATABASE_URL) : `${dataDir}/pgdata` }, 'database open');
    // Workers and tasks always migrate: only the server's replicas may leave it to a deploy step.
    let applied: string[] = [];
    if (role !== 'server' || env.MIGRATE_ON_BOOT) {
      applied = await timed('migrations', () => migrateToLatest(database.db));
      log?.info({ applied }, 'migrations done');
    }
    await next();
    const store = await openVolumeStore(env, dataDir, {
      onCacheError: (err, what) => log?.warn({ err: (err as Error).message }, `${what} failed; the volume was read from the store`),
    });
    const s3 = s3StoreOf(store);
    if (s3) closers.push({ name: 'the object store client', close: async () => s3.close() });
    log?.info({ storage: describeVolumeStore(store) }, 'volume store open');
    // A missing bucket is a configuration error: said at boot, plainly (readyz keeps saying it
    // until the bucket exists; the store may be created after the app starts, so boot goes on).
    store.check?.().catch((err: unknown) => {
      const misconfigured = storageMisconfiguration(err);
      if (misconfigured) log?.error({ storage: describeVolumeStore(store) }, `STORAGE_URL is misconfigured: ${misconfigured}`);
      else log?.warn({ storage: describeVolumeStore(store), err: (err as Error).message }, 'the object store is not answering yet');
    });
    const base: TaskRuntime = { env, dataDir, database, applied, store, stop: closeAll };
    if (role === 'task') return base;
    if (!log) throw new TypeError(`openRuntime(env, '${role}') needs a logger`);

    // The queue starts (pg-boss's schema check, its queues) while the server prepares and the models
    // load: it needs only the migrated database. Stopped here if boot fails before the job system owns it.
    // The server on the embedded database starts it after ready instead (#29): its queries would
    // queue with the boot's own on PGlite's one connection, and nothing needs it to answer.
    const deferJobs = role === 'server' && database.kind === 'embedded';
    let queueOwned = false;
    let queueStarting: Promise<PgBoss> | undefined;
    const startQueueOnce = () => {
      queueStarting ??= timed('queue', () => startQueue({ database, env, log }));
      queueStarting.catch(() => {}); // awaited (and its failure thrown) by startJobRuntime
      return queueStarting;
    };
    if (!deferJobs) startQueueOnce();
    closers.push({
      name: 'the job queue',
      close: async () => {
        const boss = await queueStarting?.catch(() => undefined);
        if (boss && !queueOwned) await stopQueue(boss, database.kind === 'postgres');
      },
    });
    await timed('prepare', () => opts.prepare?.({ database, store }));
    await next();
    const models = await modelsLoading!;
    await next();
    if (role === 'worker' && models.models.size === 0) throw new BootError('no model could be loaded; see the log above');
    const cpu = await timed('cpuPool', () => new CpuPool(poolSize(env)));
    closers.push({ name: 'the CPU pool', close: () => cpu.destroy() });
    const jobsStarting = ((deferJobs && opts.jobsAfter) || Promise.resolve()).then(() =>
      startJobRuntime({
        boss: startQueueOnce(),
        cpu,
        database,
        store,
        models,
        env,
        log,
        runWorker: role === 'worker' || env.RUN_WORKER,
        ...(opts.onJobFinished ? { onFinished: opts.onJobFinished } : {}),
        ...(phases ? { phases } : {}),
      }),
    );
    // From here the job runtime owns the queue (it stops it), or its start failed and the queue's
    // closer stops it. A stop while it is still starting waits for it, then drains it.
    jobsStarting.then(
      () => (queueOwned = true),
      () => {},
    );
    drainJobs = async (graceMs) => (await jobsStarting.catch(() => undefined))?.stop(graceMs);
    if (role === 'worker') {
      const jobs = await jobsStarting;
      await next();
      const worker: WorkerRuntime = { ...base, models, cpu, jobs };
      return worker;
    }
    // On PostgreSQL the session cache hears credential changes on the job system's event bus, so
    // the server waits for it as before; embedded, the database itself tells the cache.
    const started = deferJobs ? undefined : await jobsStarting;
    if (!started) jobsStarting.catch((err: unknown) => opts.onJobsFailed?.(err));
    const jobSystem = jobsStarting.then((j) => j.jobs);
    jobSystem.catch(() => {}); // reported by onJobsFailed; a request that needs it gets the error
    await next();
    const signer = createVolumeSigner(opts.secretKey ?? resolveSecretKey(dataDir, env.SECRET_KEY), env.VOLUME_URL_TTL_S);
    const server: ServerRuntime = {
      ...base,
      models,
      cpu,
      jobs: jobsStarting,
      signer,
      services: {
        database,
        store,
        signer,
        models,
        jobs: jobSystem,
        cpu,
        refine: new RefineSessions(DEFAULT_REFINE_LIMITS),
        // Embedded: this process is the database's only user (its lock); PostgreSQL: the event bus's LISTEN.
        sessions: new SessionCache(database.pglite ? pgliteCredentialChanges(database.pglite) : started?.jobs.bus.credentials, {
          ttlMs: env.SESSION_CACHE_S * 1000,
        }),
      },
    };
    return server;
  } catch (err) {
    if (!(err instanceof BootAborted)) await closeAll();
    throw err;
  }
}
