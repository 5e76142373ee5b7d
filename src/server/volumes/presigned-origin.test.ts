import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { describe, expect, it } from 'vitest';
import { parseEnv } from '../env.js';
import { redirectOrigin } from './backends.js';
import { S3VolumeStore, presignedOrigin } from './s3-store.js';

// STORAGE_SERVE=redirect: the page's CSP connect-src must name the store's origin before any link
// is presigned. presignedOrigin resolves it by the SDK's endpoint rules; here each layout is checked
// against the origin of a real presigned GET (presigning is local: no request is made).

const layouts = [
  { name: 'AWS, us-east-1 (virtual-hosted)', bucket: 'sv-volumes', region: 'us-east-1', forcePathStyle: false },
  { name: 'AWS, eu-central-1 (virtual-hosted)', bucket: 'sv-volumes', region: 'eu-central-1', forcePathStyle: false },
  { name: 'AWS, path-style', bucket: 'sv-volumes', region: 'eu-west-1', forcePathStyle: true },
  {
    name: 'MinIO (path-style on S3_ENDPOINT)',
    bucket: 'sv-volumes',
    region: 'us-east-1',
    forcePathStyle: true,
    endpoint: 'http://minio:9000',
  },
  { name: 's3rver on loopback', bucket: 'sv-volumes', region: 'us-east-1', forcePathStyle: true, endpoint: 'http://127.0.0.1:4569' },
  {
    name: 'R2 (virtual-hosted on S3_ENDPOINT)',
    bucket: 'sv-volumes',
    region: 'auto',
    forcePathStyle: false,
    endpoint: 'https://acc.r2.cloudflarestorage.com',
  },
  { name: 'GCS interoperability', bucket: 'sv-volumes', region: 'auto', forcePathStyle: false, endpoint: 'https://storage.googleapis.com' },
] as const;

describe('presignedOrigin', () => {
  for (const layout of layouts) {
    it(`${layout.name}: the origin of a real presigned GET`, async () => {
      const endpoint = 'endpoint' in layout ? layout.endpoint : undefined;
      const client = new S3Client({
        region: layout.region,
        forcePathStyle: layout.forcePathStyle,
        credentials: { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' },
        ...(endpoint ? { endpoint } : {}),
      });
      const url = await getSignedUrl(client, new GetObjectCommand({ Bucket: layout.bucket, Key: 'p/volumes/ab/x.nii.gz' }), {
        expiresIn: 60,
      });
      client.destroy();
      expect(presignedOrigin({ ...layout, endpoint })).toBe(new URL(url).origin);
    });
  }

  it('redirectOrigin: only for an s3:// store served by redirect', () => {
    const env = (e: Record<string, string>) => parseEnv({ DATA_DIR: '/tmp', ...e });
    const s3 = { STORAGE_URL: 's3://sv-volumes/prod', S3_ENDPOINT: 'http://127.0.0.1:4569', S3_FORCE_PATH_STYLE: 'true' };
    expect(redirectOrigin(env({ ...s3, STORAGE_SERVE: 'redirect' }))).toBe('http://127.0.0.1:4569');
    expect(redirectOrigin(env({ STORAGE_URL: 's3://sv-volumes/prod', STORAGE_SERVE: 'redirect', S3_REGION: 'eu-west-1' }))).toBe(
      'https://sv-volumes.s3.eu-west-1.amazonaws.com',
    );
    expect(redirectOrigin(env(s3))).toBeUndefined();
    expect(redirectOrigin(env({ STORAGE_SERVE: 'redirect' }))).toBeUndefined();
  });
});

describe('presignedGet', () => {
  process.env.AWS_ACCESS_KEY_ID ??= 'AKIDEXAMPLE';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'secret';
  const store = new S3VolumeStore({
    bucket: 'sv-volumes',
    prefix: 'p/',
    endpoint: 'http://127.0.0.1:4569',
    region: 'us-east-1',
    forcePathStyle: true,
  });
  const sha = 'ab'.repeat(32);
  const link = (now: number) => store.presignedGet(sha, 120, 'dwi.nii.gz', false, now);
  const signedAt = (url: string) => new URL(url).searchParams.get('X-Amz-Date');
  const t0 = Date.UTC(2026, 11, 2, 7, 0, 0); // the start of a 60 s window

  it('the same URL for every redirect within half the TTL (the browser cache can serve the second fetch), a new one after', async () => {
    const first = await link(t0 + 1_000);
    expect(await link(t0 + 59_999)).toBe(first);
    expect(signedAt(first)).toBe('20261202T070000Z');
    const next = await link(t0 + 60_000);
    expect(next).not.toBe(first);
    expect(signedAt(next)).toBe('20261202T070100Z');
  });

  it('valid for the TTL from its window: at least half the TTL left whenever it is handed out', async () => {
    const url = new URL(await link(t0 + 59_999));
    expect(url.searchParams.get('X-Amz-Expires')).toBe('120');
    const expiresAt =
      Date.parse(signedAt(url.href)!.replace(/^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/, '$1-$2-$3T$4:$5:$6Z')) + 120_000;
    expect(expiresAt - (t0 + 59_999)).toBeGreaterThanOrEqual(60_000);
  });
});
