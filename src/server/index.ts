import type { Server } from 'node:http';
import path from 'node:path';
import { serve } from '@hono/node-server';
import { buildApp } from './app.js';
import { ensureAdmin } from './auth/service.js';
import { seedDemoCases } from './cases/demo.js';
import { collectOrphanFiles } from './volumes/service.js';
import { fatal } from './boot.js';
import { BootError, ensureWritableDataDir, removeStaleUploads, resolveSecretKey } from './data-dir.js';
import { connectDatabase, type DatabaseHandle, redactUrl } from './db/connect.js';
import { migrateToLatest } from './db/migrate.js';
import { type Env, EnvError, parseEnv } from './env.js';
import { createLogger } from './logger.js';
import { createMetrics, procedureNames } from './http/metrics/index.js';
import { appRouter } from './routers/_app.js';
import { findClientDir } from './http/viewer/index.js';
import { type JobRuntime, startJobRuntime } from './jobs/runtime.js';
import { Readiness } from './readiness.js';
import { type ModelRegistry, loadConfiguredModels } from './segmentation/models.js';
import { VERSION } from './version.js';
import { createVolumeSigner } from './volumes/signing.js';
import { FsVolumeStore } from './volumes/store.js';
import { CpuPool, poolSize } from './workers/pool.js';

// index.ts only validates the environment, connects, migrates and serves; everything the
// requests do is built by buildApp() from what is made here.

let env: Env;
try {
  env = parseEnv();
} catch (err) {
  fatal(err instanceof EnvError ? `invalid environment: ${err.message}` : String(err));
}

let dataDir: string;
let secretKey: string;
try {
  dataDir = ensureWritableDataDir(env.DATA_DIR);
  secretKey = resolveSecretKey(dataDir, env.SECRET_KEY);
} catch (err) {
  fatal((err as Error).message);
}

const logger = createLogger({ level: env.LOG_LEVEL });
// Uploads spooled by a process that died mid-upload: nothing refers to them. The embedded
// database's lock makes this the only process on DATA_DIR; on shared storage, other processes
// may be mid-upload, so only folders older than an hour go.
removeStaleUploads(path.join(dataDir, 'uploads'), env.DATABASE_URL ? 3_600_000 : 0);
if (env.NODE_ENV === 'production' && !env.PUBLIC_URL) {
  // Signed volume links then name whatever host the request addressed; behind a shared cache
  // that is a poisoning risk, and the cookie policy guesses https from proxy headers.
  logger.warn("PUBLIC_URL is not set: volume links are built from each request's Host header; set PUBLIC_URL to the address people use");
}
const readiness = new Readiness();
const startedAt = Date.now();
const metrics = createMetrics({ procedures: procedureNames(appRouter) });
const clientDir = findClientDir();
const app = buildApp({ env, logger, readiness, process: { version: VERSION, startedAt }, metrics, ...(clientDir ? { clientDir } : {}) });

let database: DatabaseHandle | undefined;
let models: ModelRegistry | undefined;
let jobRuntime: JobRuntime | undefined;
let cpu: CpuPool | undefined;
let stopping = false;

const server = serve({ fetch: app.fetch, port: env.PORT, hostname: env.HOST }) as Server;
server.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EADDRINUSE') fatal(`PORT ${env.PORT} is already in use on ${env.HOST}; set PORT to a free port`);
  fatal(`cannot listen on ${env.HOST}:${env.PORT}: ${err.message}`);
});

server.on('listening', () => {
  logger.info({ port: env.PORT, host: env.HOST, version: VERSION }, 'listening');
  void start();
});

async function start(): Promise<void> {
  try {
    database = await connectDatabase({ databaseUrl: env.DATABASE_URL, dataDir });
    if (stopping) return;
    logger.info(
      {
        database: database.kind,
        where: env.DATABASE_URL ? redactUrl(env.DATABASE_URL) : `${dataDir}/pgdata`,
      },
      'database open',
    );
    if (env.MIGRATE_ON_BOOT) {
      const applied = await migrateToLatest(database.db);
      logger.info({ applied }, 'migrations done');
    }
    if (stopping) return;
    const store = new FsVolumeStore(path.join(dataDir, 'volumes'));
    const signer = createVolumeSigner(secretKey, env.VOLUME_URL_TTL_S);
    // Files a crash left between writing and committing (and half-written temporaries). Only with
    // the embedded database, whose lock makes this process alone on DATA_DIR: on shared storage the
    // scheduled clean-up already sweeps files older than an hour, and a boot-time scan of the whole
    // store on every replica's start would repeat that work.
    if (!env.DATABASE_URL) {
      const orphans = await collectOrphanFiles(database.db, store, 0);
      if (orphans > 0) logger.info({ files: orphans }, 'orphan volume files removed');
    }
    const t0 = Date.now();
    if (env.ADMIN_EMAIL && env.ADMIN_PASSWORD) {
      const outcome = await ensureAdmin(database.db, { email: env.ADMIN_EMAIL, password: env.ADMIN_PASSWORD });
      if (outcome === 'refused') {
        logger.warn(
          { email: env.ADMIN_EMAIL },
          'ADMIN_EMAIL belongs to an account whose password is not ADMIN_PASSWORD: it was not made an admin (use `strokeview users add <email> --admin` if it is yours)',
        );
      } else if (outcome !== 'unchanged') logger.info({ email: env.ADMIN_EMAIL, outcome }, 'administrator account');
    }
    const seeded = await seedDemoCases(database.db, store, env.DEMO_CASES);
    if (seeded) logger.info({ cases: seeded, ms: Date.now() - t0 }, 'demo cases created');
    if (stopping) return;
    models = await loadConfiguredModels(env, logger);
    if (stopping) return;
    cpu = new CpuPool(poolSize(env));
    jobRuntime = await startJobRuntime({
      cpu,
      database,
      store,
      models,
      env,
      log: logger,
      runWorker: env.RUN_WORKER,
      onFinished: metrics.jobFinished,
    });
    if (stopping) return;
    readiness.markReady({ database, store, signer, models, jobs: jobRuntime.jobs, cpu });
    logger.info({ bootMs: Date.now() - startedAt }, 'ready');
  } catch (err) {
    const message = err instanceof BootError ? err.message : `boot failed: ${(err as Error).message}`;
    readiness.markFailed(message);
    if (err instanceof BootError) logger.fatal(message);
    else logger.fatal({ err }, message);
    await database?.close().catch(() => {});
    fatal(message);
  }
}

async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  readiness.markStopping();
  logger.info({ signal }, 'shutting down');
  const graceMs = env.SHUTDOWN_GRACE_S * 1000;
  // Stop accepting; idle keep-alive sockets close now, busy ones after their response or the grace.
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  const cut = setTimeout(() => server.closeAllConnections(), graceMs);
  // Workers stop claiming; running jobs get the same grace, then go back to the queue.
  await jobRuntime?.stop(graceMs).catch((err) => logger.error({ err }, 'stopping the job system failed'));
  await closed;
  clearTimeout(cut);
  try {
    await models?.close();
    await cpu?.destroy();
    await database?.close();
  } catch (err) {
    logger.error({ err }, 'closing the database failed');
  }
  logger.info('stopped');
  process.exit(0);
}

process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
