import { sameGrid, voxelVolumeMl } from '../nifti/geometry.js';
import { readNifti, toFloat32 } from '../nifti/read.js';
import { dice } from '../segmentation/metrics.js';
import { cpuTask } from '../workers/task.js';

// Agreement between masks of one case (raters with each other, each with the model): decoding
// and overlap are CPU work, run in the pool's threads. No database here.

export interface CompareMasksInput {
  /** NIfTI files (gzipped or not) of one case's masks. */
  masks: Uint8Array[];
}

export interface CompareMasksOutput {
  /** Each mask's lesion volume, mL (nonzero voxels × the header's voxel volume). */
  volumesMl: number[];
  /** Dice of mask i with mask j; null when their grids differ. */
  dice: (number | null)[][];
}

export function compareMasks(input: CompareMasksInput): CompareMasksOutput {
  const decoded = input.masks.map((bytes) => {
    const vol = readNifti(bytes);
    const values = toFloat32(vol);
    const mask = Uint8Array.from(values, (v) => (v !== 0 ? 1 : 0));
    let voxels = 0;
    for (let i = mask.indexOf(1); i !== -1; i = mask.indexOf(1, i + 1)) voxels++;
    return { vol, mask, ml: voxels * voxelVolumeMl(vol.voxelSizeMm) };
  });
  return {
    volumesMl: decoded.map((d) => d.ml),
    dice: decoded.map((a) =>
      decoded.map((b) =>
        sameGrid({ dims: a.vol.dims, affine: a.vol.affine }, { dims: b.vol.dims, affine: b.vol.affine }) ? dice(a.mask, b.mask) : null,
      ),
    ),
  };
}

export const compareMasksTask = cpuTask<CompareMasksInput, CompareMasksOutput>(import.meta.url, 'compareMasks');
