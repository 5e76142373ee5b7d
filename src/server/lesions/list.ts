import type { Lesion, LesionList, LesionStatus } from '../../shared/lesions.js';
import type { AdcUnit, Affine } from '../../shared/nifti.js';
import { voxelVolumeMl } from '../nifti/geometry.js';
import { type Labeling, labelComponents } from '../segmentation/components.js';

// The lesion list of a mask: one row per 26-connected component (the labelling the metrics use,
// segmentation/components.ts), with TP/FP against the ground truth and the true lesions nothing
// touched as FN. Pure CPU work: the pipeline (job results) and analyze (saved versions) and
// refine run it in pool threads.

export interface LesionListInput {
  mask: Uint8Array;
  truth: Uint8Array | null;
  dims: readonly [number, number, number];
  affine: Affine;
  voxelSizeMm: readonly [number, number, number];
  /** The case's DWI on its own grid (raw values). */
  dwi: Float32Array;
  /** The case's ADC on the DWI grid, in its own unit; null without one. */
  adc: Float32Array | null;
  adcUnit: AdcUnit | null;
  /** The mask's labelling when the caller has it (saves one pass). */
  labeling?: Labeling;
  /** The truth's labelling when the caller has it (a refine session keeps it). */
  truthLabeling?: Labeling;
  /** The head's midline when the caller has it (a refine session keeps it). */
  midlineXMm?: number;
}

const world = (affine: Affine, i: number, j: number, k: number): [number, number, number] => [
  affine[0]![0]! * i + affine[0]![1]! * j + affine[0]![2]! * k + affine[0]![3]!,
  affine[1]![0]! * i + affine[1]![1]! * j + affine[1]![2]! * k + affine[1]![3]!,
  affine[2]![0]! * i + affine[2]![1]! * j + affine[2]![2]! * k + affine[2]![3]!,
];

/**
 * The head's midline, as a world x (RAS+ mm): the mean world x of the head's voxels (DWI above
 * 10 % of its 99th percentile, on a strided sample). World x is the patient's left–right axis
 * whatever the voxel order (the affine maps voxels to RAS+), so LPS- or LAS-stored volumes give
 * the same answer; the midline is the head's own centre, not x = 0, because scanners do not put
 * the origin between the hemispheres.
 */
export function headMidlineXMm(dwi: Float32Array, dims: readonly [number, number, number], affine: Affine): number {
  const stride = Math.max(1, Math.floor(dwi.length / 65_536));
  const sample: number[] = [];
  for (let i = 0; i < dwi.length; i += stride) sample.push(dwi[i]!);
  sample.sort((a, b) => a - b);
  const cut = 0.1 * (sample[Math.floor(0.99 * (sample.length - 1))] ?? 0);
  const [nx, ny] = dims;
  let n = 0;
  let sx = 0;
  for (let idx = 0; idx < dwi.length; idx++) {
    if (!(dwi[idx]! > cut)) continue;
    const k = Math.floor(idx / (nx * ny));
    const j = Math.floor((idx - k * nx * ny) / nx);
    const i = idx - k * nx * ny - j * nx;
    sx += world(affine, i, j, k)[0];
    n++;
  }
  return n ? sx / n : world(affine, (dims[0] - 1) / 2, (dims[1] - 1) / 2, (dims[2] - 1) / 2)[0];
}

interface Acc {
  n: number;
  si: number;
  sj: number;
  sk: number;
  min: [number, number, number];
  max: [number, number, number];
  dwi: number;
  adc: number;
  adcMin: number;
  hit: boolean;
}

function accumulate(
  labels: Int32Array,
  count: number,
  dims: readonly [number, number, number],
  dwi: Float32Array,
  adc: Float32Array | null,
) {
  const acc: Acc[] = [];
  for (let l = 0; l <= count; l++)
    acc.push({
      n: 0,
      si: 0,
      sj: 0,
      sk: 0,
      min: [Infinity, Infinity, Infinity],
      max: [-1, -1, -1],
      dwi: 0,
      adc: 0,
      adcMin: Infinity,
      hit: false,
    });
  const [nx, ny] = dims;
  const sxy = nx * ny;
  for (let idx = 0; idx < labels.length; idx++) {
    const l = labels[idx]!;
    if (!l) continue;
    const a = acc[l]!;
    const k = Math.floor(idx / sxy);
    const j = Math.floor((idx - k * sxy) / nx);
    const i = idx - k * sxy - j * nx;
    a.n++;
    a.si += i;
    a.sj += j;
    a.sk += k;
    if (i < a.min[0]) a.min[0] = i;
    if (j < a.min[1]) a.min[1] = j;
    if (k < a.min[2]) a.min[2] = k;
    if (i > a.max[0]) a.max[0] = i;
    if (j > a.max[1]) a.max[1] = j;
    if (k > a.max[2]) a.max[2] = k;
    a.dwi += dwi[idx]!;
    if (adc) {
      const v = adc[idx]!;
      a.adc += v;
      if (v < a.adcMin) a.adcMin = v;
    }
  }
  return acc;
}

