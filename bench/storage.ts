import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import pg from 'pg';
import { phantomVolumes, seedDemoCases } from '../src/server/cases/demo.js';
import { findJob } from '../src/server/db/jobs.js';
import { parseEnv } from '../src/server/env.js';
import { startJobRuntime } from '../src/server/jobs/runtime.js';
import { createLogger } from '../src/server/logger.js';
import { builtInModelsDir, loadModelRegistry } from '../src/server/segmentation/models.js';
import { makeTestApp } from '../src/server/test/app.js';
import { TestBrowser } from '../src/server/test/browser.js';
import { serveApp } from '../src/server/test/live.js';
import { withStoredVolumes } from '../src/server/volumes/service.js';
import { type TestDatabaseKind, openTestDatabase } from '../src/server/test/databases.js';
import { ROOT } from '../src/server/test/process.js';
import { type TestS3, startTestS3 } from '../src/server/test/s3.js';
import { S3VolumeStore } from '../src/server/volumes/s3-store.js';
import { CachedVolumeStore } from '../src/server/volumes/cache.js';
import { FsVolumeStore, type VolumeStore, sha256Hex } from '../src/server/volumes/store.js';

/** Empties a volume cache's folder (its files, not the folder: the cache keeps it). */
function clearCache(dir: string): Promise<void> {
  for (const d of readdirSync(dir)) rmSync(path.join(dir, d), { recursive: true, force: true });
  return Promise.resolve();
}

// #28: the object-store backend against the filesystem, same run, same bytes: put and get of a
// BENCH_STORE_MB (default 50) MiB volume, best of BENCH_STORE_RUNS (default 3), and the ratio.
// Then a segmentation job's wall time on each backend (goal: S3 ≤ 1.15× the folder): API and
// worker in this process, the same demo case stored in each, BENCH_STORE_JOBS (default 7) jobs per
// backend after one warm-up, taken in turns (fs, s3, fs, s3, …) so the machine's load falls on
// both alike; the job row's created_at → finished_at (enqueue, reading the inputs from the store,
// the pipeline, storing the mask), medians. On PostgreSQL when TEST_DATABASE_URL (or the local
// server) answers, else PGlite. The S3 side is s3rver on loopback (a JavaScript server persisting
// to a folder), so the ratios are the protocol's and the SDK's cost, not a real store's network.

const MiB = 1048576;
const sizeMb = Number(process.env.BENCH_STORE_MB ?? 50);
const runs = Number(process.env.BENCH_STORE_RUNS ?? 3);
const jobRuns = Number(process.env.BENCH_STORE_JOBS ?? 7);
/** Which parts run: BENCH_STORE_PARTS, a comma list of store, jobs, links (default all). */
const parts = new Set((process.env.BENCH_STORE_PARTS ?? 'store,jobs,links').split(','));
/** The S3 job backends beside the folder store: BENCH_STORE_BACKENDS, a comma list of inproc, apart, cold, warm (default all). */
const backends = new Set((process.env.BENCH_STORE_BACKENDS ?? 'inproc,apart,cold,warm').split(','));
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function measure(store: VolumeStore) {
  let put = Infinity;
  let get = Infinity;
  let range = Infinity;
  for (let i = 0; i < runs; i++) {
    const bytes = randomBytes(sizeMb * MiB);
    const sha = sha256Hex(bytes);
    let t = performance.now();
    await store.put(bytes, sha);
    put = Math.min(put, performance.now() - t);
    t = performance.now();
    const back = await store.read(sha);
    get = Math.min(get, performance.now() - t);
    if (back.length !== bytes.length) throw new Error('read back a different length');
    t = performance.now();
    await text(store.stream(sha, { start: 0, end: 351 }));
    range = Math.min(range, performance.now() - t);
    await store.remove(sha);
  }
  return { put, get, range };
}

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

