import type { Kysely } from 'kysely';
import type { LesionList } from '../../shared/lesions.js';
import type { MaskVersionView } from '../../shared/masks.js';
import type { MaskProvenance } from '../../shared/refine.js';
import { type Viewer, caseVolumes, findCase } from '../db/cases.js';
import { caseToEdit } from '../cases/access.js';
import { coRaters } from '../db/studies.js';
import { findJob } from '../db/jobs.js';
import {
  type MaskVersionListed,
  countMaskVersions,
  deleteMaskVersionRow,
  findMaskVersionRow,
  insertMaskVersion,
  listMaskVersionRows,
} from '../db/masks.js';
import type { Database } from '../db/tables.js';
import { findUnreferencedVolumes, findVolume } from '../db/volumes.js';
import { forbidden, notFound, unprocessable } from '../errors.js';
import { maskVersionLimit } from '../auth/quotas.js';
import { checkStoredBytes } from '../cases/service.js';
import { lockOwnerQuota } from '../db/owner-lock.js';
import type { Env } from '../env.js';
import { type VolumeLinks, toVolumeDescriptor } from '../volumes/descriptors.js';
import { removeIfUnreferenced, withStoredVolumes } from '../volumes/service.js';
import type { VolumeStore } from '../volumes/store.js';
import { type CpuPool, asBuffer } from '../workers/pool.js';
import { analyzeMaskTask } from './analyze.js';

// Corrected masks: who may save, see and delete which version (the voxel work is analyze.ts, in
// the CPU pool; the rows are db/masks.ts).

type Db = Kysely<Database>;

/**
 * Saves a corrected mask as the next version for this case and author. Checked before anything
 * is written: a readable NIfTI within the caps, on exactly the case's DWI grid (dims and affine),
 * labels 0 and 1 only. The file, its volume row and the version row are stored all or nothing.
 */
export async function saveMaskVersion(
  deps: { db: Db; store: VolumeStore; cpu: CpuPool; config: Env },
  viewer: Viewer & { userId: string },
  input: {
    caseId: string;
    jobId?: string | undefined;
    note: string;
    file: Uint8Array | string;
    maxVoxels: number;
    /** What the editor reports about the edit (lesions rejected, pen strokes). */
    edits?: { rejectedLesions: number; penStrokes: number } | undefined;
    /** The clicks the server refined for this author and case since the last save (refine/sessions.ts). */
    clicks?: { added: number; removed: number } | undefined;
  },
): Promise<string> {
  const { db, store, cpu, config } = deps;
  const author = { id: viewer.userId, role: viewer.guest ? ('guest' as const) : ('user' as const) };
  const versions = maskVersionLimit(config, author.role);
  const versionsFull = () =>
    forbidden(
      versions.perCase
        ? `You keep ${versions.limit} versions of this case's mask; delete an old one first`
        : `Guests may keep ${versions.limit} corrected masks; delete one, or create an account`,
    );
  const overVersions = async (q: Db) => (await countMaskVersions(q, author.id, versions.perCase ? input.caseId : null)) >= versions.limit;
  await caseToEdit(db, viewer, input.caseId, 'caseId');
  const volumes = await caseVolumes(db, input.caseId);
  if (await overVersions(db)) throw versionsFull();
  const dwi = volumes.find((v) => v.role === 'dwi');
  if (!dwi) throw unprocessable('This case has no DWI to draw a mask on');
  let predictionVolumeId: string | null = null;
  let modelIds: string[] = [];
  if (input.jobId) {
    const job = await findJob(db, input.jobId);
    if (!job || job.case_id !== input.caseId || (!viewer.admin && job.owner_id !== viewer.userId)) {
      throw notFound('No such job for this case', { field: 'jobId' });
    }
    predictionVolumeId = (job.result as { maskVolumeId?: string } | null)?.maskVolumeId ?? null;
    modelIds = job.model_ids;
  }
  const truthVolume = volumes.find((v) => v.role === 'mask');
  const read = async (volumeId: string | null | undefined) => {
    const v = volumeId ? await findVolume(db, volumeId) : undefined;
    return v ? store.read(v.sha256) : null;
  };
  const analyzed = await cpu.run(analyzeMaskTask, {
    file: input.file,
    maxVoxels: input.maxVoxels,
    dwi: { dims: dwi.dims, affine: dwi.affine },
    volumes: { dwi: (await read(dwi.id))!, adc: await read(volumes.find((v) => v.role === 'adc')?.id) },
    truth: await read(truthVolume?.id),
    prediction: await read(predictionVolumeId),
  });
  const a = { ...analyzed, stored: asBuffer(analyzed.stored) };
  return withStoredVolumes(db, store, [{ stored: a.stored, facts: a.facts, sha256: a.sha256 }], async (trx, [volumeId]) => {
    // Counted under the author's lock: parallel saves cannot all pass one count.
    await lockOwnerQuota(trx, author.id);
    if (await overVersions(trx)) throw versionsFull();
    await checkStoredBytes(trx, config, author, a.stored.length);
    return insertMaskVersion(trx, {
      caseId: input.caseId,
      authorId: viewer.userId,
      volumeId: volumeId!,
      jobId: input.jobId ?? null,
      note: input.note,
      voxels: a.voxels,
      volumeMl: a.volumeMl,
      diceVsPrediction: a.diceVsPrediction,
      diceVsTruth: a.diceVsTruth,
      lesions: a.lesions,
      provenance: provenanceOf(input.jobId ?? null, modelIds, input.edits, input.clicks),
    });
  });
}

