import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { ROLE_LABELS, type VolumeRole } from '../../shared/cases.js';
import type { Affine, VolumeFacts } from '../../shared/nifti.js';
import { sha256Hex } from '../volumes/store.js';
import { type CpuPool, asBuffer } from '../workers/pool.js';
import { cpuTask } from '../workers/task.js';
import { unprocessable } from '../errors.js';
import { sameGrid } from '../nifti/geometry.js';
import { NiftiError, inspectNifti, isGzip, readNifti, toFloat32 } from '../nifti/read.js';
import { detectAdcUnit, implausibleAdcMessage } from '../segmentation/adc-unit.js';
import { MiB } from '../../shared/units.js';

/** A bad input file: unprocessable, the message names the file's role and says what is wrong, `field` is the role. */
const caseInput = (message: string, role?: VolumeRole) => unprocessable(message, { field: role });

export interface PreparedVolume {
  /** The stored bytes' sha256, when already computed (in the CPU pool). */
  sha256?: string;
  role: VolumeRole;
  /** What is stored: the file as given when it was gzip, gzipped otherwise. */
  stored: Buffer;
  facts: VolumeFacts;
}

export interface PrepareLimits {
  maxVoxels: number;
  /** What all files of the case may inflate to together, in bytes (from their headers, before inflating). */
  maxInflatedBytes?: number;
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(bytes < 10 * MiB ? 1 : 0)} MiB`;

/**
 * Checks every file of a case before anything is written: each must be a readable NIfTI volume
 * within the caps; DWI and ADC are required and on one grid; a ground-truth mask must be on the
 * DWI grid. Throws an unprocessable DomainError naming the file (`field`: its role).
 */
export function prepareCaseVolumes(files: Partial<Record<VolumeRole, Uint8Array>>, limits: PrepareLimits): PreparedVolume[] {
  for (const role of ['dwi', 'adc'] as const) {
    if (!files[role] || files[role]!.length === 0) {
      throw caseInput(`${ROLE_LABELS[role]} is required${files[role] ? ' (the file is empty)' : ''}`, role);
    }
  }
  const asCaseError = (role: VolumeRole, err: unknown) =>
    err instanceof NiftiError ? caseInput(`${ROLE_LABELS[role]}: ${err.message}`, role) : err;
  // Every header first: a request whose files would inflate past the budget together is refused
  // before a single one is inflated (a 1 MB upload must not become gigabytes in memory).
  let inflated = 0;
  for (const role of ['dwi', 'adc', 'flair', 'mask'] as const) {
    const bytes = files[role];
    if (!bytes || bytes.length === 0) continue;
    try {
      inflated += inspectNifti(bytes, { maxVoxels: limits.maxVoxels }).totalBytes;
    } catch (err) {
      throw asCaseError(role, err);
    }
  }
  if (limits.maxInflatedBytes !== undefined && inflated > limits.maxInflatedBytes) {
    throw caseInput(
      `The files would take ${mib(inflated)} once decompressed, over the limit of ${mib(limits.maxInflatedBytes)} per upload`,
    );
  }
  const prepared: PreparedVolume[] = [];
  const grids = new Map<VolumeRole, { dims: number[]; affine: Affine }>();
  let adcValues: Float32Array | undefined;
  for (const role of ['dwi', 'adc', 'flair', 'mask'] as const) {
    const bytes = files[role];
    if (!bytes) continue;
    if (bytes.length === 0) throw caseInput(`${ROLE_LABELS[role]}: the file is empty`, role);
    let vol: ReturnType<typeof readNifti>;
    try {
      vol = readNifti(bytes, { maxVoxels: limits.maxVoxels });
    } catch (err) {
      throw asCaseError(role, err);
    }
    if (role === 'mask') {
      const values = vol.data;
      for (let i = 0; i < values.length; i++) {
        const x = values[i]!;
        if (x !== 0 && x !== 1) {
          throw caseInput('Mask: a ground-truth mask must hold only 0 and 1', role);
        }
      }
    }
    if (role === 'adc') adcValues = toFloat32(vol);
    grids.set(role, { dims: vol.dims, affine: vol.affine });
    prepared.push({
      role,
      stored: isGzip(bytes) ? Buffer.from(bytes) : gzipSync(bytes),
      facts: { dims: vol.dims, voxelSizeMm: vol.voxelSizeMm, datatype: vol.datatype, affine: vol.affine, frames: vol.frames },
    });
  }
  const dwi = grids.get('dwi')!;
  if (!sameGrid(dwi, grids.get('adc')!)) {
    const adc = grids.get('adc')!;
    throw caseInput(
      `DWI and ADC are on different grids (DWI ${dwi.dims.join('×')}, ADC ${adc.dims.join('×')}, or their affines differ); they must be co-registered`,
      'adc',
    );
  }
  const mask = grids.get('mask');
  if (mask && !sameGrid(dwi, mask)) {
    throw caseInput(`Mask is not on the DWI grid (mask ${mask.dims.join('×')}, DWI ${dwi.dims.join('×')})`, 'mask');
  }
  // The unit decides whether a model's ADC threshold means anything: a map in the wrong unit
  // would pass (or fail) every voxel silently, so one that is plausible in neither is refused.
  const found = detectAdcUnit(adcValues!);
  if (!found.unit) throw caseInput(implausibleAdcMessage(found.median), 'adc');
  prepared.find((p) => p.role === 'adc')!.facts.adcUnit = found.unit;
  return prepared;
}

export type PreparedWithHash = PreparedVolume & { sha256: string };

/** The CPU task: files as bytes, or as paths of spooled uploads (read in the thread, off the event loop); checked, gzipped, hashed. */
export function prepareCase(input: { files: Partial<Record<VolumeRole, Uint8Array | string>>; limits: PrepareLimits }): PreparedWithHash[] {
  const files: Partial<Record<VolumeRole, Uint8Array>> = {};
  for (const [role, f] of Object.entries(input.files)) files[role as VolumeRole] = typeof f === 'string' ? readFileSync(f) : f;
  return prepareCaseVolumes(files, input.limits).map((p) => ({ ...p, sha256: sha256Hex(p.stored) }));
}
const prepareCaseTask = cpuTask<Parameters<typeof prepareCase>[0], PreparedWithHash[]>(import.meta.url, 'prepareCase');

/** `prepareCase` in the CPU pool: decoding, validation, gzip and hashing off the event loop. */
export async function prepareCaseInPool(
  cpu: CpuPool,
  files: Partial<Record<VolumeRole, Uint8Array | string>>,
  limits: PrepareLimits,
): Promise<PreparedWithHash[]> {
  const prepared = await cpu.run(prepareCaseTask, { files, limits });
  return prepared.map((p) => ({ ...p, stored: asBuffer(p.stored) }));
}
