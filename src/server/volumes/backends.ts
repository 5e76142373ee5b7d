import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Env } from '../env.js';
import { parseS3Url, presignedOrigin } from './s3-url.js';
import { FsVolumeStore, type VolumeStore } from './store.js';

/**
 * The store STORAGE_URL names: `s3://bucket/prefix`, `file:///folder`, or (unset) DATA_DIR/volumes.
 * The object store's module (and with it the AWS SDK) is loaded only for an s3:// store (#29).
 */
export async function openVolumeStore(
  env: Pick<Env, 'STORAGE_URL' | 'S3_ENDPOINT' | 'S3_REGION' | 'S3_FORCE_PATH_STYLE'>,
  dataDir: string,
): Promise<VolumeStore & { close?: () => void }> {
  const url = env.STORAGE_URL;
  if (url?.startsWith('s3:')) {
    const { S3VolumeStore } = await import('./s3-store.js');
    return new S3VolumeStore({
      ...parseS3Url(url),
      endpoint: env.S3_ENDPOINT,
      region: env.S3_REGION,
      forcePathStyle: env.S3_FORCE_PATH_STYLE,
    });
  }
  return new FsVolumeStore(url ? fileURLToPath(url) : path.join(dataDir, 'volumes'));
}

/** Where the store is, for logs and /readyz (no credentials: they never appear in the URL). */
export function describeVolumeStore(store: VolumeStore): string {
  if (store instanceof FsVolumeStore) return store.root;
  const { description } = store as { description?: unknown };
  return typeof description === 'string' ? description : 'volume store'; // S3VolumeStore's
}

/**
 * Where the browser fetches volumes from besides the API itself: the object store's origin when
 * STORAGE_SERVE=redirect sends it there (for the page's CSP `connect-src`); none otherwise.
 */
export function redirectOrigin(
  env: Pick<Env, 'STORAGE_URL' | 'STORAGE_SERVE' | 'S3_ENDPOINT' | 'S3_REGION' | 'S3_FORCE_PATH_STYLE'>,
): string | undefined {
  if (env.STORAGE_SERVE !== 'redirect' || !env.STORAGE_URL?.startsWith('s3:')) return undefined;
  return presignedOrigin({
    bucket: parseS3Url(env.STORAGE_URL).bucket,
    endpoint: env.S3_ENDPOINT,
    region: env.S3_REGION,
    forcePathStyle: env.S3_FORCE_PATH_STYLE,
  });
}
