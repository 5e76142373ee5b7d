import { gunzipSync, gzipSync } from 'node:zlib';
import type { LesionList } from '../../shared/lesions.js';
import type { InteractiveManifest } from '../../shared/models.js';
import type { RefinePrompt } from '../../shared/refine.js';
import { unprocessable } from '../errors.js';
import { lesionList } from '../lesions/list.js';
import { NiftiError, readNifti, toFloat32 } from '../nifti/read.js';
import { voxelVolumeMl } from '../nifti/geometry.js';
import { sessionFor } from '../segmentation/cpu.js';
import { ort } from '../segmentation/models.js';
import { cpuTask } from '../workers/task.js';
import type { PreparedCase } from './prepare.js';

// One click (a CPU task): the crop around the prompts, the model's input tensor (image channels,
// Gaussian guidance, the previous mask), one session.run, the answer pasted back into the working
// mask, and the new mask's lesion list. The case's arrays come from the session cache, shared.

export interface RefineTaskInput {
  prepared: PreparedCase;
  /** The mask to refine: a stored NIfTI (a job's result or a saved version) or the editor's gzipped voxels. */
  from: { nifti: Uint8Array } | { voxelsGz: Uint8Array };
  prompts: RefinePrompt[];
  model: { manifest: InteractiveManifest; dir: string };
  provider: 'cpu' | 'cuda';
  threads: number;
}

export interface RefineTaskOutput {
  maskGz: Uint8Array;
  voxels: number;
  volumeMl: number;
  changed: { min: [number, number, number]; max: [number, number, number] } | null;
  lesions: LesionList;
  modelMs: number;
}

const fromInput = (message: string) => unprocessable(message, { field: 'from' });

function workingMask(from: RefineTaskInput['from'], n: number, dims: readonly number[]): Uint8Array {
  let mask: Uint8Array;
  if ('nifti' in from) {
    const vol = readNifti(from.nifti);
    const values = toFloat32(vol);
    mask = new Uint8Array(values.length);
    for (let i = 0; i < values.length; i++) if (values[i] !== 0) mask[i] = 1;
  } else {
    try {
      mask = new Uint8Array(gunzipSync(from.voxelsGz, { maxOutputLength: n + 1 }));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE')
        throw fromInput(`The working mask has more voxels than the case's ${dims.join('×')} grid`);
      throw fromInput('The working mask is not gzip data (send the uint8 voxels gzipped, base64)');
    }
    for (let i = 0; i < mask.length; i++) if (mask[i]! > 1) throw fromInput(`The working mask must hold 0 and 1 only; found ${mask[i]}`);
  }
  if (mask.length !== n) throw fromInput(`The working mask has ${mask.length} voxels but the case's ${dims.join('×')} grid has ${n}`);
  return mask;
}

/** The crop: a box of `cropMm` around the prompts' bounding box, clipped to the volume. */
export function cropAround(prompts: RefinePrompt[], dims: readonly number[], voxelSizeMm: readonly number[], cropMm: readonly number[]) {
  const lo: [number, number, number] = [0, 0, 0];
  const hi: [number, number, number] = [0, 0, 0];
  for (let a = 0; a < 3; a++) {
    const half = Math.max(1, Math.round(cropMm[a]! / voxelSizeMm[a]! / 2));
    const vs = prompts.map((p) => p.voxel[a]!);
    lo[a] = Math.max(0, Math.min(...vs) - half);
    hi[a] = Math.min(dims[a]! - 1, Math.max(...vs) + half - 1);
  }
  return { lo, hi, size: [hi[0] - lo[0] + 1, hi[1] - lo[1] + 1, hi[2] - lo[2] + 1] as [number, number, number] };
}

