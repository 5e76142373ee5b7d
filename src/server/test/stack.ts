import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { DatabaseHandle } from '../db/connect.js';
import { parseEnv } from '../env.js';
import type { JobHold } from '../jobs/hold.js';
import { type JobRuntime, startJobRuntime } from '../jobs/runtime.js';
import { createLogger } from '../logger.js';
import type { ModelRegistry } from '../segmentation/models.js';
import { FsVolumeStore } from '../volumes/store.js';
import { type TestApp, makeTestApp } from './app.js';
import { serveApp } from './live.js';

/** What a test stops after it, in reverse order of starting. */
export type Running = { stop(): Promise<void> }[];

/**
 * What the API tests over real HTTP stand on: a volume store in a temporary folder, the job
 * runtime with a worker, the app around them and a live server on a socket. Each part is pushed
 * onto `running` as it starts, so a test that fails half-way still stops what did start.
 */
export async function serveStack(opts: {
  database: DatabaseHandle;
  models: ModelRegistry;
  running: Running;
  prefix: string;
  /** Where uploads spool (a fresh temporary folder by default). */
  uploadDir?: string;
  /** The volume store (another stack's, to restart on the same volumes); a new temporary one by default. */
  store?: FsVolumeStore;
  /** Holds jobs at a stage until the test releases them (jobs/hold.ts). */
  hold?: JobHold;
  /** Configuration for the job runtime and the app, over the test defaults. */
  env?: Record<string, string>;
}) {
  const { database, models, running } = opts;
  const store = opts.store ?? new FsVolumeStore(mkdtempSync(path.join(tmpdir(), opts.prefix)));
  const runtime: JobRuntime = await startJobRuntime({
    database,
    store,
    models,
    env: parseEnv({ NODE_ENV: 'test', ...opts.env }),
    log: createLogger({ level: 'silent' }),
    runWorker: true,
    ...(opts.hold ? { hold: opts.hold } : {}),
  });
  running.push({ stop: () => runtime.stop(2000) });
  const t: TestApp = makeTestApp({
    database,
    models,
    store,
    jobs: runtime.jobs,
    ...(opts.uploadDir ? { uploadDir: opts.uploadDir } : {}),
    ...(opts.env ? { env: opts.env } : {}),
  });
  const server = await serveApp(t.app);
  running.push({ stop: () => server.close() });
  return { ...t, store, runtime, server };
}
