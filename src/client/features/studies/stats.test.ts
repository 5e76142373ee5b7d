import { describe, expect, it } from 'vitest';
import type { StudyTableRow } from '../../../shared/studies.js';
import { blandAltman, meanSd, pairedDice } from './stats.js';

const row = (runId: string, caseId: string, dice: number | null, predictedMl: number | null = null, trueMl: number | null = null) =>
  ({ runId, caseId, caseName: `case ${caseId}`, dice, predictedMl, trueMl }) as unknown as StudyTableRow;

describe('study statistics', () => {
  it('mean and sample SD', () => {
    expect(meanSd([])).toEqual({ mean: null, sd: null });
    expect(meanSd([4])).toEqual({ mean: 4, sd: null });
    const { mean, sd } = meanSd([2, 4, 4, 4, 5, 5, 7, 9]);
    expect(mean).toBe(5);
    expect(sd).toBeCloseTo(Math.sqrt(32 / 7), 12);
  });

  it('Bland–Altman: bias and 95 % limits of agreement over rows with both volumes', () => {
    const ba = blandAltman([
      row('r', '1', null, 10, 8),
      row('r', '2', null, 5, 6),
      row('r', '3', null, 3, 3),
      row('r', '4', null, null, 2),
    ]);
    expect(ba.points.map((p) => [p.mean, p.diff])).toEqual([
      [9, 2],
      [5.5, -1],
      [3, 0],
    ]);
    expect(ba.meanDiff).toBeCloseTo(1 / 3, 12);
    const sd = Math.sqrt(((2 - 1 / 3) ** 2 + (-1 - 1 / 3) ** 2 + (1 / 3) ** 2) / 2);
    expect(ba.sd).toBeCloseTo(sd, 12);
    expect(ba.lower).toBeCloseTo(1 / 3 - 1.96 * sd, 12);
    expect(ba.upper).toBeCloseTo(1 / 3 + 1.96 * sd, 12);
  });

  it('paired Dice: only cases in both runs, b − a, and the Wilcoxon signed-rank p-value', () => {
    // Hollander & Wolfe (1973), the example of the stdlib README: exact two-sided p = 0.0390625
    const x = [1.83, 0.5, 1.62, 2.48, 1.68, 1.88, 1.55, 3.06, 1.3];
    const y = [0.878, 0.647, 0.598, 2.05, 1.06, 1.29, 1.06, 3.14, 1.29];
    const rows = [
      ...x.map((v, i) => row('B', String(i), v)),
      ...y.map((v, i) => row('A', String(i), v)),
      row('B', 'only-b', 0.5),
      row('A', 'x', null),
    ];
    const p = pairedDice(rows, 'A', 'B');
    expect(p.diffs).toHaveLength(9);
    expect(p.diffs[0]!.diff).toBeCloseTo(1.83 - 0.878, 12);
    expect(p.pValue).toBeCloseTo(0.0390625, 6);
    expect(p.statistic).toBe(40);
  });

  it('no p-value when every difference is zero or there are no pairs', () => {
    expect(pairedDice([row('A', '1', 0.8), row('B', '1', 0.8)], 'A', 'B').pValue).toBeNull();
    expect(pairedDice([row('A', '1', 0.8)], 'A', 'B')).toMatchObject({ diffs: [], pValue: null, meanDiff: null });
  });
});
