import { ADC_UNIT_LABELS, type AdcUnit } from '../../shared/nifti.js';

/**
 * Which unit an ADC map is in, from its values. Normal brain tissue has an ADC of 0.6–1.2 ×10⁻³
 * mm²/s (grey ≈ 0.8, white ≈ 0.7; CSF ≈ 3.0, free water at 37 °C), so the median over the head
 * (see headMedian) lies near 1 in
 * 10⁻³ mm²/s and near 1000 in 10⁻⁶ mm²/s. The windows below leave a factor of ~2.5 either side
 * for CSF-rich or atrophic brains; anything else is not a plausible ADC map in either unit
 * (a map in mm²/s, an FA or a b0 image uploaded as ADC, a bad scaling).
 */
const WINDOWS: Record<AdcUnit, [number, number]> = { '1e-3': [0.4, 2.5], '1e-6': [400, 2500] };

/** Factor from a unit to 10⁻⁶ mm²/s. */
const TO_MICRO: Record<AdcUnit, number> = { '1e-3': 1000, '1e-6': 1 };

export interface AdcUnitFinding {
  /** Null when the map is not plausible in either unit. */
  unit: AdcUnit | null;
  /** The median over the head's (positive) voxels. */
  median: number;
}

/**
 * Median over the head: the voxels above 10% of the 99.5th percentile (the same head the
 * z-scores use), on a strided sample of ≤ ~131k voxels. Scale-free, so it picks the same voxels
 * whatever the unit; background (zero, or noise from the scanner's fit) falls below the cut.
 */
export function headMedian(values: ArrayLike<number>): number {
  // ~65k voxels fix a median to well under 1 %, far inside the factor-of-1000 between the units.
  const stride = Math.max(1, Math.floor(values.length / 65_536));
  // A typed sample sorts natively (numeric, no comparator calls): ~10× faster than number[].
  const buffer = new Float32Array(Math.ceil(values.length / stride));
  let n = 0;
  for (let i = 0; i < values.length; i += stride) {
    const v = values[i]!;
    if (Number.isFinite(v)) buffer[n++] = v;
  }
  if (n === 0) return 0;
  const sample = buffer.subarray(0, n).sort();
  const cut = 0.1 * sample[Math.floor(0.995 * (n - 1))]!;
  let first = 0;
  while (first < n && !(sample[first]! > cut && sample[first]! > 0)) first++;
  const head = sample.subarray(first);
  return head.length ? head[head.length >> 1]! : 0;
}

export function detectAdcUnit(values: ArrayLike<number>): AdcUnitFinding {
  const median = headMedian(values);
  for (const unit of ['1e-3', '1e-6'] as const) {
    const [lo, hi] = WINDOWS[unit];
    if (median >= lo && median <= hi) return { unit, median };
  }
  return { unit: null, median };
}

/** A person's sentence for a map that is not an ADC in a unit we know. */
export function implausibleAdcMessage(median: number): string {
  const shown = median >= 0.01 && median < 1e5 ? Number(median.toPrecision(3)).toString() : median.toExponential(2);
  return `ADC: the median value over the head is ${shown}, which is not a plausible ADC in 10⁻³ mm²/s (tissue ≈ 0.6–1.2) or in 10⁻⁶ mm²/s (tissue ≈ 600–1200); check that this file is an ADC map and how it is scaled`;
}

/** The factor that takes values in `from` to `to` (1000 for 10⁻³ → 10⁻⁶). */
export function adcScale(from: AdcUnit, to: AdcUnit): number {
  return TO_MICRO[from] / TO_MICRO[to];
}

/** What a job says about the ADC it used: "ADC in 10⁻³ mm²/s, scaled ×1000 to the model's 10⁻⁶ mm²/s". */
export function adcUnitNote(found: AdcUnit, wanted: AdcUnit): string {
  const factor = adcScale(found, wanted);
  if (factor === 1) return `ADC in ${ADC_UNIT_LABELS[found]}, as the model expects`;
  const shown = factor >= 1 ? `×${factor}` : `×1/${1 / factor}`;
  return `ADC in ${ADC_UNIT_LABELS[found]}, scaled ${shown} to the model's ${ADC_UNIT_LABELS[wanted]}`;
}
