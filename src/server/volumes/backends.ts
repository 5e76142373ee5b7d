import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Env } from '../env.js';
import { CachedVolumeStore } from './cache.js';
import { S3VolumeStore, parseS3Url, presignedOrigin } from './s3-store.js';
import { FsVolumeStore, type VolumeStore } from './store.js';

/** The store STORAGE_URL names: `s3://bucket/prefix`, `file:///folder`, or (unset) DATA_DIR/volumes. */
export function openVolumeStore(
  env: Pick<Env, 'STORAGE_URL' | 'S3_ENDPOINT' | 'S3_REGION' | 'S3_FORCE_PATH_STYLE'> & Partial<Pick<Env, 'VOLUME_CACHE_MB'>>,
  dataDir: string,
  options: { onCacheError?: (err: unknown, what: string) => void } = {},
): VolumeStore {
  const url = env.STORAGE_URL;
  if (url?.startsWith('s3:')) {
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
  return inner instanceof S3VolumeStore ? inner : undefined;
}

/** Where the store is, for logs and /readyz (no credentials: they never appear in the URL). */
export function describeVolumeStore(store: VolumeStore): string {
  if (store instanceof CachedVolumeStore)
    return `${describeVolumeStore(store.inner)} (local cache ${Math.round(store.maxBytes / 1048576)} MiB at ${store.dir})`;
  return store instanceof S3VolumeStore ? store.description : store instanceof FsVolumeStore ? store.root : 'volume store';
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
