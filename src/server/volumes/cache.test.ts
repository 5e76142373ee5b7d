import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { type Server, createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { JobView } from '../../shared/jobs.js';
import { phantomVolumes } from '../cases/demo.js';
import { createCase } from '../cases/service.js';
import { parseEnv } from '../env.js';
import { startJobRuntime } from '../jobs/runtime.js';
import { createLogger } from '../logger.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from '../segmentation/models.js';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { openTestDatabase } from '../test/databases.js';
import { ROOT } from '../test/process.js';
import { type TestS3, startTestS3 } from '../test/s3.js';
import { CachedVolumeStore } from './cache.js';
import { S3VolumeStore } from './s3-store.js';
import { sha256Hex } from './store.js';

// #28: the worker-local read-through cache of volumes (VOLUME_CACHE_MB) in front of a real
// s3rver, with a counting proxy between them: what reaches the store is counted, not guessed.

let s3: TestS3;
let buckets = 0;

beforeAll(async () => {
  s3 = await startTestS3();
});
afterAll(async () => {
  await s3?.close();
});

/** A proxy in front of s3rver counting the requests by method (the Host header passes unchanged: it is signed). */
async function countingProxy(target: string) {
  const to = new URL(target);
  const counts: Record<string, number> = {};
  const server: Server = createServer((req, res) => {
    counts[req.method ?? '?'] = (counts[req.method ?? '?'] ?? 0) + 1;
    const up = request({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    counts,
    reset: () => {
      for (const k of Object.keys(counts)) delete counts[k];
    },
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

async function freshBucket() {
  const bucket = `cache-${++buckets}-${randomBytes(3).toString('hex')}`;
  await s3.createBucket(bucket);
  const proxy = await countingProxy(s3.endpoint);
  const remote = new S3VolumeStore({ bucket, prefix: 'c/', endpoint: proxy.endpoint, region: 'us-east-1', forcePathStyle: true });
  return {
    bucket,
    proxy,
    remote,
    close: async () => {
      remote.close();
      await proxy.close();
    },
  };
}

const cacheDir = () => mkdtempSync(path.join(tmpdir(), 'sv-cache-'));

describe('the volume cache in front of S3', () => {
  let models: ModelRegistry;
  beforeAll(async () => {
    models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
  });
  afterAll(async () => {
    await models?.close();
  });

  it("a second job on the same case makes no GET to the store: its inputs come from the worker's cache", async () => {
    const b = await freshBucket();
    const database = await openTestDatabase('pglite');
    const store = new CachedVolumeStore(b.remote, cacheDir(), 256 * 1048576);
    const runtime = await startJobRuntime({
      database: database.handle,
      store,
      models,
      env: parseEnv({ NODE_ENV: 'test' }),
      log: createLogger({ level: 'silent' }),
      runWorker: true,
    });
    try {
      const t = makeTestApp({ database: database.handle, models, volumeStore: store, jobs: runtime.jobs });
      const caseId = await createCase(
        database.handle.db,
        store,
        { ownerId: null, name: 'demo', source: 'demo', subjectId: 'cache-1' },
        phantomVolumes(7),
      );
      const user = new TestBrowser(t.app);
      await user.mutate('auth.register', { email: 'cache@x.org', password: 'correct horse battery' });
      const run = async () => {
        const created = (await user.mutate<JobView>('jobs.create', { caseId })).data;
        let job: JobView | undefined;
        await vi.waitFor(
          async () => {
            job = (await user.query<JobView>('jobs.byId', { id: created.id })).data;
            expect(['succeeded', 'failed']).toContain(job.status);
          },
          { timeout: 60_000, interval: 50 },
        );
        expect(job!.status, job!.error ?? '').toBe('succeeded');
      };
      b.proxy.reset();
      await run();
      const inputs = b.proxy.counts.GET ?? 0;
      // The first job read its inputs from the store: the DWI, the ADC and the truth, not the FLAIR no model reads.
      expect(inputs).toBe(3);
      await store.idle(); // its copies written (behind the job's back)
      b.proxy.reset();
      await run();
      expect(b.proxy.counts.GET ?? 0).toBe(0);
      expect(store.stats.hits).toBeGreaterThanOrEqual(inputs);
    } finally {
      await runtime.stop(2000);
      await database.dispose();
      await b.close();
    }
  }, 180_000);
});

describe('the cache files', () => {
  it('a corrupted cached copy is detected (its hash), removed and fetched again', async () => {
    const b = await freshBucket();
    try {
      const dir = cacheDir();
      const store = new CachedVolumeStore(b.remote, dir, 64 * 1048576);
      const bytes = randomBytes(300_000);
      const { sha256 } = await store.put(bytes);
      expect((await store.read(sha256)).equals(bytes)).toBe(true);
      await store.idle();
      const file = store.pathOf(sha256);
      expect(readFileSync(file).equals(bytes)).toBe(true);
      // A flipped byte on disk, same length: only the hash tells.
      const damaged = Buffer.from(bytes);
      damaged[1000] = damaged[1000]! ^ 0xff;
      writeFileSync(file, damaged);
      b.proxy.reset();
      expect((await store.read(sha256)).equals(bytes)).toBe(true);
      expect(b.proxy.counts.GET).toBe(1);
      expect(store.stats.corrupt).toBe(1);
      await store.idle();
      expect(readFileSync(file).equals(bytes)).toBe(true); // repaired
      b.proxy.reset();
      await store.read(sha256);
      expect(b.proxy.counts.GET ?? 0).toBe(0);
    } finally {
      await b.close();
    }
  });

  it('reads of one volume at once fetch it once, and each caller owns its bytes (a job moves them to a thread)', async () => {
    const b = await freshBucket();
    try {
      const store = new CachedVolumeStore(b.remote, cacheDir(), 64 * 1048576);
      const bytes = randomBytes(500_000);
      const { sha256 } = await store.put(bytes);
      b.proxy.reset();
      const [x, y, z] = await Promise.all([store.read(sha256), store.read(sha256), store.read(sha256)]);
      expect(b.proxy.counts.GET).toBe(1);
      // Detach the first caller's memory, as a transfer to a worker thread does: the others keep theirs.
      structuredClone(x.buffer, { transfer: [x.buffer] });
      expect(x.length).toBe(0);
      expect(y.equals(bytes) && z.equals(bytes)).toBe(true);
      await store.idle();
      expect(readFileSync(store.pathOf(sha256)).equals(bytes)).toBe(true);
    } finally {
      await b.close();
    }
  });

  it('keeps within VOLUME_CACHE_MB: the least recently used copies go first; a removed volume leaves the cache', async () => {
    const b = await freshBucket();
    try {
      const dir = cacheDir();
      const size = 400_000;
      const store = new CachedVolumeStore(b.remote, dir, 3 * size + 1000);
      const shas: string[] = [];
      for (let i = 0; i < 5; i++) shas.push((await store.put(randomBytes(size))).sha256);
      // Their last uses two seconds apart (mtime is the LRU clock; set, not waited for).
      let clock = 0;
      const touch = async (i: number) => {
        await store.read(shas[i]!);
        await store.idle();
        const t = new Date(Date.UTC(2026, 0, 1, 0, 0, (clock += 2)));
        const { utimesSync } = await import('node:fs');
        utimesSync(store.pathOf(shas[i]!), t, t);
      };
      for (const i of [0, 1, 2]) await touch(i);
      await touch(0); // 0 used again: now 1 is the oldest
      expect(await store.cachedBytes()).toBe(3 * size);
      await store.read(shas[3]!); // over the bound: 1 goes
      await store.idle();
      const cached = (i: number) => {
        try {
          return statSync(store.pathOf(shas[i]!)).size === size;
        } catch {
          return false;
        }
      };
      expect([0, 1, 2, 3].map(cached)).toEqual([true, false, true, true]);
      expect(await store.cachedBytes()).toBeLessThanOrEqual(3 * size + 1000);
      await store.read(shas[4]!);
      await store.idle();
      expect(await store.cachedBytes()).toBeLessThanOrEqual(3 * size + 1000);
      expect(store.stats.evicted).toBe(2);
      // A volume removed from the store is removed from this process's cache too.
      await store.remove(shas[4]!);
      expect(cached(4)).toBe(false);
      // A volume larger than the whole cache is read through, not kept.
      const tiny = new CachedVolumeStore(b.remote, cacheDir(), 1000);
      expect((await tiny.read(shas[0]!)).length).toBe(size);
      await tiny.idle();
      expect(await tiny.cachedBytes()).toBe(0);
    } finally {
      await b.close();
    }
  });

  it('a fill cut short (a temp file) is cleaned at boot; a fresh one (a live sibling) is left', async () => {
    const dir = cacheDir();
    const b = await freshBucket();
    try {
      writeFileSync(path.join(dir, '.tmp-old'), 'partial');
      const old = new Date(Date.now() - 3_600_000);
      const { utimesSync } = await import('node:fs');
      utimesSync(path.join(dir, '.tmp-old'), old, old);
      writeFileSync(path.join(dir, '.tmp-fresh'), 'in progress');
      const store = new CachedVolumeStore(b.remote, dir, 1048576);
      await store.cachedBytes();
      expect(readdirSync(dir).sort()).toEqual(['.tmp-fresh']);
    } finally {
      await b.close();
    }
  });

  it('two processes sharing one DATA_DIR fill the same cache at once without corrupting it (temp + rename)', async () => {
    const b = await freshBucket();
    try {
      const dir = cacheDir();
      const volumes: { sha256: string; digest: string }[] = [];
      for (let i = 0; i < 6; i++) {
        const bytes = randomBytes(1_500_000);
        volumes.push({ sha256: (await b.remote.put(bytes)).sha256, digest: sha256Hex(bytes) });
      }
      const script = path.join(mkdtempSync(path.join(tmpdir(), 'sv-cache-proc-')), 'reader.mts');
      writeFileSync(
        script,
        `import { CachedVolumeStore } from ${JSON.stringify(pathToFileURL(path.join(ROOT, 'src/server/volumes/cache.ts')).href)};
import { S3VolumeStore } from ${JSON.stringify(pathToFileURL(path.join(ROOT, 'src/server/volumes/s3-store.ts')).href)};
import { createHash } from 'node:crypto';
const [dir, endpoint, bucket, ...shas] = process.argv.slice(2);
const remote = new S3VolumeStore({ bucket, prefix: 'c/', endpoint, region: 'us-east-1', forcePathStyle: true });
const store = new CachedVolumeStore(remote, dir, 64 * 1048576);
// Every volume three times over, all at once: fills race each other and the sibling process's.
const read = await Promise.all([...shas, ...shas, ...shas].map((s) => store.read(s)));
await store.idle();
const bad = read.filter((bytes, i) => createHash('sha256').update(bytes).digest('hex') !== [...shas, ...shas, ...shas][i]).length;
remote.close();
console.log(JSON.stringify({ bad, ...store.stats }));
`,
      );
      const runOne = () =>
        new Promise<{ bad: number; hits: number; misses: number; corrupt: number }>((resolve, reject) => {
          const child = spawn(
            process.execPath,
            ['--import', 'tsx', script, dir, b.proxy.endpoint, b.bucket, ...volumes.map((v) => v.sha256)],
            { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env } },
          );
          let out = '';
          child.stdout.on('data', (d: Buffer) => (out += String(d)));
          child.on('exit', (code) =>
            code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!)) : reject(new Error(`reader exited ${code}`)),
          );
        });
      const [a, c] = await Promise.all([runOne(), runOne()]);
      expect(a.bad + c.bad).toBe(0);
      expect(a.corrupt + c.corrupt).toBe(0);
      // What both left behind: every volume whole under its name, no temp file.
      for (const v of volumes) {
        const file = path.join(dir, v.sha256.slice(0, 2), `${v.sha256}.nii.gz`);
        expect(sha256Hex(readFileSync(file))).toBe(v.digest);
      }
      expect(readdirSync(dir).filter((f) => f.startsWith('.tmp-'))).toEqual([]);
      // A third reader finds them all cached.
      b.proxy.reset();
      const again = await runOne();
      expect(again).toMatchObject({ bad: 0, misses: 0, hits: 18 });
      expect(b.proxy.counts.GET ?? 0).toBe(0);
    } finally {
      await b.close();
    }
  }, 120_000);
});
