import { afterAll, beforeAll, expect, it } from 'vitest';
import { phantomVolumes } from '../../cases/demo.js';
import { describeEachDatabase } from '../../test/databases.js';
import { makeTestApp } from '../../test/app.js';
import { type TestS3, startTestS3 } from '../../test/s3.js';
import { withStoredVolumes } from '../../volumes/service.js';
import type { S3VolumeStore } from '../../volumes/s3-store.js';

// Signed volume links over the S3 backend: streamed through the API with the same headers as from
// disk (ETag, Range → 206, CORP, immutable caching), or with STORAGE_SERVE=redirect a 302 to a
// presigned GET the store answers itself. /readyz names the store when it cannot be reached.

let s3: TestS3;
let store: S3VolumeStore;
beforeAll(async () => {
  s3 = await startTestS3();
  await s3.createBucket('files-test');
  store = s3.store('files-test', { prefix: 'app/' });
});
afterAll(() => s3.close());

describeEachDatabase('volume links on an object store', (db) => {
  const storeMask = async () => {
    const mask = phantomVolumes(7).find((v) => v.role === 'mask')!;
    const [id] = await withStoredVolumes(db().handle.db, store, [mask], async (_trx, ids) => ids);
    return { id: id!, bytes: mask.stored };
  };

  it('streams from the store: 200 with ETag, CORP and immutable caching; Range → 206; If-None-Match → 304', async () => {
    const { id, bytes } = await storeMask();
    const { app, signer } = makeTestApp({ database: db().handle, volumeStore: store });
    const url = `/files/v/${signer.sign(id)}/mask.nii.gz`;
    const whole = await app.request(url);
    expect(whole.status).toBe(200);
    const etag = whole.headers.get('etag');
    expect(etag).toMatch(/^"[0-9a-f]{64}"$/);
    expect(whole.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    expect(whole.headers.get('cache-control')).toMatch(/immutable/);
    expect(Buffer.compare(Buffer.from(await whole.arrayBuffer()), bytes)).toBe(0);
    const part = await app.request(url, { headers: { range: 'bytes=0-351' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 0-351/${bytes.length}`);
    expect(Buffer.compare(Buffer.from(await part.arrayBuffer()), bytes.subarray(0, 352))).toBe(0);
    expect((await app.request(url, { headers: { 'if-none-match': etag! } })).status).toBe(304);
  });

  it('STORAGE_SERVE=redirect: a 302 to a short-lived presigned GET that the store answers with the bytes (Range too)', async () => {
    const { id, bytes } = await storeMask();
    const { app, signer } = makeTestApp({
      database: db().handle,
      volumeStore: store,
      env: { STORAGE_SERVE: 'redirect', STORAGE_REDIRECT_TTL_S: '60' },
    });
    const res = await app.request(`/files/v/${signer.sign(id)}/mask.nii.gz?download=1`);
    expect(res.status).toBe(302);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const location = res.headers.get('location')!;
    expect(location.startsWith(`${s3.endpoint}/files-test/app/volumes/`)).toBe(true);
    expect(new URL(location).searchParams.get('X-Amz-Expires')).toBe('60');
    const fromStore = await fetch(location);
    expect(fromStore.status).toBe(200);
    expect(fromStore.headers.get('content-disposition')).toBe('attachment; filename="mask.nii.gz"');
    expect(Buffer.compare(Buffer.from(await fromStore.arrayBuffer()), bytes)).toBe(0);
    const ranged = await fetch(location, { headers: { range: 'bytes=10-19' } });
    expect(ranged.status).toBe(206);
    expect(Buffer.compare(Buffer.from(await ranged.arrayBuffer()), bytes.subarray(10, 20))).toBe(0);
    // the signed link is still the gate: a bad one gets no presigned URL
    const forged = await app.request(`/files/v/not-a-token/mask.nii.gz`);
    expect(forged.status).toBe(403);
    expect(forged.headers.get('location')).toBeNull();
  });

  it('the store unreachable: volume reads get 503 + Retry-After naming the storage, /readyz says storage unreachable; back when it is', async () => {
    const { id } = await storeMask();
    const { S3VolumeStore } = await import('../../volumes/s3-store.js');
    const down = new S3VolumeStore({ ...store.options, endpoint: 'http://127.0.0.1:9' });
    try {
      const broken = makeTestApp({ database: db().handle, volumeStore: down });
      const res = await broken.app.request(`/files/v/${broken.signer.sign(id)}`);
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toBeTruthy();
      expect(await res.text()).toMatch(/object store \(STORAGE_URL\) is not answering/);
      const ready = await broken.app.request('/readyz');
      expect(ready.status).toBe(503);
      expect(await ready.json()).toMatchObject({ status: 'unavailable', storage: 'unreachable' });
    } finally {
      down.close();
    }
    const healthy = makeTestApp({ database: db().handle, volumeStore: store });
    expect(await (await healthy.app.request('/readyz')).json()).toMatchObject({ storage: 'ok' });
  });
});
