import { existsSync, readFileSync, readdirSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';
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
} from '../test/dicom.js';
import { serveApp } from '../test/live.js';
import { FsVolumeStore } from '../volumes/store.js';

// #26: every bad DICOM input is a 4xx naming the problem, its spool removed, nothing half-written
// (no case row, no volume row, no case_dicom row, no stored file).

const firstImages = (n: number) => (f: string) => f.startsWith('IM_') && Number(f.slice(3)) <= n;

describe.skipIf(!HAVE_PHILIPS)(`bad DICOM input${PHILIPS_SKIP_NOTE}`, () => {
  const made: string[] = [];
  const keep = (d: string) => (made.push(d), d);
  let missingSlice: string;
  let mixed: string;
  beforeAll(async () => {
    missingSlice = keep(copyDicom());
    unlinkSync(path.join(missingSlice, 'IM_0123'));
    mixed = keep(copyDicom(PHILIPS_DIR, firstImages(40)));
    await modify(mixed, ['(0020,000d)=1.2.826.0.1.3680043.8.498.26000000000000000001'], readdirSync(mixed).filter(firstImages(15)));
  }, 300_000);
  afterAll(() => {
    for (const d of made) rmSync(d, { recursive: true, force: true });
  });

  describeEachDatabase('refused', (current) => {
    const closers: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const c of closers.splice(0).reverse()) await c();
    });

    async function setup(env: Record<string, string> = {}) {
      const uploadDir = tempDir('sv-spool-');
      const store = new FsVolumeStore(tempDir('sv-store-'));
      const t = makeTestApp({ database: current().handle, store, env, uploadDir });
      const browser = new TestBrowser(t.app);
      await browser.mutate('auth.register', { email: 'bad@example.org', password: 'correct horse battery' });
      const token = (await browser.mutate<{ token: string }>('auth.tokens.create', { name: 'bad' })).data.token;
      const server = await serveApp(t.app);
      closers.push(() => server.close());
      const post = async (form: FormData) => {
        const res = await fetch(`${server.url}/api/cases/dicom`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
          body: form,
        });
        return { status: res.status, body: (await res.json()) as { message: string; data: { fieldErrors?: Record<string, string[]> } } };
      };
      const zip = (bytes: Uint8Array<ArrayBuffer>, name = 'study.zip') => {
        const form = new FormData();
        form.set('file', new File([bytes], name));
        return post(form);
      };
      /** Nothing stored anywhere, and the spool empty. */
      const nothingLeft = async () => {
        const db = current().handle.db;
        const n = await sql<{ cases: number; volumes: number; origins: number }>`
          select (select count(*) from cases)::int as cases, (select count(*) from volumes)::int as volumes,
                 (select count(*) from case_dicom)::int as origins`.execute(db);
        expect(n.rows[0]).toEqual({ cases: 0, volumes: 0, origins: 0 });
        expect(existsSync(store.root) ? readdirSync(store.root).filter((d) => !d.startsWith('.')) : []).toEqual([]);
        expect(readdirSync(uploadDir)).toEqual([]);
        expect(t.logs.filter((l) => l.level === 'error')).toEqual([]);
      };
      return { ...t, server, token, post, zip, nothingLeft };
    }

    it('a truncated file: 422 naming it', async () => {
      const { post, nothingLeft } = await setup();
      const dir = keep(copyDicom(PHILIPS_DIR, firstImages(10)));
      const f = path.join(dir, 'IM_0005');
      writeFileSync(f, readFileSync(f).subarray(0, 20_000));
      const { status, body } = await post(folderForm(dir));
      expect(status).toBe(422);
      expect(body.message).toMatch(/^DICOM\/IM_0005: an element declares 25088 bytes but only \d+ remain in the file \(truncated/);
      expect(body.data.fieldErrors).toEqual({ files: [body.message] });
      await nothingLeft();
    });

    it('a file cut inside its header: 422 naming it', async () => {
      const { post, nothingLeft } = await setup();
      const dir = keep(copyDicom(PHILIPS_DIR, firstImages(3)));
      const f = path.join(dir, 'IM_0002');
      writeFileSync(f, readFileSync(f).subarray(0, 3000));
      const { status, body } = await post(folderForm(dir));
      expect(status).toBe(422);
      expect(body.message).toMatch(/^DICOM\/IM_0002: .*(truncated|corrupt)/);
      await nothingLeft();
    });

    it('a DICOM declaring a huge element length: 422 naming it, nothing allocated for it', async () => {
      const { post, nothingLeft } = await setup();
      const dir = keep(copyDicom(PHILIPS_DIR, firstImages(10)));
      declarePixelLength(path.join(dir, 'IM_0007'), 0x7ffffff0);
      const { status, body } = await post(folderForm(dir));
      expect(status).toBe(422);
      expect(body.message).toMatch(/^DICOM\/IM_0007: an element declares 2147483632 bytes but only 25088 remain/);
      await nothingLeft();
    });

    it('an unsupported transfer syntax: 422 naming the file and the syntax', async () => {
      const { post, nothingLeft } = await setup();
      const dir = keep(copyDicom(PHILIPS_DIR, firstImages(10)));
      await deflate(dir, 'IM_0004');
      const { status, body } = await post(folderForm(dir));
      expect(status).toBe(422);
      expect(body.message).toMatch(
        /^DICOM\/IM_0004: transfer syntax 1\.2\.840\.10008\.1\.2\.1\.99 \(Deflated Explicit VR Little Endian\) is not supported/,
      );
      await nothingLeft();
    });

    it('mixed studies: 422 saying how many and what is in each, nothing identifying', async () => {
      const { post, nothingLeft } = await setup();
      const { status, body } = await post(folderForm(mixed));
      expect(status).toBe(422);
      expect(body.message).toMatch(
        /^The upload holds 2 studies — study 1: 1 series, (15|25) images \(DTI_Biobank_2mm_MB3S2_EPI\); study 2: /,
      );
      expect(body.message).toMatch(/upload them one at a time/);
      expect(body.message).not.toMatch(/PSM|Research/);
      await nothingLeft();
    });

    it("a series with a missing slice: 422 with the missing images named and dcm2niix's warning", async () => {
      const { post, nothingLeft } = await setup();
      const { status, body } = await post(folderForm(missingSlice));
      expect(status).toBe(422);
      expect(body.message).toMatch(/^No DWI in the study/);
      expect(body.message).toMatch(
        /series 701 \(DTI_Biobank_2mm_MB3S2_EPI\) is missing images: 31 of its 32 slice positions hold 17 images each, but 1 holds a different number \(16 at/,
      );
      expect(body.message).toMatch(/dcm2niix said: .*(missing|DICOM images)/i);
      await nothingLeft();
    }, 120_000);

    it('a zip with ../ or absolute entry names: 422, nothing written outside (or inside) the spool', async () => {
      const { zip, nothingLeft } = await setup();
      const im = readFileSync(path.join(PHILIPS_DIR, 'IM_0001'));
      for (const name of ['../../evil.dcm', 'DICOM/../../evil.dcm', '/etc/evil.dcm', 'C:/evil.dcm', '..\\evil.dcm']) {
        const { status, body } = await zip(
          zipOf([
            { name: 'DICOM/IM_0001', data: im },
            { name, data: im },
          ]),
        );
        expect(status, name).toBe(422);
        expect(body.message, name).toMatch(
          /^study\.zip: an entry's name leads outside the archive \((invalid relative path|absolute path)/,
        );
      }
      await nothingLeft();
    });

    it('a zip bomb: refused by its compression ratio before inflating, or by inflating past what it declares', async () => {
      const { zip, nothingLeft } = await setup();
      const bomb = await zip(zipOf([{ name: 'bomb.dcm', data: Buffer.alloc(64 * 1048576) }]));
      expect(bomb.status).toBe(422);
      expect(bomb.body.message).toMatch(
        /^study\.zip\/bomb\.dcm would inflate \d+ times \(0\.\d MiB → 64 MiB\), over the limit of 200: refused as a zip bomb/,
      );
      const liar = await zip(zipOf([{ name: 'liar.dcm', data: Buffer.alloc(4 * 1048576, 1), declaredSize: 1000 }]));
      expect(liar.status).toBe(422);
      expect(liar.body.message).toMatch(/inflates (to a different size than it declares|past its declared 1000 bytes)/);
      await nothingLeft();
    });

    it('a file over DICOM_MAX_FILE_MB: 413 from its declared size, before a byte is inflated', async () => {
      const { zip, post, nothingLeft } = await setup({ DICOM_MAX_FILE_MB: '2' });
      const big = await zip(zipOf([{ name: 'big.dcm', data: Buffer.alloc(10, 1), declaredSize: 3 * 1048576 }]));
      expect(big.status).toBe(413);
      expect(big.body.message).toBe('study.zip/big.dcm is 3.0 MiB, over the limit of 2.0 MiB per file');
      const form = new FormData();
      form.append('files', new File([Buffer.alloc(3 * 1048576)], 'DICOM/huge'));
      const loose = await post(form);
      expect(loose.status).toBe(413);
      expect(loose.body.message).toBe('DICOM/huge is 3.0 MiB, over the limit of 2.0 MiB per file');
      await nothingLeft();
    });

    it('100 k tiny files: 413 at DICOM_MAX_FILES, as loose files (the stream is cut) and as a zip (its directory is enough)', async () => {
      const { server, token, zip, nothingLeft } = await setup();
      const boundary = '----svdicom';
      const part = (i: number) => `--${boundary}\r\nContent-Disposition: form-data; name="files"; filename="f${i}"\r\n\r\ntiny${i}\r\n`;
      const body = Buffer.from(Array.from({ length: 100_000 }, (_, i) => part(i)).join('') + `--${boundary}--\r\n`);
      const res = await new Promise<{ status: number; text: string }>((resolve, reject) => {
        const u = new URL(`${server.url}/api/cases/dicom`);
        const req = request(
          {
            host: u.hostname,
            port: u.port,
            path: u.pathname,
            method: 'POST',
            headers: {
              authorization: `Bearer ${token}`,
              'content-type': `multipart/form-data; boundary=${boundary}`,
              'content-length': String(body.length),
            },
          },
          (r) => {
            let text = '';
            r.on('data', (d) => (text += d));
            r.on('end', () => resolve({ status: r.statusCode ?? 0, text }));
          },
        );
        req.on('error', reject);
        req.on('socket', (s) => s.on('error', () => {}));
        req.end(body);
      });
      expect(res.status).toBe(413);
      expect(JSON.parse(res.text).message).toBe('The upload holds more than 5000 files; send one study at a time, or a .zip');

      const many = await zip(
        zipOf(Array.from({ length: 100_000 }, (_, i) => ({ name: `f/${i}`, data: Buffer.from(`t${i}`), method: 0 as const }))),
      );
      expect(many.status).toBe(413);
      expect(many.body.message).toBe('The import holds more than 5000 files; send one study at a time');
      await nothingLeft();
    }, 120_000);

    it('nothing DICOM in it: 422 listing what was sent instead', async () => {
      const { post, nothingLeft } = await setup();
      const form = new FormData();
      form.append('files', new File(['just some notes'], 'notes.txt'));
      form.append('files', new File([readFileSync(path.join(PHILIPS_DIR, 'XX_0546'))], 'XX_0546'));
      const { status, body } = await post(form);
      expect(status).toBe(422);
      expect(body.message).toBe(
        "No DICOM MR images in the 2 files sent (1 not DICOM (no DICM marker at byte 128); 1 a Philips private object (the scanner's own data))",
      );
      await nothingLeft();
    });
  });
});
