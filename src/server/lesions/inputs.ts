import type { AdcUnit, Affine } from '../../shared/nifti.js';
import { unprocessable } from '../errors.js';
import { sameGrid } from '../nifti/geometry.js';
import { NiftiError, type NiftiVolume, readNifti, toFloat32 } from '../nifti/read.js';
import { detectAdcUnit } from '../segmentation/adc-unit.js';
import { resampleTrilinear } from '../segmentation/resample.js';

/** A case's volumes decoded onto its DWI grid: what the lesion list and a refinement read. */
export interface CaseOnDwiGrid {
  dims: [number, number, number];
  affine: Affine;
  voxelSizeMm: [number, number, number];
  dwi: Float32Array;
  /** In the case's own unit; null without an ADC. */
  adc: Float32Array | null;
  adcUnit: AdcUnit | null;
  flair: Float32Array | null;
  /** The ground truth, 0/1 (nonzero is lesion, as the challenge reads a mask); null without one. */
  truth: Uint8Array | null;
}

function decode(bytes: Uint8Array, what: string): NiftiVolume {
  try {
    return readNifti(bytes);
  } catch (err) {
    if (err instanceof NiftiError) throw unprocessable(`${what}: ${err.message}`);
    throw err;
  }
}

/**
 * Decodes the stored DWI, ADC and ground truth and brings the last two onto the DWI grid (trilinear;
 * a resampled truth voxel is lesion when at least half inside), as the pipeline does. CPU work.
 */
export function decodeOnDwiGrid(bytes: {
  dwi: Uint8Array;
  adc?: Uint8Array | null;
  flair?: Uint8Array | null;
  truth?: Uint8Array | null;
}): CaseOnDwiGrid {
  const dwi = decode(bytes.dwi, 'DWI');
  const grid = { dims: dwi.dims, affine: dwi.affine };
  const onGrid = (vol: NiftiVolume, label: string) => {
    const values = toFloat32(vol);
    return sameGrid(grid, { dims: vol.dims, affine: vol.affine })
      ? values
      : resampleTrilinear(values, vol.dims, vol.affine, dwi.dims, dwi.affine, label);
  };
  let adc: Float32Array | null = null;
  let adcUnit: AdcUnit | null = null;
  if (bytes.adc) {
    adc = onGrid(decode(bytes.adc, 'ADC'), 'ADC');
    adcUnit = detectAdcUnit(adc).unit ?? null;
  }
  const flair = bytes.flair ? onGrid(decode(bytes.flair, 'FLAIR'), 'FLAIR') : null;
  let truth: Uint8Array | null = null;
  if (bytes.truth) {
    const vol = decode(bytes.truth, 'Mask');
    const same = sameGrid(grid, { dims: vol.dims, affine: vol.affine });
    const values = onGrid(vol, 'Mask');
    truth = new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) if (same ? values[i] !== 0 : values[i]! >= 0.5) truth[i] = 1;
  }
  return { dims: dwi.dims, affine: dwi.affine, voxelSizeMm: dwi.voxelSizeMm, dwi: toFloat32(dwi), adc, adcUnit, flair, truth };
}
