import { gunzipSync, gzipSync } from 'node:zlib';
import { TRPCClientError } from '@trpc/client';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import type { JobView } from '../../shared/jobs.js';
import type { Lesion } from '../../shared/lesions.js';
import type { MaskVersionView } from '../../shared/masks.js';
import { seedDemoCases } from '../cases/demo.js';
import { importIsles } from '../cases/import.js';
import { readNifti, toFloat32 } from '../nifti/read.js';
import { encodeNifti } from '../nifti/write.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from '../segmentation/models.js';
import { TestBrowser } from '../test/browser.js';
import { type Running, serveStack } from '../test/stack.js';
import { describeEachDatabase } from '../test/databases.js';
import { HAVE_ISLES22, ISLES22_DIR, ISLES22_TITLE } from '../test/isles22.js';
import { trpcClient } from '../test/live.js';

// #24 over real HTTP on both databases: the lesion list of a job and of a saved version, and
// click refinement with the built-in interactive model (click-grow-v1, through onnxruntime).

let models: ModelRegistry;
beforeAll(async () => {
  models = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
});
afterAll(async () => {
  await models?.close();
});

type Dims = [number, number, number];
type Client = ReturnType<typeof trpcClient>;

/**
 * An independent labelling for the test: union–find over the 26 neighbours already visited
 * (a different algorithm from the server's breadth-first search), then each component's facts.
 */
function components(mask: Uint8Array, dims: Dims) {
  const [nx, ny, nz] = dims;
  const parent = new Int32Array(mask.length).fill(-1);
  const find = (i: number): number => {
    while (parent[i] !== i) {
      parent[i] = parent[parent[i]!]!;
      i = parent[i]!;
    }
    return i;
  };
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++) {
        const i = z * nx * ny + y * nx + x;
        if (!mask[i]) continue;
        parent[i] = i;
        for (let dz = -1; dz <= 0; dz++)
          for (let dy = -1; dy <= 1; dy++)
            for (let dx = -1; dx <= 1; dx++) {
              if (dz === 0 && (dy > 0 || (dy === 0 && dx >= 0))) continue;
              const [xx, yy, zz] = [x + dx, y + dy, z + dz];
              if (xx < 0 || yy < 0 || zz < 0 || xx >= nx || yy >= ny) continue;
              const j = zz * nx * ny + yy * nx + xx;
              if (mask[j]) parent[find(i)] = find(j);
            }
      }
  const byRoot = new Map<number, { voxels: number; sum: [number, number, number]; members: number[] }>();
  for (let i = 0; i < mask.length; i++) {
    if (!mask[i]) continue;
    const r = find(i);
    const c = byRoot.get(r) ?? { voxels: 0, sum: [0, 0, 0], members: [] };
    const z = Math.floor(i / (nx * ny));
    const y = Math.floor((i - z * nx * ny) / nx);
    c.voxels++;
    c.sum[0] += i - z * nx * ny - y * nx;
    c.sum[1] += y;
    c.sum[2] += z;
    c.members.push(i);
    byRoot.set(r, c);
  }
  return [...byRoot.values()].map((c) => ({
    voxels: c.voxels,
    centroid: c.sum.map((s) => s / c.voxels) as [number, number, number],
    members: new Set(c.members),
  }));
}

const binary = (bytes: Uint8Array) => Uint8Array.from(toFloat32(readNifti(bytes)), (v) => (v !== 0 ? 1 : 0));
const fetchMask = async (url: string) => binary(new Uint8Array(await (await fetch(url)).arrayBuffer()));
const decodeMaskGz = (b64: string) => new Uint8Array(gunzipSync(Buffer.from(b64, 'base64')));
const encodeMaskGz = (mask: Uint8Array) => gzipSync(mask).toString('base64');
function dice(a: Uint8Array, b: Uint8Array) {
  let both = 0;
  let sa = 0;
  let sb = 0;
  for (let i = 0; i < a.length; i++) {
    sa += a[i]!;
    sb += b[i]!;
    both += a[i]! & b[i]!;
  }
  return sa + sb ? (2 * both) / (sa + sb) : 1;
}

