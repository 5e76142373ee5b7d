import { randomBytes } from 'node:crypto';
import { type IncomingMessage, type ServerResponse, createServer as createHttpServer, request as httpRequest } from 'node:http';
import { createServer } from 'node:net';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { systemErrorPhrase } from '../errors.js';
import { STORE_KINDS, testStores } from '../test/s3.js';
import { S3VolumeStore } from './s3-store.js';
import { sha256Hex } from './store.js';

// The VolumeStore contract, run against each backend: the filesystem and an S3-compatible store
// (a real s3rver on loopback).

for (const kind of STORE_KINDS) {
  describe(`volume store [${kind}]`, () => {
    const stores = testStores(kind);
    beforeAll(() => stores.open());
    afterAll(() => stores.close());

    it('stores bytes once under their sha256, reads them back whole and by range, and knows their size', async () => {
      const store = await stores.make();
      const bytes = Buffer.from('0123456789abcdef'.repeat(64));
      const first = await store.put(bytes);
      expect(first).toEqual({ sha256: sha256Hex(bytes), created: true });
      expect(await store.put(bytes, first.sha256)).toEqual({ sha256: first.sha256, created: false });
      expect(Buffer.compare(await store.read(first.sha256), bytes)).toBe(0);
      expect(await store.size(first.sha256)).toBe(bytes.length);
      expect(await text(store.stream(first.sha256, { start: 10, end: 19 }))).toBe('abcdef0123');
      expect((await text(store.stream(first.sha256))).length).toBe(bytes.length);
    });

    it('lists what it holds with a modification time, and removes (twice is fine)', async () => {
      const store = await stores.make();
      const a = await store.put(Buffer.from('volume a'));
      const b = await store.put(Buffer.from('volume b'));
      const listed = [];
      for await (const f of store.list()) listed.push(f);
      expect(listed.map((f) => f.sha256).sort()).toEqual([a.sha256, b.sha256].sort());
      for (const f of listed) expect(f.mtime.getTime()).toBeGreaterThan(0);
      await store.remove(a.sha256);
      await store.remove(a.sha256);
      expect(await store.size(a.sha256)).toBeUndefined();
      const after = [];
      for await (const f of store.list()) after.push(f.sha256);
      expect(after).toEqual([b.sha256]);
      expect(await store.removeStaleTemps(0)).toBe(0);
    });

    it('a missing volume: size undefined, and reading it fails as a missing stored file (ENOENT)', async () => {
      const store = await stores.make();
      const sha = sha256Hex(Buffer.from('never stored'));
      expect(await store.size(sha)).toBeUndefined();
      const err = await store.read(sha).catch((e: unknown) => e);
      expect(systemErrorPhrase(err)).toBe('a stored file of this case is missing');
      const streamed = await text(store.stream(sha)).catch((e: unknown) => e);
      expect(systemErrorPhrase(streamed)).toBe('a stored file of this case is missing');
    });

    it('refuses an address that is not a sha256 (nothing a user sends becomes a path or key)', async () => {
      const store = await stores.make();
      await expect(store.remove('../../etc/passwd')).rejects.toThrow(/invalid volume address/);
    });

    it('a large volume goes up in parts and reads back identical', async () => {
      const store = await stores.make({ multipartThresholdBytes: 5 * 1024 * 1024 });
      const bytes = randomBytes(21 * 1024 * 1024);
      const put = await store.put(bytes);
      expect(put.created).toBe(true);
      expect(await store.size(put.sha256)).toBe(bytes.length);
      expect(Buffer.compare(await store.read(put.sha256), bytes)).toBe(0);
    });
  });
}

