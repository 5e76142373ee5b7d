import { describe, expect, it } from 'vitest';
import type { Lesion } from '../../../shared/lesions.js';
import { type Vec3, nativeToRas, rasToNative, rasToNativeLut, voxelIndex } from '../viewer/grid.js';
import { STATUS_LABEL, component26, ringAround, statusLabels } from './components.js';

const dims: Vec3 = [6, 5, 4];
const put = (m: Uint8Array, ...vs: Vec3[]) => vs.forEach((v) => (m[voxelIndex(dims, v)] = 1));
const lesion = (id: number, status: Lesion['status'], seedVoxel: Vec3) => ({ id, status, seedVoxel }) as unknown as Lesion;

describe('connected components on the client', () => {
  it('finds the whole 26-connected component of a voxel (corner neighbours too) and nothing of another', () => {
    const m = new Uint8Array(6 * 5 * 4);
    put(m, [1, 1, 1], [2, 2, 2], [3, 3, 3]); // joined only through corners
    put(m, [5, 0, 0]); // apart
    const c = component26(m, dims, [2, 2, 2]);
    expect(Array.from(c).sort((a, b) => a - b)).toEqual(
      [
        [1, 1, 1],
        [2, 2, 2],
        [3, 3, 3],
      ].map((v) => voxelIndex(dims, v)),
    );
    expect(component26(m, dims, [0, 0, 0]).length, 'outside the mask').toBe(0);
    expect(component26(m, dims, [9, 0, 0]).length, 'outside the grid').toBe(0);
  });

  it('outlines a lesion with the ring of voxels around it, never on it, clipped at the grid', () => {
    const m = new Uint8Array(6 * 5 * 4);
    put(m, [2, 2, 1], [3, 2, 1]);
    const ring = ringAround(component26(m, dims, [2, 2, 1]), dims);
    // a 4×3×3 box around the 2×1×1 lesion, less the lesion
    expect(ring.reduce((a, b) => a + b, 0)).toBe(4 * 3 * 3 - 2);
    expect(ring[voxelIndex(dims, [2, 2, 1])]).toBe(0);
    expect(ring[voxelIndex(dims, [1, 1, 0])]).toBe(1);
    expect(ring[voxelIndex(dims, [5, 2, 1])]).toBe(0);
    const corner = ringAround(component26((put(m, [0, 0, 0]), m), dims, [0, 0, 0]), dims);
    expect(
      corner.reduce((a, b) => a + b, 0),
      'clipped: 2×2×2 less the voxel',
    ).toBe(7);
  });

  it('labels TP and FP from the mask and FN from the truth', () => {
    const mask = new Uint8Array(6 * 5 * 4);
    const truth = new Uint8Array(6 * 5 * 4);
    put(mask, [0, 0, 0], [1, 0, 0]); // TP
    put(mask, [4, 4, 3]); // FP
    put(truth, [0, 0, 0], [3, 2, 1]); // the TP's truth, and a missed one
    const out = statusLabels(mask, truth, dims, [lesion(1, 'TP', [0, 0, 0]), lesion(2, 'FP', [4, 4, 3]), lesion(3, 'FN', [3, 2, 1])]);
    expect(out[voxelIndex(dims, [1, 0, 0])]).toBe(STATUS_LABEL.TP);
    expect(out[voxelIndex(dims, [4, 4, 3])]).toBe(STATUS_LABEL.FP);
    expect(out[voxelIndex(dims, [3, 2, 1])]).toBe(STATUS_LABEL.FN);
    expect(out.reduce((a, b) => a + (b ? 1 : 0), 0)).toBe(4);
  });

  it('reuses one scratch volume across flood fills: the same components, and the scratch zero again after each', () => {
    const m = new Uint8Array(6 * 5 * 4);
    put(m, [1, 1, 1], [2, 2, 2], [3, 3, 3]);
    put(m, [5, 0, 0], [5, 1, 0]);
    const seen = new Uint8Array(m.length);
    for (const seed of [
      [2, 2, 2],
      [5, 0, 0],
      [0, 0, 0],
      [3, 3, 3],
    ] as Vec3[]) {
      const sorted = (c: Uint32Array) => Array.from(c).sort((a, b) => a - b);
      expect(sorted(component26(m, dims, seed, seen))).toEqual(sorted(component26(m, dims, seed)));
      expect(seen.every((v) => v === 0)).toBe(true);
    }
  });
});

describe("NiiVue's RAS voxel order and the file's", () => {
  // a file stored LPS-like: its first axis runs right-to-left, the second is anterior-posterior flipped, slices are axis 3
  const order = { dims, permRAS: [-1, -2, 3] };
  it('converts voxels both ways, and the lookup table agrees voxel by voxel', () => {
    expect(nativeToRas(order, [0, 0, 0])).toEqual([5, 4, 0]);
    for (const v of [
      [0, 0, 0],
      [5, 4, 3],
      [2, 1, 3],
    ] as Vec3[])
      expect(rasToNative(order, nativeToRas(order, v))).toEqual(v);
    const lut = rasToNativeLut(order);
    const ras = [3, 1, 2] as Vec3;
    expect(lut[ras[0] + 6 * (ras[1] + 5 * ras[2])]).toBe(voxelIndex(dims, rasToNative(order, ras)));
    expect(new Set(lut).size).toBe(lut.length);
  });
  it('handles permuted axes (a sagittally stored file)', () => {
    const o = { dims: [4, 6, 5] as Vec3, permRAS: [3, 1, -2] };
    const lut = rasToNativeLut(o);
    const rasDims = [5, 4, 6];
    const r = [2, 3, 1];
    expect(lut[r[0]! + rasDims[0]! * (r[1]! + rasDims[1]! * r[2]!)]).toBe(voxelIndex(o.dims, rasToNative(o, r)));
    expect(rasToNative(o, nativeToRas(o, [1, 2, 3]))).toEqual([1, 2, 3]);
  });
});
