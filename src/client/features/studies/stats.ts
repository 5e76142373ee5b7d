import wilcoxon from '@stdlib/stats-wilcoxon';
import type { StudyTableRow } from '../../../shared/studies.js';

/** Mean and sample SD (n − 1); SD null below two values. */
export function meanSd(xs: readonly number[]): { mean: number | null; sd: number | null } {
  if (xs.length === 0) return { mean: null, sd: null };
  const mean = xs.reduce((a, b) => a + b, 0) / xs.length;
  if (xs.length < 2) return { mean, sd: null };
  const ss = xs.reduce((a, b) => a + (b - mean) ** 2, 0);
  return { mean, sd: Math.sqrt(ss / (xs.length - 1)) };
}

export type BlandAltmanPoint = { caseId: string; caseName: string; mean: number; diff: number };

export type BlandAltman = {
  points: BlandAltmanPoint[];
  /** Mean of predicted − true (the bias), mL. */
  meanDiff: number | null;
  sd: number | null;
  /** 95 % limits of agreement: meanDiff ± 1.96 SD. */
  lower: number | null;
  upper: number | null;
};

/** Bland–Altman of predicted vs true volume over the rows that have both. */
export function blandAltman(rows: readonly Pick<StudyTableRow, 'caseId' | 'caseName' | 'predictedMl' | 'trueMl'>[]): BlandAltman {
  const points: BlandAltmanPoint[] = [];
  for (const r of rows) {
    if (r.predictedMl === null || r.trueMl === null) continue;
    points.push({ caseId: r.caseId, caseName: r.caseName, mean: (r.predictedMl + r.trueMl) / 2, diff: r.predictedMl - r.trueMl });
  }
  const { mean, sd } = meanSd(points.map((p) => p.diff));
  return {
    points,
    meanDiff: mean,
    sd,
    lower: mean !== null && sd !== null ? mean - 1.96 * sd : null,
    upper: mean !== null && sd !== null ? mean + 1.96 * sd : null,
  };
}

export type PairedDiff = { caseId: string; caseName: string; a: number; b: number; diff: number };

export type PairedComparison = {
  /** Per case with a Dice in both runs: b − a. */
  diffs: PairedDiff[];
  meanDiff: number | null;
  medianDiff: number | null;
  /** Wilcoxon signed-rank test (two-sided) of the paired differences; null when not computable. */
  pValue: number | null;
  statistic: number | null;
  method: string | null;
};

function median(xs: readonly number[]): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** Dice of run b against run a on the cases both have a Dice for, with the Wilcoxon signed-rank p-value. */
export function pairedDice(rows: readonly StudyTableRow[], runA: string, runB: string): PairedComparison {
  const a = new Map<string, StudyTableRow>();
  for (const r of rows) if (r.runId === runA && r.dice !== null) a.set(r.caseId, r);
  const diffs: PairedDiff[] = [];
  for (const r of rows) {
    const ra = a.get(r.caseId);
    if (r.runId !== runB || r.dice === null || !ra || ra.dice === null) continue;
    diffs.push({ caseId: r.caseId, caseName: r.caseName, a: ra.dice, b: r.dice, diff: r.dice - ra.dice });
  }
  const d = diffs.map((x) => x.diff);
  let test: { pValue: number; statistic: number; method: string } | null = null;
  // the test needs at least one non-zero difference (zero differences are dropped: zeroMethod 'wilcox')
  if (d.some((x) => x !== 0)) {
    try {
      const out = wilcoxon(
        diffs.map((x) => x.b),
        diffs.map((x) => x.a),
      );
      test = Number.isFinite(out.pValue) ? { pValue: out.pValue, statistic: out.statistic, method: out.method } : null;
    } catch {
      test = null;
    }
  }
  return {
    diffs,
    meanDiff: meanSd(d).mean,
    medianDiff: median(d),
    pValue: test?.pValue ?? null,
    statistic: test?.statistic ?? null,
    method: test?.method ?? null,
  };
}

/** Formats mean ± SD and median [IQR]. */
export function fmt(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || !Number.isFinite(x) ? '—' : x.toFixed(digits);
}
