import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readNifti, toFloat32 } from '../nifti/read.js';
import { HAVE_ISLES22, ISLES22_FILES, ISLES22_TITLE } from '../test/isles22.js';
import { computeMetrics } from './metrics.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry } from './models.js';
import { runPipeline } from './pipeline.js';

/**
 * The values the challenge's own definitions give on this case for the getting-started
 * notebook's baseline (DWI above the 99th percentile of its nonzero voxels): computed once outside
 * the project with the ISLES'22 scoring functions (compute_dice, compute_absolute_volume_difference,
 * compute_absolute_lesion_difference, compute_lesion_f1_score; 26-connectivity, nibabel for I/O).
 */
const CHALLENGE_BASELINE = {
  dice: 0.1738013698630137,
  avdMl: 10.32,
  lesionCountDiff: 87,
  lesionF1: 0.24793388429752067,
  predictedVoxels: 1813,
};

/** numpy.percentile (linear interpolation) of the nonzero values. */
function percentileOfNonzero(values: Float32Array | Float64Array, q: number): number {
  const s = Float64Array.from(values.filter((v) => v !== 0)).sort();
  const h = (s.length - 1) * (q / 100);
  const lo = Math.floor(h);
  return s[lo]! + (h - lo) * ((s[lo + 1] ?? s[lo]!) - s[lo]!);
}

describe.skipIf(!HAVE_ISLES22)(ISLES22_TITLE, () => {
  const bytes = Object.fromEntries(
    Object.entries(ISLES22_FILES).map(([role, f]) => [role, HAVE_ISLES22 ? readFileSync(f) : Buffer.alloc(0)]),
  );
  let registry: ModelRegistry;
  beforeAll(async () => {
    registry = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 1 });
  });
  afterAll(async () => {
    await registry?.close();
  });

  it("metrics reproduce the challenge's definitions on the 99th-percentile DWI baseline", () => {
    const dwi = readNifti(bytes.dwi!);
    const gtVol = readNifti(bytes.mask!);
    expect(gtVol.datatype).toBe('uint16');
    const gt = Uint8Array.from(toFloat32(gtVol), (v) => (v !== 0 ? 1 : 0));
    const values = toFloat32(dwi);
    const t = percentileOfNonzero(values, 99);
    const pred = Uint8Array.from(values, (v) => (v > t ? 1 : 0));
    expect(pred.reduce((a, b) => a + b, 0)).toBe(CHALLENGE_BASELINE.predictedVoxels);
    const m = computeMetrics(pred, gt, dwi.dims, dwi.voxelSizeMm);
    expect(m.dice).toBeCloseTo(CHALLENGE_BASELINE.dice, 12);
    expect(m.absVolumeDiffMl).toBeCloseTo(CHALLENGE_BASELINE.avdMl, 9);
    expect(m.lesionCountDiff).toBe(CHALLENGE_BASELINE.lesionCountDiff);
    expect(m.lesionF1).toBeCloseTo(CHALLENGE_BASELINE.lesionF1, 12);
    expect(m.lesionCountTrue).toBe(18);
    expect(m.trueMl).toBeCloseTo(4.184, 9);
  });

  it('the default model finds the ADC in 10⁻³ mm²/s, converts it, and beats the challenge baseline on every ISLES metric', async () => {
    const result = await runPipeline({ read: async (role) => bytes[role], models: [registry.models.get('adc-dwi-v2')!] });
    expect(result.notes).toEqual(["ADC in 10⁻³ mm²/s, scaled ×1000 to the model's 10⁻⁶ mm²/s"]);
    const m = result.metrics;
    expect(m.dice!).toBeGreaterThanOrEqual(0.35); // goal; baseline 0.174
    expect(m.lesionF1!).toBeGreaterThanOrEqual(0.3); // goal; baseline 0.248
    expect(m.absVolumeDiffMl!).toBeLessThan(CHALLENGE_BASELINE.avdMl);
    expect(m.lesionCountDiff!).toBeLessThan(CHALLENGE_BASELINE.lesionCountDiff);
    // the numbers the README reports
    console.info(`adc-dwi-v2 on sub-strokecase0009: ${JSON.stringify(m)}`);
  });

  it('adc-core-v1 (kept loadable) now reads the same ADC in the right unit too', async () => {
    const result = await runPipeline({ read: async (role) => bytes[role], models: [registry.models.get('adc-core-v1')!] });
    expect(result.notes).toEqual(["ADC in 10⁻³ mm²/s, scaled ×1000 to the model's 10⁻⁶ mm²/s"]);
    console.info(`adc-core-v1 on sub-strokecase0009: ${JSON.stringify(result.metrics)}`);
  });
});
