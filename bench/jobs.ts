import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import pg from 'pg';
import type { JobProgressEvent } from '../src/shared/jobs.js';
import { seedDemoCases } from '../src/server/cases/demo.js';
import { parseEnv } from '../src/server/env.js';
import { startJobRuntime } from '../src/server/jobs/runtime.js';
import { createLogger } from '../src/server/logger.js';
import { builtInModelsDir, loadModelRegistry } from '../src/server/segmentation/models.js';
import { makeTestApp } from '../src/server/test/app.js';
import { TestBrowser } from '../src/server/test/browser.js';
import { type TestDatabaseKind, openTestDatabase } from '../src/server/test/databases.js';
import { serveApp, trpcClient } from '../src/server/test/live.js';
import { FsVolumeStore } from '../src/server/volumes/store.js';

// Job latencies, in-process API + worker: enqueue → start (the job row's created_at → started_at)
// and progress event → subscribed client (publish time → SSE receipt), p50 and p95, on each
// database. Baseline in the same run: one HTTP round trip of system.info.
const JOBS = 20;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!;

async function postgresReachable(): Promise<boolean> {
  const url = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 1000 });
  try {
    await c.connect();
    await c.end();
    process.env.TEST_DATABASE_URL = url;
    return true;
  } catch {
    return false;
  }
}

const kinds: TestDatabaseKind[] = ['pglite', ...((await postgresReachable()) ? (['postgres'] as const) : [])];
const models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 2 });
console.log(`\nJobs — ${JOBS} jobs per database, API and worker in one process, model adc-core-v1`);
for (const kind of kinds) {
  const database = await openTestDatabase(kind);
  const env = parseEnv({ NODE_ENV: 'test', MAX_ACTIVE_JOBS_PER_USER: '100' });
  const store = new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-bench-')));
  const runtime = await startJobRuntime({
    database: database.handle,
    store,
    models,
    env,
    log: createLogger({ level: 'silent' }),
    runWorker: true,
  });
  const t = makeTestApp({ database: database.handle, models, store, jobs: runtime.jobs, env: { MAX_ACTIVE_JOBS_PER_USER: '100' } });
  const server = await serveApp(t.app);
  await seedDemoCases(database.handle.db, store, 1);
  const b = new TestBrowser(t.app);
  await b.mutate('auth.register', { email: 'bench@x.org', password: 'correct horse battery' });
  const client = trpcClient(server.url, (await b.mutate<{ token: string }>('auth.tokens.create', { name: 'bench' })).data.token);
  const caseId = (await client.cases.list.query()).items[0]!.id;

  const rtt: number[] = [];
  for (let i = 0; i < 20; i++) {
    const t0 = performance.now();
    await client.system.info.query();
    rtt.push(performance.now() - t0);
  }
  const startLatency: number[] = [];
  const eventLatency: number[] = [];
  for (let i = 0; i < JOBS; i++) {
    const job = await client.jobs.create.mutate({ caseId });
    await new Promise<void>((resolve, reject) => {
      const sub = client.jobs.onProgress.subscribe(
        { id: job.id },
        {
          onData: ({ data }: { data: JobProgressEvent }) => {
            if (data.at) eventLatency.push(Date.now() - data.at);
            if (['succeeded', 'failed', 'cancelled'].includes(data.status)) {
              sub.unsubscribe();
              resolve();
            }
          },
          onError: reject,
        },
      );
    });
    const done = await client.jobs.byId.query({ id: job.id });
    startLatency.push(new Date(done.startedAt!).getTime() - new Date(done.createdAt).getTime());
  }
  const line = (name: string, xs: number[]) =>
    `  ${name.padEnd(40)} p50 ${pct(xs, 0.5).toFixed(1).padStart(6)} ms   p95 ${pct(xs, 0.95).toFixed(1).padStart(6)} ms   (goal p95 ≤ 100 ms: ${pct(xs, 0.95) <= 100 ? 'ok' : 'MISSED'}; ${(pct(xs, 0.95) / pct(rtt, 0.95)).toFixed(1)}× the baseline p95)`;
  console.log(`${kind}:`);
  console.log(
    `  ${'baseline: system.info round trip'.padEnd(40)} p50 ${pct(rtt, 0.5).toFixed(1).padStart(6)} ms   p95 ${pct(rtt, 0.95).toFixed(1).padStart(6)} ms`,
  );
  console.log(line('enqueue → start', startLatency));
  console.log(line(`progress event → client (${eventLatency.length} events)`, eventLatency));
  await server.close();
  await runtime.stop(2000);
  await database.dispose();
}
await models.close();
process.exit(0);