/** The provenance the server writes on a saved version: where it started and what was done to it. */
export function provenanceOf(
  jobId: string | null,
  modelIds: string[],
  edits: { rejectedLesions: number; penStrokes: number } | undefined,
  clicks: { added: number; removed: number } | undefined,
): MaskProvenance {
  const rejectedLesions = edits?.rejectedLesions ?? 0;
  const penStrokes = edits?.penStrokes ?? 0;
  const clicksAdded = clicks?.added ?? 0;
  const clicksRemoved = clicks?.removed ?? 0;
  const n = (k: number, one: string, many = `${one}s`) => `${k} ${k === 1 ? one : many}`;
  const parts = [jobId ? `Started from job ${jobId}${modelIds.length ? ` (${modelIds.join(', ')})` : ''}` : 'Drawn without a job'];
  if (rejectedLesions) parts.push(`${n(rejectedLesions, 'lesion')} rejected`);
  if (clicksAdded) parts.push(`${n(clicksAdded, 'click')} added`);
  if (clicksRemoved) parts.push(`${n(clicksRemoved, 'negative click')}`);
  if (penStrokes) parts.push(n(penStrokes, 'pen stroke'));
  return {
    from: { kind: jobId ? 'job' : 'none', id: jobId, modelIds },
    rejectedLesions,
    clicksAdded,
    clicksRemoved,
    penStrokes,
    summary: parts.join('; '),
  };
}

/**
 * Whose versions of a case a viewer may see: their own, and those of their fellow members of the
 * studies that hold the case (a second rater compares with the first). Admins: everyone's.
 */
async function authorsVisibleTo(db: Db, viewer: Viewer, caseId: string): Promise<string[]> {
  if (!viewer.userId) return [];
  return [...new Set([viewer.userId, ...(await coRaters(db, viewer.userId, caseId))])];
}

/** The versions a viewer may see on a case: see authorsVisibleTo (admins: everyone's), newest first. */
export async function listMaskVersions(db: Db, viewer: Viewer, caseId: string): Promise<MaskVersionListed[]> {
  if (!(await findCase(db, viewer, caseId))) throw notFound('No such case');
  return listMaskVersionRows(db, caseId, viewer.admin ? null : await authorsVisibleTo(db, viewer, caseId));
}

export async function findMaskVersion(db: Db, viewer: Viewer, id: string): Promise<MaskVersionListed> {
  const row = await findMaskVersionRow(db, id);
  if (
    !row ||
    !(await findCase(db, viewer, row.case_id)) ||
    (!viewer.admin && !(await authorsVisibleTo(db, viewer, row.case_id)).includes(row.author_id))
  ) {
    throw notFound('No such mask version');
  }
  return row;
}

export async function toMaskView(db: Db, row: MaskVersionListed, links: VolumeLinks): Promise<MaskVersionView> {
  const v = await findVolume(db, row.volume_id);
  if (!v) throw notFound('The mask file is missing');
  return {
    id: row.id,
    caseId: row.case_id,
    version: row.version,
    note: row.note,
    jobId: row.job_id,
    createdAt: new Date(row.created_at).toISOString(),
    author: { id: row.author_id, email: row.email },
    voxels: row.voxels,
    volumeMl: row.volume_ml,
    volume: toVolumeDescriptor(v, 'mask', links, `corrected-v${row.version}`, `${row.case_name}_corrected_v${row.version}`),
    diceVsPrediction: row.dice_vs_prediction,
    diceVsGroundTruth: row.dice_vs_truth,
    lesions: (row.lesions as LesionList | null) ?? null,
    provenance: (row.provenance as MaskProvenance | null) ?? null,
  };
}

/** The author or an admin. The file goes when nothing else references it. */
export async function deleteMaskVersion(db: Db, store: VolumeStore, viewer: Viewer, id: string): Promise<void> {
  const row = await findMaskVersion(db, viewer, id);
  // a fellow study member may read the version, never delete it
  if (!viewer.admin && row.author_id !== viewer.userId) throw forbidden('Only its author (or an administrator) may delete a mask version');
  await deleteMaskVersionRow(db, row.id);
  await removeIfUnreferenced(db, store, await findUnreferencedVolumes(db, { ids: [row.volume_id] }));
}
