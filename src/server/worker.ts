import path from 'node:path';
import { fatal } from './boot.js';
import { BootError, ensureWritableDataDir } from './data-dir.js';
import { type DatabaseHandle, connectDatabase } from './db/connect.js';
import { migrateToLatest } from './db/migrate.js';
import { EnvError, type Env, parseEnv } from './env.js';
import { type JobRuntime, startJobRuntime } from './jobs/runtime.js';
import { createLogger } from './logger.js';
import { type ModelRegistry, loadConfiguredModels } from './segmentation/models.js';
import { FsVolumeStore } from './volumes/store.js';

// `npm run worker`: segmentation workers alone (a GPU machine), taking jobs from the queue in
// DATABASE_URL's PostgreSQL. DATA_DIR must be the storage the API servers use.
let env: Env;
try {
  env = parseEnv();
} catch (err) {
  fatal(err instanceof EnvError ? `invalid environment: ${err.message}` : String(err));
}
const logger = createLogger({ level: env.LOG_LEVEL }).child({ role: 'worker' });
let database: DatabaseHandle | undefined;
let models: ModelRegistry | undefined;
let runtime: JobRuntime | undefined;
let stopping = false;

try {
  const dataDir = ensureWritableDataDir(env.DATA_DIR);
  database = await connectDatabase({ databaseUrl: env.DATABASE_URL, dataDir });
  await migrateToLatest(database.db);
  models = await loadConfiguredModels(env, logger);
  if (models.models.size === 0) throw new BootError('no model could be loaded; see the log above');
  runtime = await startJobRuntime({
    database,
    store: new FsVolumeStore(path.join(dataDir, 'volumes')),
    models,
    env,
    log: logger,
    runWorker: true,
  });
  logger.info({ database: database.kind, concurrency: env.WORKER_CONCURRENCY }, 'worker ready');
} catch (err) {
  await database?.close().catch(() => {});
  fatal((err as Error).message);
}

async function shutdown(signal: string) {
  if (stopping) return;
  stopping = true;
  logger.info({ signal }, 'worker draining');
  await runtime?.stop(env.SHUTDOWN_GRACE_S * 1000).catch((err) => logger.error({ err }, 'stopping failed'));
  await models?.close().catch(() => {});
  await database?.close().catch(() => {});
  logger.info('worker stopped');
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
