import { readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { gzipSync } from 'node:zlib';
import { readNifti, toFloat32 } from '../src/server/nifti/read.js';
import { writeNiftiGz } from '../src/server/nifti/write.js';
import { HAVE_ISLES22, ISLES22_DIR, ISLES22_FILES } from '../src/server/test/isles22.js';
import { type LiveServer, startLiveServer } from '../src/server/test/live-server.js';
import type { Affine } from '../src/shared/nifti.js';
import { percentile, probe } from './util.js';

// #24: click → refined mask, server time (the response's timingsMs.total), on the real ISLES'22
// case and on a 256×256×160 synthetic case, through a real server process (`npm start`'s build)
// with the built-in interactive model (click-grow-v1, onnxruntime). ≥ 50 clicks each, one at a
// time as an editor sends them; the first click of the session (the case decoded and
// preprocessed) is the baseline the cached clicks are compared with. Then GET /healthz every
// 20 ms from another process while one user clicks as fast as the server answers, against the
// same probe idle. Goals: p95 ≤ 150 ms (real case), ≤ 600 ms (large), the second click ≤ 0.5× the
// first, /healthz p99 ≤ 50 ms while clicking.

const CLICKS = 60;
const LARGE: [number, number, number] = [256, 256, 160];
const AFFINE: Affine = [
  [1, 0, 0, -128],
  [0, 1, 0, -128],
  [0, 0, 1, -80],
  [0, 0, 0, 1],
];

/** A head-sized synthetic case (ADC in 10⁻⁶ mm²/s) with 8 bright, restricted lesions to click in. */
function largeCase() {
  const [nx, ny, nz] = LARGE;
  const dwi = new Float32Array(nx * ny * nz);
  const adc = new Float32Array(nx * ny * nz);
  let s = 4242;
  const rand = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  const lesions = Array.from({ length: 8 }, (_, k) => [70 + (k % 4) * 35, 90 + Math.floor(k / 4) * 70, 60 + (k % 3) * 20] as const);
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++) {
        const i = x + nx * (y + ny * z);
        const r = ((x - 128) / 100) ** 2 + ((y - 128) / 115) ** 2 + ((z - 80) / 70) ** 2;
        if (r > 1) {
          dwi[i] = rand() * 30;
          adc[i] = rand() * 30;
          continue;
        }
        const lesion = lesions.some(([lx, ly, lz]) => (x - lx) ** 2 + (y - ly) ** 2 + (z - lz) ** 2 < 12 ** 2);
        dwi[i] = (lesion ? 900 : 400) + rand() * 80;
        adc[i] = (lesion ? 450 : 800) + rand() * 120;
      }
  const file = (data: Float32Array) => writeNiftiGz({ dims: LARGE, affine: AFFINE, datatype: 'float32', data }, 1);
  return {
    files: { dwi: file(dwi), adc: file(adc) },
    dims: LARGE,
    targets: lesions.map((l) => [l[0], l[1], l[2]] as [number, number, number]),
  };
}

/** The real case, and click targets inside its true lesions. */
function islesCase() {
  const files = { dwi: readFileSync(ISLES22_FILES.dwi), adc: readFileSync(ISLES22_FILES.adc), mask: readFileSync(ISLES22_FILES.mask) };
  const truth = readNifti(files.mask);
  const values = toFloat32(truth);
  const [nx, ny] = truth.dims;
  const targets: [number, number, number][] = [];
  for (let i = 0; i < values.length; i += 7) {
    if (!values[i]) continue;
    const z = Math.floor(i / (nx * ny));
    targets.push([i % nx, Math.floor(i / nx) % ny, z]);
  }
  return { files, dims: truth.dims, targets };
}