export async function refineMask(input: RefineTaskInput): Promise<RefineTaskOutput> {
  const { prepared: p, prompts } = input;
  const m = input.model.manifest;
  const [nx, ny, nz] = p.dims;
  const n = nx * ny * nz;
  let mask: Uint8Array;
  try {
    mask = workingMask(input.from, n, p.dims);
  } catch (err) {
    if (err instanceof NiftiError) throw fromInput(`The mask to refine: ${err.message}`);
    throw err;
  }
  const { lo, size } = cropAround(prompts, p.dims, p.voxelSizeMm, m.cropMm);
  const [cx, cy, cz] = size;
  const cn = cx * cy * cz;
  const channelCount = m.inputs.length + 2 + (m.previousMask ? 1 : 0);
  // Channels in x-fastest crop order first; reordered for `xyz` models below.
  const planes = Array.from({ length: channelCount }, () => new Float32Array(cn));
  const sxy = nx * ny;
  for (let z = 0; z < cz; z++)
    for (let y = 0; y < cy; y++) {
      const src = (lo[2] + z) * sxy + (lo[1] + y) * nx + lo[0];
      const dst = z * cx * cy + y * cx;
      for (let c = 0; c < m.inputs.length; c++) planes[c]!.set(p.channels[c]!.subarray(src, src + cx), dst);
      if (m.previousMask) {
        const prev = planes[channelCount - 1]!;
        for (let x = 0; x < cx; x++) prev[dst + x] = mask[src + x]!;
      }
    }
  // Guidance: a Gaussian of sigmaMm around each click (peak 1 at the clicked voxel), the maximum where they overlap, cut at 4 sigma.
  const sigma = m.prompts.sigmaMm;
  const [vx, vy, vz] = p.voxelSizeMm;
  for (const prompt of prompts) {
    const plane = planes[m.inputs.length + (prompt.positive ? 0 : 1)]!;
    const [px, py, pz] = [prompt.voxel[0] - lo[0], prompt.voxel[1] - lo[1], prompt.voxel[2] - lo[2]];
    const r = [Math.ceil((4 * sigma) / vx), Math.ceil((4 * sigma) / vy), Math.ceil((4 * sigma) / vz)];
    for (let z = Math.max(0, pz - r[2]!); z <= Math.min(cz - 1, pz + r[2]!); z++)
      for (let y = Math.max(0, py - r[1]!); y <= Math.min(cy - 1, py + r[1]!); y++)
        for (let x = Math.max(0, px - r[0]!); x <= Math.min(cx - 1, px + r[0]!); x++) {
          const d2 = ((x - px) * vx) ** 2 + ((y - py) * vy) ** 2 + ((z - pz) * vz) ** 2;
          const g = Math.exp(-d2 / (2 * sigma * sigma));
          const i = z * cx * cy + y * cx + x;
          if (g > plane[i]!) plane[i] = g;
        }
  }
  const data = new Float32Array(channelCount * cn);
  if (m.axisOrder === 'zyx') {
    planes.forEach((plane, c) => data.set(plane, c * cn));
  } else {
    // [C, X, Y, Z], z fastest
    for (let c = 0; c < channelCount; c++) {
      const plane = planes[c]!;
      const base = c * cn;
      for (let z = 0; z < cz; z++)
        for (let y = 0; y < cy; y++) for (let x = 0; x < cx; x++) data[base + x * cy * cz + y * cz + z] = plane[z * cx * cy + y * cx + x]!;
    }
  }
  const spatial = m.axisOrder === 'zyx' ? [cz, cy, cx] : [cx, cy, cz];
  const session = await sessionFor(input.model.dir, input.provider, input.threads);
  const started = performance.now();
  const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', data, [1, channelCount, ...spatial]) };
  const results = await session.run(feeds);
  const modelMs = performance.now() - started;
  const out = results[session.outputNames[0]!]!.data as Float32Array;
  if (out.length !== cn) throw unprocessable(`Model ${m.id} answered ${out.length} values for a crop of ${cn} voxels`);
  // Paste back: inside the crop the model's answer is the mask.
  const next = new Uint8Array(mask);
  const min: [number, number, number] = [Infinity, Infinity, Infinity];
  const max: [number, number, number] = [-1, -1, -1];
  for (let z = 0; z < cz; z++)
    for (let y = 0; y < cy; y++)
      for (let x = 0; x < cx; x++) {
        const o = m.axisOrder === 'zyx' ? z * cx * cy + y * cx + x : x * cy * cz + y * cz + z;
        let v = out[o]!;
        if (m.output.activation === 'sigmoid') v = 1 / (1 + Math.exp(-v));
        const bit = v >= m.threshold ? 1 : 0;
        const i = (lo[2] + z) * sxy + (lo[1] + y) * nx + lo[0] + x;
        if (next[i] !== bit) {
          next[i] = bit;
          const g = [lo[0] + x, lo[1] + y, lo[2] + z];
          for (let a = 0; a < 3; a++) {
            if (g[a]! < min[a]!) min[a] = g[a]!;
            if (g[a]! > max[a]!) max[a] = g[a]!;
          }
        }
      }
  let voxels = 0;
  for (let i = next.indexOf(1); i !== -1; i = next.indexOf(1, i + 1)) voxels++;
  const lesions = lesionList({
    mask: next,
    truth: p.truth,
    dims: p.dims,
    affine: p.affine,
    voxelSizeMm: p.voxelSizeMm,
    dwi: p.dwi,
    adc: p.adc,
    adcUnit: p.adcUnit,
    midlineXMm: p.midlineXMm,
  });
  return {
    maskGz: gzipSync(next, { level: 1 }),
    voxels,
    volumeMl: voxels * voxelVolumeMl(p.voxelSizeMm),
    changed: max[0] >= 0 ? { min, max } : null,
    lesions,
    modelMs,
  };
}

export const refineMaskTask = cpuTask<RefineTaskInput, RefineTaskOutput>(import.meta.url, 'refineMask');
