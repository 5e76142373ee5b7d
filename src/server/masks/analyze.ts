import { readFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { unprocessable } from '../errors.js';
import { sameGrid, voxelVolumeMl } from '../nifti/geometry.js';
import { NiftiError, isGzip, readNifti, toFloat32 } from '../nifti/read.js';
import { dice } from '../segmentation/metrics.js';
import type { LesionList } from '../../shared/lesions.js';
import { decodeOnDwiGrid } from '../lesions/inputs.js';
import { lesionList } from '../lesions/list.js';
import { sha256Hex } from '../volumes/store.js';
import { cpuTask } from '../workers/task.js';

// The CPU-heavy, pure part of saving a corrected mask: what the CPU pool's threads run. No
// database here (a thread never opens one).

/** A problem with the uploaded mask file the person can fix: unprocessable, about `file`. */
const maskInput = (message: string) => unprocessable(message, { field: 'file' });

const fmtGrid = (dims: number[]) => dims.join('×');

function binary(values: Float32Array): Uint8Array {
  return Uint8Array.from(values, (v) => (v !== 0 ? 1 : 0));
}

export interface AnalyzeMaskInput {
  /** The uploaded file's bytes, or the path of the spooled upload (read here, off the event loop). */
  file: Uint8Array | string;
  maxVoxels: number;
  dwi: { dims: number[]; affine: unknown };
  /** The case's stored volumes (the lesion list reads the DWI's and ADC's values in each lesion). */
  volumes: { dwi: Uint8Array; adc: Uint8Array | null };
  truth: Uint8Array | null;
  prediction: Uint8Array | null;
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
  lesions: LesionList;
}

/**
 * Decodes and checks the file against the DWI grid and labels 0/1, gzips and hashes it, and
 * computes its Dice against the prediction and the truth.
 */
export function analyzeMask(input: AnalyzeMaskInput): AnalyzedMask {
  const file = typeof input.file === 'string' ? readFileSync(input.file) : input.file;
  if (file.length === 0) throw maskInput('Mask: the file is empty');
  let vol: ReturnType<typeof readNifti>;
  try {
    vol = readNifti(file, { maxVoxels: input.maxVoxels });
  } catch (err) {
    if (err instanceof NiftiError) throw maskInput(`Mask: ${err.message}`);
    throw err;
  }
  const dwi = input.dwi;
  if (!sameGrid({ dims: dwi.dims, affine: dwi.affine as never }, { dims: vol.dims, affine: vol.affine })) {
    const sameSize = vol.dims.every((d, i) => d === dwi.dims[i]);
    throw maskInput(
      `The mask is ${fmtGrid(vol.dims)} but the case's DWI is ${fmtGrid(dwi.dims)}${sameSize ? ' (same size, but their affines differ)' : ''}; draw it on the DWI`,
    );
  }
  const values = toFloat32(vol);
  let voxels = 0;
  for (let i = 0; i < values.length; i++) {
    const x = values[i]!;
    if (x !== 0 && x !== 1) throw maskInput(`Mask: labels must be 0 or 1; found ${x}`);
    voxels += x;
  }
  const mask = binary(values);
  const asMask = (bytes: Uint8Array | null) => (bytes ? binary(toFloat32(readNifti(bytes))) : null);
  const prediction = asMask(input.prediction);
  const onGrid = decodeOnDwiGrid({ ...input.volumes, truth: input.truth });
  const truth = onGrid.truth;
  const lesions = lesionList({ ...onGrid, mask, truth });
  const stored = isGzip(file) ? Buffer.from(file) : gzipSync(file);
  return {
    stored,
    sha256: sha256Hex(stored),
    facts: { dims: vol.dims, voxelSizeMm: vol.voxelSizeMm, datatype: vol.datatype, affine: vol.affine, frames: vol.frames },
    voxels,
    volumeMl: voxels * voxelVolumeMl(vol.voxelSizeMm),
    diceVsPrediction: prediction && prediction.length === mask.length ? dice(mask, prediction) : null,
    diceVsTruth: truth && truth.length === mask.length ? dice(mask, truth) : null,
    lesions,
  };
}

export const analyzeMaskTask = cpuTask<AnalyzeMaskInput, AnalyzedMask>(import.meta.url, 'analyzeMask');