/** One backend's job system: a database of its own, the demo case stored in `store`, a signed-in user. */
async function jobBench(
  kind: TestDatabaseKind,
  inner: VolumeStore,
  models: Awaited<ReturnType<typeof loadModelRegistry>>,
  beforeJob?: () => Promise<void>,
) {
  const database = await openTestDatabase(kind);
  const store = new TimedStore(inner);
  const envVars = { MAX_ACTIVE_JOBS_PER_USER: '100', ORT_THREADS: '1' };
  // The worker logs each job's pipeline stages (decode = load, model = infer, encode…): kept by job id.
  const stages = new Map<string, Record<string, number>>();
  const destination = {
    write(line: string) {
      const o = JSON.parse(line) as { msg?: string; jobId?: string; timingsMs?: Record<string, number> };
      if (o.msg === 'job succeeded' && o.jobId && o.timingsMs) stages.set(o.jobId, o.timingsMs);
    },
  };
  const runtime = await startJobRuntime({
    database: database.handle,
    store,
    models,
    env: parseEnv({ NODE_ENV: 'test', ...envVars }),
    log: createLogger({ level: 'info', destination }),
    runWorker: true,
  });
  const t = makeTestApp({ database: database.handle, models, volumeStore: store, jobs: runtime.jobs, env: envVars });
  await seedDemoCases(database.handle.db, store, 1);
  const b = new TestBrowser(t.app);
  await b.mutate('auth.register', { email: 'bench@x.org', password: 'correct horse battery' });
  const caseId = (await b.query<{ items: { id: string }[] }>('cases.list')).data.items[0]!.id;
  return {
    /** One job, created through the API, waited for on its row: created_at → finished_at, ms. */
    phases: store,
    async job(): Promise<number> {
      await beforeJob?.();
      store.reset();
      const created = await b.mutate<{ id: string }>('jobs.create', { caseId });
      if (created.status !== 200) throw new Error(`jobs.create: ${created.status} ${JSON.stringify(created.body)}`);
      for (;;) {
        const row = await findJob(database.handle.db, created.data.id);
        if (row && ['succeeded', 'failed', 'cancelled'].includes(row.status)) {
          if (row.status !== 'succeeded') throw new Error(`job ${row.status}: ${row.error}`);
          while (!stages.has(row.id)) await new Promise((r) => setTimeout(r, 2)); // logged just after the row
          store.stages = stages.get(row.id)!;
          store.queueMs = new Date(row.started_at!).getTime() - new Date(row.created_at).getTime();
          store.inputsMs = store.lastReadAt - new Date(row.created_at).getTime();
          return new Date(row.finished_at!).getTime() - new Date(row.created_at).getTime();
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async close() {
      await runtime.stop(2000);
      await database.dispose();
    },
  };
}

/**
 * The job's phases as the worker sees them through the VolumeStore interface: the input reads
 * (run in parallel: their wall span), the mask's put (lookup + write + check, for S3 the HEAD, PUT,
 * HEAD), and each S3 request by kind (SDK middleware: HeadObject, GetObject, PutObject…).
 */
class TimedStore implements VolumeStore {
  reads: { start: number; end: number }[] = [];
  putMs = 0;
  /** The job's pipeline stages (ms, from its log line) and created → claimed (ms, from its row). */
  stages: Record<string, number> = {};
  queueMs = 0;
  /** Wall clock (Date.now) when the job's last input read ended, and created → then (ms): what the job waited for its inputs. */
  lastReadAt = 0;
  inputsMs = 0;
  requests = new Map<string, number[]>();
  constructor(readonly inner: VolumeStore) {
    const s3 = inner instanceof CachedVolumeStore ? inner.inner : inner;
    if (s3 instanceof S3VolumeStore)
      s3.client.middlewareStack.add(
        (next, context) => async (args) => {
          const t0 = performance.now();
          try {
            return await next(args);
          } finally {
            const name = context.commandName ?? '?';
            this.requests.set(name, [...(this.requests.get(name) ?? []), performance.now() - t0]);
          }
        },
        { step: 'initialize', name: 'benchTiming' },
      );
  }
  reset() {
    this.reads = [];
    this.putMs = 0;
    this.stages = {};
    this.queueMs = 0;
    this.lastReadAt = 0;
    this.inputsMs = 0;
    this.requests.clear();
  }
  /** ms of this job's input reads (first start → last end) and of its mask put. */
  snapshot() {
    const readMs = this.reads.length ? Math.max(...this.reads.map((r) => r.end)) - Math.min(...this.reads.map((r) => r.start)) : 0;
    return {
      readMs,
      putMs: this.putMs,
      stages: this.stages,
      queueMs: this.queueMs,
      inputsMs: this.inputsMs,
      requests: new Map(this.requests),
    };
  }
  async put(bytes: Uint8Array, sha256?: string, hints?: { likelyAbsent?: boolean }) {
    const t0 = performance.now();
    try {
      return await this.inner.put(bytes, sha256, hints);
    } finally {
      this.putMs += performance.now() - t0;
    }
  }
  async read(sha256: string) {
    const start = performance.now();
    try {
      return await this.inner.read(sha256);
    } finally {
      this.reads.push({ start, end: performance.now() });
      this.lastReadAt = Date.now();
    }
  }
  stream(sha256: string, range?: { start: number; end: number }) {
    return this.inner.stream(sha256, range);
  }
  size(sha256: string) {
    return this.inner.size(sha256);
  }
  remove(sha256: string) {
    return this.inner.remove(sha256);
  }
  list() {
    return this.inner.list();
  }
  removeStaleTemps(olderThanMs: number) {
    return this.inner.removeStaleTemps(olderThanMs);
  }
}

/**
 * s3rver in a process of its own (on the same machine): a store whose work does not share the
 * worker's event loop, as no real store does. The in-process s3rver's JavaScript (request parsing,
 * file writes, MD5s) otherwise runs on the very thread that waits for it.
 */
async function s3rverProcess(bucket: string): Promise<{ store: S3VolumeStore; another(): S3VolumeStore; close(): void }> {
  const directory = mkdtempSync(path.join(tmpdir(), 'sv-bench-s3rver-'));
  const script = `import S3rver from 's3rver';
const s = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory: process.argv[1], configureBuckets: [{ name: '${bucket}' }] });
const { port } = await s.run();
console.log(port);`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, directory], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(Number(String(d).trim())));
    child.once('exit', (code) => reject(new Error(`s3rver exited (${code})`)));
  });
  const stores: S3VolumeStore[] = [];
  const another = () => {
    const s = new S3VolumeStore({
      bucket,
      prefix: 'jobs/',
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      forcePathStyle: true,
    });
    stores.push(s);
    return s;
  };
  return {
    store: another(),
    another,
    close: () => {
      for (const s of stores) s.close();
      child.kill('SIGKILL');
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

async function jobWallTimes(s3: TestS3) {
  const kind: TestDatabaseKind = (await postgresReachable()) ? 'postgres' : 'pglite';
  const models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
  await s3.createBucket('bench-jobs');
  const jobDir = mkdtempSync(path.join(tmpdir(), 'sv-bench-jobs-'));
  const apart = await s3rverProcess('bench-jobs-apart');
  const cacheDir = (name: string) => path.join(jobDir, name);
  const benches: Record<string, Awaited<ReturnType<typeof jobBench>>> = {};
  try {
    benches.fs = await jobBench(kind, new FsVolumeStore(path.join(jobDir, 'volumes')), models);
    if (backends.has('inproc'))
      benches['s3 (s3rver in this process)'] = await jobBench(kind, s3.store('bench-jobs', { prefix: 'jobs/' }), models);
    if (backends.has('apart')) benches['s3 (s3rver in its own process)'] = await jobBench(kind, apart.store, models);
    // The worker-local cache (VOLUME_CACHE_MB): emptied before every job (a worker's first job on a
    // case), and kept (every later job on it: a study run, a re-run, another model).
    if (backends.has('cold'))
      benches['s3 own process + cache, cold'] = await jobBench(
        kind,
        new CachedVolumeStore(apart.another(), cacheDir('cold'), 1024 * MiB),
        models,
        () => clearCache(cacheDir('cold')),
      );
    if (backends.has('warm'))
      benches['s3 own process + cache, warm'] = await jobBench(
        kind,
        new CachedVolumeStore(apart.another(), cacheDir('warm'), 1024 * MiB),
        models,
      );
  } catch (err) {
    for (const b of Object.values(benches)) await b.close();
    apart.close();
    throw err;
  }
  const names = Object.keys(benches);
  try {
    const times = Object.fromEntries(names.map((n) => [n, [] as number[]])) as Record<string, number[]>;
    type Phases = ReturnType<TimedStore['snapshot']>;
    const phases = Object.fromEntries(names.map((n) => [n, [] as Phases[]])) as Record<string, Phases[]>;
    for (const n of names) await benches[n]!.job(); // warm-up: model sessions, pool threads, the SDK's connections
    for (let i = 0; i < jobRuns; i++) {
      // in turns, each backend first as often as the others
      const order = names.map((_, j) => names[(i + j) % names.length]!);
      for (const n of order) {
        times[n]!.push(await benches[n]!.job());
        phases[n]!.push(benches[n]!.phases.snapshot());
      }
    }
    const fsMedian = median(times.fs!);
    console.log(`\nJob wall time, demo case, adc-dwi-v2, ${jobRuns} jobs per backend in turns, median (${kind}; created → finished)`);
    for (const n of names) {
      const m = median(times[n]!);
      const ratio = n === 'fs' ? '' : `   ${(m / fsMedian).toFixed(2)}× fs (goal ≤ 1.15×: ${m / fsMedian <= 1.15 ? 'met' : 'MISSED'})`;
      console.log(`  ${n.padEnd(31)} ${m.toFixed(0).padStart(5)} ms${ratio}   [${times[n]!.map((x) => x.toFixed(0)).join(', ')}]`);
    }
    // Paired: each round runs every backend back to back, so a round's ratio shares the machine's
    // load of that moment; their median drifts less than the ratio of medians on a busy machine.
    console.log('  median of the per-round ratios (each round: every backend back to back)');
    for (const n of names.filter((x) => x !== 'fs')) {
      const r = median(times[n]!.map((t, i) => t / times.fs![i]!));
      console.log(`    ${n.padEnd(31)} ${r.toFixed(2)}× fs (goal ≤ 1.15×: ${r <= 1.15 ? 'met' : 'MISSED'})`);
    }
    console.log(
      '  phases, medians per job: created → claimed · input reads (parallel, wall) · pipeline stages (decode = load, model = infer) · mask put · the rest (volume rows, the pool hand-off, the success transaction)',
    );
    const stageNames = ['load', 'preprocess', 'infer', 'postprocess', 'encode'];
    for (const n of names) {
      const ps = phases[n]!;
      const read = median(ps.map((p) => p.readMs));
      const put = median(ps.map((p) => p.putMs));
      const pipeline = (p: Phases) => stageNames.reduce((a, k) => a + (p.stages[k] ?? 0), 0);
      const rest = median(ps.map((p, i) => times[n]![i]! - p.queueMs - p.readMs - pipeline(p) - p.putMs));
      const st = stageNames.map((k) => `${k} ${median(ps.map((p) => p.stages[k] ?? 0)).toFixed(0)}`).join(' ');
      const claimed = median(ps.map((p) => p.queueMs)).toFixed(0);
      const inputs = median(ps.map((p) => p.inputsMs)).toFixed(0);
      console.log(`    ${n.padEnd(31)} claimed ${claimed.padStart(4)} ms · inputs in hand ${inputs.padStart(4)} ms · ${st} ms`);
      const kinds = [...new Set(ps.flatMap((p) => [...p.requests.keys()]))].sort();
      const reqs = kinds
        .map((k) => {
          const all = ps.flatMap((p) => p.requests.get(k) ?? []);
          return `${k.replace('Command', '')} ×${(all.length / ps.length).toFixed(1)} ${median(all).toFixed(1)} ms`;
        })
        .join(', ');
      console.log(
        `    ${n.padEnd(31)} reads ${read.toFixed(1).padStart(6)} ms · put ${put.toFixed(1).padStart(6)} ms · rest ${rest.toFixed(0).padStart(5)} ms${reqs ? `   requests/job: ${reqs}` : ''}`,
      );
    }
    // The store's own share, without the pipeline's noise: (this backend's reads + put) − the
    // folder's, added to the folder's median job. On a loaded machine the whole-job medians swing by
    // more than the store costs; this is the figure the phases support.
    const storeMs = (n: string) => median(phases[n]!.map((p) => p.readMs)) + median(phases[n]!.map((p) => p.putMs));
    console.log("  the store's share: fs median job + (reads + put − the folder's reads + put)");
    for (const n of names.filter((x) => x !== 'fs')) {
      const extra = storeMs(n) - storeMs('fs');
      console.log(`    ${n.padEnd(31)} +${extra.toFixed(0).padStart(4)} ms → ${((fsMedian + extra) / fsMedian).toFixed(3)}× fs`);
    }
  } finally {
    for (const n of names) await benches[n]!.close();
    apart.close();
    await models.close();
    rmSync(jobDir, { recursive: true, force: true });
  }
}

/**
 * A signed volume link's first byte, as a browser would get it (fetch following redirects): the
 * folder store through the API, the S3 store streamed through the API (`STORAGE_SERVE=proxy`), and
 * a 302 to a presigned GET that s3rver answers (`redirect`). The demo DWI (3.3 MB .nii.gz),
 * BENCH_STORE_LINKS (default 15) fetches each in turns after a warm-up, medians.
 */
async function firstBytes(s3: TestS3) {
  const links = Number(process.env.BENCH_STORE_LINKS ?? 15);
  const database = await openTestDatabase('pglite');
  await s3.createBucket('bench-links');
  const dir = mkdtempSync(path.join(tmpdir(), 'sv-bench-links-'));
  const dwi = phantomVolumes(1).find((v) => v.role === 'dwi')!;
  const stores = { fs: new FsVolumeStore(dir), s3: s3.store('bench-links', { prefix: 'links/' }) };
  const servers: { close(): Promise<void> }[] = [];
  try {
    const ways: Record<string, string> = {};
    for (const [name, store, serve] of [
      ['fs, through the API', stores.fs, 'proxy'],
      ['s3, STORAGE_SERVE=proxy', stores.s3, 'proxy'],
      ['s3, STORAGE_SERVE=redirect (302 + GET)', stores.s3, 'redirect'],
    ] as const) {
      const [id] = await withStoredVolumes(database.handle.db, store, [dwi], async (_trx, ids) => ids);
      const t = makeTestApp({ database: database.handle, volumeStore: store, env: { STORAGE_SERVE: serve, LOG_LEVEL: 'silent' } });
      const server = await serveApp(t.app);
      servers.push(server);
      ways[name] = `${server.url}/files/v/${t.signer.sign(id!)}/dwi.nii.gz`;
    }
    const firstByte = async (url: string) => {
      const t0 = performance.now();
      const res = await fetch(url);
      const reader = res.body!.getReader();
      await reader.read();
      const ms = performance.now() - t0;
      // read to the end (not cancelled): s3rver would log a cut request after the bench closed it
      while (!(await reader.read()).done);
      if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
      return ms;
    };
    const names = Object.keys(ways);
    const times = Object.fromEntries(names.map((n) => [n, [] as number[]]));
    for (const n of names) await firstByte(ways[n]!);
    for (let i = 0; i < links; i++) for (const n of names) times[n]!.push(await firstByte(ways[n]!));
    const base = median(times[names[0]!]!);
    console.log(
      `\nSigned link → first byte, demo DWI (${(dwi.stored.length / 1e6).toFixed(1)} MB), ${links} fetches each in turns, median`,
    );
    for (const n of names) {
      const m = median(times[n]!);
      console.log(`  ${n.padEnd(40)} ${m.toFixed(1).padStart(6)} ms   ${(m / base).toFixed(2)}× the folder store`);
    }
  } finally {
    for (const s of servers) await s.close();
    stores.s3.close();
    await database.dispose();
    rmSync(dir, { recursive: true, force: true });
  }
}

const dir = mkdtempSync(path.join(tmpdir(), 'sv-bench-fs-'));
const s3 = await startTestS3();
try {
  await s3.createBucket('bench-volumes');
  if (parts.has('store')) {
    const fs = await measure(new FsVolumeStore(dir));
    const obj = await measure(s3.store('bench-volumes', { prefix: 'bench/' }));
    const row = (name: string, a: number, b: number) =>
      console.log(`  ${name.padEnd(22)} fs ${a.toFixed(0).padStart(6)} ms   s3 ${b.toFixed(0).padStart(6)} ms   ${(b / a).toFixed(2)}×`);
    console.log(`\nVolume store, ${sizeMb} MiB, best of ${runs} (s3: s3rver on loopback; > 64 MiB goes multipart)`);
    row('put', fs.put, obj.put);
    row('get (whole)', fs.get, obj.get);
    row('ranged read (header)', fs.range, obj.range);
  }
  if (parts.has('jobs')) await jobWallTimes(s3);
  if (parts.has('links')) await firstBytes(s3);
} finally {
  await s3.close();
  rmSync(dir, { recursive: true, force: true });
}
