import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { type IncomingMessage, type Server, type ServerResponse, createServer, request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { VolumeFacts } from '../shared/nifti.js';
import { MiB } from '../shared/units.js';
import { connectPostgres } from './db/connect.js';
import { migrateToLatest } from './db/migrate.js';
import { type TestDatabase, createThrowawayPostgres, openTestDatabase } from './test/databases.js';
import { builtEntry } from './test/process.js';
import { type TestS3, startTestS3 } from './test/s3.js';
import { collectOrphanFiles, withStoredVolumes } from './volumes/service.js';
import { sha256Hex } from './volumes/store.js';

// #28: a process killed in the middle of storing a volume leaves no visible partial object and no
// row pointing at a missing one. The kill lands at a known point, not at a moment guessed from
// timing: the process stores through a proxy in front of s3rver that holds the store's write
// there (a gate), and the test SIGKILLs the process while it is held:
// - a multipart upload (volumes > 64 MiB) with every part sent and CompleteMultipartUpload held:
//   the key is not in the bucket (HEAD 404, not listed), on s3rver as on S3;
// - a single PUT (every mask, every volume ≤ 64 MiB) with 4 of its 12 MiB sent. S3, MinIO, R2 and
//   GCS never show a PUT that did not complete. s3rver does: its filesystem store writes the body
//   in place as it arrives (lib/stores/filesystem.js putObject) and serves any object file, so the
//   cut bytes are visible at the key. What strokeview owns holds either way, and is what is checked:
//   the store never takes those bytes for the volume (their length is not the volume's), the next
//   put of the same bytes replaces them, and the orphan sweep removes them (no row names them);
// - the real storing path (volumes/service.ts withStoredVolumes: hash lock, PUT, row, one
//   transaction) on PostgreSQL, killed mid-PUT: no volume row appears, every row has its object,
//   the hash lock is free, and storing the same bytes again commits them whole.

/** What the gate held: the request's key and how many body bytes it let through to the store. */
interface Held {
  key: string;
  method: string;
  forwarded: number;
  /** Resolves once the store has seen the request end (the killed client's connection cut). */
  upstreamClosed: Promise<void>;
}

/**
 * A proxy in front of the store passing everything through, except the first request that
 * `hold` picks: of it, `forwardBytes` of the body reach the store and the rest waits (the client
 * is held mid-write); when the client goes away, the store's side of that request is cut too.
 */
async function holdingProxy(
  target: string,
  hold: (req: IncomingMessage) => boolean,
  forwardBytes: number,
): Promise<{ endpoint: string; held: Promise<Held>; close(): Promise<void> }> {
  const to = new URL(target);
  let holding = false;
  let onHeld!: (h: Held) => void;
  const held = new Promise<Held>((r) => (onHeld = r));
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    // The Host header goes through unchanged: the request's signature covers it.
    const up = request({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    if (holding || !hold(req)) {
      req.pipe(up);
      return;
    }
    holding = true;
    const upstreamClosed = new Promise<void>((r) => up.on('close', () => r()));
    let forwarded = 0;
    let reported = false;
    const report = () => {
      if (reported) return;
      reported = true;
      onHeld({
        key: decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname),
        method: req.method ?? '',
        forwarded,
        upstreamClosed,
      });
    };
    req.on('data', (chunk: Buffer) => {
      if (forwarded >= forwardBytes) return; // held: the rest is read and dropped, never sent
      const part = chunk.subarray(0, forwardBytes - forwarded);
      forwarded += part.length;
      up.write(part);
      if (forwarded >= forwardBytes) report();
    });
    req.on('end', report); // a body no longer than forwardBytes (0: the request is held before it reaches the store)
    // the client killed: the store sees its request cut short, as from a dead machine
    req.on('close', () => up.destroy());
    res.on('close', () => up.destroy());
    if (forwardBytes === 0) report();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    held,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

const dist = (entry: string) => JSON.stringify(pathToFileURL(builtEntry(entry)).href);

/** Another process running `body` (an ES module using the built server code), until it ends or is killed. */
function childProcess(body: string) {
  const child = spawn(process.execPath, ['--input-type=module', '-e', body], {
    env: { PATH: process.env.PATH ?? '', AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const exited = new Promise<number | string>((r) => child.on('exit', (code, signal) => r(code ?? signal ?? 'unknown')));
  return { child, exited, output: () => out };
}

interface Target {
  bucket: string;
  prefix: string;
  endpoint: string;
  threshold: number;
}

const storeIn = (t: Target) =>
  `new S3VolumeStore({ bucket: ${JSON.stringify(t.bucket)}, prefix: ${JSON.stringify(t.prefix)}, endpoint: ${JSON.stringify(t.endpoint)}, region: 'us-east-1', forcePathStyle: true, multipartThresholdBytes: ${t.threshold} })`;

/** As a worker stores a mask's bytes: the built S3 store's put. */
const putScript = (t: Target, file: string) => `
  import { readFileSync } from 'node:fs';
  const { S3VolumeStore } = await import(${dist('src/server/volumes/s3-store.ts')});
  await ${storeIn(t)}.put(readFileSync(${JSON.stringify(file)}));
  console.log('stored');
`;

/** The facts of the stored test bytes (not a NIfTI: the storing path does not read them). */
const FACTS: VolumeFacts = {
  dims: [4, 4, 4],
  voxelSizeMm: [1, 1, 1],
  datatype: 'uint8',
  affine: [
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
  ],
  frames: 1,
  adcUnit: null,
};

/** As a worker stores a job's mask: withStoredVolumes on PostgreSQL (lock, PUT, row, one transaction). */
const storeScript = (t: Target, file: string, databaseUrl: string) => `
  import { readFileSync } from 'node:fs';
  const { S3VolumeStore } = await import(${dist('src/server/volumes/s3-store.ts')});
  const { connectPostgres } = await import(${dist('src/server/db/connect.ts')});
  const { withStoredVolumes } = await import(${dist('src/server/volumes/service.ts')});
  const database = await connectPostgres(${JSON.stringify(databaseUrl)}, { max: 2 });
  await withStoredVolumes(database.db, ${storeIn(t)}, [{ stored: readFileSync(${JSON.stringify(file)}), facts: ${JSON.stringify(FACTS)} }], async () => undefined);
  console.log('stored');
`;

describe('a process SIGKILLed mid-put leaves no visible partial object (s3rver)', () => {
  let s3: TestS3;
  let admin: S3Client;
  let rows: TestDatabase;
  let buckets = 0;
  const dir = mkdtempSync(path.join(tmpdir(), 'sv-put-kill-'));

  beforeAll(async () => {
    s3 = await startTestS3();
    admin = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true });
    rows = await openTestDatabase('pglite'); // the sweep's view of the rows: none for these bytes
  });
  afterAll(async () => {
    admin?.destroy();
    await rows?.dispose();
    await s3?.close();
  });

  /** What a reader of the bucket sees under the prefix and at the key. */
  const visible = async (bucket: string, key: string) => {
    const listed = await admin.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: 'k/' }));
    const head = await admin.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).then(
      (r) => r.ContentLength,
      (err: { name?: string }) => (err.name === 'NotFound' ? undefined : Promise.reject(err)),
    );
    return { listed: (listed.Contents ?? []).map((o) => o.Key), head };
  };

  /** Fresh bucket and bytes; `script` stores them through a proxy that holds the write `hold` picks; SIGKILLed there. */
  async function killMidPut(opts: {
    bytes: number;
    threshold: number;
    hold: (req: IncomingMessage) => boolean;
    forwardBytes: number;
    script: (t: Target, file: string) => string;
  }) {
    const bucket = `put-kill-${++buckets}`;
    await s3.createBucket(bucket);
    const bytes = randomBytes(opts.bytes);
    const sha = sha256Hex(bytes);
    const key = `k/volumes/${sha.slice(0, 2)}/${sha}.nii.gz`;
    const file = path.join(dir, `${sha}.bin`);
    writeFileSync(file, bytes);
    const proxy = await holdingProxy(s3.endpoint, opts.hold, opts.forwardBytes);
    try {
      const putter = childProcess(opts.script({ bucket, prefix: 'k/', endpoint: proxy.endpoint, threshold: opts.threshold }, file));
      const held = await Promise.race([
        proxy.held,
        putter.exited.then((code) =>
          Promise.reject(new Error(`the storing process exited (${code}) before its write was held:\n${putter.output()}`)),
        ),
      ]);
      expect(held.key).toBe(`/${bucket}/${key}`);
      expect(held.forwarded).toBe(opts.forwardBytes);
      putter.child.kill('SIGKILL');
      expect(await putter.exited).toBe('SIGKILL');
      await held.upstreamClosed; // the store has seen the cut request end
    } finally {
      await proxy.close();
    }
    const store = s3.store(bucket, { prefix: 'k/', multipartThresholdBytes: opts.threshold });
    return { bucket, key, bytes, sha, store };
  }

  it('a multipart upload, killed with its 3 parts sent and CompleteMultipartUpload held: nothing at the key, nothing listed', async () => {
    const k = await killMidPut({
      bytes: 40 * MiB,
      threshold: 5 * MiB,
      hold: (req) => req.method === 'POST' && /[?&]uploadId=/.test(req.url!),
      forwardBytes: 0,
      script: putScript,
    });
    expect(await visible(k.bucket, k.key)).toEqual({ listed: [], head: undefined });
    expect(await k.store.size(k.sha)).toBeUndefined();
    // the retry (another worker, the same bytes, the same content address) stores them whole
    expect(await k.store.put(k.bytes)).toEqual({ sha256: k.sha, created: true });
    expect(sha256Hex(await k.store.read(k.sha))).toBe(k.sha);
  }, 180_000);

  it('a single PUT, killed with 4 of its 12 MiB sent: never taken for the volume, replaced by the next put, swept as an orphan', async () => {
    const k = await killMidPut({
      bytes: 12 * MiB,
      threshold: 64 * MiB,
      hold: (req) => req.method === 'PUT' && req.url!.includes('/volumes/'),
      forwardBytes: 4 * MiB,
      script: putScript,
    });
    const after = await visible(k.bucket, k.key);
    // S3, MinIO, R2, GCS: nothing. s3rver: the bytes it had written when the request was cut.
    if (after.head !== undefined) {
      console.info(`s3rver shows a cut PUT: ${after.head} of ${k.bytes.length} bytes at the key (S3 would show nothing)`);
      expect(after.head).toBeLessThan(k.bytes.length);
      expect(after.listed).toEqual([k.key]);
    } else expect(after.listed).toEqual([]);
    // the store does not take them for the volume: its put writes the bytes again, whole
    expect(await k.store.size(k.sha)).not.toBe(k.bytes.length);
    expect(await k.store.put(k.bytes)).toEqual({ sha256: k.sha, created: true });
    expect(sha256Hex(await k.store.read(k.sha))).toBe(k.sha);

    // and when nobody stores them again, the orphan sweep (no row names them) removes the cut bytes
    const again = await killMidPut({
      bytes: 12 * MiB,
      threshold: 64 * MiB,
      hold: (req) => req.method === 'PUT' && req.url!.includes('/volumes/'),
      forwardBytes: 4 * MiB,
      script: putScript,
    });
    await collectOrphanFiles(rows.handle.db, again.store, 0);
    expect(await visible(again.bucket, again.key)).toEqual({ listed: [], head: undefined });
  }, 240_000);

  const pgUrl = process.env.TEST_DATABASE_URL;
  it.skipIf(!pgUrl)(
    'the storing transaction on PostgreSQL, killed mid-PUT: no volume row, every row has its object, the hash lock is free',
    async () => {
      const db = await createThrowawayPostgres();
      const handle = await connectPostgres(db.url, { max: 2 });
      try {
        await migrateToLatest(handle.db);
        const k = await killMidPut({
          bytes: 12 * MiB,
          threshold: 64 * MiB,
          hold: (req) => req.method === 'PUT' && req.url!.includes('/volumes/'),
          forwardBytes: 4 * MiB,
          script: (t, file) => storeScript(t, file, db.url),
        });
        // PostgreSQL rolls the dead connection's transaction back: no row for the bytes
        const client = new pg.Client({ connectionString: db.url });
        await client.connect();
        const volumeRows = async () => (await client.query<{ sha256: string }>('select sha256 from volumes')).rows.map((r) => r.sha256);
        try {
          expect(await volumeRows()).toEqual([]);
          // the hash lock died with the process: the same bytes stored again (the job's retry) commit, whole
          const stored = await withStoredVolumes(
            handle.db,
            k.store,
            [
              {
                stored: k.bytes,
                sha256: k.sha,
                facts: FACTS,
              },
            ],
            async (_trx, ids) => ids,
          );
          expect(stored).toHaveLength(1);
          expect(await volumeRows()).toEqual([k.sha]);
          // every row has its object, whole; no object without a row
          const objects: string[] = [];
          for await (const o of k.store.list()) objects.push(o.sha256);
          expect(objects).toEqual([k.sha]);
          expect(await k.store.size(k.sha)).toBe(k.bytes.length);
          expect(sha256Hex(await k.store.read(k.sha))).toBe(k.sha);
        } finally {
          await client.end();
        }
      } finally {
        await handle.close();
        await db.drop();
      }
    },
    240_000,
  );
});
