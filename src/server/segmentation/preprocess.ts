import type { ModelManifest } from '../../shared/models.js';

type Step = ModelManifest['preprocessing'][number];

/** The value of the q-quantile, estimated on a strided sample of ~16k voxels (ample for a cut-off, and ~50× cheaper than sorting the volume). */
function quantile(values: Float32Array, q: number): number {
  const stride = Math.max(1, Math.floor(values.length / 16_384));
  const sample = new Float32Array(Math.ceil(values.length / stride));
  for (let i = 0, j = 0; i < values.length; i += stride, j++) sample[j] = values[i]!;
  sample.sort();
  return sample[Math.min(sample.length - 1, Math.floor(q * (sample.length - 1)))]!;
}

/** The median of a sample (sorted in place). */
function medianOf(sample: Float32Array): number {
  sample.sort();
  return sample.length ? sample[sample.length >> 1]! : 0;
}

/**
 * Median and MAD-based sigma (1.4826 · MAD, the normal-consistent scale) of the head's voxels,
 * on a strided sample of ≤ ~262k of them. Robust: a lesion's bright voxels, however many, barely
 * move either (unlike the mean and SD of a plain z-score).
 */
export function robustHeadStats(values: Float32Array): { median: number; sigma: number; head: number } {
  const cut = 0.1 * quantile(values, 0.995);
  let head = 0;
  for (let i = 0; i < values.length; i++) if (values[i]! > cut) head++;
  const stride = Math.max(1, Math.floor(head / 262_144));
  const sample = new Float32Array(Math.ceil(head / stride));
  let k = 0;
  for (let i = 0, seen = 0; i < values.length; i++) {
    if (values[i]! > cut) {
      if (seen % stride === 0 && k < sample.length) sample[k++] = values[i]!;
      seen++;
    }
  }
  const median = medianOf(sample.subarray(0, k));
  for (let j = 0; j < k; j++) sample[j] = Math.abs(sample[j]! - median);
  const mad = medianOf(sample.subarray(0, k));
  return { median, sigma: 1.4826 * mad || 1, head };
}

export function applyPreprocessing(values: Float32Array, step: Step): Float32Array {
  switch (step.kind) {
    case 'none':
      return values;
    case 'scale': {
      const out = new Float32Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = values[i]! * step.factor + step.offset;
      return out;
    }
    case 'zscore': {
      // The head: voxels above 10% of the 99.5th percentile. Scanner background (noise, zero
      // fill) falls below it; the z-score is taken over the head only, as nnU-Net does with its
      // nonzero mask. One pass for the head's mean and variance, one to write. for the head's mean and variance, one to write: no mask array is materialised
      const cut = 0.1 * quantile(values, 0.995);
      let n = 0;
      let sum = 0;
      let sq = 0;
      for (let i = 0; i < values.length; i++) {
        const v = values[i]!;
        if (v > cut) {
          n++;
          sum += v;
          sq += v * v;
        }
      }
      const mean = n ? sum / n : 0;
      const variance = n > 1 ? (sq - n * mean * mean) / (n - 1) : 1;
      const inv = 1 / (Math.sqrt(Math.max(variance, 0)) || 1);
      const out = new Float32Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = (values[i]! - mean) * inv;
      return out;
    }
    case 'zscoreAll':
    case 'zscoreNonzero': {
      // one pass for the mean and variance (over every voxel, or the nonzero ones), one to write
      const nonzero = step.kind === 'zscoreNonzero';
      let n = 0;
      let sum = 0;
      let sq = 0;
      for (let i = 0; i < values.length; i++) {
        const v = values[i]!;
        if (nonzero && v === 0) continue;
        n++;
        sum += v;
        sq += v * v;
      }
      const mean = n ? sum / n : 0;
      // population SD, as numpy's std() that nnU-Net and MONAI use
      const sd = n ? Math.sqrt(Math.max(sq / n - mean * mean, 0)) : 0;
      const inv = 1 / Math.max(sd, 1e-8);
      const out = new Float32Array(values.length);
      for (let i = 0; i < values.length; i++) {
        const v = values[i]!;
        out[i] = nonzero && v === 0 ? 0 : (v - mean) * inv;
      }
      return out;
    }
    case 'clipZscore': {
      const out = new Float32Array(values.length);
      const inv = 1 / step.sd;
      for (let i = 0; i < values.length; i++) out[i] = (Math.min(step.upper, Math.max(step.lower, values[i]!)) - step.mean) * inv;
      return out;
    }
    case 'rescale01': {
      let min = Infinity;
      let max = -Infinity;
      for (let i = 0; i < values.length; i++) {
        const v = values[i]!;
        if (v < min) min = v;
        if (v > max) max = v;
      }
      const range = max - min;
      const out = new Float32Array(values.length);
      if (!(range > 0)) return out;
      for (let i = 0; i < values.length; i++) out[i] = (values[i]! - min) / range;
      return out;
    }
    case 'robustZscore': {
      const { median, sigma } = robustHeadStats(values);
      const inv = 1 / sigma;
      const out = new Float32Array(values.length);
      for (let i = 0; i < values.length; i++) out[i] = (values[i]! - median) * inv;
      return out;
    }
  }
}
