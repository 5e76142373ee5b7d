import { spawn } from 'node:child_process';
import { Hono } from 'hono';
import { mkdtempSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { tmpdir } from 'node:os';
import { seedDemoCases } from '../src/server/cases/demo.js';
import { parseEnv } from '../src/server/env.js';
import { startJobRuntime } from '../src/server/jobs/runtime.js';
import { createLogger } from '../src/server/logger.js';
import { builtInModelsDir, loadModelRegistry } from '../src/server/segmentation/models.js';
import { makeTestApp } from '../src/server/test/app.js';
import { TestBrowser } from '../src/server/test/browser.js';
import { openTestDatabase } from '../src/server/test/databases.js';
import { serveApp } from '../src/server/test/live.js';
import { ROOT } from '../src/server/test/process.js';
import { FsVolumeStore } from '../src/server/volumes/store.js';

// Load: 64 connections for BENCH_LOAD_S seconds (default 30) on cases.list and jobs.byId with a
// real session, against the whole app (security headers, request log, auth, tRPC, Kysely on
// PGlite); baseline in the same process and run: a bare Hono handler answering the same JSON.
// autocannon runs as a separate process (loopback), so it does not share the server's event loop.
// Goal (#15): tRPC ≥ 0.8× the bare handler's throughput, p99 ≤ 20 ms, no 5xx.

const SECONDS = Number(process.env.BENCH_LOAD_S ?? 30);
const CONNECTIONS = 64;

interface Result {
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
  '5xx'?: number;
  statusCodeStats?: Record<string, { count: number }>;
}

/** autocannon in its own process (asynchronously: this process is the server). */
async function cannon(url: string, headers: Record<string, string> = {}): Promise<Result> {
  const args = [path.join(ROOT, 'node_modules/autocannon/autocannon.js'), '-c', String(CONNECTIONS), '-d', String(SECONDS), '-j'];
  for (const [k, v] of Object.entries(headers)) args.push('-H', `${k}=${v}`);
  args.push(url);
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (err += d));
  const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
  if (code !== 0) throw new Error(`autocannon failed: ${err}`);
  return JSON.parse(out) as Result;
}

const fivexx = (r: Result) =>
  Object.entries(r.statusCodeStats ?? {})
    .filter(([code]) => code.startsWith('5'))
    .reduce((n, [, s]) => n + s.count, 0);

console.log(
  `\nLoad — ${CONNECTIONS} connections × ${SECONDS} s per endpoint (autocannon, loopback), ${availableParallelism()} cores, ${new Date().toISOString().slice(0, 10)}`,
);
// BENCH_DB=postgres: the local PostgreSQL (TEST_DATABASE_URL) instead of the embedded PGlite.
const kind = process.env.BENCH_DB === 'postgres' ? 'postgres' : 'pglite';
if (kind === 'postgres') process.env.TEST_DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';
const database = await openTestDatabase(kind);
console.log(
  `  database: ${kind === 'postgres' ? 'PostgreSQL (a pool of connections)' : 'embedded PGlite (one connection, SQL on this thread)'}`,
);
const models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
const store = new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-load-')));
const runtime = await startJobRuntime({
  database: database.handle,
  store,
  models,
  env: parseEnv({ NODE_ENV: 'test' }),
  log: createLogger({ level: 'silent' }),
  runWorker: true,
});
try {
  const t = makeTestApp({ database: database.handle, models, store, jobs: runtime.jobs, env: { LOG_LEVEL: 'silent' } });
  await seedDemoCases(database.handle.db, store, 6);
  const browser = new TestBrowser(t.app);
  await browser.mutate('auth.register', { email: 'load@example.org', password: 'correct horse battery' });
  const cookie = browser.cookieHeader()!;
  const cases = await browser.query<{ items: { id: string }[] }>('cases.list');
  const job = await browser.mutate<{ id: string }>('jobs.create', { caseId: cases.data.items[0]!.id });
  for (let i = 0; i < 600; i++) {
    const j = await browser.query<{ status: string }>('jobs.byId', { id: job.data.id });
    if (j.data.status === 'succeeded') break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const byIdPath = `/trpc/jobs.byId?input=${encodeURIComponent(JSON.stringify({ id: job.data.id }))}`;
  // The bare baseline answers the very bytes tRPC answers (signed URLs and all), captured once.
  const sample = async (p: string) => (await t.app.request(`http://localhost${p}`, { headers: { cookie } })).text();
  const bare = { cases: await sample('/trpc/cases.list'), job: await sample(byIdPath) };
  // One server for both: bare routes first, then the whole app.
  const outer = new Hono();
  outer.get('/bench/bare/cases', (c) => c.body(bare.cases, 200, { 'content-type': 'application/json' }));
  outer.get('/bench/bare/job', (c) => c.body(bare.job, 200, { 'content-type': 'application/json' }));
  outer.route('/', t.app);
  const server = await serveApp(outer);
  try {
    for (const [name, trpcPath, barePath, bytes] of [
      ['cases.list', '/trpc/cases.list', '/bench/bare/cases', bare.cases.length],
      ['jobs.byId', byIdPath, '/bench/bare/job', bare.job.length],
    ] as const) {
      const base = await cannon(`${server.url}${barePath}`);
      const r = await cannon(`${server.url}${trpcPath}`, { cookie });
      const ratio = r.requests.average / base.requests.average;
      const ok = ratio >= 0.8 && r.latency.p99 <= 20 && fivexx(r) === 0;
      console.log(
        `  ${`${name} (${bytes} B)`.padEnd(26)} tRPC ${r.requests.average.toFixed(0).padStart(6)} req/s  p50 ${r.latency.p50} ms  p99 ${r.latency.p99} ms  5xx ${fivexx(r)}  errors ${r.errors}`,
      );
      console.log(
        `  ${'  bare Hono, same JSON'.padEnd(26)}      ${base.requests.average.toFixed(0).padStart(6)} req/s  p50 ${base.latency.p50} ms  p99 ${base.latency.p99} ms`,
      );
      console.log(`  ${''.padEnd(26)} ratio ${ratio.toFixed(2)}× bare (goal ≥ 0.8×, p99 ≤ 20 ms, no 5xx): ${ok ? 'ok' : 'MISSED'}`);
    }
  } finally {
    await server.close();
  }
} finally {
  await runtime.stop(1000);
  await models.close();
  await database.dispose();
}
