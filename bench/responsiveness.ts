import { availableParallelism, cpus, totalmem } from 'node:os';
import { encodeNifti, writeNiftiGz } from '../src/server/nifti/write.js';
import type { Affine } from '../src/shared/nifti.js';
import { type LiveServer, startLiveServer } from '../src/server/test/live-server.js';
import { percentile, probe, rssPeak } from './util.js';

// Event-loop responsiveness of a real server process (`npm start`'s build: embedded database,
// in-process worker): a client calls GET /healthz every 20 ms; its latencies idle (the baseline,
// same run) are compared with those while a large case uploads and while a job runs on it.
// Peak RSS of the server process is sampled from /proc every 50 ms.
// Goal (#15): p99 ≤ 50 ms and max ≤ 200 ms under load; the baseline before the CPU pool was
// p99/max 2,651 ms during a 48 MB upload and max 1,542 ms during a job.

const DIMS: [number, number, number] = [256, 256, 160];
const AFFINE: Affine = [
  [1, 0, 0, -128],
  [0, 1, 0, -128],
  [0, 0, 1, -80],
  [0, 0, 0, 1],
];

/** A head-sized synthetic case: noisy tissue in an ellipsoid (plausible ADC in 10⁻⁶ mm²/s), a bright, dark-ADC lesion. */
function largeCase(): { dwi: Float32Array; adc: Float32Array } {
  const [nx, ny, nz] = DIMS;
  const dwi = new Float32Array(nx * ny * nz);
  const adc = new Float32Array(nx * ny * nz);
  let s = 12345;
  const rand = () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let z = 0; z < nz; z++)
    for (let y = 0; y < ny; y++)
      for (let x = 0; x < nx; x++) {
        const i = x + nx * (y + ny * z);
        const r = ((x - 128) / 100) ** 2 + ((y - 128) / 115) ** 2 + ((z - 80) / 70) ** 2;
        if (r > 1) {
          // scanner noise outside the head: real images compress far less than zeros
          dwi[i] = rand() * 30;
          adc[i] = rand() * 30;
          continue;
        }
        const lesion = (x - 90) ** 2 + (y - 120) ** 2 + (z - 80) ** 2 < 15 ** 2;
        dwi[i] = (lesion ? 900 : 400) + rand() * 80;
        adc[i] = (lesion ? 450 : 800) + rand() * 120;
      }
  return { dwi, adc };
}

function line(name: string, xs: number[], baselineP99?: number) {
  const p50 = percentile(xs, 0.5);
  const p99 = percentile(xs, 0.99);
  const max = Math.max(...xs);
  const goal =
    baselineP99 === undefined
      ? ''
      : `  p99 ${(p99 / baselineP99).toFixed(1)}× idle; goal p99 ≤ 50, max ≤ 200: ${p99 <= 50 && max <= 200 ? 'ok' : 'MISSED'}`;
  console.log(
    `  ${name.padEnd(34)} n=${String(xs.length).padStart(4)}  p50 ${p50.toFixed(1).padStart(7)}  p99 ${p99.toFixed(1).padStart(7)}  max ${max.toFixed(1).padStart(7)} ms${goal}`,
  );
}

console.log(
  `\nResponsiveness — GET /healthz every 20 ms against a server process (in-process worker); ${availableParallelism()} cores (${cpus()[0]?.model.trim()}), ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${new Date().toISOString().slice(0, 10)}`,
);
const { dwi, adc } = largeCase();
const files = {
  dwi: writeNiftiGz({ dims: DIMS, affine: AFFINE, datatype: 'float32', data: dwi }, 1),
  adc: writeNiftiGz({ dims: DIMS, affine: AFFINE, datatype: 'float32', data: adc }, 1),
};
const mb = (n: number) => (n / 1048576).toFixed(1);
console.log(`  case: ${DIMS.join('×')} float32 DWI + ADC, .nii.gz, ${mb(files.dwi.length + files.adc.length)} MB`);

