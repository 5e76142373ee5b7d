import { DEFAULT_REFINE_LIMITS, RefineSessions } from '../refine/sessions.js';
import { SessionCache, pgliteCredentialChanges } from '../auth/session-cache.js';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { AnyRouter } from '@trpc/server';
import type { Hono } from 'hono';
import { buildApp } from '../app.js';
import type { DatabaseHandle } from '../db/connect.js';
import { type Env, parseEnv } from '../env.js';
import { createLogger } from '../logger.js';
import { Readiness } from '../readiness.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from '../segmentation/models.js';
import { localEventBus } from '../jobs/events.js';
import type { JobSystem } from '../jobs/service.js';
import { StreamLimits } from '../jobs/stream-limits.js';
import { type VolumeSigner, createVolumeSigner } from '../volumes/signing.js';
import { FsVolumeStore, type VolumeStore } from '../volumes/store.js';
import { CpuPool } from '../workers/pool.js';

/** The real built-in model, loaded once per test file, for apps whose test passes no registry. */
const builtInModels: ModelRegistry = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });

/** One CPU pool per test file, made when an app first needs it (threads start lazily). */
let cpuPool: CpuPool | undefined;
export function testCpuPool(): CpuPool {
  cpuPool ??= new CpuPool(2);
  return cpuPool;
}

/** Tests that create no jobs get no queue (starting pg-boss costs seconds); using it fails loudly. */
const noJobs: JobSystem = {
  boss: new Proxy({}, { get: () => () => Promise.reject(new Error('this test started no job system')) }) as JobSystem['boss'],
  bus: localEventBus(),
  streams: new StreamLimits(),
};

function sessionsFor(database: DatabaseHandle, given: SessionCache | null | undefined, env: Env): { sessions?: SessionCache } {
  if (given !== undefined) return given ? { sessions: given } : {};
  if (!database.pglite) return {};
  return { sessions: new SessionCache(pgliteCredentialChanges(database.pglite), { ttlMs: env.SESSION_CACHE_S * 1000 }) };
}

export interface TestApp {
  app: Hono;
  readiness: Readiness;
  env: Env;
  /** Every log line the app wrote, parsed. */
  logs: Record<string, unknown>[];
  store: FsVolumeStore;
  signer: VolumeSigner;
}

/** The real app over a real database, with its log captured instead of printed. */
export function makeTestApp(opts: {
  database?: DatabaseHandle;
  env?: Record<string, string>;
  router?: AnyRouter;
  models?: ModelRegistry;
  store?: FsVolumeStore;
  /** Another backend (S3) the services use instead of `store`. */
  volumeStore?: VolumeStore;
  /** Where uploads spool (a fresh temporary folder by default). */
  uploadDir?: string;
  /** A promise: the job system of a server still starting after ready (#29). */
  jobs?: JobSystem | Promise<JobSystem>;
  refine?: RefineSessions;
  /** The app's session cache; by default one on the embedded database's notifications (none on PostgreSQL). */
  sessions?: SessionCache | null;
  /** Where log lines go instead of `logs` (a benchmark's no-op sink: serialised, not kept). */
  logTo?: { write(line: string): void };
}): TestApp {
  const env = parseEnv({ NODE_ENV: 'test', LOG_LEVEL: 'info', ...opts.env });
  const logs: Record<string, unknown>[] = [];
  const logger = createLogger({
    level: env.LOG_LEVEL,
    destination: opts.logTo ?? { write: (line: string) => void logs.push(JSON.parse(line)) },
  });
  const readiness = new Readiness();
  const store = opts.store ?? new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-volumes-')));
  const signer = createVolumeSigner('test-secret-key-that-is-long-enough-for-hmac', env.VOLUME_URL_TTL_S);
  if (opts.database) {
    readiness.markReady({
      database: opts.database,
      store: opts.volumeStore ?? store,
      signer,
      models: opts.models ?? builtInModels,
      jobs: Promise.resolve(opts.jobs ?? noJobs),
      cpu: testCpuPool(),
      refine: opts.refine ?? new RefineSessions(DEFAULT_REFINE_LIMITS),
      ...sessionsFor(opts.database, opts.sessions, env),
    });
  }
  const app = buildApp({
    uploadDir: opts.uploadDir ?? mkdtempSync(path.join(tmpdir(), 'sv-uploads-')),
    env,
    logger,
    readiness,
    process: { version: '9.9.9-test', startedAt: Date.now() - 5000 },
    ...(opts.router ? { router: opts.router } : {}),
  });
  return { app, readiness, env, logs, store, signer };
}
