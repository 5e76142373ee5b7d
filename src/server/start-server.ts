import type { Server } from 'node:http';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { serve } from '@hono/node-server';
import { buildApp } from './app.js';
import { ensureAdmin } from './auth/service.js';
import { type Service, settledWithin } from './boot.js';
import { seedDemoCases } from './cases/demo.js';
import { collectOrphanFiles } from './volumes/service.js';
import { BootError, ensureWritableDataDir, removeStaleUploads, resolveSecretKey } from './data-dir.js';
import type { OpenedEmbedded } from './db/embedded.js';
import type { Env } from './env.js';
import type { ModelRegistry } from './segmentation/models.js';
import { createMetrics, procedureNames } from './http/metrics/index.js';
import { loadOpenApiLibrary } from './http/openapi/index.js';
import { findClientDir } from './http/viewer/index.js';
import { createLogger } from './logger.js';
import { Readiness } from './readiness.js';
import { appRouter } from './routers/_app.js';
import { BootAborted, type BootPhases, type ServerRuntime, openRuntime, timedPhase } from './runtime.js';
import { VERSION } from './version.js';

/** How long after ready the work not needed to answer waits (see `afterReady`). */
const AFTER_READY_MS = 1000;

/**
 * The server: it listens first — so a proxy in front of a sleeping Space never sees a refused
 * connection — answering /healthz and 503 on /trpc until the runtime is open; then it is ready.
 * Resolves once listening; a boot failure after that marks readiness failed and rejects `ready`.
 */
