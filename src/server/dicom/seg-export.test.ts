import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { DicomUploadResult, SegExportView } from '../../shared/dicom.js';
import type { JobView } from '../../shared/jobs.js';
import type { MaskVersionView } from '../../shared/masks.js';
import { seedDemoCases } from '../cases/demo.js';
import { readNifti } from '../nifti/read.js';
import { encodeNifti } from '../nifti/write.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from '../segmentation/models.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';
import { HAVE_PHILIPS, PHILIPS_DIR, PHILIPS_SKIP_NOTE, dciodvfyErrors, folderForm, tempDir } from '../test/dicom.js';
import { trpcClient } from '../test/live.js';
import { type Running, serveStack } from '../test/stack.js';
import { readSeg } from './seg-read.js';

// #26: the SEG export through the API — a DICOM-imported case (the real Philips series) is
// segmented by the built-in model; its mask and a corrected version of it download as DICOM SEG
// (`GET /api/jobs/{id}/seg.dcm`, `GET /api/masks/{id}/seg.dcm`, tRPC `masks.exportSeg`), valid
// for dciodvfy and equal, voxel for voxel, to the NIfTI masks. A NIfTI case gets a 422.

let models: ModelRegistry;
beforeAll(async () => {
  models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
});
afterAll(async () => {
  await models?.close();
});

