import type { Kysely } from 'kysely';
import { ROLE_LABELS } from '../../shared/cases.js';
import { DEFAULT_INTERACTIVE_MODEL_ID } from '../../shared/models.js';
import type { RefineInput, RefineResult } from '../../shared/refine.js';
import { type Viewer, caseVolumes } from '../db/cases.js';
import { caseToEdit } from '../cases/access.js';
import { findJob } from '../db/jobs.js';
import type { Database } from '../db/tables.js';
import { findVolume } from '../db/volumes.js';
import { conflict, invalid, notFound, tooMany, unprocessable } from '../errors.js';
import { findMaskVersion } from '../masks/service.js';
import type { ModelRegistry } from '../segmentation/models.js';
import type { VolumeStore } from '../volumes/store.js';
import type { CpuPool } from '../workers/pool.js';
import { prepareRefineTask } from './prepare.js';
import { refineMaskTask } from './run.js';
import type { RefineSessions } from './sessions.js';

// Click refinement: who may refine what, checked before any voxel work; the voxel work runs in
// the CPU pool (prepare.ts once per editing session, run.ts per click). Nothing is stored:
// the answer goes back to the editor, and a save makes the version as always.

type Db = Kysely<Database>;

export interface RefineDeps {
  db: Db;
  store: VolumeStore;
  cpu: CpuPool;
  models: ModelRegistry;
  refine: RefineSessions;
}

export async function refineMask(deps: RefineDeps, viewer: Viewer & { userId: string }, input: RefineInput): Promise<RefineResult> {
  const { db, store, cpu, models } = deps;
  const started = performance.now();
  const modelId = input.modelId ?? DEFAULT_INTERACTIVE_MODEL_ID;
  const model = models.interactive.get(modelId);
  if (!model) {
    if (models.models.has(modelId))
      throw unprocessable(`Model ${modelId} is a segmentation model, not an interactive one; refine needs an interactive model`, {
        field: 'modelId',
      });
    throw notFound(`No interactive model ${modelId}`, { field: 'modelId' });
  }
  await caseToEdit(db, viewer, input.caseId, 'caseId');
  const volumes = await caseVolumes(db, input.caseId);
  const role = (r: string) => volumes.find((v) => v.role === r);
  const dwi = role('dwi');
  if (!dwi) throw unprocessable('This case has no DWI to refine a mask on');
  for (const r of model.manifest.inputs)
    if (!role(r)) throw unprocessable(`This case has no ${ROLE_LABELS[r]}, which model ${modelId} needs`, { field: 'modelId' });
  const dims = dwi.dims as [number, number, number];
  input.prompts.forEach((p, i) => {
    if (p.voxel.some((v, a) => v < 0 || v >= dims[a]!))
      throw invalid(`Click ${i + 1} at (${p.voxel.join(', ')}) is outside the case's ${dims.join('×')} grid`, { field: 'prompts' });
  });

  // The mask it starts from, visible to this viewer and on this case.
  let from: { nifti: Uint8Array } | { voxelsGz: Uint8Array };
  const readVolume = async (volumeId: string) => {
    const v = await findVolume(db, volumeId);
    if (!v) throw notFound('The mask file is missing', { field: 'from' });
    return store.read(v.sha256);
  };
  if ('jobId' in input.from) {
    const job = await findJob(db, input.from.jobId);
    if (!job || job.case_id !== input.caseId || (!viewer.admin && job.owner_id !== viewer.userId))
      throw notFound('No such job for this case', { field: 'from' });
    const maskVolumeId = (job.result as { maskVolumeId?: string } | null)?.maskVolumeId;
    if (job.status !== 'succeeded' || !maskVolumeId) throw conflict(`Job ${job.id} has no mask to refine (it is ${job.status})`);
    from = { nifti: await readVolume(maskVolumeId) };
  } else if ('versionId' in input.from) {
    const version = await findMaskVersion(db, viewer, input.from.versionId).catch(() => undefined);
    if (!version || version.case_id !== input.caseId) throw notFound('No such mask version for this case', { field: 'from' });
    from = { nifti: await readVolume(version.volume_id) };
  } else {
    from = { voxelsGz: Buffer.from(input.from.maskGz, 'base64') };
  }

  // One refinement in flight per user: an editor waits for its answer before the next click.
  if (!deps.refine.claim(viewer.userId)) throw tooMany('A refinement of yours is still running; click again when it has answered', 1);
  try {
    const read = async (r: string) => {
      const v = role(r);
      return v ? store.read(v.sha256) : null;
    };
    const prepareStarted = performance.now();
    const { prepared, cached } = await deps.refine.get({ userId: viewer.userId, caseId: input.caseId, modelId }, async () =>
      cpu.run(prepareRefineTask, {
        dwi: (await read('dwi'))!,
        adc: await read('adc'),
        flair: await read('flair'),
        truth: await read('mask'),
        manifest: model.manifest,
      }),
    );
    const prepareMs = performance.now() - prepareStarted;
    const out = await cpu.run(refineMaskTask, {
      prepared,
      from,
      prompts: input.prompts,
      model: { manifest: model.manifest, dir: model.dir, fingerprint: model.fingerprint },
      provider: models.provider.active,
      threads: models.provider.threads,
    });
    for (const p of input.prompts) deps.refine.countClick(viewer.userId, input.caseId, p.positive);
    const round = (ms: number) => Math.round(ms * 10) / 10;
    return {
      maskGz: Buffer.from(out.maskGz.buffer, out.maskGz.byteOffset, out.maskGz.byteLength).toString('base64'),
      dims,
      voxels: out.voxels,
      volumeMl: out.volumeMl,
      changed: out.changed,
      lesions: out.lesions,
      modelId,
      cached,
      timingsMs: { total: round(performance.now() - started), prepare: round(prepareMs), model: round(out.modelMs) },
    };
  } finally {
    deps.refine.release(viewer.userId);
  }
}