/** The list the server gave, checked against the test's own labelling of the mask and the truth. */
function expectListMatches(items: Lesion[], mask: Uint8Array, truth: Uint8Array, dims: Dims) {
  const pred = components(mask, dims);
  const gt = components(truth, dims);
  const touches = (a: Set<number>, b: Uint8Array) => [...a].some((i) => b[i]);
  const expected = [
    ...pred.map((c) => ({ status: touches(c.members, truth) ? 'TP' : 'FP', voxels: c.voxels, centroid: c.centroid })),
    ...gt.filter((c) => !touches(c.members, mask)).map((c) => ({ status: 'FN', voxels: c.voxels, centroid: c.centroid })),
  ];
  const count = (list: { status: string | null }[], s: string) => list.filter((x) => x.status === s).length;
  for (const s of ['TP', 'FP', 'FN']) expect(count(items, s), s).toBe(count(expected, s));
  expect(items.length).toBe(expected.length);
  // Paired by status and size, then by centroid; the centroids agree to the list's rounding (0.01 voxel).
  const order = (a: { status: string | null; voxels: number; centroid: number[] }, b: typeof a) =>
    String(a.status).localeCompare(String(b.status)) ||
    a.voxels - b.voxels ||
    a.centroid[2]! - b.centroid[2]! ||
    a.centroid[1]! - b.centroid[1]! ||
    a.centroid[0]! - b.centroid[0]!;
  const got = items.map((l) => ({ status: l.status, voxels: l.voxels, centroid: l.centroidVoxel as number[] })).sort(order);
  const want = [...expected].sort(order);
  got.forEach((g, n) => {
    const w = want[n]!;
    expect([g.status, g.voxels]).toEqual([w.status, w.voxels]);
    for (let a = 0; a < 3; a++) expect(Math.abs(g.centroid[a]! - w.centroid[a]!)).toBeLessThanOrEqual(0.006);
  });
}

async function refineError(p: Promise<unknown>): Promise<{ status: number; message: string }> {
  try {
    await p;
  } catch (err) {
    if (err instanceof TRPCClientError) return { status: (err.data as { httpStatus: number }).httpStatus, message: err.message };
    throw err;
  }
  throw new Error('expected the call to be refused');
}