describe.skipIf(!HAVE_PHILIPS)(`DICOM SEG export over the API${PHILIPS_SKIP_NOTE}`, () => {
  describeEachDatabase('seg export', (current) => {
    const running: Running = [];
    afterEach(async () => {
      for (const r of running.splice(0).reverse()) await r.stop();
    });

    async function setup() {
      const database = current().handle;
      const { store, server, ...t } = await serveStack({
        database,
        models,
        running,
        prefix: 'sv-seg-store-',
        uploadDir: tempDir('sv-seg-spool-'),
      });
      const browser = new TestBrowser(t.app);
      await browser.mutate('auth.register', { email: 'seg@example.org', password: 'correct horse battery' });
      const token = (await browser.mutate<{ token: string }>('auth.tokens.create', { name: 'seg' })).data.token;
      const client = trpcClient(server.url, token);
      const auth = { authorization: `Bearer ${token}` };
      const imported = await fetch(`${server.url}/api/cases/dicom`, { method: 'POST', headers: auth, body: folderForm(PHILIPS_DIR) });
      const body = (await imported.json()) as DicomUploadResult;
      expect(imported.status, JSON.stringify(body).slice(0, 2000)).toBe(200);
      return { ...t, store, server, client, auth, caseId: body.case!.id, database };
    }

    async function finishedJob(client: ReturnType<typeof trpcClient>, caseId: string): Promise<JobView> {
      const job = await client.jobs.create.mutate({ caseId });
      for (let i = 0; i < 3000; i++) {
        const j = await client.jobs.byId.query({ id: job.id });
        if (j.status === 'succeeded') return j;
        if (j.status === 'failed' || j.status === 'cancelled') throw new Error(j.error ?? j.status);
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error('the job never finished');
    }

    const maskOf = async (url: string) => {
      const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
      return readNifti(bytes[0] === 0x1f ? gunzipSync(bytes) : bytes);
    };

    /** Downloads a SEG, validates it with dciodvfy and compares it voxel-wise with the NIfTI mask. */
    async function checkSeg(res: Response, mask: ReturnType<typeof readNifti>, dir: string) {
      expect(res.status, res.status === 200 ? '' : await res.clone().text()).toBe(200);
      expect(res.headers.get('content-type')).toBe('application/dicom');
      expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename=".+\.seg\.dcm"$/);
      const bytes = new Uint8Array(await res.arrayBuffer());
      const file = path.join(dir, 'export.seg.dcm');
      writeFileSync(file, bytes);
      expect(dciodvfyErrors(file)).toEqual([]);
      const back = readSeg(bytes);
      const voxels = back.toVoxels(mask.dims, mask.affine);
      expect(voxels.unplaced).toBe(0);
      let differ = 0;
      let set = 0;
      for (let v = 0; v < voxels.data.length; v++) {
        if ((mask.data[v]! > 0 ? 1 : 0) !== voxels.data[v]) differ++;
        set += voxels.data[v]!;
      }
      expect(differ).toBe(0);
      return { back, set };
    }

    it("a job's mask and its corrected version export as DICOM SEG: AUTOMATIC / SEMIAUTOMATIC, the model named, equal to the masks", async () => {
      const { server, client, auth, caseId } = await setup();
      const dir = tempDir('sv-seg-out-');
      const job = await finishedJob(client, caseId);
      const predicted = await maskOf(job.result!.mask.url);

      const fromJob = await checkSeg(await fetch(`${server.url}/api/jobs/${job.id}/seg.dcm`, { headers: auth }), predicted, dir);
      expect(fromJob.back.segment.SegmentAlgorithmType).toBe('AUTOMATIC');
      expect(fromJob.back.segment.SegmentAlgorithmName).toBe(job.modelIds[0]);
      expect(fromJob.back.dataset.PatientIdentityRemoved).toBe('YES');

      // A corrected version: the prediction with a block of voxels drawn in.
      const [nx, ny] = predicted.dims;
      const corrected = new Uint8Array(predicted.data.length);
      for (let v = 0; v < corrected.length; v++) corrected[v] = predicted.data[v]! > 0 ? 1 : 0;
      for (let k = 12; k < 15; k++) for (let j = 50; j < 58; j++) for (let i = 40; i < 47; i++) corrected[i + nx * (j + ny * k)] = 1;
      const fd = new FormData();
      fd.set('caseId', caseId);
      fd.set('jobId', job.id);
      const nii = encodeNifti({ dims: predicted.dims, affine: predicted.affine, datatype: 'uint8', data: corrected, description: 'm' });
      fd.set('file', new File([new Uint8Array(nii)], 'mask.nii'));
      const saved = await fetch(`${server.url}/api/masks`, { method: 'POST', headers: auth, body: fd });
      const version = (await saved.json()) as MaskVersionView;
      expect(saved.status, JSON.stringify(version)).toBe(200);
      const correctedMask = await maskOf(version.volume.url);
      const fromVersion = await checkSeg(
        await fetch(`${server.url}/api/masks/${version.id}/seg.dcm`, { headers: auth }),
        correctedMask,
        dir,
      );
      expect(fromVersion.back.segment.SegmentAlgorithmType).toBe('SEMIAUTOMATIC');
      expect(fromVersion.set).toBe(corrected.reduce((a, b) => a + b, 0));
      expect(fromVersion.back.referencedSeriesUid).toBe(fromJob.back.referencedSeriesUid);

      // tRPC: the same SEG facts, the file in base64.
      const viaTrpc: SegExportView = await client.masks.exportSeg.query({ maskVersionId: version.id });
      expect(viaTrpc).toMatchObject({ caseId, frames: 32, algorithmType: 'SEMIAUTOMATIC' });
      expect(readSeg(new Uint8Array(Buffer.from(viaTrpc.data, 'base64'))).frames).toHaveLength(32);
    }, 300_000);

    it('a NIfTI case is a 422 saying why; an unknown or foreign id is a 404; no token is a 401', async () => {
      const { server, client, auth, database, store } = await setup();
      await seedDemoCases(database.db, store, 1);
      const demo = (await client.cases.list.query()).items.find((c) => c.source === 'demo')!;
      const job = await finishedJob(client, demo.id);
      const res = await fetch(`${server.url}/api/jobs/${job.id}/seg.dcm`, { headers: auth });
      const body = (await res.json()) as { message: string };
      expect(res.status).toBe(422);
      expect(body.message).toMatch(/was not imported from DICOM.*download the mask as NIfTI instead/);
      const unknown = await fetch(`${server.url}/api/masks/00000000-0000-4000-8000-000000000000/seg.dcm`, { headers: auth });
      expect(unknown.status).toBe(404);
      const bad = await fetch(`${server.url}/api/masks/not-an-id/seg.dcm`, { headers: auth });
      expect(bad.status).toBe(400);
      expect(((await bad.json()) as { message: string }).message).toMatch(/mask version id/);
      const anonymous = await fetch(`${server.url}/api/masks/00000000-0000-4000-8000-000000000000/seg.dcm`);
      expect(anonymous.status).toBe(401);
    }, 300_000);
  });
});
