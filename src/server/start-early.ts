import type { Service } from './boot.js';
import { ensureWritableDataDir } from './data-dir.js';
import { type OpenedEmbedded, openPglite } from './db/embedded.js';
import type { Env } from './env.js';
import { createLogger } from './logger.js';
import { type EarlyEmbedded, takeEarlyEmbedded } from './open-early.js';
import type { ModelRegistry } from './segmentation/models.js';
import type { BootPhases } from './runtime.js';

/**
 * The server as its entry starts it (`node dist/src/server/index.js`, `strokeview serve`): with the
 * embedded database, PGlite opens on its own thread (the entry starts it before loading anything
 * else: `early`, open-early.ts; `strokeview serve` here) while the server's modules (Kysely, the
 * router tree) load and the model sessions build, so a warm restart pays the longest of the three
 * rather than their sum (#29). The phases `loadModules`, `openDatabase` and `models` in the `ready`
 * line are measured from this function's start and overlap (an early open may end before it, then
 * ≈ 0); `awaitDatabase` is what was left of the open when the runtime needed it.
 */
export async function startServerEarly(env: Env, early?: EarlyEmbedded): Promise<Service> {
  const t0 = performance.now();
  const phases: BootPhases = {};
  let embedded: Promise<OpenedEmbedded> | undefined = takeEarlyEmbedded(early, env);
  if (!env.DATABASE_URL) {
    embedded ??= openPglite(ensureWritableDataDir(env.DATA_DIR));
    embedded.then(
      () => (phases.openDatabase = Math.round(performance.now() - t0)),
      () => {}, // the runtime awaits it and reports the failure
    );
  }
  // The model sessions too (onnxruntime builds them on its own threads): they need nothing else.
  const models: Promise<ModelRegistry> = import('./segmentation/models.js').then(async (m) => {
    try {
      return await m.loadConfiguredModels(env, createLogger({ level: env.LOG_LEVEL }));
    } finally {
      phases.models = Math.round(performance.now() - t0);
    }
  });
  models.catch(() => {}); // the runtime awaits it and reports the failure
  try {
    const { startServer } = await import('./start-server.js');
    phases.loadModules = Math.round(performance.now() - t0);
    return await startServer(env, { ...(embedded ? { embedded } : {}), models, phases });
  } catch (err) {
    void models.then(
      (registry) => registry.close(),
      () => {},
    );
    // The boot failed before the runtime took the database: nothing else closes it.
    void embedded?.then(
      (opened) => opened.pglite.close().finally(() => opened.release()),
      () => {},
    );
    throw err;
  }
}
