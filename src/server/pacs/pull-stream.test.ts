import { existsSync, readdirSync } from 'node:fs';
import { type Server, type ServerResponse, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MiB } from '../../shared/units.js';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';
import { tempDir } from '../test/dicom.js';
import { readMultipart } from './multipart.js';

// #26: `pacs.pull` streams the WADO-RS answer to the spool folder part by part, with the import's
// limits enforced while it streams. A real HTTP server plays a PACS that answers without end — one
// instance that never ends, instances without end, instances adding up past the total — and one
// that breaks off mid-instance or answers something else: each pull is a 413/422 naming the limit
// or the fault, the answer is cut off (the server sees its connection closed long before its
// endless body could be read) and the spool folder is gone.

const BOUNDARY = 'endless-pacs-boundary';
const CHUNK = Buffer.alloc(64 * 1024, 0x41);

/** How the fake PACS answers a study retrieval. */
type Answer = 'one-endless-instance' | 'endless-tiny-instances' | 'endless-large-instances' | 'cut-mid-instance' | 'not-multipart';

interface Served {
  sent: number;
  closedByClient: boolean;
}

/** Writes `next()` until it answers null or the client goes away, respecting backpressure. */
function pump(res: ServerResponse, served: Served, next: () => Buffer | null): void {
  let stopped = false;
  res.on('close', () => {
    if (!res.writableFinished) served.closedByClient = true;
    stopped = true;
  });
  const go = () => {
    while (!stopped) {
      const b = next();
      if (!b) return void res.end();
      served.sent += b.length;
      if (!res.write(b)) return void res.once('drain', go);
    }
  };
  go();
}

