import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Env } from '../env.js';
import { CachedVolumeStore } from './cache.js';
import type { S3VolumeStore } from './s3-store.js';
import { parseS3Url, presignedOrigin } from './s3-url.js';
import { FsVolumeStore, type VolumeStore } from './store.js';

/**
 * The store STORAGE_URL names: `s3://bucket/prefix`, `file:///folder`, or (unset) DATA_DIR/volumes.
 * The object store's module (and with it the AWS SDK) is loaded only for an s3:// store (#29).
 */
export async function openVolumeStore(
  env: Pick<Env, 'STORAGE_URL' | 'S3_ENDPOINT' | 'S3_REGION' | 'S3_FORCE_PATH_STYLE'> & Partial<Pick<Env, 'VOLUME_CACHE_MB'>>,
  dataDir: string,
  options: { onCacheError?: (err: unknown, what: string) => void } = {},
): Promise<VolumeStore> {
  const url = env.STORAGE_URL;
  if (url?.startsWith('s3:')) {
    const { S3VolumeStore } = await import('./s3-store.js');
    const s3 = new S3VolumeStore({
      ...parseS3Url(url),
      endpoint: env.S3_ENDPOINT,
      region: env.S3_REGION,
      forcePathStyle: env.S3_FORCE_PATH_STYLE,
    });
    // Volumes read from the store are kept under DATA_DIR/cache/volumes (VOLUME_CACHE_MB, 0: none).
    const mb = env.VOLUME_CACHE_MB ?? 0;
    return mb > 0 ? new CachedVolumeStore(s3, path.join(dataDir, 'cache', 'volumes'), mb * 1048576, { onError: options.onCacheError }) : s3;
  }
  return new FsVolumeStore(url ? fileURLToPath(url) : path.join(dataDir, 'volumes'));
}

/** The object store's client behind the store (and its cache), to close at shutdown. */
export function s3StoreOf(store: VolumeStore): S3VolumeStore | undefined {
  const inner = store instanceof CachedVolumeStore ? store.inner : store;
  // Not `instanceof`: that would load the AWS SDK for every store.
  return inner.constructor.name === 'S3VolumeStore' ? (inner as S3VolumeStore) : undefined;
}

/** Where the store is, for logs and /readyz (no credentials: they never appear in the URL). */
export function describeVolumeStore(store: VolumeStore): string {
  if (store instanceof CachedVolumeStore)
    return `${describeVolumeStore(store.inner)} (local cache ${Math.round(store.maxBytes / 1048576)} MiB at ${store.dir})`;
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
