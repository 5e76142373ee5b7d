import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { Hono } from 'hono';
import pg from 'pg';
import { SessionCache } from '../src/server/auth/session-cache.js';
import { seedDemoCases } from '../src/server/cases/demo.js';
import { type DatabaseHandle, connectPostgres } from '../src/server/db/connect.js';
import { parseEnv } from '../src/server/env.js';
import { startJobRuntime } from '../src/server/jobs/runtime.js';
import { createLogger } from '../src/server/logger.js';
import { builtInModelsDir, loadModelRegistry } from '../src/server/segmentation/models.js';
import { makeTestApp } from '../src/server/test/app.js';
import { TestBrowser } from '../src/server/test/browser.js';
import { createThrowawayPostgres, openTestDatabase } from '../src/server/test/databases.js';
import { serveApp } from '../src/server/test/live.js';
import { ROOT } from '../src/server/test/process.js';
import { FsVolumeStore } from '../src/server/volumes/store.js';
import { migrateToLatest } from '../src/server/db/migrate.js';
import { topSelfTime } from './profile-top.js';

// Load (#29): 64 connections for BENCH_LOAD_S seconds (default 15) per endpoint with a real
// session, against the whole app (request id, request log at `info` into a no-op sink, metrics,
// security headers, CORS, CSRF, readiness, auth, tRPC, Kysely). The fair baseline, same run: a bare
// Hono handler on its own connection pool (PostgreSQL: a `pg` pool of the app's size; PGlite: the
// same engine) running the very SQL statements the procedure ran — captured from one request
// at the database driver, with their parameters — and answering the bytes tRPC answered. Its
// statements are those of a request whose session is not cached (the session look-up, then the
// procedure's own), so the ratio shows what the session cache buys. For reference, a handler that
// answers the same bytes with no database at all.
// autocannon runs as a separate process (loopback), so it does not share the server's event loop.
// BENCH_DB=postgres: the local PostgreSQL (TEST_DATABASE_URL) instead of the embedded PGlite.
// BENCH_PROFILE=<dir>: a V8 CPU profile (the profiler `node --cpu-prof` uses, started and stopped
// around an extra tRPC run through node:inspector, so set-up, baselines and the measured runs stay
// out) per endpoint, and its top self-time items printed. Each run also reports this process's CPU
// time per request, which a shared machine disturbs less than req/s.
// Goals: PostgreSQL ≥ 0.8× the same-SQL baseline, p99 ≤ 2× its p99; PGlite cases.list ≥ 1,000
// req/s, p99 ≤ 50 ms; no non-2xx anywhere.

const SECONDS = Number(process.env.BENCH_LOAD_S ?? 15);
const CONNECTIONS = 64;
const PROFILE_DIR = process.env.BENCH_PROFILE;
// BENCH_LOAD_ROUNDS: interleaved rounds per endpoint (default 1): the figures are the median round's,
// the ratios the median of each round's own ratio.
const ROUNDS = Number(process.env.BENCH_LOAD_ROUNDS ?? 1);

interface Result {
  requests: { average: number };
  latency: { p50: number; p99: number };
  non2xx: number;
  errors: number;
}