function startFakePacs(): Promise<{ url: string; answer: { current: Answer }; served: Served[]; close(): Promise<void> }> {
  const answer = { current: 'one-endless-instance' as Answer };
  const served: Served[] = [];
  const server: Server = createServer((req, res) => {
    const s: Served = { sent: 0, closedByClient: false };
    served.push(s);
    if (answer.current === 'not-multipart') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return void res.end('[]');
    }
    res.writeHead(200, { 'content-type': `multipart/related; type="application/dicom"; boundary=${BOUNDARY}` });
    const open = Buffer.from(`--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`);
    const next = Buffer.from(`\r\n--${BOUNDARY}\r\nContent-Type: application/dicom\r\n\r\n`);
    let n = 0;
    if (answer.current === 'one-endless-instance') {
      pump(res, s, () => (n++ === 0 ? open : CHUNK));
    } else if (answer.current === 'endless-tiny-instances') {
      const tiny = Buffer.alloc(200, 0x42);
      pump(res, s, () => (n++ === 0 ? open : n % 2 === 0 ? tiny : next));
    } else if (answer.current === 'endless-large-instances') {
      // 0.75 MiB instances (12 chunks each): each within the per-file limit, together past the total.
      pump(res, s, () => (n++ === 0 ? open : n % 13 === 0 ? next : CHUNK));
    } else {
      pump(res, s, () => (n++ === 0 ? open : n < 5 ? CHUNK : null));
    }
  });
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}/dicom-web`,
        answer,
        served,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    }),
  );
}

describe('the streaming multipart/related reader', () => {
  async function* chunks(body: Buffer, size: number) {
    for (let i = 0; i < body.length; i += size) yield body.subarray(i, i + size);
  }
  it('finds the parts whatever the chunking (a delimiter split across chunks), with or without headers and a preamble', async () => {
    const parts = [Buffer.from('first\r\n--not-the-boundary\r\n'), Buffer.alloc(0), Buffer.from('x'.repeat(5000))];
    const body = Buffer.concat([
      Buffer.from('preamble text\r\n'),
      ...parts.flatMap((p, i) => [
        Buffer.from(`--b0undary  \r\n${i === 1 ? '' : 'Content-Type: application/dicom\r\n'}\r\n`),
        p,
        Buffer.from('\r\n'),
      ]),
      Buffer.from('--b0undary--\r\nepilogue'),
    ]);
    for (const size of [1, 2, 3, 7, 64, 100_000]) {
      const got: Buffer[] = [];
      const headers: Record<string, string>[] = [];
      const n = await readMultipart(
        chunks(body, size),
        'b0undary',
        {
          start: (_i, h) => {
            headers.push(h);
            got.push(Buffer.alloc(0));
          },
          data: (c) => {
            got[got.length - 1] = Buffer.concat([got.at(-1)!, c]);
          },
          end: () => undefined,
        },
        'a test',
      );
      expect(n, `chunks of ${size}`).toBe(3);
      expect(got.map((g) => g.toString())).toEqual(parts.map((p) => p.toString()));
      expect(headers[0]).toEqual({ 'content-type': 'application/dicom' });
      expect(headers[1]).toEqual({});
    }
  });

  it('a body cut before its closing boundary, or without any boundary, is a 422 naming it', async () => {
    const sink = { start: () => undefined, data: () => undefined, end: () => undefined };
    await expect(readMultipart(chunks(Buffer.from('--b\r\n\r\nabc'), 2), 'b', sink, 'a test')).rejects.toThrow(
      /not a valid multipart\/related body: it ended in the middle of part 1/,
    );
    await expect(readMultipart(chunks(Buffer.alloc(70_000, 0x41), 1000), 'b', sink, 'a test')).rejects.toThrow(
      /no boundary "b" in its first 64 KiB/,
    );
  });
});

describeEachDatabase('pacs.pull streamed within the import limits', (current) => {
  let pacs: Awaited<ReturnType<typeof startFakePacs>>;
  beforeAll(async () => {
    pacs = await startFakePacs();
  });
  afterAll(async () => {
    await pacs?.close();
  });

  async function pull(answer: Answer, env: Record<string, string>) {
    pacs.answer.current = answer;
    const dataDir = tempDir('sv-pull-stream-');
    const t = makeTestApp({ database: current().handle, env: { PACS_URL: pacs.url, DATA_DIR: dataDir, ...env } });
    const b = new TestBrowser(t.app);
    await b.mutate('auth.register', {
      email: `pull-${Math.random().toString(36).slice(2)}@example.org`,
      password: 'correct horse battery',
    });
    const r = await b.mutate('pacs.pull', { studyInstanceUid: '1.2.3.4' });
    const spool = path.join(dataDir, 'uploads');
    const left = existsSync(spool) ? readdirSync(spool) : [];
    return { status: r.status, text: JSON.stringify(r.body), left, served: pacs.served.at(-1)! };
  }

  it('one instance that never ends: 413 at the per-file limit, the answer cut off, no spool left', async () => {
    const r = await pull('one-endless-instance', { DICOM_MAX_FILE_MB: '1' });
    expect(r.status).toBe(413);
    expect(r.text).toMatch(/Instance 1 of the study is over the limit of 1.0 MiB per file/);
    expect(r.left).toEqual([]);
    expect(r.served.closedByClient).toBe(true);
    // Cut off near the limit: what the server got written is the limit plus what the sockets buffer, not the endless rest.
    expect(r.served.sent).toBeLessThan(64 * MiB);
  });

  it('instances without end: 413 at the file count', async () => {
    const r = await pull('endless-tiny-instances', { DICOM_MAX_FILES: '50' });
    expect(r.status).toBe(413);
    expect(r.text).toMatch(/The study holds more than 50 instances, the import's limit/);
    expect(r.left).toEqual([]);
    expect(r.served.closedByClient).toBe(true);
  });

  it('instances each within the per-file limit that add up past the total: 413 at the total', async () => {
    const r = await pull('endless-large-instances', { DICOM_MAX_FILE_MB: '1', DICOM_MAX_MB: '4' });
    expect(r.status).toBe(413);
    expect(r.text).toMatch(/The study's instances come to more than 4.0 MiB, the import's limit/);
    expect(r.left).toEqual([]);
    expect(r.served.closedByClient).toBe(true);
    expect(r.served.sent).toBeLessThan(64 * MiB);
  });

  it('an answer that breaks off mid-instance, or is not multipart: 422 naming it, no spool left', async () => {
    const cut = await pull('cut-mid-instance', {});
    expect(cut.status).toBe(422);
    expect(cut.text).toMatch(/not a valid multipart\/related body: it ended in the middle of part 1/);
    expect(cut.left).toEqual([]);
    const other = await pull('not-multipart', {});
    expect(other.status).toBe(422);
    expect(other.text).toMatch(/answered the retrieval with application\/json, not multipart\/related DICOM/);
    expect(other.left).toEqual([]);
  });
});
