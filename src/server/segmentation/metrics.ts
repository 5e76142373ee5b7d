import type { SegmentationMetrics } from '../../shared/models.js';
import { voxelVolumeMl } from '../nifti/geometry.js';
import { type Labeling, labelComponents } from './components.js';

/**
 * Dice of two 0/1 masks of one grid: 2|A∩B| / (|A| + |B|); two empty masks agree fully (1).
 * Visits set voxels only (native indexOf scan): masks are mostly empty.
 */
export function dice(a: Uint8Array, b: Uint8Array): number {
  let sa = 0;
  let both = 0;
  for (let i = a.indexOf(1); i !== -1; i = a.indexOf(1, i + 1)) {
    sa++;
    if (b[i]) both++;
  }
  let sb = 0;
  for (let i = b.indexOf(1); i !== -1; i = b.indexOf(1, i + 1)) sb++;
  return sa + sb === 0 ? 1 : (2 * both) / (sa + sb);
}

/**
 * The ISLES'22 challenge metrics, as its scoring code (isles22 `utils/eval_utils.py`:
 * compute_dice, compute_absolute_volume_difference, compute_absolute_lesion_difference,
 * compute_lesion_f1_score; cc3d with 26-connectivity) defines them. The ground truth is binarised
 * as nonzero (`astype(bool)`) by the caller. Edge cases, defined here and tested:
 * - Dice of two empty masks is 1 (nothing to find, nothing found); one empty and one not is 0.
 * - Lesion-wise F1: a true lesion (26-connected component) counts as detected when any predicted
 *   voxel overlaps it; a predicted component touching no true lesion is a false positive.
 *   F1 = 2TP / (2TP + FP + FN); with no true and no predicted lesions it is 1.
 * - Volumes in mL from the header's voxel size (anisotropic voxels included).
 * - Without a ground-truth mask, every metric that needs one is null.
 */
export function computeMetrics(
  predicted: Uint8Array,
  truth: Uint8Array | null,
  dims: readonly [number, number, number],
  voxelSizeMm: readonly [number, number, number],
  /** The prediction's components when the caller has them already (saves one labelling). */
  predictedLabeling?: Labeling,
): SegmentationMetrics {
  const voxelMl = voxelVolumeMl(voxelSizeMm);
  const pred = predictedLabeling ?? labelComponents(predicted, dims);
  // labels may have gaps (dropped components have size 0): count the ones that exist
  const lesions = (sizes: number[]) => sizes.reduce((n, size, l) => n + (l > 0 && size > 0 ? 1 : 0), 0);
  // Masks are 0/1 and mostly empty: every loop below visits set voxels only (native indexOf scan).
  let predCount = 0;
  for (let i = predicted.indexOf(1); i !== -1; i = predicted.indexOf(1, i + 1)) predCount++;
  const predictedMl = predCount * voxelMl;
  if (!truth) {
    return {
      dice: null,
      predictedMl,
      trueMl: null,
      absVolumeDiffMl: null,
      lesionCountPredicted: lesions(pred.sizes),
      lesionCountTrue: null,
      lesionF1: null,
      lesionCountDiff: null,
    };
  }
  let trueCount = 0;
  for (let i = truth.indexOf(1); i !== -1; i = truth.indexOf(1, i + 1)) trueCount++;
  const gt = labelComponents(truth, dims);
  const trueLesions = gt.sizes.length - 1;
  const predLesions = lesions(pred.sizes);
  const predLabels = pred.sizes.length - 1;
  const detected = new Uint8Array(trueLesions + 1);
  const predHits = new Uint8Array(predLabels + 1);
  for (let i = truth.indexOf(1); i !== -1; i = truth.indexOf(1, i + 1)) {
    const p = pred.labels[i]!;
    if (p) {
      detected[gt.labels[i]!] = 1;
      predHits[p] = 1;
    }
  }
  let tp = 0;
  for (let l = 1; l <= trueLesions; l++) tp += detected[l]!;
  let fp = 0;
  for (let l = 1; l <= predLabels; l++) if (pred.sizes[l]! > 0 && !predHits[l]) fp++;
  const fn = trueLesions - tp;
  const lesionF1 = tp + fp + fn === 0 ? 1 : (2 * tp) / (2 * tp + fp + fn);
  const trueMl = trueCount * voxelMl;
  return {
    dice: dice(predicted, truth),
    predictedMl,
    trueMl,
    absVolumeDiffMl: Math.abs(predictedMl - trueMl),
    lesionCountPredicted: predLesions,
    lesionCountTrue: trueLesions,
    lesionF1,
    lesionCountDiff: Math.abs(trueLesions - predLesions),
  };
}