let server: LiveServer | undefined;
try {
  // BENCH_DATABASE_URL: the same against PostgreSQL (the embedded PGlite runs SQL on the main thread).
  const dbUrl = process.env.BENCH_DATABASE_URL;
  server = await startLiveServer({
    demoCases: 0,
    env: { LOG_LEVEL: 'warn', MAX_UPLOAD_MB: '600', ...(dbUrl ? { DATABASE_URL: dbUrl } : {}) },
  });
  console.log(`  database: ${dbUrl ? 'PostgreSQL' : 'embedded PGlite'}`);
  const token = await server.token('bench@example.org');
  const auth = { authorization: `Bearer ${token}` };
  const pid = server.child.pid!;

  // idle
  let stop = probe(server.url);
  await new Promise((r) => setTimeout(r, 3000));
  const idle = await stop();
  line('idle (baseline)', idle);
  const idleP99 = percentile(idle, 0.99);

  // a large upload
  const form = new FormData();
  form.set('name', 'large');
  form.set('dwi', new Blob([new Uint8Array(files.dwi)]), 'dwi.nii.gz');
  form.set('adc', new Blob([new Uint8Array(files.adc)]), 'adc.nii.gz');
  stop = probe(server.url);
  let mem = rssPeak(pid);
  const up = await fetch(`${server.url}/api/cases`, { method: 'POST', headers: auth, body: form });
  const upMem = mem();
  const during = await stop();
  if (!up.ok) throw new Error(`upload failed: ${up.status} ${await up.text()}`);
  const caseId = ((await up.json()) as { id: string }).id;
  line(`during a ${mb(files.dwi.length + files.adc.length)} MB upload`, during, idleP99);
  console.log(`  server RSS during the upload: ${upMem.startMb.toFixed(0)} → peak ${upMem.peakMb.toFixed(0)} MB`);

  // a job on it
  stop = probe(server.url);
  mem = rssPeak(pid);
  const created = (await (
    await fetch(`${server.url}/api/jobs`, {
      method: 'POST',
      headers: { ...auth, 'content-type': 'application/json' },
      body: JSON.stringify({ caseId }),
    })
  ).json()) as { id: string };
  let job: { status: string; error: string | null } = { status: 'queued', error: null };
  const t0 = performance.now();
  while (!['succeeded', 'failed', 'cancelled'].includes(job.status)) {
    await new Promise((r) => setTimeout(r, 100));
    job = (await (await fetch(`${server.url}/api/jobs/${created.id}`, { headers: auth })).json()) as typeof job;
  }
  const jobMs = performance.now() - t0;
  const jobMem = mem();
  const duringJob = await stop();
  if (job.status !== 'succeeded') throw new Error(`job ${job.status}: ${job.error}`);
  line(`during a job on it (${(jobMs / 1000).toFixed(1)} s)`, duringJob, idleP99);
  console.log(`  server RSS during the job: ${jobMem.startMb.toFixed(0)} → peak ${jobMem.peakMb.toFixed(0)} MB`);

  // a 256 MB upload (raw .nii: every byte must be read, checked and gzipped)
  const big: [number, number, number] = [256, 256, 512];
  const raw = new Float32Array(big[0] * big[1] * big[2]);
  for (let i = 0; i < raw.length; i++) raw[i] = 400 + (i % 97);
  const rawAdc = new Float32Array(raw.length).fill(800);
  const bigForm = new FormData();
  bigForm.set('name', 'huge');
  bigForm.set('dwi', new Blob([new Uint8Array(encodeNifti({ dims: big, affine: AFFINE, datatype: 'float32', data: raw }))]), 'dwi.nii');
  bigForm.set('adc', new Blob([new Uint8Array(encodeNifti({ dims: big, affine: AFFINE, datatype: 'float32', data: rawAdc }))]), 'adc.nii');
  stop = probe(server.url);
  mem = rssPeak(pid);
  const bigUp = await fetch(`${server.url}/api/cases`, { method: 'POST', headers: auth, body: bigForm });
  const bigMem = mem();
  const duringBig = await stop();
  await bigUp.arrayBuffer();
  line(`during a 256 MB raw .nii upload (${bigUp.status})`, duringBig, idleP99);
  console.log(`  server RSS during the 256 MB upload: ${bigMem.startMb.toFixed(0)} → peak ${bigMem.peakMb.toFixed(0)} MB`);
} finally {
  await server?.stop('SIGKILL');
}
