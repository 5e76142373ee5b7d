import { createRequire } from 'node:module';
import type * as ClientS3 from '@aws-sdk/client-s3';

// What the server needs of an `s3://` STORAGE_URL before its store opens (app.ts's CSP), without
// loading the AWS SDK at start-up (#29: ~80 ms of a warm restart, for a store most deployments do
// not use): the SDK is required here only when presignedOrigin runs (STORAGE_SERVE=redirect), and
// s3-store.ts, which needs it throughout, is imported by backends.ts only for an s3:// store.

/** Where an s3:// store keeps its objects and how to reach it. */
export interface S3StoreOptions {
  bucket: string;
  /** Key prefix, empty or ending in `/`. */
  prefix: string;
  endpoint?: string | undefined;
  region: string;
  forcePathStyle: boolean;
  /** Above this many bytes a volume goes up in parts (lib-storage); below, one PUT. */
  multipartThresholdBytes?: number;
}

const requireSdk = () => createRequire(import.meta.url)('@aws-sdk/client-s3') as typeof ClientS3;

/**
 * The origin a presigned GET of this bucket points at, resolved by the SDK's own endpoint rules
 * (virtual-hosted `https://<bucket>.s3.<region>.amazonaws.com`, path-style on `S3_ENDPOINT`, …)
 * without a request. With STORAGE_SERVE=redirect the viewer's fetch follows the API's 302 there, so
 * the page's CSP `connect-src` must name it, and it must be known before the first page is served.
 */
export function presignedOrigin(options: Pick<S3StoreOptions, 'bucket' | 'endpoint' | 'region' | 'forcePathStyle'>): string {
  const client = new (requireSdk().S3Client)({
    region: options.region,
    forcePathStyle: options.forcePathStyle,
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
  });
  try {
    const { url } = client.config.endpointProvider({
      Bucket: options.bucket,
      Region: options.region,
      ForcePathStyle: options.forcePathStyle,
      UseFIPS: false,
      UseDualStack: false,
      Accelerate: false,
      ...(options.endpoint ? { Endpoint: options.endpoint } : {}),
    });
    return url.origin;
  } finally {
    client.destroy();
  }
}

/** `s3://bucket/some/prefix` → bucket and a prefix ending in `/` (or empty). */
export function parseS3Url(url: string): { bucket: string; prefix: string } {
  const u = new URL(url);
  const prefix = decodeURIComponent(u.pathname).replace(/^\/+|\/+$/g, '');
  return { bucket: u.hostname, prefix: prefix ? `${prefix}/` : '' };
}
