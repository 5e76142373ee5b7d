import type { MetricStats } from './studies.js';

/**
 * The summary a paper reports for one metric: N, mean ± SD (sample SD, n − 1), median [IQR]. The
 * quartiles interpolate linearly between order statistics (R's default type 7, NumPy's default).
 * With no values every statistic is null; the SD needs two. The server's table summary and the
 * dashboard's summary of filtered rows both use it, so the two agree.
 */
export function describe(values: readonly number[]): MetricStats {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  const n = xs.length;
  if (n === 0) return { n: 0, mean: null, sd: null, median: null, q1: null, q3: null };
  const mean = xs.reduce((a, b) => a + b, 0) / n;
  const sd = n > 1 ? Math.sqrt(xs.reduce((a, x) => a + (x - mean) ** 2, 0) / (n - 1)) : null;
  const quantile = (p: number) => {
    const h = (n - 1) * p;
    const lo = Math.floor(h);
    const hi = Math.min(n - 1, lo + 1);
    return xs[lo]! + (h - lo) * (xs[hi]! - xs[lo]!);
  };
  return { n, mean, sd, median: quantile(0.5), q1: quantile(0.25), q3: quantile(0.75) };
}
