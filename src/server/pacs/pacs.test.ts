import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DicomUploadResult } from '../../shared/dicom.js';
import type { JobView } from '../../shared/jobs.js';
import type { MaskVersionView } from '../../shared/masks.js';
import type { PacsPush } from '../../shared/pacs.js';
import { createClient } from '../../sdk/index.js';
import { compareAdcSeries, readAdcImage } from '../dicom/adc-series.js';
import { readSeg } from '../dicom/seg-read.js';
import { parseEnv } from '../env.js';
import { type JobRuntime, startJobRuntime } from '../jobs/runtime.js';
import { createLogger } from '../logger.js';
import { readNifti } from '../nifti/read.js';
import { encodeNifti } from '../nifti/write.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from '../segmentation/models.js';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';
import { HAVE_PHILIPS, PHILIPS_DIR, PHILIPS_SKIP_NOTE, dciodvfyErrors, folderForm, tempDir } from '../test/dicom.js';
import { serveApp, trpcClient } from '../test/live.js';
import { HAVE_ORTHANC, ORTHANC_SKIP_NOTE, type Orthanc, startOrthanc } from '../test/orthanc.js';
import { ROOT, builtEntry } from '../test/process.js';
import { FsVolumeStore } from '../volumes/store.js';
import { DicomWebClient, splitMultipart } from './dicomweb.js';

// #26: PACS exchange over DICOMweb with a real Orthanc (its DICOMweb plugin) started here: the
// Philips series stored with STOW-RS, found with QIDO-RS, pulled into a case with WADO-RS (the same
// volumes as a direct upload), segmented, and the SEG sent back as a durable job — Orthanc then
// holds it in the source study, referencing the DWI series. A PACS that is down: retried, then failed.

/** The built CLI, run without blocking this process (the server under test lives in it). */
function cli(args: string[], env: Record<string, string>): Promise<{ status: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [builtEntry('src/cli/index.ts'), ...args], {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', ...env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (status) => resolve({ status, stdout, stderr }));
  });
}

let models: ModelRegistry;
let orthanc: Orthanc;
let studyUid: string;
beforeAll(async () => {
  if (!HAVE_ORTHANC || !HAVE_PHILIPS) return;
  models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
  orthanc = await startOrthanc();
  // The series into the PACS with our own STOW-RS client, in batches.
  const pacs = new DicomWebClient({ url: orthanc.dicomWeb, timeoutMs: 120_000 });
  const files = readdirSync(PHILIPS_DIR).map((f) => new Uint8Array(readFileSync(path.join(PHILIPS_DIR, f))));
  for (let i = 0; i < files.length; i += 100) {
    await pacs.store(files.slice(i, i + 100)).catch((err: Error) => {
      // Orthanc refuses the series' non-image objects it cannot index; the MR images must all go in.
      if (!/refused/.test(err.message)) throw err;
    });
  }
  const found = await pacs.searchStudies({});
  expect(found).toHaveLength(1);
  studyUid = found[0]!.studyInstanceUid;
}, 300_000);
afterAll(async () => {
  await orthanc?.stop();
  await models?.close();
});

