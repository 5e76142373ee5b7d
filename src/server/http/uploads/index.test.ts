import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { sql } from 'kysely';
import { afterEach, expect, it } from 'vitest';
import { phantomVolumes } from '../../cases/demo.js';
import { makeTestApp } from '../../test/app.js';
import { TestBrowser } from '../../test/browser.js';
import { describeEachDatabase } from '../../test/databases.js';
import { serveApp } from '../../test/live.js';
import { FsVolumeStore } from '../../volumes/store.js';
import { multipart } from '../../test/multipart.js';

describeEachDatabase('streamed uploads', (current) => {
  const closers: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const c of closers.splice(0).reverse()) await c();
  });

  async function setup(env: Record<string, string> = {}) {
    const uploadDir = mkdtempSync(path.join(tmpdir(), 'sv-spool-'));
    const store = new FsVolumeStore(mkdtempSync(path.join(tmpdir(), 'sv-store-')));
    const t = makeTestApp({ database: current().handle, store, env, uploadDir });
    const browser = new TestBrowser(t.app);
    await browser.mutate('auth.register', { email: 'up@example.org', password: 'correct horse battery' });
    const token = (await browser.mutate<{ token: string }>('auth.tokens.create', { name: 'up' })).data.token;
    // Counts the requests the app has answered (or ended) over HTTP: a test waits for its request's
    // handler to be done, rather than for a state the handler may not have reached yet.
    let handled = 0;
    const counted = {
      fetch: (req: Request, ...rest: unknown[]) =>
        Promise.resolve((t.app.fetch as (r: Request, ...x: unknown[]) => Response | Promise<Response>)(req, ...rest)).finally(
          () => handled++,
        ),
    } as unknown as typeof t.app;
    const server = await serveApp(counted);
    closers.push(() => server.close());
    const files = Object.fromEntries(phantomVolumes(101).map((v) => [v.role, v.stored])) as Record<string, Buffer>;
    const counts = async () => {
      const db = current().handle.db;
      const cases = await sql<{ n: number }>`select count(*)::int as n from cases where owner_id is not null`.execute(db);
      const volumes = await sql<{ n: number }>`select count(*)::int as n from volumes`.execute(db);
      const stored = existsSync(store.root) ? readdirSync(store.root).filter((d) => !d.startsWith('.')).length : 0;
      return { cases: cases.rows[0]!.n, volumes: volumes.rows[0]!.n, storedDirs: stored, spooled: readdirSync(uploadDir).length };
    };
    return { ...t, uploadDir, store, token, server, files, counts, handled: () => handled };
  }

  /** Sends `body` (or its first `sendBytes`), then waits for the answer — or destroys the socket when `abortAfter`. */
  function send(
    url: string,
    token: string,
    m: { body: Buffer; type: string },
    opts: { sendBytes?: number; abort?: boolean; chunked?: boolean } = {},
  ) {
    const u = new URL(`${url}/api/cases`);
    return new Promise<{ status: number; body: string; headers: Record<string, unknown> } | 'aborted'>((resolve, reject) => {
      const req = request(
        {
          host: u.hostname,
          port: u.port,
          path: u.pathname,
          method: 'POST',
          headers: {
            authorization: `Bearer ${token}`,
            'content-type': m.type,
            ...(opts.chunked ? {} : { 'content-length': String(m.body.length) }),
          },
        },
        (res) => {
          let text = '';
          res.on('data', (d) => (text += d));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
        },
      );
      req.on('error', (err) => (opts.abort ? resolve('aborted') : reject(err)));
      // The server may answer (413) and close while we are still sending: that is not our error.
      req.on('socket', (s) => s.on('error', () => {}));
      const n = opts.sendBytes ?? m.body.length;
      req.write(m.body.subarray(0, n), () => {
        if (opts.abort) {
          req.destroy();
          resolve('aborted');
        } else if (n === m.body.length) req.end();
      });
    });
  }

  const waitFor = async (check: () => Promise<boolean>) => {
    for (let i = 0; i < 600; i++) {
      if (await check()) return true;
      await new Promise((r) => setTimeout(r, 50));
    }
    return false;
  };

  it('a whole upload is stored and its spool folder is gone', async () => {
    const { server, token, files, counts } = await setup();
    const res = await send(server.url, token, multipart({ name: 'streamed', dwi: files.dwi!, adc: files.adc!, mask: files.mask! }));
    expect(res).not.toBe('aborted');
    expect((res as { status: number }).status).toBe(200);
    const created = JSON.parse((res as { body: string }).body) as { name: string; roles: string[] };
    expect(created.name).toBe('streamed');
    expect(created.roles.sort()).toEqual(['adc', 'dwi', 'mask']);
    expect(await counts()).toMatchObject({ cases: 1, volumes: 3, spooled: 0 });
  });

  it('an upload aborted halfway leaves no file and no row', async () => {
    const { server, token, files, counts, handled } = await setup();
    const m = multipart({ name: 'half', dwi: files.dwi!, adc: files.adc! });
    expect(await send(server.url, token, m, { sendBytes: Math.floor(m.body.length / 2), abort: true })).toBe('aborted');
    // The server notices the reset, stops, and removes what it spooled — once its handler is done
    // (it may not even have started spooling when the client left: the spool alone is no signal).
    expect(await waitFor(async () => handled() === 1)).toBe(true);
    expect(await counts()).toEqual({ cases: 0, volumes: 0, storedDirs: 0, spooled: 0 });
  });

  it('past MAX_UPLOAD_MB the stream is cut with 413 — even without a Content-Length — and nothing stays', async () => {
    const { server, token, counts } = await setup({ MAX_UPLOAD_MB: '1' });
    const big = Buffer.alloc(3 * 1048576, 7);
    const res = await send(server.url, token, multipart({ name: 'big', dwi: big, adc: big }), { chunked: true });
    expect(res).not.toBe('aborted');
    expect((res as { status: number }).status).toBe(413);
    expect(JSON.parse((res as { body: string }).body)).toEqual({
      message: 'The upload is larger than 1 MiB',
      code: 'PAYLOAD_TOO_LARGE',
      data: { code: 'PAYLOAD_TOO_LARGE', httpStatus: 413, path: 'cases.upload' },
    });
    expect(await counts()).toEqual({ cases: 0, volumes: 0, storedDirs: 0, spooled: 0 });
  });

  it('beyond MAX_CONCURRENT_UPLOADS an upload gets 503 with Retry-After until one finishes', async () => {
    const { server, token, files, counts } = await setup({ MAX_CONCURRENT_UPLOADS: '1' });
    const m = multipart({ name: 'first', dwi: files.dwi!, adc: files.adc! });
    // The first upload stalls halfway (its client is slow), holding the only slot.
    const u = new URL(`${server.url}/api/cases`);
    const slow = request({
      host: u.hostname,
      port: u.port,
      path: u.pathname,
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': m.type, 'content-length': String(m.body.length) },
    });
    const slowDone = new Promise<number>((resolve) => slow.on('response', (r) => (r.resume(), resolve(r.statusCode ?? 0))));
    slow.on('error', () => {});
    slow.write(m.body.subarray(0, 1000));
    expect(await waitFor(async () => (await counts()).spooled === 1)).toBe(true);

    const second = await send(server.url, token, multipart({ name: 'second', dwi: files.dwi!, adc: files.adc! }));
    expect(second).not.toBe('aborted');
    expect((second as { status: number }).status).toBe(503);
    expect((second as { headers: Record<string, unknown> }).headers['retry-after']).toBe('5');
    expect(JSON.parse((second as { body: string }).body).message).toMatch(/processing 1 uploads; try again/);

    slow.end(m.body.subarray(1000));
    expect(await slowDone).toBe(200);
    const third = await send(server.url, token, multipart({ name: 'third', dwi: files.dwi!, adc: files.adc! }));
    expect((third as { status: number }).status).toBe(200);
  });
});
