import { statfs } from 'node:fs/promises';
import path from 'node:path';
import { Hono } from 'hono';
import { MiB } from '../../../shared/units.js';
import { pingDatabase } from '../../db/connect.js';
import { storageMisconfiguration, systemErrorPhrase } from '../../errors.js';
import type { Readiness } from '../../readiness.js';

export interface HealthOptions {
  readiness: Readiness;
  /** The data folder whose free space /readyz reports; below `minFreeBytes` it is not ready. */
  disk?: { dir: string; minFreeBytes: number };
  /** How long /readyz waits for the database before calling it unreachable. */
  pingTimeoutMs?: number;
}

/** Bytes free for this process under `dir` (or its nearest existing parent), or undefined when the platform cannot say. */
async function freeSpace(dir: string): Promise<number | undefined> {
  for (let d = path.resolve(dir); ; d = path.dirname(d)) {
    try {
      const s = await statfs(d);
      return s.bavail * s.bsize;
    } catch {
      if (path.dirname(d) === d) return undefined;
    }
  }
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    promise,
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error('timed out')), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/**
 * `/healthz`: the process is alive. `/readyz`: booted, migrated, the database answers now, and a
 * model is loaded (it names the models, those that failed, and the execution provider).
 */
export function healthRoutes(options: HealthOptions): Hono {
  const app = new Hono();
  app.get('/healthz', (c) => {
    c.header('Cache-Control', 'no-store');
    return c.json({ status: 'ok' });
  });
  app.get('/readyz', async (c) => {
    c.header('Cache-Control', 'no-store');
    const { readiness } = options;
    const services = readiness.services;
    if (readiness.state !== 'ready' || !services) {
      c.header('Retry-After', '2');
      return c.json(
        {
          status: readiness.state,
          database: 'pending',
          migrations: 'pending',
          ...(readiness.reason ? { reason: readiness.reason } : {}),
        },
        503,
      );
    }
    try {
      await withTimeout(pingDatabase(services.database.db), options.pingTimeoutMs ?? 2000);
    } catch {
      c.header('Retry-After', '5');
      return c.json(
        {
          status: 'unavailable',
          database: 'unreachable',
          databaseKind: services.database.kind,
          migrations: 'done',
        },
        503,
      );
    }
    if (services.store.check) {
      try {
        await withTimeout(services.store.check(), options.pingTimeoutMs ?? 2000);
      } catch (err) {
        const misconfigured = storageMisconfiguration(err);
        // A missing bucket is the operator's to fix (it may be created after the app starts: checked on every call).
        if (misconfigured)
          return c.json({ status: 'unavailable', database: 'ok', storage: `misconfigured: ${misconfigured.replace(/^the /, '')}` }, 503);
        c.header('Retry-After', '5');
        return c.json(
          {
            status: 'unavailable',
            database: 'ok',
            storage: 'unreachable',
            reason: systemErrorPhrase(err) ?? 'the object store (STORAGE_URL) is not answering',
          },
          503,
        );
      }
    }
    const disk = options.disk ? await freeSpace(options.disk.dir) : undefined;
    if (options.disk && disk !== undefined && disk < options.disk.minFreeBytes) {
      c.header('Retry-After', '60');
      const freeMb = Math.floor(disk / MiB);
      return c.json(
        {
          status: 'unavailable',
          disk: 'full',
          diskFreeMb: freeMb,
          reason: `the server ran out of disk space (${freeMb} MiB free in its data folder)`,
        },
        503,
      );
    }
    const { models } = services;
    const executionProvider = {
      ...models.provider,
      ...(models.provider.gpuMissing ? { warning: 'A GPU (CUDA) was requested but none could be used: models run on the CPU' } : {}),
    };
    const modelsReport = {
      loaded: [...models.models.keys()],
      interactive: [...models.interactive.keys()],
      failed: models.failed.map((f) => ({ dir: f.dir, error: f.error })),
    };
    const facts = {
      database: 'ok',
      databaseKind: services.database.kind,
      migrations: 'done',
      storage: services.store.check ? 'ok' : 'local',
      models: modelsReport,
      executionProvider,
      ...(disk !== undefined ? { disk: 'ok', diskFreeMb: Math.floor(disk / MiB) } : {}),
    };
    if (models.models.size === 0) {
      c.header('Retry-After', '30');
      return c.json({ status: 'unavailable', ...facts, reason: 'no model could be loaded' }, 503);
    }
    return c.json({ status: 'ready', ...facts });
  });
  return app;
}
