/// <reference lib="dom" />
// The viewer: navigation → first painted case (goal ≤ 1.5 s on loopback) against a baseline
// measured in the same run — the same page fetching the case's volume files itself, no viewer —
// and the initial bundle a first visit downloads (entry + what index.html preloads; NiiVue is a
// lazy chunk). Needs `npm run build` (the bench builds first when dist/client is missing).
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { launchBrowser, startServer } from '../e2e/helpers.js';
import { ROOT } from '../src/server/test/process.js';

const client = path.join(ROOT, 'dist', 'client');
if (!existsSync(path.join(client, 'index.html'))) spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: 'inherit' });

const html = readFileSync(path.join(client, 'index.html'), 'utf8');
const initial = [...html.matchAll(/(?:src|href)="\/(assets\/[^"]+)"/g)].map((m) => m[1]!);
let raw = 0;
let gz = 0;
for (const f of initial) {
  const bytes = readFileSync(path.join(client, f));
  raw += bytes.length;
  gz += gzipSync(bytes).length;
}
console.log(
  `\nViewer — initial bundle: ${initial.length} files, ${(raw / 1024).toFixed(1)} kB (${(gz / 1024).toFixed(1)} kB gzip); NiiVue loads later, with the first case`,
);

const server = await startServer({ DEMO_CASES: '1' });
const browser = await launchBrowser();
try {
  const caseId = ((await (await fetch(`${server.url}/trpc/cases.list`)).json()) as { result: { data: { items: { id: string }[] } } }).result
    .data.items[0]!.id;
  const runs = 5;
  const viewer: number[] = [];
  const baseline: number[] = [];
  for (let i = 0; i < runs; i++) {
    // each run a fresh context: nothing cached, as a first visit
    const ctx = await browser.newContext({ viewport: { width: 1280, height: 860 } });
    const page = await ctx.newPage();
    const t0 = performance.now();
    await page.goto(`${server.url}/cases/${caseId}`);
    await page.waitForFunction(() => document.querySelector('.viewer-holder')?.getAttribute('data-loaded')?.includes('truth'), null, {
      timeout: 60_000,
    });
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    viewer.push(performance.now() - t0);
    await ctx.close();

    const ctx2 = await browser.newContext();
    const page2 = await ctx2.newPage();
    const detail = (
      (await (await fetch(`${server.url}/trpc/cases.byId?input=${encodeURIComponent(JSON.stringify({ id: caseId }))}`)).json()) as {
        result: { data: { volumes: { role: string; url: string }[] } };
      }
    ).result.data;
    const urls = detail.volumes.filter((v) => v.role === 'dwi' || v.role === 'mask').map((v) => v.url);
    const t1 = performance.now();
    await page2.goto(`${server.url}/healthz`);
    await page2.evaluate(async (us) => {
      await Promise.all(us.map((u) => fetch(u).then((r) => r.arrayBuffer())));
    }, urls);
    baseline.push(performance.now() - t1);
    await ctx2.close();
  }
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  const v = median(viewer);
  const b = median(baseline);
  console.log(
    `${'navigation → first painted case (median of 5)'.padEnd(52)} ${v.toFixed(0).padStart(6)} ms  (goal ≤ 1500 ms) ${v <= 1500 ? 'ok' : 'MISSED'}`,
  );
  console.log(
    `${'baseline: a blank page fetching the same volumes'.padEnd(52)} ${b.toFixed(0).padStart(6)} ms  ratio ${(v / b).toFixed(1)}×`,
  );
} finally {
  await browser.close();
  await server.stop();
}
