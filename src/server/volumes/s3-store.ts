import { PassThrough, type Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { getSignedUrl } from '@aws-sdk/s3-request-presigner';
import { MiB } from '../../shared/units.js';
import { type VolumeStore, sha256Hex } from './store.js';
import type { S3StoreOptions } from './s3-url.js';

/** Where an `s3://bucket/prefix` store lives and how to reach it (credentials: the AWS SDK's usual chain). */
const SHA = /^[0-9a-f]{64}$/;

/**
 * The object store could not answer (unreachable, timed out, 5xx): carries a system-style code so
 * the callers that turn a failing disk into 503 + Retry-After (errors.ts systemErrorPhrase) treat
 * it the same way. A missing object reads as ENOENT, like a missing file.
 */
export class StorageUnavailable extends Error {
  override name = 'StorageUnavailable';
  constructor(
    readonly code: 'ESTORAGE' | 'ENOENT',
    message: string,
    options?: { cause: unknown },
  ) {
    super(message, options);
  }
}

/**
 * The bucket STORAGE_URL names does not exist: a configuration error, not an outage — answered 503
 * naming the bucket without Retry-After (retrying will not help until someone creates it), and
 * reported by /readyz as `misconfigured`. Checked again on every use: creating the bucket fixes it
 * without a restart.
 */
export class StorageMisconfigured extends Error {
  override name = 'StorageMisconfigured';
  readonly code = 'EBUCKET';
  constructor(
    readonly bucket: string,
    options?: { cause: unknown },
  ) {
    super(`the bucket ${bucket} does not exist`, options);
  }
}

function statusOf(err: unknown): number | undefined {
  return err instanceof S3ServiceException ? err.$metadata.httpStatusCode : undefined;
}

function isNotFound(err: unknown): boolean {
  const s = statusOf(err);
  const name = (err as { name?: string } | undefined)?.name;
  return s === 404 || name === 'NotFound' || name === 'NoSuchKey';
}

/** Anything that is not the store's considered 4xx answer is the store being unavailable. */
function translate(err: unknown, what: string, bucket: string): unknown {
  if ((err as { name?: string } | undefined)?.name === 'NoSuchBucket') return new StorageMisconfigured(bucket, { cause: err });
  if (isNotFound(err)) return new StorageUnavailable('ENOENT', `${what}: no such object`, { cause: err });
  const s = statusOf(err);
  if (s !== undefined && s >= 400 && s < 500) return err;
  return new StorageUnavailable('ESTORAGE', `${what}: the object store did not answer (${whatHappened(err)})`, { cause: err });
}

/** For the operator's log: the socket's code or the store's status and error name, never a URL or a key. */
function whatHappened(err: unknown): string {
  const e = err as { code?: unknown; name?: unknown } | undefined;
  const status = statusOf(err);
  const parts = [
    typeof e?.code === 'string' ? e.code : undefined,
    status !== undefined ? `HTTP ${status}` : undefined,
    typeof e?.name === 'string' && e.name !== 'Error' ? e.name : undefined,
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(', ') : 'no answer';
}

/**
 * A GET's body in one buffer of the length the store announced, each chunk copied in once as it
 * arrives (the SDK's transformToByteArray concatenates the chunks at the end, and a Buffer of that
 * was a second copy). The buffer owns its memory, so the worker moves it to a CPU thread as is. A
 * body that ends short of its length, or runs past it, is the store failing, not a volume.
 */
async function collect(body: Readable, length: number | undefined): Promise<Buffer> {
  if (length === undefined) return Buffer.concat((await body.toArray()) as Buffer[]);
  const out = Buffer.allocUnsafeSlow(length);
  let at = 0;
  for await (const chunk of body as AsyncIterable<Buffer>) {
    if (at + chunk.length > length) {
      at = -1; // longer than announced (leaving the loop destroys the body)
      break;
    }
    out.set(chunk, at);
    at += chunk.length;
  }
  if (at !== length)
    throw new StorageUnavailable('ESTORAGE', `reading a volume: the store sent other than the ${length} bytes it announced`);
  return out;
}

/**
 * Volumes as objects `<prefix>volumes/<ab>/<sha256>.nii.gz` in an S3-compatible bucket (AWS S3,
 * MinIO, Cloudflare R2, GCS in interoperability mode; s3rver in the tests). A PUT, and a multipart
 * upload until it completes, is invisible to readers: an object is there whole or not at all, so
 * nothing here needs temporary names. The PUT carries the bytes' SHA-256 (already known: the
 * content address) so the store refuses bytes that do not match it.
 */
export class S3VolumeStore implements VolumeStore {
  readonly client: S3Client;
  readonly #threshold: number;

  constructor(readonly options: S3StoreOptions) {
    this.client = new S3Client({
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      // Fail fast to the caller's 503 rather than retry for long against a store that is down, yet
      // ride out a blip such as a kept-alive socket the store closes as it is reused: three
      // attempts, under 0.3 s of backoff. (CI once saw a healthy s3rver refuse an upload, cause
      // not recorded then; a store failure's message now says what lay underneath.)
      maxAttempts: 3,
      // GETs are not checksummed by the SDK (where the store keeps our SHA-256 it would hash every
      // body again on the event loop): the cache hashes every copy it serves, off the loop, and a
      // volume's gzip CRC is checked as it is decoded. PUTs still carry our own SHA-256 (put).
      responseChecksumValidation: 'WHEN_REQUIRED',
    });
    this.#threshold = options.multipartThresholdBytes ?? 64 * MiB;
  }

  get description(): string {
    return `s3://${this.options.bucket}/${this.options.prefix}`;
  }

  keyOf(sha256: string): string {
    if (!SHA.test(sha256)) throw new Error('invalid volume address');
    return `${this.options.prefix}volumes/${sha256.slice(0, 2)}/${sha256}.nii.gz`;
  }

  async put(bytes: Uint8Array, known?: string, hints: { likelyAbsent?: boolean } = {}) {
    const sha256 = known ?? sha256Hex(bytes);
    const Key = this.keyOf(sha256);
    // No row names these bytes (the caller checked under the hash's lock): skip the HEAD, one round trip.
    if (!hints.likelyAbsent && (await this.size(sha256)) === bytes.length) return { sha256, created: false };
    const Bucket = this.options.bucket;
    const checksum = Buffer.from(sha256, 'hex').toString('base64');
    try {
      if (bytes.length <= this.#threshold) {
        const out = await this.client.send(
          new PutObjectCommand({
            Bucket,
            Key,
            Body: bytes,
            ContentLength: bytes.length,
            ContentType: 'application/octet-stream',
            ChecksumSHA256: checksum,
          }),
        );
        // A store that checks the SHA-256 we sent answers with it (AWS S3, R2, MinIO; a mismatch is
        // its BadDigest): the object is these bytes, no HEAD needed. One that ignores it (s3rver)
        // is checked below, by the length it holds.
        if (out.ChecksumSHA256 === checksum) return { sha256, created: true };
      } else {
        // Parts are retried one by one; the object appears only when the upload completes, and a
        // failed upload is aborted (lib-storage), so no part of it is ever readable.
        await new Upload({
          client: this.client,
          params: { Bucket, Key, Body: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length), ContentType: 'application/octet-stream' },
          partSize: 16 * MiB,
          queueSize: 2,
          leavePartsOnError: false,
        }).done();
      }
    } catch (err) {
      throw translate(err, 'storing a volume', this.options.bucket);
    }
    // Whatever the store's checksum support, what is there now must be exactly these bytes' length.
    const stored = await this.size(sha256);
    if (stored !== bytes.length) {
      await this.remove(sha256).catch(() => {});
      throw new StorageUnavailable('ESTORAGE', `storing a volume: the store holds ${stored ?? 'no'} bytes, not ${bytes.length}`);
    }
    return { sha256, created: true };
  }

  async read(sha256: string): Promise<Buffer> {
    const Key = this.keyOf(sha256);
    try {
      const r = await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key }));
      return await collect(r.Body as Readable, r.ContentLength);
    } catch (err) {
      throw translate(err, 'reading a volume', this.options.bucket);
    }
  }

  stream(sha256: string, range?: { start: number; end: number }): Readable {
    const out = new PassThrough();
    const Key = this.keyOf(sha256);
    this.client
      .send(new GetObjectCommand({ Bucket: this.options.bucket, Key, ...(range ? { Range: `bytes=${range.start}-${range.end}` } : {}) }))
      .then((r) => {
        const body = r.Body as Readable;
        body.on('error', (err) => out.destroy(translate(err, 'reading a volume', this.options.bucket) as Error));
        out.on('close', () => body.destroy());
        body.pipe(out);
      })
      .catch((err: unknown) => out.destroy(translate(err, 'reading a volume', this.options.bucket) as Error));
    return out;
  }

  async size(sha256: string): Promise<number | undefined> {
    const Key = this.keyOf(sha256);
    try {
      const r = await this.client.send(new HeadObjectCommand({ Bucket: this.options.bucket, Key }));
      return r.ContentLength;
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw translate(err, 'looking up a volume', this.options.bucket);
    }
  }

  async remove(sha256: string): Promise<void> {
    const Key = this.keyOf(sha256);
    try {
      await this.client.send(new DeleteObjectCommand({ Bucket: this.options.bucket, Key }));
    } catch (err) {
      if (isNotFound(err)) return;
      throw translate(err, 'removing a volume', this.options.bucket);
    }
  }

  async *list(): AsyncIterable<{ sha256: string; mtime: Date }> {
    const Prefix = `${this.options.prefix}volumes/`;
    let ContinuationToken: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(new ListObjectsV2Command({ Bucket: this.options.bucket, Prefix, ContinuationToken }));
      } catch (err) {
        throw translate(err, 'listing volumes', this.options.bucket);
      }
      for (const o of page.Contents ?? []) {
        const m = /\/([0-9a-f]{64})\.nii\.gz$/.exec(o.Key ?? '');
        if (m && o.Key === this.keyOf(m[1]!)) yield { sha256: m[1]!, mtime: o.LastModified ?? new Date(0) };
      }
      ContinuationToken = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (ContinuationToken);
  }

  /** What a crash cuts short here is a multipart upload never completed: its parts are aborted. */
  async removeStaleTemps(olderThanMs: number, now = Date.now()): Promise<number> {
    let page;
    try {
      page = await this.client.send(
        new ListMultipartUploadsCommand({ Bucket: this.options.bucket, Prefix: `${this.options.prefix}volumes/` }),
      );
    } catch (err) {
      // Stores without the listing (s3rver) keep no half-written parts worth collecting.
      if (statusOf(err) === 501 || (err as { name?: string }).name === 'NotImplemented') return 0;
      throw translate(err, 'listing unfinished uploads', this.options.bucket);
    }
    let removed = 0;
    for (const u of page.Uploads ?? []) {
      if (!u.Key || !u.UploadId) continue;
      if (olderThanMs !== 0 && now - (u.Initiated?.getTime() ?? now) <= olderThanMs) continue;
      await this.client.send(new AbortMultipartUploadCommand({ Bucket: this.options.bucket, Key: u.Key, UploadId: u.UploadId }));
      removed++;
    }
    return removed;
  }

  /**
   * A presigned GET of the object (STORAGE_SERVE=redirect), valid between `seconds / 2` and
   * `seconds` from now. It is signed at the start of the current half-`seconds` window, so every
   * redirect to the same volume in that window is the same URL: the browser's HTTP cache then
   * serves a volume the viewer asks for twice (its prefetch, then NiiVue) instead of a second
   * download from the store, as it does for the API's own immutable links.
   */
  presignedGet(sha256: string, seconds: number, fileName: string, download: boolean, now = Date.now()): Promise<string> {
    const windowMs = Math.max(1, Math.floor(seconds / 2)) * 1000;
    return getSignedUrl(
      this.client,
      new GetObjectCommand({
        Bucket: this.options.bucket,
        Key: this.keyOf(sha256),
        ResponseContentType: 'application/octet-stream',
        ResponseContentDisposition: `${download ? 'attachment' : 'inline'}; filename="${fileName}"`,
        ResponseCacheControl: `private, max-age=${seconds}, immutable`,
      }),
      { expiresIn: seconds, signingDate: new Date(Math.floor(now / windowMs) * windowMs) },
    );
  }

  /** For /readyz: the bucket answers. */
  async check(): Promise<void> {
    // A GET of a key that never exists: NoSuchKey proves the bucket answers (and exists) with the
    // least the store can do; NoSuchBucket or anything else is the store not being usable.
    try {
      await this.client.send(new GetObjectCommand({ Bucket: this.options.bucket, Key: `${this.options.prefix}volumes/.probe` }));
    } catch (err) {
      const name = (err as { name?: string }).name;
      if (name === 'NoSuchKey') return;
      throw translate(err, 'reaching the object store', this.options.bucket);
    }
  }

  close(): void {
    this.client.destroy();
  }
}

export { parseS3Url, presignedOrigin, type S3StoreOptions } from './s3-url.js';
