import { existsSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp } from './test/app.js';
import { TestBrowser } from './test/browser.js';
import { describeEachDatabase } from './test/databases.js';
import {
  HAVE_PHILIPS,
  PHILIPS_DIR,
  PHILIPS_SKIP_NOTE,
  copyDicom,
  declarePixelLength,
  deflate,
  folderForm,
  modify,
  tempDir,
  zipOf,
} from './test/dicom.js';
import { serveApp } from './test/live.js';
import { FsVolumeStore } from './volumes/store.js';

// Issue #26 in the security suite: the hostile DICOM inputs the issue names — a truncated file, a
// missing slice, mixed studies, an unsupported transfer syntax, a zip with ../ names, 100 k tiny
// files, a huge declared element length — and a PACS answering a retrieval without end, each
// against a served app over real HTTP: a 4xx naming the problem, never a 5xx, nothing stored, the
// spool empty. (dicom/bad-input.test.ts checks each message in full; dicom/fuzz.test.ts and
// `npm run bench -- fuzz` the seeded mutations.)

const firstImages = (n: number) => (f: string) => f.startsWith('IM_') && Number(f.slice(3)) <= n;

describe.skipIf(!HAVE_PHILIPS)(`security: hostile DICOM input (#26)${PHILIPS_SKIP_NOTE}`, () => {
  const made: string[] = [];
  const keep = (d: string) => (made.push(d), d);
  const forms: Record<string, () => FormData> = {};
  let endless: Server;
  let endlessUrl: string;
  beforeAll(async () => {
    const truncated = keep(copyDicom(PHILIPS_DIR, firstImages(8)));
    writeFileSync(path.join(truncated, 'IM_0005'), readFileSync(path.join(truncated, 'IM_0005')).subarray(0, 20_000));
    const missing = keep(copyDicom());
    unlinkSync(path.join(missing, 'IM_0123'));
    const mixed = keep(copyDicom(PHILIPS_DIR, firstImages(20)));
    await modify(mixed, ['(0020,000d)=1.2.826.0.1.3680043.8.498.26000000000000000002'], readdirSync(mixed).filter(firstImages(8)));
    const deflated = keep(copyDicom(PHILIPS_DIR, firstImages(8)));
    await deflate(deflated, 'IM_0004');
    const huge = keep(copyDicom(PHILIPS_DIR, firstImages(8)));
    declarePixelLength(path.join(huge, 'IM_0007'), 0x7ffffff0);
    const im = readFileSync(path.join(PHILIPS_DIR, 'IM_0001'));
    const zipForm = (bytes: Uint8Array<ArrayBuffer>) => {
      const f = new FormData();
      f.set('file', new File([bytes], 'study.zip'));
      return f;
    };
    forms['truncated file'] = () => folderForm(truncated);
    forms['missing slice'] = () => folderForm(missing);
    forms['mixed studies'] = () => folderForm(mixed);
    forms['unsupported transfer syntax'] = () => folderForm(deflated);
    forms['huge declared element length'] = () => folderForm(huge);
    forms['zip with ../ names'] = () =>
      zipForm(
        zipOf([
          { name: 'DICOM/IM_0001', data: im },
          { name: 'DICOM/../../evil.dcm', data: im },
        ]),
      );
    forms['100 k tiny files (zip)'] = () =>
      zipForm(zipOf(Array.from({ length: 100_000 }, (_, i) => ({ name: `f/${i}`, data: Buffer.from(`t${i}`), method: 0 as const }))));
    // A "PACS" whose study retrieval never ends: one instance, 64 KiB at a time, until the client hangs up.
    endless = createServer((_req, res) => {
      res.writeHead(200, { 'content-type': 'multipart/related; type="application/dicom"; boundary=b' });
      res.write('--b\r\nContent-Type: application/dicom\r\n\r\n');
      const chunk = Buffer.alloc(65536, 0x41);
      let open = true;
      res.on('close', () => (open = false));
      const go = () => {
        while (open && res.write(chunk));
        if (open) res.once('drain', go);
      };
      go();
    });
    await new Promise<void>((r) => endless.listen(0, '127.0.0.1', () => r()));
    endlessUrl = `http://127.0.0.1:${(endless.address() as AddressInfo).port}/dicom-web`;
  }, 300_000);
  afterAll(async () => {
    for (const d of made) rmSync(d, { recursive: true, force: true });
    endless?.closeAllConnections();
    await new Promise<void>((r) => (endless ? endless.close(() => r()) : r()));
  });

  const expected: [string, number, RegExp][] = [
    ['truncated file', 422, /^DICOM\/IM_0005: an element declares \d+ bytes but only \d+ remain in the file \(truncated/],
    ['missing slice', 422, /series 701 .* is missing images/],
    ['mixed studies', 422, /^The upload holds 2 studies/],
    ['unsupported transfer syntax', 422, /^DICOM\/IM_0004: transfer syntax 1\.2\.840\.10008\.1\.2\.1\.99 .* is not supported/],
    ['huge declared element length', 422, /^DICOM\/IM_0007: an element declares 2147483632 bytes/],
    ['zip with ../ names', 422, /^study\.zip: an entry's name leads outside the archive/],
    ['100 k tiny files (zip)', 413, /^The import holds more than 5000 files/],
  ];

  describeEachDatabase('refused', (current) => {
    it('each hostile input: the 4xx naming it over HTTP, no 5xx, nothing stored, the spool empty; an endless PACS answer: 413, cut off', async () => {
      const uploadDir = tempDir('sv-sec-dicom-spool-');
      const dataDir = tempDir('sv-sec-dicom-data-');
      const store = new FsVolumeStore(tempDir('sv-sec-dicom-store-'));
      const t = makeTestApp({
        database: current().handle,
        store,
        uploadDir,
        env: { PACS_URL: endlessUrl, DATA_DIR: dataDir, DICOM_MAX_FILE_MB: '8' },
      });
      const server = await serveApp(t.app);
      try {
        const browser = new TestBrowser(t.app);
        await browser.mutate('auth.register', { email: 'sec-dicom@example.org', password: 'correct horse battery' });
        const token = (await browser.mutate<{ token: string }>('auth.tokens.create', { name: 'sec' })).data.token;
        for (const [name, status, message] of expected) {
          const res = await fetch(`${server.url}/api/cases/dicom`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}` },
            body: forms[name]!(),
          });
          const body = (await res.json()) as { message: string };
          expect(res.status, `${name}: ${body.message}`).toBe(status);
          expect(body.message, name).toMatch(message);
          expect(readdirSync(uploadDir), name).toEqual([]);
        }
        const pulled = await browser.mutate('pacs.pull', { studyInstanceUid: '1.2.3' });
        expect(pulled.status).toBe(413);
        expect(JSON.stringify(pulled.body)).toMatch(/Instance 1 of the study is over the limit of 8\.0 MiB per file/);
        const spool = path.join(dataDir, 'uploads');
        expect(existsSync(spool) ? readdirSync(spool) : []).toEqual([]);

        const n = await sql<{ cases: number; volumes: number; origins: number }>`
          select (select count(*) from cases)::int as cases, (select count(*) from volumes)::int as volumes,
                 (select count(*) from case_dicom)::int as origins`.execute(current().handle.db);
        expect(n.rows[0]).toEqual({ cases: 0, volumes: 0, origins: 0 });
        expect(t.logs.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
      } finally {
        await server.close();
      }
    }, 300_000);
  });
});
