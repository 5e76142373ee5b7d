import type { InteractiveManifest } from '../../shared/models.js';
import type { AdcUnit, Affine } from '../../shared/nifti.js';
import { decodeOnDwiGrid } from '../lesions/inputs.js';
import { headMidlineXMm } from '../lesions/list.js';
import { adcScale } from '../segmentation/adc-unit.js';
import { applyPreprocessing } from '../segmentation/preprocess.js';
import { cpuTask } from '../workers/task.js';

// The once-per-editing-session part of a refinement (a CPU task): decode the case, bring it onto
// the DWI grid, preprocess the interactive model's image channels over the WHOLE volume (a
// robust z-score over a crop would depend on where the click is). Every array is backed by a
// SharedArrayBuffer: the main thread keeps them in the session cache (sessions.ts) and each click's
// task, on whichever pool thread, reads them without a copy.

export interface PrepareRefineInput {
  dwi: Uint8Array;
  adc: Uint8Array | null;
  flair: Uint8Array | null;
  truth: Uint8Array | null;
  manifest: InteractiveManifest;
}

/** A case made ready for clicks. */
export interface PreparedCase {
  dims: [number, number, number];
  affine: Affine;
  voxelSizeMm: [number, number, number];
  adcUnit: AdcUnit | null;
  midlineXMm: number;
  /** Raw DWI and ADC (the case's unit) on the DWI grid: the lesion list reads them. */
  dwi: Float32Array;
  adc: Float32Array | null;
  truth: Uint8Array | null;
  /** The model's image channels, in its input order, preprocessed. */
  channels: Float32Array[];
  bytes: number;
}

function shared<T extends Float32Array | Uint8Array>(a: T): T {
  const out = new (a.constructor as new (b: SharedArrayBuffer) => T)(new SharedArrayBuffer(a.byteLength));
  out.set(a as never);
  return out;
}

export function prepareRefine(input: PrepareRefineInput): PreparedCase {
  const c = decodeOnDwiGrid({ dwi: input.dwi, adc: input.adc, flair: input.flair, truth: input.truth });
  const m = input.manifest;
  const channels = m.inputs.map((role, i) => {
    let values = role === 'dwi' ? c.dwi : role === 'adc' ? c.adc : c.flair;
    if (!values) throw new Error(`missing ${role}`); // the service checks the case's roles first
    if (role === 'adc' && c.adcUnit && c.adcUnit !== m.adcUnit) {
      const scale = adcScale(c.adcUnit, m.adcUnit);
      values = values.map((v) => v * scale);
    }
    return shared(applyPreprocessing(values, m.preprocessing[i]!));
  });
  const out: PreparedCase = {
    dims: c.dims,
    affine: c.affine,
    voxelSizeMm: c.voxelSizeMm,
    adcUnit: c.adcUnit,
    midlineXMm: headMidlineXMm(c.dwi, c.dims, c.affine),
    dwi: shared(c.dwi),
    adc: c.adc ? shared(c.adc) : null,
    truth: c.truth ? shared(c.truth) : null,
    channels,
    bytes: 0,
  };
  out.bytes = [out.dwi, out.adc, out.truth, ...channels].reduce((n, a) => n + (a?.byteLength ?? 0), 0);
  return out;
}

export const prepareRefineTask = cpuTask<PrepareRefineInput, PreparedCase>(import.meta.url, 'prepareRefine');
