import { gzipSync } from 'node:zlib';
import type { Kysely } from 'kysely';
import type { MaskVersionView } from '../../shared/masks.js';
import { type Viewer, caseVolumes, findCase, findUnreferencedVolumes, findVolume } from '../db/cases.js';
import { findJob } from '../db/jobs.js';
import type { Database, MaskVersionRow } from '../db/tables.js';
import { sameGrid } from '../cases/prepare.js';
import { type VolumeLinks, removeIfUnreferenced, toVolumeDescriptor, withStoredVolumes } from '../cases/service.js';
import { NiftiError, isGzip, readNifti, toFloat32 } from '../nifti/read.js';
import { type VolumeStore, sha256Hex } from '../volumes/store.js';
import type { CpuPool } from '../workers/pool.js';

type Db = Kysely<Database>;

/** A problem the person can fix (422 / 404 at the router), with a message naming it. */
export class MaskInputError extends Error {
  override name = 'MaskInputError';
}
export class MaskNotFoundError extends Error {
  override name = 'MaskNotFoundError';
}

const fmtGrid = (dims: number[]) => dims.join('×');

function binary(values: Float32Array): Uint8Array {
  return Uint8Array.from(values, (v) => (v !== 0 ? 1 : 0));
}

function dice(a: Uint8Array, b: Uint8Array): number {
  let sa = 0;
  let sb = 0;
  let both = 0;
  for (let i = 0; i < a.length; i++) {
    sa += a[i]!;
    sb += b[i]!;
    both += a[i]! & b[i]!;
  }
  return sa + sb === 0 ? 1 : (2 * both) / (sa + sb);
}

/** What checking a corrected mask yields: the stored file and the numbers its version row keeps. */
export interface AnalyzedMask {
  stored: Buffer;
  sha256: string;
  facts: {
    dims: [number, number, number];
    voxelSizeMm: [number, number, number];
    datatype: ReturnType<typeof readNifti>['datatype'];
    affine: ReturnType<typeof readNifti>['affine'];
    frames: number;
  };
  voxels: number;
  volumeMl: number;
  diceVsPrediction: number | null;
  diceVsTruth: number | null;
}

/**
 * The CPU-heavy part of saving a mask (run in the CPU pool): decode and check the file against the
 * DWI grid and labels 0/1, gzip and hash it, and its Dice against the prediction and the truth.
 */
export function analyzeMask(input: {
  file: Uint8Array;
  maxVoxels: number;
  dwi: { dims: number[]; affine: unknown };
  truth: Uint8Array | null;
  prediction: Uint8Array | null;
}): AnalyzedMask {
  if (input.file.length === 0) throw new MaskInputError('Mask: the file is empty');
  let vol: ReturnType<typeof readNifti>;
  try {
    vol = readNifti(input.file, { maxVoxels: input.maxVoxels });
  } catch (err) {
    if (err instanceof NiftiError) throw new MaskInputError(`Mask: ${err.message}`);
    throw err;
  }
  const dwi = input.dwi;
  if (!sameGrid({ dims: dwi.dims, affine: dwi.affine as never }, { dims: vol.dims, affine: vol.affine })) {
    throw new MaskInputError(
      `The mask is ${fmtGrid(vol.dims)} but the case's DWI is ${fmtGrid(dwi.dims)}${vol.dims.every((d, i) => d === dwi.dims[i]) ? ' (same size, but their affines differ)' : ''}; draw it on the DWI`,
    );
  }
  const values = toFloat32(vol);
  let voxels = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (x !== 0 && x !== 1) throw new MaskInputError(`Mask: labels must be 0 or 1; found ${x}`);
    voxels += x;
  }
  const mask = binary(values);
  const asMask = (bytes: Uint8Array | null) => (bytes ? binary(toFloat32(readNifti(bytes))) : null);
  const truth = asMask(input.truth);
  const prediction = asMask(input.prediction);
  const voxelMl = (vol.voxelSizeMm[0] * vol.voxelSizeMm[1] * vol.voxelSizeMm[2]) / 1000;
  const stored = isGzip(input.file) ? Buffer.from(input.file) : gzipSync(input.file);
  return {
    stored,
    sha256: sha256Hex(stored),
    facts: { dims: vol.dims, voxelSizeMm: vol.voxelSizeMm, datatype: vol.datatype, affine: vol.affine, frames: vol.frames },
    voxels,
    volumeMl: voxels * voxelMl,
    diceVsPrediction: prediction && prediction.length === mask.length ? dice(mask, prediction) : null,
    diceVsTruth: truth && truth.length === mask.length ? dice(mask, truth) : null,
  };
}

/**
 * Saves a corrected mask as the next version for this case and author. Checked before anything
 * is written: a readable NIfTI within the caps, on exactly the case's DWI grid (dims and affine),
 * labels 0 and 1 only. The file, its volume row and the version row are stored all or nothing.
 */
