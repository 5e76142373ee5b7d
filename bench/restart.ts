import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ROOT } from '../src/server/test/process.js';

// Warm restart (#29): the built server (`node dist/src/server/index.js`, as `npm start` and the
// Dockerfile run it) on an existing DATA_DIR with the embedded database, from spawn to the first
// `/readyz` 200 — the wait a sleeping Space's first visitor pays after the wake-up. One cold boot
// makes the folder (migrations, demo cases), then BENCH_RESTARTS (default 5) restarts, each
// stopped with SIGTERM; the median, with each boot's phases from its `ready` log line. For
// reference, the same process's first `/healthz` 200 (it listens before it opens anything).
// Goal: median ≤ 1 s. BENCH_RESTART_BASELINE=<another build's dist/src/server/index.js> (e.g. main's,
// built in a copy of the tree) interleaves its restarts with ours on the same folder and prints
// the ratio: on a shared machine the load moves between runs, not within one pair.

const RESTARTS = Number(process.env.BENCH_RESTARTS ?? 5);
const entry = path.join(ROOT, 'dist/src/server/index.js');

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

async function until(url: string, child: ChildProcess): Promise<void> {
  for (;;) {
    if (child.exitCode !== null) throw new Error(`the server exited (${child.exitCode}) before ${url} answered 200`);
    const ok = await fetch(url).then(
      (r) => (void r.arrayBuffer(), r.ok),
      () => false,
    );
    if (ok) return;
    await new Promise((r) => setTimeout(r, 5));
  }
}

const baselineEntry = process.env.BENCH_RESTART_BASELINE;

async function boot(dataDir: string, script = entry) {
  const port = await freePort();
  const t0 = performance.now();
  const child = spawn(process.execPath, [script], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'production',
      SECRET_KEY: 'bench-secret-key-that-is-long-enough-0123',
      DATA_DIR: dataDir,
      PORT: String(port),
      HOST: '127.0.0.1',
      LOG_LEVEL: 'info',
      DATABASE_URL: '',
      PUBLIC_URL: `http://127.0.0.1:${port}`,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const base = `http://127.0.0.1:${port}`;
  await until(`${base}/healthz`, child);
  const healthMs = performance.now() - t0;
  await until(`${base}/readyz`, child);
  const readyMs = performance.now() - t0;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
  const ready = out
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as { msg?: string; phases?: Record<string, number>; bootMs?: number; sinceProcessStartMs?: number })
    .find((l) => l.msg === 'ready');
  return { healthMs, readyMs, ready };
}

const phaseList = (line: { phases?: Record<string, number> } | undefined) =>
  Object.entries(line?.phases ?? {})
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');

if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build:server\` first`);
console.log(`\nWarm restart — the built server on an existing DATA_DIR (embedded database), ${RESTARTS} restarts`);
const dataDir = mkdtempSync(path.join(tmpdir(), 'sv-restart-'));
try {
  const first = await boot(dataDir);
  console.log(`  first boot (creates the folder): /readyz 200 after ${first.readyMs.toFixed(0)} ms`);
  const runs = [];
  const baseline: number[] = [];
  for (let i = 0; i < RESTARTS; i++) {
    if (baselineEntry) {
      const b = await boot(dataDir, baselineEntry);
      baseline.push(b.readyMs);
      console.log(
        `  baseline restart ${i + 1}: /healthz ${b.healthMs.toFixed(0)} ms, /readyz ${b.readyMs.toFixed(0)} ms (phases ms: ${phaseList(b.ready)})`,
      );
    }
    const r = await boot(dataDir);
    runs.push(r);
    const phases = phaseList(r.ready);
    console.log(
      `  restart ${i + 1}: /healthz ${r.healthMs.toFixed(0)} ms, /readyz ${r.readyMs.toFixed(0)} ms (process start → ready ${r.ready?.sinceProcessStartMs} ms; phases ms: ${phases})`,
    );
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const ready = median(runs.map((r) => r.readyMs));
  const health = median(runs.map((r) => r.healthMs));
  console.log(
    `  median: /readyz 200 after ${ready.toFixed(0)} ms; /healthz (listening) ${health.toFixed(0)} ms, ratio ${(ready / health).toFixed(2)}× (goal /readyz ≤ 1,000 ms): ${ready <= 1000 ? 'ok' : 'MISSED'}`,
  );
  if (baselineEntry) {
    const b = median(baseline);
    console.log(
      `  baseline (${baselineEntry}) median /readyz ${b.toFixed(0)} ms; ours ${ready.toFixed(0)} ms: ${(ready / b).toFixed(2)}× the baseline`,
    );
  }
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
