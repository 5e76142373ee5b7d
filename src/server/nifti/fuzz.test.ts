import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';
import { serveApp } from '../test/live.js';
import { buildNifti } from './fixtures.js';
import { fuzzNiftiCases } from './fuzz.js';
import { NiftiError, readNifti } from './read.js';

// #17: a seeded fuzzer (src/server/nifti/fuzz.ts). `npm run bench` runs thousands of cases and
// prints peak RSS; here a few hundred, so CI catches a reader that crashes or a 5xx from an upload.

describe('NIfTI reader under fuzzing', () => {
  it('1,200 hostile files: every one is read or refused with a NiftiError and a message, none inflates past its limits', () => {
    const kinds = new Map<string, { read: number; refused: number }>();
    for (const c of fuzzNiftiCases(20261130, 1200)) {
      const k = kinds.get(c.kind) ?? { read: 0, refused: 0 };
      kinds.set(c.kind, k);
      try {
        const vol = readNifti(c.bytes);
        // anything read is within the limits and geometrically usable
        expect(vol.data.length, `${c.kind} #${c.index}`).toBeLessThanOrEqual(64 * 1024 * 1024);
        expect(vol.affine.flat().every(Number.isFinite), `${c.kind} #${c.index}`).toBe(true);
        k.read++;
      } catch (err) {
        if (!(err instanceof NiftiError)) throw new Error(`${c.kind} #${c.index}: ${String(err)}`);
        expect(err.message.length).toBeGreaterThan(10);
        k.refused++;
      }
    }
    // every kind of lie was generated, and the ones that are always lies were always refused
    expect(kinds.size).toBe(12);
    for (const kind of ['huge-dims', 'bomb-gzip', 'bomb-by-header', 'odd-datatype']) expect(kinds.get(kind)!.read, kind).toBe(0);
  });
});

describeEachDatabase('cases.upload under fuzzing', (current) => {
  it('240 uploads with one hostile file: a 4xx with a message or a stored case, never a 5xx, nothing left behind', async () => {
    const uploadDir = mkdtempSync(path.join(tmpdir(), 'sv-fuzz-'));
    const t = makeTestApp({ database: current().handle, env: { MAX_INFLATED_MB: '64' }, uploadDir });
    const server = await serveApp(t.app);
    try {
      const b = new TestBrowser(server.url);
      await b.mutate('auth.register', { email: 'fuzz@x.org', password: 'correct horse battery' });
      const adc = buildNifti({
        dim: [12, 12, 6],
        pixdim: [2, 2, 3],
        values: Array.from({ length: 864 }, (_, i) => 700 + 3 * (i % 100)),
        gzip: true,
      });
      const statuses = new Map<number, number>();
      for (const c of fuzzNiftiCases(7, 240)) {
        const form = new FormData();
        form.set('name', `fuzz ${c.index}`);
        const role = c.index % 2 ? 'dwi' : 'adc';
        form.set(role, new File([new Uint8Array(c.bytes)], `${role}.nii.gz`));
        form.set(role === 'dwi' ? 'adc' : 'dwi', new File([new Uint8Array(adc)], 'other.nii.gz'));
        const res = await b.upload('cases.upload', form);
        statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
        expect(res.status, `${c.kind} #${c.index}: ${JSON.stringify(res.body).slice(0, 200)}`).toBeLessThan(500);
        if (res.status !== 200) {
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.body.error?.message?.length ?? 0, `${c.kind} #${c.index}`).toBeGreaterThan(10);
        }
      }
      expect(statuses.get(422) ?? 0).toBeGreaterThan(150);
      expect(readdirSync(uploadDir)).toEqual([]); // every spooled upload removed
      const stored = (await current().handle.db.selectFrom('cases').select('id').execute()).length;
      expect(stored).toBe(statuses.get(200) ?? 0); // a refused upload stored no case
      expect(t.logs.filter((l) => l.level === 'error' || l.level === 'fatal')).toEqual([]);
    } finally {
      await server.close();
    }
  });
});
