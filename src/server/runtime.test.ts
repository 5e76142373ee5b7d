import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEnv } from './env.js';
import { createLogger } from './logger.js';
import { BootAborted, openRuntime } from './runtime.js';
import { startTestS3 } from './test/s3.js';
import { s3StoreOf } from './volumes/backends.js';
import { CachedVolumeStore } from './volumes/cache.js';
import { S3VolumeStore } from './volumes/s3-store.js';

const env = () => parseEnv({ DATA_DIR: mkdtempSync(path.join(tmpdir(), 'sv-runtime-')) });

describe('openRuntime', { timeout: 120_000 }, () => {
  it('task: opens, migrates, works, closes — and the next open finds the schema done', async () => {
    const e = env();
    const first = await openRuntime(e, 'task');
    expect(first.applied.length).toBeGreaterThan(0);
    expect(first.database.kind).toBe('embedded');
    await first.stop();
    // The embedded database's lock went with stop(): a second open of the same folder works.
    const second = await openRuntime(e, 'task');
    expect(second.applied).toEqual([]);
    await second.stop();
  });

  it('an aborted signal stops opening before the next step and closes what it opened', async () => {
    const e = env();
    const abort = new AbortController();
    abort.abort();
    await expect(openRuntime(e, 'task', { signal: abort.signal })).rejects.toBeInstanceOf(BootAborted);
    const again = await openRuntime(e, 'task');
    expect(again.applied.length).toBeGreaterThan(0); // the aborted open migrated nothing
    await again.stop();
  });

  it('server, embedded: ready while the job system is still starting (#29); stop() then waits for it, drains it and unlocks the folder', async () => {
    const e = env();
    let release!: () => void;
    const jobsAfter = new Promise<void>((r) => (release = r));
    const rt = await openRuntime(e, 'server', { log: createLogger({ level: 'silent' }), jobsAfter });
    // Resolved (the server would be ready) with the job system held: the queue is not needed to answer.
    const pending = Symbol('pending');
    expect(await Promise.race([rt.services.jobs, Promise.resolve(pending)])).toBe(pending);
    const stopping = rt.stop(1000);
    release();
    await stopping;
    expect((await rt.services.jobs).boss).toBeDefined(); // it started, and the stop drained it
    const again = await openRuntime(e, 'task'); // the database lock went with the stop
    await again.stop();
  });

  it('an s3:// STORAGE_URL opens the object store (its module loaded at that moment, #29), usable, closed by stop()', async () => {
    const s3 = await startTestS3();
    try {
      await s3.createBucket('sv-runtime');
      const rt = await openRuntime(
        parseEnv({ DATA_DIR: mkdtempSync(path.join(tmpdir(), 'sv-runtime-')), ...s3.env('sv-runtime') }),
        'task',
      );
      // The S3 store, behind the worker-local volume cache (VOLUME_CACHE_MB, #28).
      expect(rt.store).toBeInstanceOf(CachedVolumeStore);
      expect(s3StoreOf(rt.store)).toBeInstanceOf(S3VolumeStore);
      const { sha256 } = await rt.store.put(new Uint8Array([1, 2, 3]));
      expect([...(await rt.store.read(sha256))]).toEqual([1, 2, 3]);
      await rt.stop();
    } finally {
      await s3.close();
    }
  });
});
