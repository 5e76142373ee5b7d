import { describe, expect, it } from 'vitest';
import { keepLargeComponents, labelComponents, removeSmallComponents } from './components.js';
import { computeMetrics } from './metrics.js';

/** A mask from a list of [x, y, z] voxels on a small grid. */
function maskOf(dims: [number, number, number], voxels: [number, number, number][]): Uint8Array {
  const m = new Uint8Array(dims[0] * dims[1] * dims[2]);
  for (const [x, y, z] of voxels) m[z * dims[0] * dims[1] + y * dims[0] + x] = 1;
  return m;
}
const dims: [number, number, number] = [6, 6, 6];

describe('connected components (26-neighbourhood)', () => {
  it('joins voxels touching by a face, an edge or only a corner; separates the rest', () => {
    const m = maskOf(dims, [
      [0, 0, 0],
      [1, 1, 1], // corner-touching → same lesion
      [3, 3, 3], // 2 apart → new lesion
      [5, 5, 5],
    ]);
    expect(labelComponents(m, dims).sizes).toEqual([0, 2, 1, 1]);
    expect(Array.from(removeSmallComponents(m, dims, 2)).reduce((a, b) => a + b, 0)).toBe(2);
  });
});

describe('ISLES metrics, computed by hand', () => {
  it('Dice, volumes (anisotropic voxels), counts and lesion-wise F1', () => {
    // truth: lesion A = 4 voxels, lesion B = 1 voxel (far away)
    const truth = maskOf(dims, [
      [0, 0, 0],
      [1, 0, 0],
      [0, 1, 0],
      [1, 1, 0],
      [5, 5, 5],
    ]);
    // prediction: 3 voxels overlapping A + a false positive far from both
    const pred = maskOf(dims, [
      [0, 0, 0],
      [1, 0, 0],
      [2, 0, 0],
      [3, 5, 5],
    ]);
    const m = computeMetrics(pred, truth, dims, [1, 2, 3]); // 6 mm³ per voxel
    // overlap 2; Dice = 2·2 / (4 + 5)
    expect(m.dice).toBeCloseTo(4 / 9, 10);
    expect(m.predictedMl).toBeCloseTo(4 * 0.006, 10);
    expect(m.trueMl).toBeCloseTo(5 * 0.006, 10);
    expect(m.absVolumeDiffMl).toBeCloseTo(0.006, 10);
    expect(m.lesionCountTrue).toBe(2);
    expect(m.lesionCountPredicted).toBe(2);
    expect(m.lesionCountDiff).toBe(0);
    // TP = 1 (A detected), FN = 1 (B missed), FP = 1 → F1 = 2 / (2 + 1 + 1)
    expect(m.lesionF1).toBeCloseTo(0.5, 10);
  });

  it('both empty: Dice 1 and F1 1; prediction on an empty truth: Dice 0, F1 0', () => {
    const empty = new Uint8Array(216);
    expect(computeMetrics(empty, empty, dims, [2, 2, 2])).toMatchObject({
      dice: 1,
      lesionF1: 1,
      predictedMl: 0,
      trueMl: 0,
      lesionCountTrue: 0,
    });
    const one = maskOf(dims, [[2, 2, 2]]);
    expect(computeMetrics(one, empty, dims, [2, 2, 2])).toMatchObject({ dice: 0, lesionF1: 0, lesionCountPredicted: 1 });
    expect(computeMetrics(empty, one, dims, [2, 2, 2])).toMatchObject({ dice: 0, lesionF1: 0, lesionCountTrue: 1 });
  });

  it('without a ground truth, the truth-based metrics are null', () => {
    const m = computeMetrics(
      maskOf(dims, [
        [1, 1, 1],
        [2, 2, 2],
      ]),
      null,
      dims,
      [2, 2, 2],
    );
    expect(m).toEqual({
      dice: null,
      predictedMl: 0.016,
      trueMl: null,
      absVolumeDiffMl: null,
      lesionCountPredicted: 1,
      lesionCountTrue: null,
      lesionF1: null,
      lesionCountDiff: null,
    });
  });
});

describe('metrics from a labelling with dropped components', () => {
  it('give the same numbers as labelling the kept mask afresh', () => {
    const raw = maskOf(dims, [
      [0, 0, 0],
      [1, 0, 0],
      [4, 4, 4],
      [0, 5, 5],
      [1, 5, 5],
      [0, 4, 5],
    ]);
    const truth = maskOf(dims, [
      [0, 0, 0],
      [5, 5, 0],
    ]);
    const kept = keepLargeComponents(raw, dims, 2); // drops the lone voxel at (4, 4, 4)
    expect(kept.sizes.filter((n) => n > 0)).toEqual([2, 3]);
    const reused = computeMetrics(kept.mask, truth, dims, [2, 2, 2], kept);
    expect(reused).toEqual(computeMetrics(kept.mask, truth, dims, [2, 2, 2]));
    expect(reused).toMatchObject({ lesionCountPredicted: 2, lesionCountTrue: 2, lesionF1: 0.5 });
  });
});