describe.skipIf(!HAVE_ORTHANC || !HAVE_PHILIPS)(`PACS over DICOMweb with Orthanc${ORTHANC_SKIP_NOTE}${PHILIPS_SKIP_NOTE}`, () => {
  describeEachDatabase('pacs', (current) => {
    const running: { stop(): Promise<void> }[] = [];
    afterEach(async () => {
      for (const r of running.splice(0).reverse()) await r.stop();
    });

    async function setup(pacsUrl: string) {
      const database = current().handle;
      const store = new FsVolumeStore(tempDir('sv-pacs-store-'));
      const envVars = {
        NODE_ENV: 'test',
        PACS_URL: pacsUrl,
        DICOM_KEEP_PATIENT: 'true',
        PACS_PUSH_RETRY_DELAY_S: '1',
        DATA_DIR: tempDir('sv-pacs-data-'),
      };
      const runtime: JobRuntime = await startJobRuntime({
        database,
        store,
        models,
        env: parseEnv(envVars),
        log: createLogger({ level: 'silent' }),
        runWorker: true,
      });
      running.push({ stop: () => runtime.stop(2000) });
      const t = makeTestApp({ database, models, store, jobs: runtime.jobs, env: envVars, uploadDir: tempDir('sv-pacs-spool-') });
      const server = await serveApp(t.app);
      running.push({ stop: () => server.close() });
      const browser = new TestBrowser(t.app);
      await browser.mutate('auth.register', { email: 'pacs@example.org', password: 'correct horse battery' });
      const token = (await browser.mutate<{ token: string }>('auth.tokens.create', { name: 'pacs' })).data.token;
      return { ...t, database, store, server, token, client: trpcClient(server.url, token) };
    }

    const sha256sOf = async (db: ReturnType<typeof current>['handle']['db'], caseId: string) =>
      (
        await db
          .selectFrom('case_volumes as cv')
          .innerJoin('volumes as v', 'v.id', 'cv.volume_id')
          .select(['cv.role', 'v.sha256'])
          .where('cv.case_id', '=', caseId)
          .orderBy('cv.role')
          .execute()
      ).map((r) => `${r.role}:${r.sha256}`);

    async function until<T>(read: () => Promise<T>, done: (v: T) => boolean): Promise<T> {
      for (let i = 0; i < 3000; i++) {
        const v = await read();
        if (done(v)) return v;
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('never happened');
    }

    it('search (QIDO), pull (WADO) into the same case as an upload, segment, push the SEG and the computed ADC (STOW) into the source study', async () => {
      const { client, database, server, store, token } = await setup(orthanc.dicomWeb);
      const studies = await client.pacs.search.query({});
      expect(studies.map((s) => s.studyInstanceUid)).toEqual([studyUid]);
      expect(studies[0]!.modalities).toContain('MR');
      expect(await client.pacs.search.query({ studyInstanceUid: '1.2.3.4' })).toEqual([]);

      const pulled = await client.pacs.pull.mutate({ studyInstanceUid: studyUid });
      expect(pulled.case!.roles.sort()).toEqual(['adc', 'dwi']);
      expect(pulled.instances).toBeGreaterThanOrEqual(544);
      const uploaded = await fetch(`${server.url}/api/cases/dicom`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: folderForm(PHILIPS_DIR),
      });
      const direct = (await uploaded.json()) as DicomUploadResult;
      expect(uploaded.status).toBe(200);
      expect(await sha256sOf(database.db, pulled.case!.id)).toEqual(await sha256sOf(database.db, direct.case!.id));

      const job = await client.jobs.create.mutate({ caseId: pulled.case!.id });
      const done: JobView = await until(
        () => client.jobs.byId.query({ id: job.id }),
        (j) => j.status !== 'queued' && j.status !== 'running',
      );
      expect(done.status).toBe('succeeded');
      // Through the SDK's helper, which queues the push and follows it to the PACS's answer.
      const seen: string[] = [];
      const pushed: PacsPush = await createClient({ url: server.url, token }).pushToPacs(
        { jobId: job.id },
        { onUpdate: (p) => seen.push(p.status), pollIntervalMs: 100 },
      );
      expect(seen[0]).toMatch(/queued|running|succeeded/);
      expect(await client.pacs.pushes.byId.query({ id: pushed.id })).toEqual(pushed);
      expect(pushed, JSON.stringify(pushed)).toMatchObject({ status: 'succeeded', attempts: 1, studyInstanceUid: studyUid });

      // Orthanc holds the SEG in the source study, and it references the DWI's source series.
      const pacs = new DicomWebClient({ url: orthanc.dicomWeb, timeoutMs: 60_000 });
      const series = await pacs.searchSeries(studyUid);
      expect(series.map((s) => s.modality).sort()).toEqual(expect.arrayContaining(['MR', 'SEG']));
      const seg = series.find((s) => s.seriesInstanceUid === pushed.seriesInstanceUid)!;
      expect(seg.modality).toBe('SEG');
      const studiesNow = await pacs.searchStudies({ StudyInstanceUID: studyUid });
      expect(studiesNow).toHaveLength(1);
      expect(studiesNow[0]!.modalities).toEqual(expect.arrayContaining(['MR', 'SEG']));
      const res = await fetch(
        `${orthanc.dicomWeb}/studies/${studyUid}/series/${seg.seriesInstanceUid}/instances/${pushed.sopInstanceUid}`,
        {
          headers: { accept: 'multipart/related; type="application/dicom"' },
        },
      );
      expect(res.status).toBe(200);
      const boundary = /boundary="?([^";]+)"?/.exec(res.headers.get('content-type')!)![1]!;
      const [stored] = splitMultipart(Buffer.from(await res.arrayBuffer()), boundary);
      const back = readSeg(stored!);
      const dwiSeries = pulled.import.roles.dwi.seriesInstanceUid;
      expect(back.referencedSeriesUid).toBe(dwiSeries);
      expect(back.frames).toHaveLength(32);

      // The computed ADC went with it, as a derived MR series of the same study: MR (source), MR (ADC), SEG.
      expect(pushed.adcSeriesInstanceUid).toMatch(/^2\.25\.\d+$/);
      const adcSeries = series.find((s) => s.seriesInstanceUid === pushed.adcSeriesInstanceUid)!;
      expect(adcSeries.modality).toBe('MR');
      expect(series.filter((s) => s.modality === 'MR').map((s) => s.seriesInstanceUid)).toEqual(
        expect.arrayContaining([dwiSeries, pushed.adcSeriesInstanceUid]),
      );
      const adcRes = await fetch(`${orthanc.dicomWeb}/studies/${studyUid}/series/${pushed.adcSeriesInstanceUid}`, {
        headers: { accept: 'multipart/related; type="application/dicom"' },
      });
      expect(adcRes.status).toBe(200);
      const adcBoundary = /boundary="?([^";]+)"?/.exec(adcRes.headers.get('content-type')!)![1]!;
      const adcFiles = splitMultipart(Buffer.from(await adcRes.arrayBuffer()), adcBoundary);
      expect(adcFiles).toHaveLength(32);
      const adcDir = tempDir('sv-pacs-adc-');
      adcFiles.forEach((f, n) => {
        writeFileSync(path.join(adcDir, `adc-${n}.dcm`), f);
        expect(dciodvfyErrors(path.join(adcDir, `adc-${n}.dcm`))).toEqual([]);
      });
      const adcImages = adcFiles.map(readAdcImage);
      for (const img of adcImages) {
        expect(img.imageType).toEqual(['DERIVED', 'SECONDARY', 'ADC']);
        expect(img.studyInstanceUid).toBe(studyUid);
        expect(img.frameOfReferenceUid).toBe(back.frameOfReferenceUid);
        // DICOM_KEEP_PATIENT=true and the owner pushed: the source study's patient.
        expect(img.dataset.PatientIdentityRemoved).toBeUndefined();
      }
      const adcSha = (await sha256sOf(database.db, pulled.case!.id)).find((r) => r.startsWith('adc:'))!.slice(4);
      const storedAdc = readNifti(await store.read(adcSha));
      const check = compareAdcSeries(adcImages, storedAdc);
      expect(check.unplaced).toBe(0);
      expect(check.differ, check.firstDifference ?? '').toBe(0);

      // The study pulled again now holds strokeview's own ADC: the import computes the ADC anew (the same case), naming why.
      const again = await client.pacs.pull.mutate({ studyInstanceUid: studyUid });
      expect(await sha256sOf(database.db, again.case!.id)).toEqual(await sha256sOf(database.db, pulled.case!.id));
      const ownRow = again.import.series.find((s) => s.seriesInstanceUid === pushed.adcSeriesInstanceUid)!;
      expect(ownRow.reason).toMatch(/^no role: strokeview's own derived ADC/);

      // The CLI: `pacs search` and `pacs push <jobId>` (a second SEG into the same study).
      const env = { STROKEVIEW_URL: server.url, STROKEVIEW_TOKEN: token };
      const listed = await cli(['pacs', 'search', '--json'], env);
      expect(listed.status, listed.stderr).toBe(0);
      expect((JSON.parse(listed.stdout) as { studyInstanceUid: string }[]).map((s) => s.studyInstanceUid)).toEqual([studyUid]);
      const cliPush = await cli(['pacs', 'push', job.id], env);
      expect(cliPush.status, cliPush.stderr).toBe(0);
      expect(cliPush.stdout).toMatch(
        new RegExp(`^stored in the PACS: study ${studyUid.replace(/\./g, '\\.')}, SEG series 2\\.25\\.\\d+, instance 2\\.25\\.\\d+$`, 'm'),
      );
      expect(cliPush.stdout).toMatch(/^and the computed ADC as derived MR series 2\.25\.\d+$/m);
    }, 600_000);

    it('a PACS that is down: the push is retried with the reason shown, then fails saying so; no PACS configured is a clear 503', async () => {
      const { client, server, token } = await setup('http://127.0.0.1:9/dicom-web');
      const search = await client.pacs.search.query({}).catch((e: { message: string; data?: { httpStatus?: number } }) => e);
      expect((search as { data?: { httpStatus?: number } }).data?.httpStatus).toBe(503);
      expect((search as { message: string }).message).toMatch(/The PACS cannot be reached for a study search/);

      // A DICOM case (uploaded directly) and a corrected mask drawn on it: pushed to a PACS that is down.
      const auth = { authorization: `Bearer ${token}` };
      const up = (await (
        await fetch(`${server.url}/api/cases/dicom`, { method: 'POST', headers: auth, body: folderForm(PHILIPS_DIR) })
      ).json()) as DicomUploadResult;
      const dwi = up.case!.volumes.find((v) => v.role === 'dwi')!;
      const data = new Uint8Array(dwi.dims[0] * dwi.dims[1] * dwi.dims[2]);
      data.fill(1, 20_000, 20_300);
      const fd = new FormData();
      fd.set('caseId', up.case!.id);
      fd.set(
        'file',
        new File([new Uint8Array(encodeNifti({ dims: dwi.dims, affine: dwi.affine, datatype: 'uint8', data, description: 'm' }))], 'm.nii'),
      );
      const version = (await (
        await fetch(`${server.url}/api/masks`, { method: 'POST', headers: auth, body: fd })
      ).json()) as MaskVersionView;
      const push = await client.pacs.push.mutate({ maskVersionId: version.id });
      const retrying = await until(
        () => client.pacs.pushes.byId.query({ id: push.id }),
        (p) => p.attempts >= 1 && p.status !== 'running',
      );
      expect(retrying.error).toMatch(/The PACS cannot be reached for the storage \(STOW-RS\)/);
      const failed = await until(
        () => client.pacs.pushes.byId.query({ id: push.id }),
        (p) => p.status === 'failed' || p.status === 'succeeded',
      );
      expect(failed).toMatchObject({ status: 'failed', attempts: 5 });
      expect(failed.error).toMatch(/cannot be reached.*; gave up after 5 attempts$/);

      // A NIfTI-only deployment: no PACS configured.
      const noPacs = makeTestApp({ database: current().handle, models });
      const b = new TestBrowser(noPacs.app);
      await b.mutate('auth.register', { email: 'nopacs@example.org', password: 'correct horse battery' });
      const r = await b.query('pacs.search', {});
      expect(r.status).toBe(503);
      expect(JSON.stringify(r.body)).toMatch(/No PACS is configured on this server/);
    }, 600_000);
  });
});
