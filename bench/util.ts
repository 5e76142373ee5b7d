import { spawn } from 'node:child_process';
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

export function percentile(xs: number[], p: number) {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(p * s.length))] ?? NaN;
}

/**
 * Probes /healthz every 20 ms from a separate process until stopped (so the latencies are the
 * server's, not this process's, which is busy sending uploads); each probe's latency in ms.
 */
const PROBE = `
  const url = process.argv[1];
  const latencies = [];
  let running = true;
  let paused = false;
  process.stdin.on('data', (d) => {
    for (const cmd of String(d).split(/\\s+/)) {
      if (cmd === 'pause') paused = true;
      else if (cmd === 'resume') paused = false;
      else if (cmd === 'stop') running = false;
    }
  });
  (async () => {
    while (running) {
      if (paused) {
        await new Promise((r) => setTimeout(r, 5));
        continue;
      }
      const t0 = performance.now();
      await fetch(url + '/healthz').then((r) => r.arrayBuffer());
      latencies.push(performance.now() - t0);
      const wait = 20 - (performance.now() - t0);
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    // The first probes pay for the connection and JIT: not the server's doing.
    process.stdout.write(JSON.stringify(latencies.slice(5)));
    process.exit(0);
  })();
`;
export function probe(url: string) {
  const child = spawn(process.execPath, ['-e', PROBE, url], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const done = new Promise<number[]>((resolve) => child.on('exit', () => resolve(JSON.parse(out || '[]') as number[])));
  // stop() ends it with the latencies; pause()/resume() hold it while the bench measures something else.
  return Object.assign(
    async () => {
      child.stdin.write('stop\n');
      return done;
    },
    { pause: () => child.stdin.write('pause\n'), resume: () => child.stdin.write('resume\n') },
  );
}
