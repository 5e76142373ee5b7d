import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { JobView } from '../../shared/jobs.js';
import type { MaskVersionView } from '../../shared/masks.js';
import { seedDemoCases } from '../cases/demo.js';
import { runRetention } from '../jobs/retention.js';
import { readNifti, toFloat32 } from '../nifti/read.js';
import { encodeNifti, writeNiftiGz } from '../nifti/write.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from '../segmentation/models.js';
import { TestBrowser } from '../test/browser.js';
import { type Running, serveStack } from '../test/stack.js';
import { describeEachDatabase } from '../test/databases.js';
import { trpcClient } from '../test/live.js';

let models: ModelRegistry;
beforeAll(async () => {
  models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
});
afterAll(async () => {
  await models?.close();
});

describeEachDatabase('corrected masks', (current) => {
  const running: Running = [];
  afterEach(async () => {
    for (const r of running.splice(0).reverse()) await r.stop();
  });

  async function setup() {
    const database = current().handle;
    const { store, server, ...t } = await serveStack({ database, models, running, prefix: 'sv-masks-' });
    await seedDemoCases(database.db, store, 1);
    const user = async (email: string) => {
      const b = new TestBrowser(t.app);
      await b.mutate('auth.register', { email, password: 'correct horse battery' });
      const token = (await b.mutate<{ token: string }>('auth.tokens.create', { name: 't' })).data.token;
      return { browser: b, client: trpcClient(server.url, token), token };
    };
    const me = await user('m@x.org');
    const caseId = (await me.client.cases.list.query()).items[0]!.id;
    return { ...t, store, server, user, me, caseId };
  }

  const form = (fields: Record<string, string | Uint8Array>) => {
    const fd = new FormData();
    for (const [k, v] of Object.entries(fields)) fd.set(k, typeof v === 'string' ? v : new File([new Uint8Array(v)], 'mask.nii.gz'));
    return fd;
  };

  async function finishedJob(client: ReturnType<typeof trpcClient>, caseId: string): Promise<JobView> {
    const job = await client.jobs.create.mutate({ caseId });
    for (let i = 0; i < 1500; i++) {
      const j = await client.jobs.byId.query({ id: job.id });
      if (j.status === 'succeeded') return j;
      if (j.status === 'failed' || j.status === 'cancelled') throw new Error(j.error ?? j.status);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the job never finished');
  }

  it('a predicted mask, downloaded, changed and saved, comes back from list and its download with the DWI grid and exactly the changed voxels', async () => {
    const { me, caseId, server } = await setup();
    const job = await finishedJob(me.client, caseId);
    const download = await fetch(job.result!.mask.downloadUrl);
    expect(download.status).toBe(200);
    expect(download.headers.get('content-disposition')).toMatch(/^attachment; filename="Demo_phantom_1_adc-dwi-v2_prediction\.nii\.gz"$/);
    const predicted = readNifti(new Uint8Array(await download.arrayBuffer()));
    const values = Uint8Array.from(toFloat32(predicted));
    const before = values.reduce((a, b) => a + b, 0);
    // erase the first 40 lesion voxels, draw 25 new ones where there was none
    let erased = 0;
    let drawn = 0;
    for (let i = 0; i < values.length && erased < 40; i++) {
      if (values[i]) {
        values[i] = 0;
        erased++;
      }
    }
    for (let i = 0; i < values.length && drawn < 25; i += 997) {
      if (!values[i]) {
        values[i] = 1;
        drawn++;
      }
    }
    const changed = encodeNifti({ dims: predicted.dims, affine: predicted.affine, datatype: 'uint8', data: values }); // raw .nii, as NiiVue's saveImage gives it
    const saved = await me.browser.upload<MaskVersionView>(
      'masks.save',
      form({ caseId, jobId: job.id, note: 'trimmed the edge', file: changed }),
    );
    expect(saved.status).toBe(200);
    expect(saved.data).toMatchObject({
      caseId,
      version: 1,
      note: 'trimmed the edge',
      jobId: job.id,
      voxels: before - 40 + 25,
      author: { email: 'm@x.org' },
    });
    expect(saved.data.diceVsPrediction).toBeCloseTo((2 * (before - 40)) / (before + before - 15), 10);
    expect(saved.data.diceVsGroundTruth).toBeGreaterThan(0.9);
    expect(saved.data.volumeMl).toBeCloseTo((before - 15) * 0.008, 10);

    const listed = await me.client.masks.list.query({ caseId });
    expect(listed.items.map((m) => m.id)).toEqual([saved.data.id]);
    const file = await fetch(listed.items[0]!.volume.downloadUrl);
    expect(file.headers.get('content-disposition')).toBe('attachment; filename="Demo_phantom_1_corrected_v1.nii.gz"');
    const back = readNifti(new Uint8Array(await file.arrayBuffer()));
    const dwi = (await me.client.cases.byId.query({ id: caseId })).volumes.find((v) => v.role === 'dwi')!;
    expect(back.dims).toEqual(dwi.dims);
    for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expect(back.affine[r]![c]).toBeCloseTo(dwi.affine[r]![c]!, 4);
    expect(toFloat32(back).reduce((a, b) => a + b, 0)).toBe(before - 15);
    let diff = 0;
    const orig = toFloat32(predicted);
    const now = toFloat32(back);
    for (let i = 0; i < now.length; i++) if (now[i] !== orig[i]) diff++;
    expect(diff).toBe(65); // exactly the changed voxels
    void server;
  });

  it('versions count up per author; others see none of them (even on a shared case); delete is the author’s; retention keeps them', async () => {
    const { me, user, caseId, store } = await setup();
    const dwi = (await me.client.cases.byId.query({ id: caseId })).volumes.find((v) => v.role === 'dwi')!;
    const empty = writeNiftiGz({
      dims: dwi.dims,
      affine: dwi.affine,
      datatype: 'uint8',
      data: new Uint8Array(dwi.dims[0] * dwi.dims[1] * dwi.dims[2]),
    });
    const v1 = await me.browser.upload<MaskVersionView>('masks.save', form({ caseId, file: empty }));
    const v2 = await me.browser.upload<MaskVersionView>('masks.save', form({ caseId, file: empty, note: 'second' }));
    expect([v1.data.version, v2.data.version]).toEqual([1, 2]);
    expect(v1.data.diceVsPrediction).toBeNull();
    expect((await me.client.masks.list.query({ caseId })).items.map((m) => m.version)).toEqual([2, 1]);

    const other = await user('o@x.org');
    expect((await other.client.masks.list.query({ caseId })).items).toEqual([]);
    for (const call of [
      () => other.client.masks.byId.query({ id: v1.data.id }),
      () => other.client.masks.delete.mutate({ id: v1.data.id }),
    ]) {
      expect(((await call().catch((e: unknown) => e)) as { data?: { code?: string } }).data?.code).toBe('NOT_FOUND');
    }
    const theirs = await other.browser.upload<MaskVersionView>('masks.save', form({ caseId, file: empty }));
    expect(theirs.data.version).toBe(1);

    await sql`update volumes set created_at = now() - interval '1 day'`.execute(current().handle.db);
    await runRetention(current().handle.db, store);
    expect((await me.client.masks.list.query({ caseId })).items).toHaveLength(2);
    expect((await fetch((await me.client.masks.byId.query({ id: v1.data.id })).volume.url)).status).toBe(200);

    await me.client.masks.delete.mutate({ id: v2.data.id });
    expect((await me.client.masks.list.query({ caseId })).items.map((m) => m.version)).toEqual([1]);
  });

  it('refuses a mask off the DWI grid, with labels other than 0/1, or for an unknown case — 4xx naming the problem, nothing stored', async () => {
    const { me, caseId } = await setup();
    const dwi = (await me.client.cases.byId.query({ id: caseId })).volumes.find((v) => v.role === 'dwi')!;
    const count = async () =>
      (await sql<{ n: number }>`select count(*)::int as n from mask_versions`.execute(current().handle.db)).rows[0]!.n;
    const volumesBefore = (await sql<{ n: number }>`select count(*)::int as n from volumes`.execute(current().handle.db)).rows[0]!.n;
    const small = writeNiftiGz({ dims: [96, 96, 60], affine: dwi.affine, datatype: 'uint8', data: new Uint8Array(96 * 96 * 60) });
    const off = await me.browser.upload('masks.save', form({ caseId, file: small }));
    expect(off.status).toBe(422);
    expect(off.body.error?.message).toBe("The mask is 96×96×60 but the case's DWI is 112×112×73; draw it on the DWI");
    const twos = writeNiftiGz({
      dims: dwi.dims,
      affine: dwi.affine,
      datatype: 'uint8',
      data: new Uint8Array(dwi.dims[0] * dwi.dims[1] * dwi.dims[2]).fill(2),
    });
    const labels = await me.browser.upload('masks.save', form({ caseId, file: twos }));
    expect(labels.status).toBe(422);
    expect(labels.body.error?.message).toBe('Mask: labels must be 0 or 1; found 2');
    const nowhere = await me.browser.upload('masks.save', form({ caseId: '00000000-0000-4000-8000-000000000000', file: twos }));
    expect(nowhere.status).toBe(404);
    const garbage = await me.browser.upload('masks.save', form({ caseId, file: new Uint8Array([1, 2, 3]) }));
    expect(garbage.status).toBe(422);
    expect(await count()).toBe(0);
    expect((await sql<{ n: number }>`select count(*)::int as n from volumes`.execute(current().handle.db)).rows[0]!.n).toBe(volumesBefore);
  });
});