async function upload(server: LiveServer, auth: Record<string, string>, name: string, files: Record<string, Uint8Array>) {
  const form = new FormData();
  form.set('name', name);
  for (const [role, bytes] of Object.entries(files)) form.set(role, new Blob([new Uint8Array(bytes)]), `${role}.nii.gz`);
  const res = await fetch(`${server.url}/api/cases`, { method: 'POST', headers: auth, body: form });
  if (!res.ok) throw new Error(`upload ${name}: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

interface Answer {
  timingsMs: { total: number; prepare: number; model: number };
  cached: boolean;
}

async function click(server: LiveServer, auth: Record<string, string>, caseId: string, maskGz: string, voxel: [number, number, number]) {
  const res = await fetch(`${server.url}/api/masks/refine`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ caseId, from: { maskGz }, prompts: [{ voxel, positive: true }] }),
  });
  if (!res.ok) throw new Error(`refine: ${res.status} ${await res.text()}`);
  return (await res.json()) as Answer;
}

const fmt = (x: number) => x.toFixed(1).padStart(7);

console.log(
  `\nClick refinement — masks.refine through a server process, click-grow-v1 (ONNX); ${availableParallelism()} cores (${cpus()[0]?.model.trim()}), ${new Date().toISOString().slice(0, 10)}`,
);
let server: LiveServer | undefined;
try {
  server = await startLiveServer({ demoCases: 0, env: { LOG_LEVEL: 'warn', MAX_UPLOAD_MB: '600' } });
  const auth = { authorization: `Bearer ${await server.token('bench-refine@example.org')}` };
  const cases = [
    ...(HAVE_ISLES22 ? [{ name: "ISLES'22 sub-strokecase0009", goal: 150, ...islesCase() }] : []),
    { name: 'synthetic 256×256×160', goal: 600, ...largeCase() },
  ];
  if (!HAVE_ISLES22) console.log(`  (the real case is skipped: ${ISLES22_DIR} is missing)`);
  let busy: { caseId: string; maskGz: string; targets: [number, number, number][] } | undefined;
  for (const c of cases) {
    const caseId = await upload(server, auth, c.name, c.files);
    const maskGz = gzipSync(new Uint8Array(c.dims[0] * c.dims[1] * c.dims[2])).toString('base64');
    const first = await click(server, auth, caseId, maskGz, c.targets[0]!);
    const rest: number[] = [];
    for (let n = 1; n <= CLICKS; n++) {
      const a = await click(server, auth, caseId, maskGz, c.targets[(n * 13) % c.targets.length]!);
      if (!a.cached) throw new Error('a click after the first was not served from the session cache');
      rest.push(a.timingsMs.total);
    }
    const p50 = percentile(rest, 0.5);
    const p95 = percentile(rest, 0.95);
    const second = rest[0]!;
    console.log(`  ${c.name} (${c.dims.join('×')})`);
    console.log(
      `    first click (decode + preprocess) ${fmt(first.timingsMs.total)} ms  (prepare ${first.timingsMs.prepare.toFixed(1)}, model ${first.timingsMs.model.toFixed(1)})`,
    );
    console.log(`    next ${CLICKS} clicks: p50 ${fmt(p50)}  p95 ${fmt(p95)} ms  goal p95 ≤ ${c.goal}: ${p95 <= c.goal ? 'ok' : 'MISSED'}`);
    console.log(
      `    second click ${fmt(second)} ms = ${(second / first.timingsMs.total).toFixed(2)}× the first (goal ≤ 0.5×): ${second <= 0.5 * first.timingsMs.total ? 'ok' : 'MISSED'}`,
    );
    busy ??= { caseId, maskGz, targets: c.targets };
  }

  // /healthz while one user clicks as fast as the server answers (the first case)
  let stop = probe(server.url);
  await new Promise((r) => setTimeout(r, 3000));
  const idle = await stop();
  stop = probe(server.url);
  const until = performance.now() + 6000;
  let n = 0;
  while (performance.now() < until) await click(server, auth, busy!.caseId, busy!.maskGz, busy!.targets[n++ % busy!.targets.length]!);
  const during = await stop();
  const idleP99 = percentile(idle, 0.99);
  const p99 = percentile(during, 0.99);
  console.log(`  /healthz idle (baseline)           p50 ${fmt(percentile(idle, 0.5))}  p99 ${fmt(idleP99)} ms`);
  console.log(
    `  /healthz during ${String(n).padStart(3)} clicks in 6 s   p50 ${fmt(percentile(during, 0.5))}  p99 ${fmt(p99)} ms  ${(p99 / idleP99).toFixed(1)}× idle; goal p99 ≤ 50: ${p99 <= 50 ? 'ok' : 'MISSED'}`,
  );
} finally {
  await server?.stop('SIGKILL');
}
