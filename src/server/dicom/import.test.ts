import { readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DicomUploadResult } from '../../shared/dicom.js';
import { findCaseDicom } from '../db/dicom.js';
import { readNifti, toFloat32 } from '../nifti/read.js';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';
import {
  HAVE_PHILIPS,
  PHILIPS_DIR,
  PHILIPS_SKIP_NOTE,
  copyDicom,
  folderForm,
  jpegLosslessCopy,
  modify,
  tempDir,
  zipFolder,
} from '../test/dicom.js';
import { serveApp } from '../test/live.js';
import { FsVolumeStore } from '../volumes/store.js';

// #26: a real Philips diffusion series (17 volumes: b = 0 ×5, b = 1000 ×12) through the real
// converter (dcm2niix's WebAssembly build), over real HTTP, on both databases.

const INJECTED = { name: 'QUIXOTEZZ^ALONSO', id: 'SV-4471-QQX', birthDate: '19230405' };

describe.skipIf(!HAVE_PHILIPS)(`DICOM import of the Philips series${PHILIPS_SKIP_NOTE}`, () => {
  let jpegDir: string;
  let patientDir: string;
  beforeAll(async () => {
    jpegDir = await jpegLosslessCopy();
    patientDir = copyDicom();
    await modify(patientDir, [
      `(0010,0010)=${INJECTED.name}`,
      `(0010,0020)=${INJECTED.id}`,
      `(0010,0030)=${INJECTED.birthDate}`,
      '(0008,0080)=Hospital of La Mancha',
    ]);
  }, 300_000);
  afterAll(() => {
    for (const d of [jpegDir, patientDir]) if (d) rmSync(d, { recursive: true, force: true });
  });

  describeEachDatabase('import', (current) => {
    const closers: (() => Promise<void>)[] = [];
    afterEach(async () => {
      for (const c of closers.splice(0).reverse()) await c();
    });

    async function setup(env: Record<string, string> = {}) {
      const uploadDir = tempDir('sv-spool-');
      const store = new FsVolumeStore(tempDir('sv-store-'));
      const t = makeTestApp({ database: current().handle, store, env, uploadDir });
      const browser = new TestBrowser(t.app);
      await browser.mutate('auth.register', { email: 'dicom@example.org', password: 'correct horse battery' });
      const token = (await browser.mutate<{ token: string }>('auth.tokens.create', { name: 'dicom' })).data.token;
      const server = await serveApp(t.app);
      closers.push(() => server.close());
      const post = async (form: FormData, route = '/api/cases/dicom') => {
        const res = await fetch(`${server.url}${route}`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
        return { status: res.status, body: (await res.json()) as DicomUploadResult & { message?: string; data?: unknown } };
      };
      return { ...t, uploadDir, store, token, server, post };
    }

    it('a folder becomes one case: the trace DWI and a computed ADC, 112×112×32 at 2 mm; the report names the roles and the skipped objects', async () => {
      const { post, store, uploadDir, logs } = await setup();
      const { status, body } = await post(folderForm(PHILIPS_DIR));
      expect(status, JSON.stringify([body, logs.filter((l) => l.level === 'error')]).slice(0, 3000)).toBe(200);
      const created = body.case!;
      expect(created.roles.sort()).toEqual(['adc', 'dwi']);
      expect(created.name).toBe('DTI_Biobank_2mm_MB3S2_EPI');
      const dwiV = created.volumes.find((v) => v.role === 'dwi')!;
      const adcV = created.volumes.find((v) => v.role === 'adc')!;
      for (const v of [dwiV, adcV]) {
        expect(v.dims).toEqual([112, 112, 32]);
        expect(v.voxelSizeMm.map((x) => Math.round(x * 100) / 100)).toEqual([2, 2, 2]);
      }
      expect(adcV.adcUnit).toBe('1e-6');

      const report = body.import;
      expect(report.roles.dwi).toMatchObject({ seriesNumber: 701, how: 'computed' });
      expect(report.roles.dwi.reason).toMatch(/geometric mean of its 12 b = 1000 images/);
      expect(report.roles.adc).toMatchObject({ seriesNumber: 701, how: 'computed' });
      expect(report.roles.adc.reason).toMatch(/ln\(S_b0 \/ S_b\) \/ b with b = 1000/);
      expect(report.roles.flair).toBeNull();
      expect(report.series).toEqual([
        expect.objectContaining({
          seriesNumber: 701,
          kind: 'diffusion',
          role: 'dwi',
          dims: [112, 112, 32],
          volumes: 17,
          images: 544,
          bValues: [0, 1000],
        }),
      ]);
      expect(Object.fromEntries(report.skipped.map((s) => [s.file, s.reason]))).toEqual({
        'DICOM/PS_0545': 'a presentation state',
        'DICOM/XX_0546': "a Philips private object (the scanner's own data)",
        'DICOM/XX_0547': "a Philips private object (the scanner's own data)",
      });
      expect(report.timings.convertMs).toBeGreaterThan(0);

      // The stored volumes: the trace at b = 1000, the ADC plausible in tissue and 0 outside the head.
      const nifti = (id: string) => readNifti(readFileSync(store.pathOf(id)));
      const rows = await sql<{ id: string; sha256: string }>`select v.id, v.sha256 from volumes v`.execute(current().handle.db);
      expect(rows.rows).toHaveLength(2);
      const adc = toFloat32(nifti(adcV.sha256));
      const dwi = toFloat32(nifti(dwiV.sha256));
      const inside = adc.filter((v) => v > 0);
      const median = Float32Array.from(inside).sort()[inside.length >> 1]!;
      expect(median).toBeGreaterThan(600);
      expect(median).toBeLessThan(1000);
      expect(adc.every((v) => Number.isFinite(v) && v >= 0)).toBe(true);
      // Outside the head: the first and last rows of every slice are air.
      for (let z = 0; z < 32; z++) for (let x = 0; x < 112; x++) expect(adc[z * 112 * 112 + x]).toBe(0);
      expect(inside.length / adc.length).toBeGreaterThan(0.2);
      expect(inside.length / adc.length).toBeLessThan(0.5);
      // The trace has signal wherever the ADC was computed.
      expect(adc.every((v, i) => v === 0 || dwi[i]! > 0)).toBe(true);

      // The origin a SEG needs: study, series, 32 slices × 17 SOP instances in the volume's order.
      const origin = (await findCaseDicom(current().handle.db, created.id))!;
      expect(origin.studyInstanceUid).toBe('1.3.46.670589.11.45190.5.0.7088.2021100514555411003');
      expect(origin.frameOfReferenceUid).toBe('1.3.46.670589.11.45190.5.0.18468.2021100515085138016');
      expect(origin.patient).toBeNull();
      const dwiSource = origin.series.find((s) => s.role === 'dwi')!;
      expect(dwiSource.seriesInstanceUid).toBe('1.3.46.670589.11.45190.5.0.6424.2021100515345467861');
      expect(dwiSource.sopClassUid).toBe('1.2.840.10008.5.1.4.1.1.4');
      expect(dwiSource.slices).toHaveLength(32);
      expect(dwiSource.slices.every((s) => s.refs.length === 17)).toBe(true);
      expect(new Set(dwiSource.slices.flatMap((s) => s.refs.map((r) => r.sopInstanceUid))).size).toBe(544);
      // Slice k's position follows the volume's affine (k = 0 lowest in z here).
      const z = dwiSource.slices.map((s) => s.imagePositionPatient![2]!);
      expect(z.every((v, i) => i === 0 || v > z[i - 1]!)).toBe(true);
      expect(created.dicom).toMatchObject({ studyInstanceUid: origin.studyInstanceUid, patient: null });
      expect(created.dicom!.series.map((s) => [s.role, s.seriesNumber, s.how])).toEqual([
        ['dwi', 701, 'computed'],
        ['adc', 701, 'computed'],
      ]);
      expect(readdirSync(uploadDir)).toEqual([]);
    }, 300_000);

    it('the same series as a zip (tRPC) and as a JPEG-lossless copy converts to the same volumes', async () => {
      const { post } = await setup();
      const folder = await post(folderForm(PHILIPS_DIR, { dryRun: 'true' }));
      expect(folder.status).toBe(200);
      expect(folder.body.case).toBeNull();

      const zipForm = new FormData();
      zipForm.set('file', new File([zipFolder(PHILIPS_DIR)], 'study.zip'));
      zipForm.set('name', 'zipped');
      const zipped = await post(zipForm, '/trpc/cases.uploadDicom');
      expect(zipped.status, JSON.stringify(zipped.body).slice(0, 400)).toBe(200);
      const zCase = (zipped.body as unknown as { result: { data: DicomUploadResult } }).result.data.case!;
      expect(zCase.name).toBe('zipped');

      const jpeg = await post(folderForm(jpegDir, { name: 'jpeg' }));
      expect(jpeg.status, JSON.stringify(jpeg.body).slice(0, 400)).toBe(200);
      const jCase = jpeg.body.case!;
      const sha = (c: typeof jCase) => Object.fromEntries(c.volumes.map((v) => [v.role, v.sha256]));
      // Content-addressed: the same voxels are the same stored files.
      expect(sha(jCase)).toEqual(sha(zCase));
      const count = await sql<{ n: number }>`select count(*)::int as n from volumes`.execute(current().handle.db);
      expect(count.rows[0]!.n).toBe(2);
    }, 300_000);

    it('an injected patient name, ID and birth date appear nowhere: not in the database, the stored files, the response or the logs', async () => {
      const { post, store, logs, uploadDir } = await setup();
      const { status, body } = await post(folderForm(patientDir));
      expect(status, JSON.stringify(body).slice(0, 400)).toBe(200);
      const needles = [
        INJECTED.name,
        'QUIXOTEZZ',
        'ALONSO',
        INJECTED.id,
        INJECTED.birthDate,
        '1923-04-05',
        'La Mancha',
        'Queens Medical Centre',
      ];
      const hits = (text: string) => needles.filter((n) => text.toLowerCase().includes(n.toLowerCase()));

      // Every text and JSON column of every table.
      const db = current().handle.db;
      const columns = await sql<{ table_name: string; column_name: string }>`
        select table_name, column_name from information_schema.columns
        where table_schema = 'public' and data_type in ('text', 'jsonb', 'json', 'character varying', 'ARRAY', 'USER-DEFINED')`.execute(db);
      expect(columns.rows.length).toBeGreaterThan(10);
      for (const { table_name, column_name } of columns.rows) {
        const values = await sql<{ v: string | null }>`select ${sql.ref(column_name)}::text as v from ${sql.table(table_name)}`.execute(db);
        for (const { v } of values.rows) expect(hits(v ?? ''), `${table_name}.${column_name}`).toEqual([]);
      }
      // Every stored file, gunzipped.
      const walk = (d: string): string[] =>
        readdirSync(d).flatMap((f) => (statSync(path.join(d, f)).isDirectory() ? walk(path.join(d, f)) : [path.join(d, f)]));
      const files = walk(store.root);
      expect(files.length).toBe(2);
      for (const f of files) {
        const bytes = readFileSync(f);
        expect(hits(gunzipSync(bytes).toString('latin1')), f).toEqual([]);
      }
      expect(hits(JSON.stringify(body))).toEqual([]);
      expect(hits(JSON.stringify(logs))).toEqual([]);
      expect(logs.some((l) => l.msg === 'DICOM study imported')).toBe(true);
      expect(readdirSync(uploadDir)).toEqual([]);
    }, 300_000);

    it('with DICOM_KEEP_PATIENT=true the patient and study modules are kept, shown to the owner, and still never logged', async () => {
      const { post, logs, app } = await setup({ DICOM_KEEP_PATIENT: 'true' });
      const { status, body } = await post(folderForm(patientDir));
      expect(status).toBe(200);
      expect(body.case!.dicom!.patient).toMatchObject({
        patientName: INJECTED.name,
        patientId: INJECTED.id,
        patientBirthDate: INJECTED.birthDate,
      });
      expect(JSON.stringify(logs)).not.toContain('QUIXOTEZZ');
      // Another user cannot see the case at all; the owner's detail carries the patient.
      const other = new TestBrowser(app);
      await other.mutate('auth.register', { email: 'other@example.org', password: 'correct horse battery' });
      const seen = await other.query('cases.byId', { id: body.case!.id });
      expect(seen.status).toBe(404);
      // Shared (as `strokeview import --dicom` makes them): everyone sees the case, only admins the patient.
      const db = current().handle.db;
      await sql`update cases set owner_id = null where id = ${body.case!.id}`.execute(db);
      const shared = await other.query<{ dicom: { patient: unknown; studyInstanceUid: string } }>('cases.byId', { id: body.case!.id });
      expect(shared.status).toBe(200);
      expect(shared.data.dicom).toMatchObject({ studyInstanceUid: body.case!.dicom!.studyInstanceUid, patient: null });
      await sql`update users set role = 'admin' where email = 'other@example.org'`.execute(db);
      const asAdmin = await other.query<{ dicom: { patient: { patientName: string } } }>('cases.byId', { id: body.case!.id });
      expect(asAdmin.data.dicom.patient.patientName).toBe(INJECTED.name);
    }, 300_000);

    it('a series choice that names no series is a 422 naming the series the study has; nothing is stored', async () => {
      const { post, uploadDir } = await setup();
      const { status, body } = await post(folderForm(PHILIPS_DIR, { series: JSON.stringify({ dwi: '999' }) }));
      expect(status).toBe(422);
      expect(body.message).toMatch(/The series chosen for DWI \(999\) is not in the study; it has 701/);
      const n = await sql<{ n: number }>`select (select count(*) from cases)::int + (select count(*) from volumes)::int as n`.execute(
        current().handle.db,
      );
      expect(n.rows[0]!.n).toBe(0);
      expect(readdirSync(uploadDir)).toEqual([]);
      const bad = await post(
        folderForm(
          copyDicom(PHILIPS_DIR, (f) => f === 'IM_0001'),
          { series: '{"dwi": 7, "x": 1}' },
        ),
      );
      expect(bad.status).toBe(400);
      expect(bad.body.message).toMatch(/^series: /);
    }, 300_000);
  });
});
