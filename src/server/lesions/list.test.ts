import { describe, expect, it } from 'vitest';
import type { Affine } from '../../shared/nifti.js';
import { lesionList } from './list.js';

// The lesion list's geometry on a synthetic head: hemispheres from the affine whatever the
// storage order, centroids in voxels and world mm, TP/FP/FN against a truth.

const DIMS: [number, number, number] = [40, 40, 20];
const n = DIMS[0] * DIMS[1] * DIMS[2];
const at = (x: number, y: number, z: number) => z * DIMS[0] * DIMS[1] + y * DIMS[0] + x;

/** A head (an ellipsoid of DWI 400, centred at voxel x 20) and a box lesion at voxels x 26–29 (the +i side). */
function phantom() {
  const dwi = new Float32Array(n);
  const adc = new Float32Array(n);
  const mask = new Uint8Array(n);
  for (let z = 0; z < DIMS[2]; z++)
    for (let y = 0; y < DIMS[1]; y++)
      for (let x = 0; x < DIMS[0]; x++) {
        const inside = ((x - 19.5) / 16) ** 2 + ((y - 19.5) / 18) ** 2 + ((z - 9.5) / 9) ** 2 <= 1;
        dwi[at(x, y, z)] = inside ? 400 : 5;
        adc[at(x, y, z)] = inside ? 0.8 : 0;
      }
  for (let z = 8; z < 11; z++)
    for (let y = 18; y < 22; y++)
      for (let x = 26; x < 30; x++) {
        mask[at(x, y, z)] = 1;
        dwi[at(x, y, z)] = 900;
        adc[at(x, y, z)] = 0.45;
      }
  return { dwi, adc, mask };
}

/** Mirrors the volume along i (as a scanner storing LAS instead of RAS would). */
function flipX<T extends Float32Array | Uint8Array>(a: T): T {
  const out = a.slice() as T;
  for (let z = 0; z < DIMS[2]; z++)
    for (let y = 0; y < DIMS[1]; y++) for (let x = 0; x < DIMS[0]; x++) out[at(x, y, z)] = a[at(DIMS[0] - 1 - x, y, z)]!;
  return out;
}

const RAS: Affine = [
  [2, 0, 0, -40],
  [0, 2, 0, -40],
  [0, 0, 4, -40],
  [0, 0, 0, 1],
];
// The same world, voxels stored with i running toward the patient's left.
const LAS: Affine = [
  [-2, 0, 0, 38],
  [0, 2, 0, -40],
  [0, 0, 4, -40],
  [0, 0, 0, 1],
];

describe('lesionList', () => {
  it('puts the lesion on the same side (the right) and at the same world centroid in RAS and LAS storage', () => {
    const p = phantom();
    const ras = lesionList({ ...p, truth: null, dims: DIMS, affine: RAS, voxelSizeMm: [2, 2, 4], adcUnit: '1e-3' });
    const las = lesionList({
      mask: flipX(p.mask),
      dwi: flipX(p.dwi),
      adc: flipX(p.adc),
      truth: null,
      dims: DIMS,
      affine: LAS,
      voxelSizeMm: [2, 2, 4],
      adcUnit: '1e-3',
    });
    for (const list of [ras, las]) {
      expect(list.items).toHaveLength(1);
      expect(list.items[0]).toMatchObject({ status: null, voxels: 48, hemisphere: 'right', meanDwi: 900, meanAdc: 0.45, minAdc: 0.45 });
      expect(list.items[0]!.volumeMl).toBeCloseTo(48 * 0.016, 10);
    }
    // world x of voxel 27.5 in RAS: 2·27.5 − 40 = 15 mm, right of the head's midline near −1 mm
    expect(ras.items[0]!.centroidMm).toEqual([15, -1, -4]);
    expect(las.items[0]!.centroidMm).toEqual([15, -1, -4]);
    expect(ras.items[0]!.centroidVoxel).toEqual([27.5, 19.5, 9]);
    expect(las.items[0]!.centroidVoxel).toEqual([11.5, 19.5, 9]);
    expect(ras.midlineXMm).toBeCloseTo(las.midlineXMm, 6);
    expect(ras.items[0]!.bbox).toEqual({ min: [26, 18, 8], max: [29, 21, 10] });
  });

  it('marks TP, FP and the missed true lesions (FN), largest first, with seeds inside', () => {
    const p = phantom();
    const truth = new Uint8Array(n);
    // a true lesion overlapping the predicted one, and one the prediction misses (left side)
    truth[at(27, 19, 9)] = 1;
    for (let x = 8; x < 11; x++) truth[at(x, 20, 9)] = 1;
    const mask = p.mask.slice();
    mask[at(20, 5, 9)] = 1; // a one-voxel FP
    const list = lesionList({ ...p, mask, truth, dims: DIMS, affine: RAS, voxelSizeMm: [2, 2, 4], adcUnit: '1e-3' });
    expect(list.items.map((l) => [l.id, l.status, l.voxels, l.hemisphere])).toEqual([
      [1, 'TP', 48, 'right'],
      [2, 'FP', 1, 'midline'],
      [3, 'FN', 3, 'left'],
    ]);
    expect(list.counts).toEqual({ tp: 1, fp: 1, fn: 1, total: 3 });
    expect(list.items[2]!.seedVoxel).toEqual([9, 20, 9]);
  });
});