/** The component's voxel nearest its centroid (a click target and a crosshair that lands inside it). */
function nearestMember(labels: Int32Array, label: number, dims: readonly [number, number, number], a: Acc, c: [number, number, number]) {
  const [nx, ny] = dims;
  let best: [number, number, number] = [a.min[0], a.min[1], a.min[2]];
  let bestD = Infinity;
  for (let k = a.min[2]; k <= a.max[2]; k++)
    for (let j = a.min[1]; j <= a.max[1]; j++)
      for (let i = a.min[0]; i <= a.max[0]; i++) {
        if (labels[k * nx * ny + j * nx + i] !== label) continue;
        const d = (i - c[0]) ** 2 + (j - c[1]) ** 2 + (k - c[2]) ** 2;
        if (d < bestD) {
          bestD = d;
          best = [i, j, k];
        }
      }
  return best;
}

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * The lesion list: the mask's components (largest first) with TP/FP when there is a truth, then
 * the true lesions no predicted voxel touches (FN). TP/FP/FN are the challenge's lesion-wise
 * definitions (segmentation/metrics.ts): any overlap counts.
 */
export function lesionList(input: LesionListInput): LesionList {
  const { mask, truth, dims, affine, dwi, adc, adcUnit } = input;
  const voxelMl = voxelVolumeMl(input.voxelSizeMm);
  const pred = input.labeling ?? labelComponents(mask, dims);
  const predCount = pred.sizes.length - 1;
  const predAcc = accumulate(pred.labels, predCount, dims, dwi, adc);
  const gt = truth ? (input.truthLabeling ?? labelComponents(truth, dims)) : null;
  const gtCount = gt ? gt.sizes.length - 1 : 0;
  const gtHit = new Uint8Array(gtCount + 1);
  if (gt && truth) {
    for (let i = truth.indexOf(1); i !== -1; i = truth.indexOf(1, i + 1)) {
      const p = pred.labels[i]!;
      if (p) {
        predAcc[p]!.hit = true;
        gtHit[gt.labels[i]!] = 1;
      }
    }
  }
  const midlineXMm = input.midlineXMm ?? headMidlineXMm(dwi, dims, affine);
  // within half a voxel of the midline: neither side
  const halfVoxel = Math.abs(affine[0]![0]!) / 2 + Math.abs(affine[0]![1]!) / 2 + Math.abs(affine[0]![2]!) / 2;
  const toLesion = (a: Acc, labels: Int32Array, label: number, status: LesionStatus | null): Omit<Lesion, 'id'> => {
    const c: [number, number, number] = [a.si / a.n, a.sj / a.n, a.sk / a.n];
    const mm = world(affine, c[0], c[1], c[2]);
    const dx = mm[0] - midlineXMm;
    return {
      status,
      voxels: a.n,
      volumeMl: a.n * voxelMl,
      centroidVoxel: [round(c[0], 2), round(c[1], 2), round(c[2], 2)],
      centroidMm: [round(mm[0], 2), round(mm[1], 2), round(mm[2], 2)],
      seedVoxel: nearestMember(labels, label, dims, a, c),
      bbox: { min: [...a.min], max: [...a.max] },
      // RAS+: world x grows toward the patient's right
      hemisphere: Math.abs(dx) <= halfVoxel ? 'midline' : dx > 0 ? 'right' : 'left',
      meanDwi: round(a.dwi / a.n),
      meanAdc: adc ? round(a.adc / a.n) : null,
      minAdc: adc ? round(a.adcMin) : null,
    };
  };
  const rows: Omit<Lesion, 'id'>[] = [];
  for (let l = 1; l <= predCount; l++) {
    const a = predAcc[l]!;
    if (!a.n) continue;
    rows.push(toLesion(a, pred.labels, l, gt ? (a.hit ? 'TP' : 'FP') : null));
  }
  rows.sort((x, y) => y.voxels - x.voxels);
  const missed: Omit<Lesion, 'id'>[] = [];
  if (gt) {
    const gtAcc = accumulate(gt.labels, gtCount, dims, dwi, adc);
    for (let l = 1; l <= gtCount; l++) if (!gtHit[l] && gtAcc[l]!.n) missed.push(toLesion(gtAcc[l]!, gt.labels, l, 'FN'));
    missed.sort((x, y) => y.voxels - x.voxels);
  }
  const items = [...rows, ...missed].map((r, i) => ({ id: i + 1, ...r }));
  const count = (s: LesionStatus) => items.filter((x) => x.status === s).length;
  return {
    items,
    adcUnit,
    midlineXMm: round(midlineXMm, 2),
    counts: { tp: count('TP'), fp: count('FP'), fn: count('FN'), total: items.length },
  };
}
