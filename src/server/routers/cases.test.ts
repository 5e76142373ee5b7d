import { readFileSync, readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import type { CaseDetail, CaseSummary } from '../../shared/cases.js';
import { ensureAdmin } from '../auth/service.js';
import { seedDemoCases } from '../cases/demo.js';
import { TEST_AFFINE, buildNifti, testVolume } from '../nifti/fixtures.js';
import { readNifti } from '../nifti/read.js';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';

const PASSWORD = 'correct horse battery';
const affine = TEST_AFFINE;
const vol = testVolume;
const maskValues = Array.from({ length: 16 * 16 * 8 }, (_, i) => (i % 37 === 0 ? 1 : 0));

function form(files: Record<string, Uint8Array | string>, name = 'My case'): FormData {
  const fd = new FormData();
  fd.set('name', name);
  for (const [role, bytes] of Object.entries(files)) {
    fd.set(role, typeof bytes === 'string' ? bytes : new File([new Uint8Array(bytes)], `${role}.nii.gz`));
  }
  return fd;
}

/** Every file under the store: nothing may be left behind by a refused upload. */
function storedFiles(root: string): string[] {
  try {
    return readdirSync(root, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.nii.gz') || f.includes('.tmp-'));
  } catch {
    return [];
  }
}

describeEachDatabase('cases', (current) => {
  const setup = async (env: Record<string, string> = {}) => {
    const t = makeTestApp({ database: current().handle, env });
    const user = new TestBrowser(t.app);
    await user.mutate('auth.register', { email: 'u@x.org', password: PASSWORD });
    return { ...t, user };
  };
  const count = async (table: 'cases' | 'volumes' | 'case_volumes') =>
    (await sql<{ n: number }>`select count(*)::int as n from ${sql.table(table)}`.execute(current().handle.db)).rows[0]!.n;

  it('demo cases: seeded once, listed for everyone; byId gives signed links to valid volumes; Range, ETag, tamper', async () => {
    const { app, store } = await setup({ ALLOWED_ORIGINS: 'https://viewer.example' });
    expect(await seedDemoCases(current().handle.db, store, 2)).toBe(2);
    expect(await seedDemoCases(current().handle.db, store, 2)).toBe(0);

    const anon = new TestBrowser(app);
    const list = await anon.query<{ items: CaseSummary[]; nextCursor: string | null }>('cases.list');
    expect(list.data.items).toHaveLength(2);
    expect(list.data.items.every((c) => c.demo && c.source === 'demo')).toBe(true);
    expect(list.data.items[0]?.roles).toEqual(['adc', 'dwi', 'flair', 'mask']);

    const detail = await anon.query<CaseDetail>('cases.byId', { id: list.data.items[0]!.id });
    expect(detail.status).toBe(200);
    const dwi = detail.data.volumes.find((v) => v.role === 'dwi')!;
    expect(dwi.dims).toEqual([112, 112, 73]);
    expect(dwi.voxelSizeMm).toEqual([2, 2, 2]);
    expect(dwi.url).toMatch(/^http:\/\/localhost\/files\/v\/[\w-]+\.[\w-]+\/dwi\.nii\.gz$/);

    const path = new URL(dwi.url).pathname;
    const file = await app.request(path, { headers: { origin: 'https://viewer.example' } });
    expect(file.status).toBe(200);
    expect(file.headers.get('content-type')).toBe('application/octet-stream');
    expect(file.headers.get('content-encoding')).toBeNull();
    expect(file.headers.get('etag')).toBe(`"${dwi.sha256}"`);
    expect(file.headers.get('cache-control')).toMatch(/^private, max-age=\d+, immutable$/);
    expect(file.headers.get('accept-ranges')).toBe('bytes');
    expect(file.headers.get('cross-origin-resource-policy')).toBe('cross-origin');
    expect(file.headers.get('access-control-allow-origin')).toBe('https://viewer.example');
    expect(file.headers.get('access-control-expose-headers')).toMatch(/content-range/i);
    const bytes = new Uint8Array(await file.arrayBuffer());
    expect(bytes.length).toBe(dwi.bytes);
    const decoded = readNifti(bytes);
    expect(decoded.dims).toEqual(dwi.dims);
    expect(decoded.affine).toEqual(dwi.affine);

    const part = await app.request(path, { headers: { range: 'bytes=0-99' } });
    expect(part.status).toBe(206);
    expect(part.headers.get('content-range')).toBe(`bytes 0-99/${dwi.bytes}`);
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(bytes.subarray(0, 100));
    const tail = await app.request(path, { headers: { range: 'bytes=-10' } });
    expect(new Uint8Array(await tail.arrayBuffer())).toEqual(bytes.subarray(bytes.length - 10));
    expect((await app.request(path, { headers: { range: `bytes=${dwi.bytes + 5}-` } })).status).toBe(416);
    expect((await app.request(path, { headers: { 'if-none-match': `"${dwi.sha256}"` } })).status).toBe(304);

    const token = path.split('/')[3]!;
    const flipped = token.slice(0, 5) + (token[5] === 'A' ? 'B' : 'A') + token.slice(6);
    expect((await app.request(`/files/v/${flipped}/dwi.nii.gz`)).status).toBe(403);
    expect((await app.request('/files/v/not-a-token')).status).toBe(403);
  });

  it('an expired link is refused', async () => {
    const { app, store, signer } = await setup();
    await seedDemoCases(current().handle.db, store, 1);
    const [row] = await current().handle.db.selectFrom('volumes').select('id').execute();
    const { createVolumeSigner } = await import('../volumes/signing.js');
    const past = createVolumeSigner('test-secret-key-that-is-long-enough-for-hmac', 3600, () => Date.now() - 7200_000);
    const res = await app.request(`/files/v/${past.sign(row!.id)}`);
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/expired/);
    expect((await app.request(`/files/v/${signer.sign(row!.id)}`)).status).toBe(200);
  });

  it('upload: a valid case is stored, owned and listed; others cannot see it; the owner deletes it and its files go', async () => {
    const { app, user, store } = await setup();
    const res = await user.upload<CaseDetail>(
      'cases.upload',
      form({ dwi: vol(), adc: vol({ values: Array(2048).fill(800) }), mask: vol({ datatype: 'uint8', values: maskValues }) }, 'Patient 7'),
    );
    expect(res.status).toBe(200);
    expect(res.data).toMatchObject({ name: 'Patient 7', source: 'upload', owned: true, demo: false });
    expect(res.data.volumes.map((v) => v.role)).toEqual(['adc', 'dwi', 'mask']);
    expect(res.data.volumes.map((v) => v.adcUnit)).toEqual(['1e-6', null, null]); // found from the values, shown by byId
    expect(storedFiles(store.root)).toHaveLength(3);

    const other = new TestBrowser(app);
    await other.mutate('auth.register', { email: 'other@x.org', password: PASSWORD });
    expect((await other.query('cases.byId', { id: res.data.id })).status).toBe(404);
    expect((await other.mutate('cases.delete', { id: res.data.id })).status).toBe(404);
    expect((await other.query<{ items: unknown[] }>('cases.list')).data.items).toHaveLength(0);
    expect((await new TestBrowser(app).query('cases.byId', { id: res.data.id })).status).toBe(404);

    const mine = await user.query<{ items: CaseSummary[] }>('cases.list', { search: 'patient' });
    expect(mine.data.items.map((c) => c.name)).toEqual(['Patient 7']);

    expect((await user.mutate('cases.delete', { id: res.data.id })).status).toBe(200);
    expect(await count('cases')).toBe(0);
    expect(await count('volumes')).toBe(0);
    expect(storedFiles(store.root)).toEqual([]);
  });

  it.each([
    [
      'a PNG renamed .nii.gz',
      () => ({ dwi: Buffer.from('89504e470d0a1a0a0000000d49484452'.padEnd(1200, '0'), 'hex'), adc: vol() }),
      422,
      /DWI: Not a NIfTI file/,
    ],
    [
      'a truncated file',
      () => ({ dwi: vol(), adc: buildNifti({ dim: [16, 16, 8], pixdim: [2, 2, 3], affine, truncate: 100 }) }),
      422,
      /ADC: The voxel data is truncated/,
    ],
    ['an empty file', () => ({ dwi: new Uint8Array(0), adc: vol() }), 422, /DWI is required \(the file is empty\)/],
    [
      'a CIFTI file',
      () => ({ dwi: vol(), adc: buildNifti({ version: 2, dim: [1, 1, 1, 1, 20, 30], intentCode: 3006 }) }),
      422,
      /ADC: This is a CIFTI file/,
    ],
    ['DWI and ADC on different grids', () => ({ dwi: vol(), adc: vol({ dim: [16, 16, 9] }) }), 422, /different grids/],
    ['a missing ADC', () => ({ dwi: vol() }), 422, /ADC is required/],
    [
      'an ADC in no plausible unit',
      () => ({ dwi: vol(), adc: vol({ values: Array(2048).fill(40) }) }),
      422,
      /ADC: the median value over the head is 40, which is not a plausible ADC/,
    ],
    ['a non-binary mask', () => ({ dwi: vol(), adc: vol(), mask: vol({ datatype: 'uint8' }) }), 422, /only 0 and 1/],
    ['text where a file belongs', () => ({ dwi: 'hello', adc: vol() }), 400, /expected a file/],
  ])('upload of %s: a specific 4xx, and no row or file left behind', async (_name, files, status, message) => {
    const { user, store } = await setup();
    const res = await user.upload('cases.upload', form(files() as Record<string, Uint8Array | string>));
    expect(res.status).toBe(status);
    expect(res.body.error?.message).toMatch(message);
    expect(await count('cases')).toBe(0);
    expect(await count('volumes')).toBe(0);
    expect(storedFiles(store.root)).toEqual([]);
  });

  it('uploads an int64 ground-truth mask as nibabel and SimpleITK write them', async () => {
    const { user } = await setup();
    const res = await user.upload<CaseDetail>(
      'cases.upload',
      form({ dwi: vol(), adc: vol(), mask: vol({ datatype: 'int64', values: maskValues }) }, 'int64 mask'),
    );
    expect(res.status).toBe(200);
    expect(res.data.volumes.find((v) => v.role === 'mask')).toMatchObject({ datatype: 'int64', dims: [16, 16, 8] });
  });

  it('uploads a real big-endian file we did not write (minimal.nii from nifti-js) and refuses it as a mask', async () => {
    const { user } = await setup();
    const minimal = readFileSync(createRequire(import.meta.url).resolve('nifti-js/test/minimal.nii'));
    // an ADC on its grid (minimal.nii itself is no plausible ADC: refused as one, with the reason)
    const onGrid = readNifti(minimal);
    const adc = buildNifti({ dim: onGrid.dims, pixdim: onGrid.voxelSizeMm, affine: onGrid.affine, values: Array(64 * 64 * 10).fill(0.8) });
    const notAdc = await user.upload('cases.upload', form({ dwi: minimal, adc: minimal }, 'minimal'));
    expect(notAdc.status).toBe(422);
    expect(notAdc.body.error?.message).toMatch(/^ADC: the median value over the head is .* not a plausible ADC/);
    const ok = await user.upload<CaseDetail>('cases.upload', form({ dwi: minimal, adc }, 'minimal'));
    expect(ok.status).toBe(200);
    expect(ok.data.volumes.find((v) => v.role === 'dwi')).toMatchObject({ dims: [64, 64, 10], datatype: 'uint8', voxelSizeMm: [3, 3, 3] });
    expect(ok.data.volumes.find((v) => v.role === 'adc')).toMatchObject({ adcUnit: '1e-3' });
    const asMask = await user.upload('cases.upload', form({ dwi: minimal, adc, mask: minimal }, 'minimal 2'));
    expect(asMask.status).toBe(422);
    expect(asMask.body.error?.message).toMatch(/Mask: a ground-truth mask must hold only 0 and 1/);
  });

  it('an upload over MAX_UPLOAD_MB is 413 and leaves nothing; signed-out uploads are 401', async () => {
    const { user, store, app } = await setup({ MAX_UPLOAD_MB: '0.05' });
    const big = buildNifti({ dim: [40, 40, 20], pixdim: [2, 2, 3], affine });
    const res = await user.upload('cases.upload', form({ dwi: big, adc: big }));
    expect(res.status).toBe(413);
    expect(res.body.error?.message).toMatch(/larger than/);
    expect(await count('cases')).toBe(0);
    expect(storedFiles(store.root)).toEqual([]);
    expect((await new TestBrowser(app).upload('cases.upload', form({ dwi: vol(), adc: vol() }))).status).toBe(401);
  });

  it('shared cases: a user cannot delete one (403); an admin can', async () => {
    const { app, store, user } = await setup();
    await seedDemoCases(current().handle.db, store, 1);
    const [demo] = (await user.query<{ items: CaseSummary[] }>('cases.list')).data.items;
    expect((await user.mutate('cases.delete', { id: demo!.id })).status).toBe(403);
    await ensureAdmin(current().handle.db, { email: 'admin@x.org', password: PASSWORD });
    const admin = new TestBrowser(app);
    await admin.mutate('auth.signIn', { email: 'admin@x.org', password: PASSWORD });
    expect((await admin.mutate('cases.delete', { id: demo!.id })).status).toBe(200);
    expect(storedFiles(store.root)).toEqual([]);
  });

  it('pages through cases with a cursor', async () => {
    const { user } = await setup();
    for (const name of ['a', 'b', 'c']) {
      expect((await user.upload('cases.upload', form({ dwi: vol(), adc: vol() }, name))).status).toBe(200);
    }
    const first = await user.query<{ items: CaseSummary[]; nextCursor: string }>('cases.list', { limit: 2 });
    expect(first.data.items.map((c) => c.name)).toEqual(['c', 'b']);
    const second = await user.query<{ items: CaseSummary[]; nextCursor: string | null }>('cases.list', {
      limit: 2,
      cursor: first.data.nextCursor,
    });
    expect(second.data.items.map((c) => c.name)).toEqual(['a']);
    expect(second.data.nextCursor).toBeNull();
    // identical files are stored once
    expect(await count('volumes')).toBe(1);
  });
});