export async function startServer(
  env: Env,
  early: {
    /** The embedded database, already opening (start-early.ts). */
    embedded?: Promise<OpenedEmbedded>;
    /** The model sessions, already loading (start-early.ts). */
    models?: Promise<ModelRegistry>;
    /** Phases measured before this function ran (start-early.ts: loadModules, openDatabase). */
    phases?: BootPhases;
  } = {},
): Promise<Service> {
  const dataDir = ensureWritableDataDir(env.DATA_DIR);
  const secretKey = resolveSecretKey(dataDir, env.SECRET_KEY);
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

  const server = serve({ fetch: app.fetch, port: env.PORT, hostname: env.HOST }) as Server;
  await new Promise<void>((resolve, reject) => {
    server.once('listening', resolve);
    server.once('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EADDRINUSE') reject(new Error(`PORT ${env.PORT} is already in use on ${env.HOST}; set PORT to a free port`));
      else reject(new Error(`cannot listen on ${env.HOST}:${env.PORT}: ${err.message}`));
    });
  });
  const listenedAt = Date.now();
  logger.info({ port: env.PORT, host: env.HOST, version: VERSION }, 'listening');

  const abort = new AbortController();
  const phases: BootPhases = Object.assign(early.phases ?? {}, { beforeListen: listenedAt - startedAt });
  let settle!: { resolve: () => void; reject: (err: Error) => void };
  const ready = new Promise<void>((resolve, reject) => (settle = { resolve, reject }));
  const sweepOrphans = async (runtime: ServerRuntime) => {
    const t0 = performance.now();
    try {
      const orphans = await collectOrphanFiles(runtime.database.db, runtime.store, Math.max(1, Date.now() - startedAt));
      logger.info({ files: orphans, ms: Math.round(performance.now() - t0) }, 'orphan volume files swept (after ready)');
    } catch (err) {
      if (readiness.state !== 'stopping') logger.warn({ err }, 'the orphan volume sweep failed; the scheduled clean-up will retry');
    }
  };

  // Work not needed to answer — the job system (embedded database), the orphan sweep, REST's library
  // — starts a moment after ready: a waking Space's first page asks for its files and first
  // procedures just then, and on two cores sharing the CPU with that work made the first answers
  // ~1.4× slower (#29). A job created meanwhile waits for the queue; a stop cancels the wait.
  let markedReady!: () => void;
  const afterReady = new Promise<void>((resolve, reject) => {
    markedReady = resolve;
    abort.signal.addEventListener('abort', () => reject(new BootAborted()), { once: true });
  }).then(() => sleep(AFTER_READY_MS, undefined, { signal: abort.signal }));
  afterReady.catch(() => {}); // aborted: the stop closes what was opened

  const booting: Promise<ServerRuntime | undefined> = (async () => {
    try {
      const runtime = await openRuntime(env, 'server', {
        dataDir,
        secretKey,
        log: logger,
        signal: abort.signal,
        prepare: async ({ database, store }) => {
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
          const seeded = await timedPhase(phases, 'demoCheck', () => seedDemoCases(database.db, store, env.DEMO_CASES));
          if (seeded) logger.info({ cases: seeded, ms: Date.now() - t0 }, 'demo cases created');
        },
        onJobFinished: metrics.jobFinished,
        onJobsFailed: (err) => {
          if (readiness.state === 'stopping') return;
          const message = `the job system failed to start: ${(err as Error).message}`;
          readiness.markFailed(message);
          logger.fatal({ err }, message);
        },
        phases,
        jobsAfter: afterReady,
        ...(early.embedded ? { embedded: early.embedded } : {}),
        ...(early.models ? { models: early.models } : {}),
      });
      readiness.markReady(runtime.services);
      markedReady();
      // Files a crash left between writing and committing (and half-written temporaries), swept
      // after ready: nothing needs them gone to answer, and on a large store the scan is most of a
      // warm restart. Only files from before this boot are candidates, so the uploads this process
      // is already taking are never touched. Only with the embedded database, whose lock makes this
      // process alone on DATA_DIR: on shared storage the scheduled clean-up already sweeps files
      // older than an hour, and a scan of the whole store on every replica's start would repeat it.
      // REST's library, deferred from boot (see http/openapi): loaded then, before a client needs it.
      void afterReady.then(
        () => {
          if (!env.DATABASE_URL) void sweepOrphans(runtime);
          void loadOpenApiLibrary().catch((err: unknown) => logger.error({ err }, 'loading the REST routes failed'));
        },
        () => {},
      );
      logger.info(
        { bootMs: Date.now() - startedAt, sinceProcessStartMs: Math.round(process.uptime() * 1000), phases: { ...phases } },
        'ready',
      );
      // The queue, the event bus and the workers (embedded: started after ready) log their phases here.
      void runtime.jobs.then(
        () => logger.info({ sinceProcessStartMs: Math.round(process.uptime() * 1000), phases }, 'job system started'),
        () => {}, // onJobsFailed reported it
      );
      settle.resolve();
      return runtime;
    } catch (err) {
      if (err instanceof BootAborted) {
        settle.reject(err);
        return undefined;
      }
      const message = err instanceof BootError ? err.message : `boot failed: ${(err as Error).message}`;
      readiness.markFailed(message);
      if (err instanceof BootError) logger.fatal(message);
      else logger.fatal({ err }, message);
      settle.reject(new Error(message));
      return undefined;
    }
  })();

  let stopped: Promise<void> | undefined;
  const shutdown = async (signal: string) => {
    readiness.markStopping();
    abort.abort();
    logger.info({ signal }, 'shutting down');
    const graceMs = env.SHUTDOWN_GRACE_S * 1000;
    // Stop accepting; idle keep-alive sockets close now, busy ones after their response or the grace.
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeIdleConnections();
    const cut = setTimeout(() => server.closeAllConnections(), graceMs);
    // A boot still under way stops before its next step and closes what it opened; one step that
    // outlasts the grace is cut short by the exit.
    const runtime = await settledWithin(booting, graceMs);
    // Workers stop claiming; running jobs get the same grace, then go back to the queue.
    if (runtime) await runtime.stop(graceMs, closed);
    else await settledWithin(closed, graceMs);
    clearTimeout(cut);
    logger.info('stopped');
  };
  return { ready, stop: (signal = 'stop') => (stopped ??= shutdown(signal)) };
}