export async function saveMaskVersion(
  db: Db,
  store: VolumeStore,
  viewer: Viewer & { userId: string },
  input: { caseId: string; jobId?: string | undefined; note: string; file: Uint8Array; maxVoxels: number },
  cpu?: CpuPool,
): Promise<string> {
  const row = await findCase(db, viewer, input.caseId);
  if (!row) throw new MaskNotFoundError('No such case');
  const volumes = await caseVolumes(db, input.caseId);
  const dwi = volumes.find((v) => v.role === 'dwi');
  if (!dwi) throw new MaskInputError('This case has no DWI to draw a mask on');
  let predictionVolumeId: string | null = null;
  if (input.jobId) {
    const job = await findJob(db, input.jobId);
    if (!job || job.case_id !== input.caseId || (!viewer.admin && job.owner_id !== viewer.userId))
      throw new MaskNotFoundError('No such job for this case');
    predictionVolumeId = (job.result as { maskVolumeId?: string } | null)?.maskVolumeId ?? null;
  }
  const truthVolume = volumes.find((v) => v.role === 'mask');
  const read = async (volumeId: string | null | undefined) => {
    const v = volumeId ? await findVolume(db, volumeId) : undefined;
    return v ? store.read(v.sha256) : null;
  };
  const check = {
    file: input.file,
    maxVoxels: input.maxVoxels,
    dwi: { dims: dwi.dims, affine: dwi.affine },
    truth: await read(truthVolume?.id),
    prediction: await read(predictionVolumeId),
  };
  // Off the event loop when the caller has the CPU pool (the API always does).
  const a = cpu ? await cpu.analyzeMask(check) : analyzeMask(check);
  return withStoredVolumes(db, store, [{ stored: a.stored, facts: a.facts, sha256: a.sha256 }], async (trx, [volumeId]) => {
    // Versions are numbered per case and author; the unique constraint refuses a concurrent duplicate.
    const last = await trx
      .selectFrom('mask_versions')
      .select((eb) => eb.fn.max('version').as('v'))
      .where('case_id', '=', input.caseId)
      .where('author_id', '=', viewer.userId)
      .executeTakeFirst();
    const inserted = await trx
      .insertInto('mask_versions')
      .values({
        case_id: input.caseId,
        author_id: viewer.userId,
        version: Number(last?.v ?? 0) + 1,
        volume_id: volumeId!,
        job_id: input.jobId ?? null,
        note: input.note,
        voxels: a.voxels,
        volume_ml: a.volumeMl,
        dice_vs_prediction: a.diceVsPrediction,
        dice_vs_truth: a.diceVsTruth,
      })
      .returning('id')
      .executeTakeFirstOrThrow();
    return inserted.id;
  });
}

const COLUMNS = [
  'mv.id',
  'mv.case_id',
  'mv.author_id',
  'mv.version',
  'mv.volume_id',
  'mv.job_id',
  'mv.note',
  'mv.voxels',
  'mv.volume_ml',
  'mv.dice_vs_prediction',
  'mv.dice_vs_truth',
  'mv.created_at',
] as const;

type Listed = MaskVersionRow & { email: string; case_name: string };

/** The versions a viewer may see on a case: their own (admins: everyone's), newest first. */
export async function listMaskVersions(db: Db, viewer: Viewer, caseId: string): Promise<Listed[]> {
  if (!(await findCase(db, viewer, caseId))) throw new MaskNotFoundError('No such case');
  let q = db
    .selectFrom('mask_versions as mv')
    .innerJoin('users as u', 'u.id', 'mv.author_id')
    .innerJoin('cases as c', 'c.id', 'mv.case_id')
    .select([...COLUMNS, 'u.email', 'c.name as case_name'])
    .where('mv.case_id', '=', caseId)
    .orderBy('mv.created_at', 'desc')
    .orderBy('mv.version', 'desc');
  if (!viewer.admin) q = q.where('mv.author_id', '=', viewer.userId ?? '00000000-0000-0000-0000-000000000000');
  return q.execute();
}

export async function findMaskVersion(db: Db, viewer: Viewer, id: string): Promise<Listed> {
  const row = await db
    .selectFrom('mask_versions as mv')
    .innerJoin('users as u', 'u.id', 'mv.author_id')
    .innerJoin('cases as c', 'c.id', 'mv.case_id')
    .select([...COLUMNS, 'u.email', 'c.name as case_name'])
    .where('mv.id', '=', id)
    .executeTakeFirst();
  if (!row || (!viewer.admin && row.author_id !== viewer.userId) || !(await findCase(db, viewer, row.case_id))) {
    throw new MaskNotFoundError('No such mask version');
  }
  return row;
}

export async function toMaskView(db: Db, row: Listed, links: VolumeLinks): Promise<MaskVersionView> {
  const v = await findVolume(db, row.volume_id);
  if (!v) throw new MaskNotFoundError('The mask file is missing');
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
  };
}

/** The author or an admin. The file goes when nothing else references it. */
export async function deleteMaskVersion(db: Db, store: VolumeStore, viewer: Viewer, id: string): Promise<void> {
  const row = await findMaskVersion(db, viewer, id);
  await db.deleteFrom('mask_versions').where('id', '=', row.id).execute();
  await removeIfUnreferenced(db, store, await findUnreferencedVolumes(db, { ids: [row.volume_id] }));
}
