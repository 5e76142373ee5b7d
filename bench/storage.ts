import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { text } from 'node:stream/consumers';
import { startTestS3 } from '../src/server/test/s3.js';
import { FsVolumeStore, type VolumeStore, sha256Hex } from '../src/server/volumes/store.js';

// #28: the object-store backend against the filesystem, same run, same bytes: put and get of a
// BENCH_STORE_MB (default 50) MiB volume, best of BENCH_STORE_RUNS (default 3), and the ratio.
// The S3 side is s3rver on loopback (a JavaScript server persisting to a folder), so the ratio is
// the protocol's and the SDK's cost, not a real store's network.

const MiB = 1048576;
const sizeMb = Number(process.env.BENCH_STORE_MB ?? 50);
const runs = Number(process.env.BENCH_STORE_RUNS ?? 3);

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

const dir = mkdtempSync(path.join(tmpdir(), 'sv-bench-fs-'));
const s3 = await startTestS3();
try {
  await s3.createBucket('bench-volumes');
  const fs = await measure(new FsVolumeStore(dir));
  const obj = await measure(s3.store('bench-volumes', { prefix: 'bench/' }));
  const row = (name: string, a: number, b: number) =>
    console.log(`  ${name.padEnd(22)} fs ${a.toFixed(0).padStart(6)} ms   s3 ${b.toFixed(0).padStart(6)} ms   ${(b / a).toFixed(2)}×`);
  console.log(`\nVolume store, ${sizeMb} MiB, best of ${runs} (s3: s3rver on loopback; > 64 MiB goes multipart)`);
  row('put', fs.put, obj.put);
  row('get (whole)', fs.get, obj.get);
  row('ranged read (header)', fs.range, obj.range);
} finally {
  await s3.close();
  rmSync(dir, { recursive: true, force: true });
}