describeEachDatabase('lesions and click refinement', (current) => {
  const running: Running = [];
  afterEach(async () => {
    for (const r of running.splice(0).reverse()) await r.stop();
  });

  async function setup(opts: { isles?: boolean } = {}) {
    const database = current().handle;
    const { store, server, ...t } = await serveStack({ database, models, running, prefix: 'sv-refine-' });
    let caseId: string;
    if (opts.isles) {
      const report = await importIsles(database.db, store, ISLES22_DIR, { maxVoxels: 50_000_000 });
      caseId = report.imported[0]!.caseId;
    } else {
      await seedDemoCases(database.db, store, 1);
      caseId = '';
    }
    const user = async (email: string) => {
      const b = new TestBrowser(t.app);
      await b.mutate('auth.register', { email, password: 'correct horse battery' });
      const token = (await b.mutate<{ token: string }>('auth.tokens.create', { name: 't' })).data.token;
      return { browser: b, client: trpcClient(server.url, token) };
    };
    const me = await user('r@x.org');
    if (!caseId) caseId = (await me.client.cases.list.query()).items[0]!.id;
    const detail = await me.client.cases.byId.query({ id: caseId });
    const dwi = detail.volumes.find((v) => v.role === 'dwi')!;
    const truth = await fetchMask(detail.volumes.find((v) => v.role === 'mask')!.url);
    return { ...t, database, user, me, caseId, dwi, dims: dwi.dims as Dims, truth };
  }

  async function finishedJob(client: Client, caseId: string): Promise<JobView> {
    const job = await client.jobs.create.mutate({ caseId });
    for (let i = 0; i < 3000; i++) {
      const j = await client.jobs.byId.query({ id: job.id });
      if (j.status === 'succeeded') return j;
      if (j.status === 'failed' || j.status === 'cancelled') throw new Error(j.error ?? j.status);
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('the job never finished');
  }

  const form = (fields: Record<string, string | Uint8Array>) => {
    const fd = new FormData();
    for (const [k, v] of Object.entries(fields)) fd.set(k, typeof v === 'string' ? v : new File([new Uint8Array(v)], 'mask.nii.gz'));
    return fd;
  };

  it.skipIf(!HAVE_ISLES22)(
    `${ISLES22_TITLE}: the default job's lesion list matches an independent labelling of its mask against the truth`,
    async () => {
      const { me, caseId, dims, truth } = await setup({ isles: true });
      const job = await finishedJob(me.client, caseId);
      const lesions = job.result!.lesions!;
      const mask = await fetchMask(job.result!.mask.url);
      expectListMatches(lesions.items, mask, truth, dims);
      // The numbers the issue quotes for this case: 52 components, 13 of them touching a true lesion, 5 true lesions missed.
      expect(lesions.counts).toEqual({ tp: 13, fp: 39, fn: 5, total: 57 });
      expect(lesions.adcUnit).toBe('1e-3');
      for (const l of lesions.items) {
        expect(l.volumeMl).toBeGreaterThan(0);
        expect(['left', 'right', 'midline']).toContain(l.hemisphere);
        expect(l.minAdc!).toBeLessThanOrEqual(l.meanAdc!);
        // the seed voxel lies inside its lesion
        const [i, j, k] = l.seedVoxel;
        const at = k * dims[0] * dims[1] + j * dims[0] + i;
        expect(l.status === 'FN' ? truth[at] : mask[at]).toBe(1);
      }
    },
    300_000,
  );

  it('a phantom with an injected false positive: rejecting it (or a negative click on it) raises Dice; a click in a missed lesion grows it (Dice ≥ 0.8)', async () => {
    const { me, caseId, dims, truth, database } = await setup();
    const job = await finishedJob(me.client, caseId);
    const predicted = await fetchMask(job.result!.mask.url);
    expectListMatches(job.result!.lesions!.items, predicted, truth, dims);
    expect(job.result!.lesions!.counts.fp).toBe(0);
    // A 5×5×3 blob far from every true lesion: an FP.
    const withFp = new Uint8Array(predicted);
    const [nx, ny] = dims;
    let blob: [number, number, number] | null = null;
    for (let z = 2; z < dims[2] - 3 && !blob; z += 3)
      for (let y = 3; y < ny - 6 && !blob; y += 5)
        for (let x = 3; x < nx - 6 && !blob; x += 5) {
          let clear = true;
          for (let dz = -2; dz <= 4 && clear; dz++)
            for (let dy = -2; dy <= 6 && clear; dy++)
              for (let dx = -2; dx <= 6 && clear; dx++) {
                const i = (z + dz) * nx * ny + (y + dy) * nx + (x + dx);
                if (z + dz < 0 || z + dz >= dims[2] || truth[i] || predicted[i]) clear = false;
              }
          if (clear) blob = [x, y, z];
        }
    expect(blob).not.toBeNull();
    const [bx, by, bz] = blob!;
    for (let z = bz; z < bz + 3; z++)
      for (let y = by; y < by + 5; y++) for (let x = bx; x < bx + 5; x++) withFp[z * nx * ny + y * nx + x] = 1;
    const dwi = (await me.client.cases.byId.query({ id: caseId })).volumes.find((v) => v.role === 'dwi')!;
    const nifti = (m: Uint8Array) => encodeNifti({ dims, affine: dwi.affine, datatype: 'uint8', data: m });
    const v1 = await me.browser.upload<MaskVersionView>('masks.save', form({ caseId, jobId: job.id, file: nifti(withFp) }));
    expect(v1.status).toBe(200);
    expect(v1.data.lesions!.counts.fp).toBe(1);
    expect(v1.data.diceVsGroundTruth!).toBeLessThan(job.result!.metrics.dice!);

    // Rejecting it (the editor removes the component) and saving: Dice back up, the FP gone.
    const v2 = await me.browser.upload<MaskVersionView>(
      'masks.save',
      form({ caseId, jobId: job.id, file: nifti(predicted), rejectedLesions: '1' }),
    );
    expect(v2.data.diceVsGroundTruth!).toBeGreaterThan(v1.data.diceVsGroundTruth!);
    expect(v2.data.lesions!.counts.fp).toBe(0);
    expect(v2.data.provenance!.summary).toBe(`Started from job ${job.id} (adc-dwi-v2); 1 lesion rejected`);

    // A negative click on it, from the saved version: the blob goes, nothing else changes.
    const fpLesion = v1.data.lesions!.items.find((l) => l.status === 'FP')!;
    const removed = await me.client.masks.refine.mutate({
      caseId,
      from: { versionId: v1.data.id },
      prompts: [{ voxel: fpLesion.seedVoxel, positive: false }],
    });
    expect(removed.lesions.counts.fp).toBe(0);
    expect(Buffer.from(decodeMaskGz(removed.maskGz)).equals(Buffer.from(predicted))).toBe(true);
    expect(removed.changed).toEqual({ min: [bx, by, bz], max: [bx + 4, by + 4, bz + 2] });

    // A true lesion the mask misses: a click in it grows it back.
    const target = job.result!.lesions!.items.find((l) => l.status === 'TP')!;
    const without = new Uint8Array(predicted);
    const lesionOnly = new Uint8Array(truth.length);
    const gt =
      components(truth, dims).find((c) =>
        [...c.members].some((i) => predicted[i] && target.seedVoxel[2] * nx * ny + target.seedVoxel[1] * nx + target.seedVoxel[0] === i),
      ) ?? components(truth, dims).sort((a, b) => b.voxels - a.voxels)[0]!;
    for (const i of gt.members) lesionOnly[i] = 1;
    // erase every predicted component touching that true lesion
    for (const c of components(predicted, dims)) if ([...c.members].some((i) => lesionOnly[i])) for (const i of c.members) without[i] = 0;
    const inside = [...gt.members].map((i) => [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))] as [number, number, number]);
    const centre = gt.centroid.map(Math.round);
    const click = inside.reduce((best, v) =>
      v.reduce((d, x, a) => d + (x - centre[a]!) ** 2, 0) < best.reduce((d, x, a) => d + (x - centre[a]!) ** 2, 0) ? v : best,
    );
    const grown = await me.client.masks.refine.mutate({
      caseId,
      from: { maskGz: encodeMaskGz(without) },
      prompts: [{ voxel: click, positive: true }],
    });
    const after = decodeMaskGz(grown.maskGz);
    const region = Uint8Array.from(after, (v, i) => (v && !without[i] ? 1 : 0));
    expect(dice(region, lesionOnly)).toBeGreaterThanOrEqual(0.8);
    expect(grown.lesions.counts.fn).toBe(0);

    // The cache: the first click of this user on this case prepared it; the next ones did not.
    expect(removed.cached).toBe(false);
    expect(grown.cached).toBe(true);
    // Saving counts the clicks the server refined in the provenance, and ends the session.
    const v3 = await me.browser.upload<MaskVersionView>('masks.save', form({ caseId, jobId: job.id, file: nifti(after), penStrokes: '2' }));
    expect(v3.data.provenance).toMatchObject({ clicksAdded: 1, clicksRemoved: 1, penStrokes: 2, rejectedLesions: 0 });
    expect(v3.data.provenance!.summary).toBe(`Started from job ${job.id} (adc-dwi-v2); 1 click added; 1 negative click; 2 pen strokes`);
    const again = await me.client.masks.refine.mutate({ caseId, from: { jobId: job.id }, prompts: [{ voxel: click, positive: true }] });
    expect(again.cached).toBe(false);
    await me.client.masks.endRefine.mutate({ caseId });
    expect(
      (await me.client.masks.refine.mutate({ caseId, from: { jobId: job.id }, prompts: [{ voxel: click, positive: true }] })).cached,
    ).toBe(false);
    // Nothing a refinement did was stored: only the three saved versions exist.
    const rows = await database.db.selectFrom('mask_versions').select('id').execute();
    expect(rows).toHaveLength(3);
  }, 300_000);

  it('bad refinements get a 4xx naming the problem, and nothing is stored', async () => {
    const { me, user, caseId, dims, database, app } = await setup();
    const job = await finishedJob(me.client, caseId);
    const other = await user('o@x.org');
    const theirJob = await finishedJob(other.client, caseId);
    const ok = { caseId, from: { jobId: job.id }, prompts: [{ voxel: [1, 1, 1] as [number, number, number], positive: true }] };
    const cases: [string, () => Promise<unknown>, number, RegExp][] = [
      [
        'outside the grid',
        () => me.client.masks.refine.mutate({ ...ok, prompts: [{ voxel: [dims[0], 0, 0], positive: true }] }),
        400,
        /Click 1 at \(\d+, 0, 0\) is outside the case's \d+×\d+×\d+ grid/,
      ],
      [
        'negative voxel',
        () => me.client.masks.refine.mutate({ ...ok, prompts: [{ voxel: [-1, 0, 0], positive: true }] }),
        400,
        /outside the case's/,
      ],
      [
        'too many clicks',
        () => me.client.masks.refine.mutate({ ...ok, prompts: Array.from({ length: 33 }, () => ok.prompts[0]!) }),
        400,
        /At most 32 clicks/,
      ],
      ['no clicks', () => me.client.masks.refine.mutate({ ...ok, prompts: [] }), 400, /at least one click/],
      [
        "another user's job",
        () => me.client.masks.refine.mutate({ ...ok, from: { jobId: theirJob.id } }),
        404,
        /No such job for this case/,
      ],
      [
        'a version that is not there',
        () => me.client.masks.refine.mutate({ ...ok, from: { versionId: '00000000-0000-4000-8000-000000000000' } }),
        404,
        /No such mask version/,
      ],
      [
        'a segmentation model',
        () => me.client.masks.refine.mutate({ ...ok, modelId: 'adc-dwi-v2' }),
        422,
        /adc-dwi-v2 is a segmentation model, not an interactive one/,
      ],
      ['no such model', () => me.client.masks.refine.mutate({ ...ok, modelId: 'nope-v9' }), 404, /No interactive model nope-v9/],
      [
        'a working mask of another grid',
        () => me.client.masks.refine.mutate({ ...ok, from: { maskGz: encodeMaskGz(new Uint8Array(1000)) } }),
        422,
        /The working mask has 1000 voxels but the case's/,
      ],
      [
        'a working mask too big',
        () => me.client.masks.refine.mutate({ ...ok, from: { maskGz: encodeMaskGz(new Uint8Array(dims[0] * dims[1] * dims[2] + 5)) } }),
        422,
        /more voxels than the case's/,
      ],
      [
        'labels other than 0/1',
        () => me.client.masks.refine.mutate({ ...ok, from: { maskGz: encodeMaskGz(new Uint8Array(dims[0] * dims[1] * dims[2]).fill(2)) } }),
        422,
        /0 and 1 only; found 2/,
      ],
      [
        'not gzip',
        () => me.client.masks.refine.mutate({ ...ok, from: { maskGz: Buffer.from('hello').toString('base64') } }),
        422,
        /not gzip data/,
      ],
      ['not base64', () => me.client.masks.refine.mutate({ ...ok, from: { maskGz: '***' } }), 400, /base64/],
      [
        'a case that is not there',
        () => me.client.masks.refine.mutate({ ...ok, caseId: '00000000-0000-4000-8000-000000000000' }),
        404,
        /No such case/,
      ],
    ];
    for (const [what, call, status, message] of cases) {
      const e = await refineError(call());
      expect(e.status, what).toBe(status);
      expect(e.message, what).toMatch(message);
    }
    // A guest may refine (the demo's best moment).
    const guest = new TestBrowser(app);
    expect((await guest.mutate('auth.guest')).status).toBe(200);
    const empty = encodeMaskGz(new Uint8Array(dims[0] * dims[1] * dims[2]));
    const asGuest = await guest.mutate<{ voxels: number }>('masks.refine', { caseId, from: { maskGz: empty }, prompts: ok.prompts });
    expect(asGuest.status).toBe(200);
    expect((await database.db.selectFrom('mask_versions').select('id').execute()).length).toBe(0);
  }, 300_000);
});