describe('S3 volume store faults', () => {
  const stores = testStores('s3');
  beforeAll(() => stores.open());
  afterAll(() => stores.close());

  it('a store nobody answers at: every call fails as the object store not answering (a 503 upstream), not as a missing file', async () => {
    const port = await new Promise<number>((resolve) => {
      const srv = createServer();
      srv.listen(0, '127.0.0.1', () => {
        const p = (srv.address() as { port: number }).port;
        srv.close(() => resolve(p));
      });
    });
    const store = new S3VolumeStore({
      bucket: 'gone',
      prefix: '',
      endpoint: `http://127.0.0.1:${port}`,
      region: 'us-east-1',
      forcePathStyle: true,
    });
    try {
      const sha = sha256Hex(Buffer.from('x'));
      for (const call of [() => store.put(Buffer.from('x')), () => store.size(sha), () => store.read(sha), () => store.check()]) {
        const err = await call().catch((e: unknown) => e);
        expect(systemErrorPhrase(err)).toBe('the object store (STORAGE_URL) is not answering');
      }
      expect(systemErrorPhrase(await text(store.stream(sha)).catch((e: unknown) => e))).toBe(
        'the object store (STORAGE_URL) is not answering',
      );
    } finally {
      store.close();
    }
  });

  /** A store reached through a proxy in front of s3rver whose `answer` writes each response (the Host header passes unchanged: it is signed). */
  async function throughProxy(answer: (req: IncomingMessage, up: IncomingMessage, res: ServerResponse) => void) {
    const source = (await stores.make()) as S3VolumeStore;
    const to = new URL(source.options.endpoint!);
    const proxy = createHttpServer((req, res) => {
      const up = httpRequest({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers }, (r) =>
        answer(req, r, res),
      );
      req.pipe(up);
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const store = new S3VolumeStore({ ...source.options, endpoint: `http://127.0.0.1:${(proxy.address() as { port: number }).port}` });
    return {
      source,
      store,
      close: async () => {
        store.close();
        proxy.closeAllConnections();
        await new Promise((r) => proxy.close(r));
      },
    };
  }

  it('a GET whose body is cut midway fails as the store not answering, never as a shorter volume', async () => {
    const bytes = randomBytes(2 * 1024 * 1024);
    // A GET's body stops after half its bytes.
    const p = await throughProxy((req, up, res) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      if (req.method !== 'GET') return void up.pipe(res);
      let sent = 0;
      up.on('data', (c: Buffer) => {
        if (sent >= bytes.length / 2) return void res.destroy();
        res.write(c);
        sent += c.length;
      });
    });
    try {
      const { sha256 } = await p.source.put(bytes);
      const err = await p.store.read(sha256).catch((e: unknown) => e);
      expect(systemErrorPhrase(err)).toBe('the object store (STORAGE_URL) is not answering');
    } finally {
      await p.close();
    }
  });

  it('a PUT the store answers with our SHA-256 (it checked it) needs no HEAD after; one it does not (s3rver) is checked by one', async () => {
    const heads: string[] = [];
    let echo = true;
    // s3rver ignores x-amz-checksum-sha256; AWS S3, R2 and MinIO verify it and answer with it: the proxy plays the latter.
    const p = await throughProxy((req, up, res) => {
      if (req.method === 'HEAD') heads.push(req.url!);
      const sent = req.headers['x-amz-checksum-sha256'];
      res.writeHead(up.statusCode ?? 502, {
        ...up.headers,
        ...(echo && req.method === 'PUT' && sent ? { 'x-amz-checksum-sha256': sent } : {}),
      });
      up.pipe(res);
    });
    try {
      const a = Buffer.from('checked by the store');
      expect((await p.store.put(a, undefined, { likelyAbsent: true })).created).toBe(true);
      expect(heads).toEqual([]);
      expect(Buffer.compare(await p.store.read(sha256Hex(a)), a)).toBe(0);
      echo = false;
      const b = Buffer.from('not checked by the store');
      expect((await p.store.put(b, undefined, { likelyAbsent: true })).created).toBe(true);
      expect(heads).toHaveLength(1);
    } finally {
      await p.close();
    }
  });

  it('keys live under the prefix: volumes/<ab>/<sha256>.nii.gz', async () => {
    const store = (await stores.make()) as S3VolumeStore;
    const { sha256 } = await store.put(Buffer.from('keyed'));
    expect(store.keyOf(sha256)).toBe(`sv/volumes/${sha256.slice(0, 2)}/${sha256}.nii.gz`);
  });
});