/** autocannon in its own process (asynchronously: this process is the server). */
async function cannon(url: string, headers: Record<string, string> = {}, seconds = SECONDS): Promise<Result> {
  const args = [path.join(ROOT, 'node_modules/autocannon/autocannon.js'), '-c', String(CONNECTIONS), '-d', String(seconds), '-j'];
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

/**
 * Records the SQL (and parameters) of every statement the app's database driver runs while `on`:
 * what the same-SQL baseline runs. At the driver (pg's Client.query, PGlite's query), not in a Kysely
 * plugin: hot reads are compiled once (db/compiled.ts) and later runs pass no plugin's transformQuery.
 */
function captureSql(handle: DatabaseHandle) {
  const state = { on: false, statements: [] as { sql: string; parameters: readonly unknown[] }[] };
  const record = (sql: unknown, parameters: unknown) => {
    // pg-boss (the job runtime) shares the driver; its statements are not the procedure's.
    if (state.on && typeof sql === 'string' && !sql.includes('pgboss'))
      state.statements.push({ sql, parameters: (parameters as unknown[]) ?? [] });
  };
  if (handle.pglite) {
    const pglite = handle.pglite;
    const query = pglite.query.bind(pglite);
    pglite.query = ((sql: string, params?: unknown[], opts?: never) => (
      record(sql, params),
      query(sql, params, opts)
    )) as typeof pglite.query;
  } else {
    const query = pg.Client.prototype.query;
    pg.Client.prototype.query = function (this: pg.Client, ...args: unknown[]) {
      record(args[0], args[1]);
      return (query as (...a: unknown[]) => unknown).apply(this, args);
    } as typeof query;
  }
  return state;
}

interface Measured extends Result {
  /** This process's CPU time (user + system) per request answered: the server's own cost, less noisy than req/s. */
  cpuMs: number;
  /** PostgreSQL's CPU per request (its backends on this database), when on PostgreSQL. */
  pgCpuMs?: number;
}

async function measured(url: string, headers: Record<string, string> = {}): Promise<Measured> {
  const before = process.cpuUsage();
  const pgBefore = await postgresCpuMs();
  const r = await cannon(url, headers);
  const used = process.cpuUsage(before);
  const pgUsed = postgresCpuSince(pgBefore, await postgresCpuMs());
  const requests = Math.max(1, r.requests.average * SECONDS);
  return { ...r, cpuMs: (used.user + used.system) / 1000 / requests, ...(pool ? { pgCpuMs: pgUsed / requests } : {}) };
}

/**
 * PostgreSQL's CPU on this benchmark's database (its backends' user + system time, from /proc: the
 * server runs on this machine): on two cores it competes with the API for the same CPU.
 */
async function postgresCpuMs(): Promise<Map<number, number>> {
  const ticks = new Map<number, number>();
  if (!pool) return ticks;
  const { rows } = await pool.query<{ pid: number }>('select pid from pg_stat_activity where datname = current_database()');
  for (const { pid } of rows) {
    try {
      const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
      ticks.set(pid, Number(fields[11]) + Number(fields[12])); // utime, stime (fields 14 and 15 of stat)
    } catch {
      // a backend that ended meanwhile
    }
  }
  return ticks;
}

/** CPU ms the backends used between two readings (a backend that came and went since is not counted). */
function postgresCpuSince(before: Map<number, number>, after: Map<number, number>): number {
  let ticks = 0;
  for (const [pid, t] of after) ticks += t - (before.get(pid) ?? 0);
  return ticks * 10; // USER_HZ is 100 on Linux
}

/** The run with the median throughput (its latencies, CPU and counts kept together). */
function medianOf(runs: Measured[]): Measured {
  return [...runs].sort((a, b) => a.requests.average - b.requests.average)[Math.floor(runs.length / 2)]!;
}

const line = (name: string, r: Measured) =>
  `  ${name.padEnd(40)} ${r.requests.average.toFixed(0).padStart(6)} req/s  p50 ${String(r.latency.p50).padStart(4)} ms  p99 ${String(r.latency.p99).padStart(4)} ms  ${r.cpuMs.toFixed(3)} ms CPU/req${r.pgCpuMs === undefined ? '' : ` (+ PostgreSQL ${r.pgCpuMs.toFixed(3)})`}  non-2xx ${r.non2xx}  errors ${r.errors}`;

console.log(
  `\nLoad — ${CONNECTIONS} connections × ${SECONDS} s per endpoint (autocannon, loopback), ${availableParallelism()} cores, ${new Date().toISOString().slice(0, 16)}`,
);
const kind = process.env.BENCH_DB === 'postgres' ? 'postgres' : 'pglite';
if (kind === 'postgres') process.env.TEST_DATABASE_URL ??= 'postgres://postgres@127.0.0.1:5432/postgres';
// PostgreSQL: the pool the server opens (10 connections), not the tests' smaller one.
const throwaway = kind === 'postgres' ? await createThrowawayPostgres() : undefined;
const database = throwaway
  ? await (async () => {
      const handle = await connectPostgres(throwaway.url);
      await migrateToLatest(handle.db);
      return { handle, url: throwaway.url, dispose: async () => (await handle.close(), await throwaway.drop()) };
    })()
  : await openTestDatabase('pglite');
console.log(
  `  database: ${kind === 'postgres' ? 'PostgreSQL (a pool of 10 connections)' : 'embedded PGlite (one connection, on its own thread as the server runs it)'}`,
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
const sink = { write: () => {} };
const pool = kind === 'postgres' ? new pg.Pool({ connectionString: database.url!, max: 10 }) : undefined;
try {
  // Each app gets the session cache the server would have: on PostgreSQL over the event bus's LISTEN
  // (the test app's default is PGlite's listener, and none on PostgreSQL).
  const feed = kind === 'postgres' ? runtime.jobs.bus.credentials : undefined;
  const appOpts = () => ({
    models,
    store,
    jobs: runtime.jobs,
    env: { LOG_LEVEL: 'info' },
    logTo: sink,
    ...(feed ? { sessions: new SessionCache(feed, { ttlMs: 30_000 }) } : {}),
  });
  const t = makeTestApp({ database: database.handle, ...appOpts() });
  // Statements are recorded around single requests to apps that are never measured.
  const capture = { state: captureSql(database.handle) };
  const captureApp = makeTestApp({ database: database.handle, ...appOpts() });
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
  const q = (input: unknown) => `?input=${encodeURIComponent(JSON.stringify(input))}`;
  const endpoints = [
    { name: 'cases.list', path: '/trpc/cases.list' },
    ...(kind === 'pglite' ? [{ name: 'cases.byId', path: `/trpc/cases.byId${q({ id: cases.data.items[0]!.id })}` }] : []),
    { name: 'jobs.byId', path: `/trpc/jobs.byId${q({ id: job.data.id })}` },
  ];
  const outer = new Hono();
  const baselines = [];
  for (const [i, e] of endpoints.entries()) {
    // A fresh capturing app each time, so its session cache is cold: the look-up is in the statements.
    const fresh = makeTestApp({ database: database.handle, ...appOpts() });
    capture.state.statements = [];
    capture.state.on = true;
    const res = await fresh.app.request(`http://localhost${e.path}`, { headers: { cookie } });
    const body = await res.text();
    capture.state.on = false;
    if (!res.ok) throw new Error(`${e.name}: ${res.status} ${body}`);
    const statements = capture.state.statements;
    // …and one more through a warm app: what a request costs once its session is cached.
    capture.state.statements = [];
    await captureApp.app.request(`http://localhost${e.path}`, { headers: { cookie } });
    capture.state.on = true;
    await captureApp.app.request(`http://localhost${e.path}`, { headers: { cookie } });
    capture.state.on = false;
    const warm = capture.state.statements.length;
    const run = pool
      ? async () => {
          for (const s of statements) await pool.query(s.sql, s.parameters as unknown[]);
        }
      : async () => {
          for (const s of statements) await database.handle.pglite!.query(s.sql, s.parameters as unknown[]);
        };
    outer.get(`/bench/sql/${i}`, async (c) => {
      await run();
      return c.body(body, 200, { 'content-type': 'application/json' });
    });
    outer.get(`/bench/bare/${i}`, (c) => c.body(body, 200, { 'content-type': 'application/json' }));
    baselines.push({ ...e, bytes: body.length, statements, warm });
  }
  outer.route('/', t.app);
  const server = await serveApp(outer);
  const session = PROFILE_DIR ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post('Profiler.enable');
  }
  let fails = 0;
  try {
    for (const [i, e] of baselines.entries()) {
      console.log(
        `  ${e.name} (${e.bytes} B): same-SQL baseline runs ${e.statements.length} statements (${e.statements.map((s) => s.sql.slice(0, 38).replace(/\s+/g, ' ')).join(' | ')}…); strokeview with a cached session runs ${e.warm}`,
      );
      // ROUNDS interleaved runs (baseline, reference, strokeview), medians reported: the machine may be shared.
      // Warm-up, not measured: the first seconds of a path run cold (JIT), which took a measured first round down.
      await cannon(`${server.url}/bench/sql/${i}`, {}, 3);
      await cannon(`${server.url}${e.path}`, { cookie }, 3);
      const runs: { sameSql: Measured; bare: Measured; r: Measured }[] = [];
      for (let round = 0; round < ROUNDS; round++) {
        const sameSql = await measured(`${server.url}/bench/sql/${i}`);
        const bare = await measured(`${server.url}/bench/bare/${i}`);
        const r = await measured(`${server.url}${e.path}`, { cookie });
        runs.push({ sameSql, bare, r });
        if (ROUNDS > 1) {
          console.log(
            `    round ${round + 1}: strokeview ${r.requests.average.toFixed(0)} req/s (${r.cpuMs.toFixed(3)} ms CPU/req), same SQL ${sameSql.requests.average.toFixed(0)} req/s (${sameSql.cpuMs.toFixed(3)} ms CPU/req): ${(r.requests.average / sameSql.requests.average).toFixed(2)}×; load ${loadavg()[0]!.toFixed(2)}`,
          );
        }
      }
      const r = medianOf(runs.map((x) => x.r));
      const sameSql = medianOf(runs.map((x) => x.sameSql));
      const bare = medianOf(runs.map((x) => x.bare));
      if (session) {
        // A separate run: the profiler's own cost stays out of the figures above.
        await session.post('Profiler.start');
        await cannon(`${server.url}${e.path}`, { cookie });
        const { profile } = await session.post('Profiler.stop');
        const file = path.join(PROFILE_DIR!, `load-${kind}-${e.name}.cpuprofile`);
        writeFileSync(file, JSON.stringify(profile));
        console.log(`    profile: ${file}; top self time:`);
        for (const top of topSelfTime(profile as never, 12)) {
          console.log(`      ${(top.share * 100).toFixed(1).padStart(5)} %  ${top.name}  ${top.where}`);
        }
      }
      console.log(line('strokeview tRPC', r));
      console.log(line('  same SQL, bare Hono, own pool', sameSql));
      console.log(line('  no database, bare Hono, same JSON', bare));
      // The ratios of each round (same moment, same machine load), their median.
      const median = (xs: number[]) => {
        const sorted = [...xs].sort((a, b) => a - b);
        const mid = sorted.length / 2;
        return sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
      };
      const ratio = median(runs.map((x) => x.r.requests.average / x.sameSql.requests.average));
      const p99Ratio = median(runs.map((x) => x.r.latency.p99 / x.sameSql.latency.p99));
      const clean = runs.every((x) => x.r.non2xx === 0 && x.r.errors === 0);
      let verdict: string;
      let ok: boolean;
      if (kind === 'postgres') {
        ok = ratio >= 0.8 && p99Ratio <= 2 && clean;
        verdict = `ratio ${ratio.toFixed(2)}× same-SQL, p99 ${p99Ratio.toFixed(2)}× (goal ≥ 0.8×, p99 ≤ 2×, 0 non-2xx)`;
      } else if (e.name === 'cases.list') {
        ok = r.requests.average >= 1000 && r.latency.p99 <= 50 && clean;
        verdict = `ratio ${ratio.toFixed(2)}× same-SQL (goal ≥ 1,000 req/s, p99 ≤ 50 ms, 0 non-2xx)`;
      } else {
        ok = clean;
        verdict = `ratio ${ratio.toFixed(2)}× same-SQL (goal: 0 non-2xx)`;
      }
      if (!ok) fails++;
      console.log(`  ${''.padEnd(40)} ${verdict}: ${ok ? 'ok' : 'MISSED'}`);
    }
  } finally {
    session?.disconnect();
    await server.close();
  }
  console.log(
    `  server RSS at the end: ${(process.memoryUsage().rss / 1048576).toFixed(0)} MB; load average ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; ${fails ? `${fails} MISSED` : 'all goals met'}`,
  );
} finally {
  await pool?.end();
  await runtime.stop(1000);
  await models.close();
  await database.dispose();
}
