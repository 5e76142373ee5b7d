import type { Server } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, DeleteBucketCommand, DeleteObjectsCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
// @ts-expect-error s3rver ships no types
import S3rver from 's3rver';
import { FsVolumeStore, type VolumeStore } from '../volumes/store.js';
import { S3VolumeStore } from '../volumes/s3-store.js';

/** A real S3-compatible server (s3rver) on a free loopback port, persisting to a temp folder. */
export interface TestS3 {
  endpoint: string;
  /** Environment a server or worker process needs to use `bucket` (any credentials: s3rver accepts them). */
  env(bucket: string, prefix?: string): Record<string, string>;
  createBucket(name: string): Promise<void>;
  /** Empties the bucket and removes it (an operator's mistake the tests reproduce). */
  deleteBucket(name: string): Promise<void>;
  store(bucket: string, opts?: { prefix?: string; multipartThresholdBytes?: number }): S3VolumeStore;
  /** Stops the server (nothing answers on its port); its folder, and so every object, stays. */
  stop(): Promise<void>;
  /** Starts it again on the same port over the same folder: the same store, back. */
  restart(): Promise<void>;
  close(): Promise<void>;
}

let buckets = 0;

export async function startTestS3(): Promise<TestS3> {
  const directory = mkdtempSync(path.join(tmpdir(), 'sv-s3rver-'));
  const make = (port: number) => new S3rver({ port, address: '127.0.0.1', silent: process.env.S3RVER_LOUD !== '1', directory });
  type Running = { run(): Promise<{ port: number }>; close(): Promise<void>; httpServer?: Server };
  const first: Running = make(0);
  let server: Running | undefined = first;
  // A stop cuts the clients' kept-alive sockets too: nothing answers on the port from then on.
  const halt = async () => {
    server?.httpServer?.closeAllConnections();
    await server?.close();
    server = undefined;
  };
  const { port } = await first.run();
  const endpoint = `http://127.0.0.1:${port}`;
  process.env.AWS_ACCESS_KEY_ID ??= 'S3RVER';
  process.env.AWS_SECRET_ACCESS_KEY ??= 'S3RVER';
  const admin = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true });
  const stores: S3VolumeStore[] = [];
  return {
    endpoint,
    env: (bucket, prefix = '') => ({
      STORAGE_URL: `s3://${bucket}/${prefix}`,
      S3_ENDPOINT: endpoint,
      S3_REGION: 'us-east-1',
      S3_FORCE_PATH_STYLE: 'true',
      AWS_ACCESS_KEY_ID: 'S3RVER',
      AWS_SECRET_ACCESS_KEY: 'S3RVER',
    }),
    createBucket: async (name) => {
      await admin.send(new CreateBucketCommand({ Bucket: name }));
    },
    deleteBucket: async (name) => {
      for (;;) {
        const page = await admin.send(new ListObjectsV2Command({ Bucket: name }));
        const keys = (page.Contents ?? []).map((o) => ({ Key: o.Key! }));
        if (keys.length === 0) break;
        await admin.send(new DeleteObjectsCommand({ Bucket: name, Delete: { Objects: keys } }));
      }
      await admin.send(new DeleteBucketCommand({ Bucket: name }));
    },
    store: (bucket, opts = {}) => {
      const s = new S3VolumeStore({
        bucket,
        prefix: opts.prefix ?? '',
        endpoint,
        region: 'us-east-1',
        forcePathStyle: true,
        ...(opts.multipartThresholdBytes ? { multipartThresholdBytes: opts.multipartThresholdBytes } : {}),
      });
      stores.push(s);
      return s;
    },
    stop: halt,
    restart: async () => {
      await halt();
      const next: Running = make(port);
      await next.run();
      server = next;
    },
    close: async () => {
      for (const s of stores) s.close();
      admin.destroy();
      await halt();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

export type StoreKind = 'fs' | 's3';
export const STORE_KINDS: StoreKind[] = ['fs', 's3'];

/**
 * Makes empty volume stores of one kind for a suite: a temp folder each (fs), or a fresh bucket each
 * on one s3rver started for the suite (s3). Call `open()` in beforeAll and `close()` in afterAll.
 */
export function testStores(kind: StoreKind) {
  let s3: TestS3 | undefined;
  return {
    kind,
    async open() {
      if (kind === 's3') s3 = await startTestS3();
    },
    async make(opts: { multipartThresholdBytes?: number } = {}): Promise<VolumeStore> {
      if (kind === 'fs') return new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-store-')));
      const bucket = `volumes-${++buckets}-${process.pid}`;
      await s3!.createBucket(bucket);
      return s3!.store(bucket, { prefix: 'sv/', ...opts });
    },
    get s3() {
      return s3;
    },
    async close() {
      await s3?.close();
    },
  };
}
