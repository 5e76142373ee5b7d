import { readFileSync } from 'node:fs';

/** Median wall time of `fn` (sync or async) over `runs` runs after `warmup` runs, in milliseconds. */
export async function timeMedian(fn: () => unknown, runs = 7, warmup = 2): Promise<number> {
  for (let i = 0; i < warmup; i++) await fn();
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await fn();
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)]!;
}

export function row(name: string, ms: number, ratio?: { value: number; goal: string; ok: boolean }): string {
  const r = ratio ? `  ratio ${ratio.value.toFixed(2)}× (goal ${ratio.goal}) ${ratio.ok ? 'ok' : 'MISSED'}` : '';
  return `${name.padEnd(44)} ${ms.toFixed(1).padStart(9)} ms${r}`;
}

/** Peak resident memory of a process (from /proc), sampled every 50 ms until stopped. */
export function rssPeak(pid: number) {
  const read = () => Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;
  const start = read();
  let peak = start;
  const t = setInterval(() => (peak = Math.max(peak, read())), 50);
  return () => {
    clearInterval(t);
    return { startMb: start / 1048576, peakMb: Math.max(peak, read()) / 1048576 };
  };
}
