import { availableParallelism } from 'node:os';
import { buildNifti } from '../src/server/nifti/fixtures.js';
import { fuzzNiftiCases } from '../src/server/nifti/fuzz.js';
import { NiftiError, readNifti } from '../src/server/nifti/read.js';
import { startLiveServer } from '../src/server/test/live-server.js';
import { rssPeak } from './util.js';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fuzzDicomUploads } from '../src/server/dicom/fuzz.js';
import { PHILIPS_DIR, zipOf } from '../src/server/test/dicom.js';

// #17 fuzzing: the seeded hostile NIfTI files of src/server/nifti/fuzz.ts, first through the
// reader in this process (every one must be read or refused with a NiftiError), then as uploads
// to a real server process (npm start's build): never a 5xx, never a crash, always a 4xx with a
// message; the server's peak RSS is compared with its RSS at rest (the baseline, same run).
// BENCH_FUZZ_READER / BENCH_FUZZ_UPLOADS set the case counts (default 5,000 / 1,200).
// #26 DICOM: BENCH_FUZZ_DICOM (default 300) hostile uploads of a small real study (six Philips
// images) to POST /api/cases/dicom — each file mutation on one file, loose or zipped, and the faults
// the issue names (truncated file, missing image, mixed studies, unsupported transfer syntax, zip
// with ../ or absolute names, too many tiny files, a huge declared element length): never a 5xx.

const readerCases = Number(process.env.BENCH_FUZZ_READER ?? 5000);
const uploadCases = Number(process.env.BENCH_FUZZ_UPLOADS ?? 1200);
console.log(`\nFuzzing — seeded hostile NIfTI files (${availableParallelism()} cores)`);

let read = 0;
let refused = 0;
let crashes = 0;
const t0 = performance.now();
for (const c of fuzzNiftiCases(1, readerCases)) {
  try {
    readNifti(c.bytes);
    read++;
  } catch (err) {
    if (err instanceof NiftiError) refused++;
    else {
      crashes++;
      console.log(`  reader crash: ${c.kind} #${c.index}: ${String(err)}`);
    }
  }
}
console.log(
  `  reader: ${readerCases} cases, ${read} read, ${refused} refused (NiftiError), ${crashes} other errors, ${((performance.now() - t0) / 1000).toFixed(1)} s`,
);

const server = await startLiveServer({ demoCases: 0, env: { LOG_LEVEL: 'warn' } });
let unhandled = 0;
try {
  const token = await server.token('fuzz@bench.org');
  const adc = buildNifti({
    dim: [12, 12, 6],
    pixdim: [2, 2, 3],
    values: Array.from({ length: 864 }, (_, i) => 700 + 3 * (i % 100)),
    gzip: true,
  });
  const pid = server.child.pid!;
  const mem = rssPeak(pid);
  const statuses = new Map<number, number>();
  let noMessage = 0;
  const t1 = performance.now();
  for (const c of fuzzNiftiCases(2, uploadCases)) {
    const form = new FormData();
    form.set('name', `fuzz ${c.index}`);
    const role = c.index % 2 ? 'dwi' : 'adc';
    form.set(role, new File([new Uint8Array(c.bytes)], `${role}.nii.gz`));
    form.set(role === 'dwi' ? 'adc' : 'dwi', new File([new Uint8Array(adc)], 'other.nii.gz'));
    const res = await fetch(`${server.url}/api/cases`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
    const body = (await res.json().catch(() => ({}))) as { message?: string; id?: string };
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    if (res.status >= 400 && !(body.message && body.message.length > 10)) noMessage++;
    if (res.status >= 500) console.log(`  5xx: ${c.kind} #${c.index}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
    // stored cases are removed again, so a guest-size quota never interferes
    if (res.status === 200 && body.id)
      await fetch(`${server.url}/api/cases/${body.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
  }
  const { startMb, peakMb } = mem();
  unhandled = (server.output().match(/unhandled|uncaught/gi) ?? []).length;
  const count = (pred: (s: number) => boolean) => [...statuses].filter(([s]) => pred(s)).reduce((a, [, n]) => a + n, 0);
  const fiveXx = count((s) => s >= 500);
  console.log(
    `  uploads: ${uploadCases} cases in ${((performance.now() - t1) / 1000).toFixed(1)} s — 2xx ${count((s) => s < 300)}, 4xx ${count((s) => s >= 400 && s < 500)} (${[
      ...statuses,
    ]
      .filter(([s]) => s >= 400 && s < 500)
      .map(([s, n]) => `${s}×${n}`)
      .join(', ')}), 5xx ${fiveXx}, 4xx without a message ${noMessage}`,
  );
  const dicom = existsSync(PHILIPS_DIR) ? await fuzzDicom(server.url, token) : null;
  if (!dicom) console.log(`  DICOM uploads: skipped (no Philips series at ${PHILIPS_DIR})`);
  unhandled = (server.output().match(/unhandled|uncaught/gi) ?? []).length;
  const alive = server.child.exitCode === null;
  console.log(`  server: ${alive ? 'alive' : 'CRASHED'}, unhandled rejections/exceptions logged ${unhandled}`);
  console.log(
    `  server RSS: at rest ${startMb.toFixed(0)} MB, peak ${peakMb.toFixed(0)} MB — ratio ${(peakMb / startMb).toFixed(2)}× rest`,
  );
  console.log(
    `  goal: 5xx = 0, crashes = 0, every 4xx with a message: ${fiveXx === 0 && crashes === 0 && alive && noMessage === 0 && unhandled === 0 && (!dicom || (dicom.fiveXx === 0 && dicom.noMessage === 0)) ? 'ok' : 'MISSED'}`,
  );
} finally {
  await server.stop();
}

/** The DICOM section: seeded hostile uploads through the import path of the same server process. */
async function fuzzDicom(url: string, token: string): Promise<{ fiveXx: number; noMessage: number }> {
  const count = Number(process.env.BENCH_FUZZ_DICOM ?? 300);
  const names = readdirSync(PHILIPS_DIR)
    .filter((f) => f.startsWith('IM_'))
    .slice(0, 6);
  const files = names.map((f) => readFileSync(path.join(PHILIPS_DIR, f)));
  const statuses = new Map<number, number>();
  const byKind = new Map<string, Map<number, number>>();
  let noMessage = 0;
  const t0 = performance.now();
  for (const u of fuzzDicomUploads(26, count, names, files, 5000)) {
    const form = new FormData();
    if ('zip' in u) form.set('file', new File([zipOf(u.zip)], 'study.zip'));
    else for (const f of u.files) form.append('files', new File([new Uint8Array(f.data)], f.name));
    const res = await fetch(`${url}/api/cases/dicom`, { method: 'POST', headers: { authorization: `Bearer ${token}` }, body: form });
    const body = (await res.json().catch(() => ({}))) as { message?: string; case?: { id: string } | null };
    statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
    const k = byKind.get(u.kind) ?? new Map<number, number>();
    byKind.set(u.kind, k);
    k.set(res.status, (k.get(res.status) ?? 0) + 1);
    if (res.status >= 400 && !(body.message && body.message.length > 10)) noMessage++;
    if (res.status >= 500) console.log(`  DICOM 5xx: ${u.kind} #${u.index}: ${res.status} ${JSON.stringify(body).slice(0, 200)}`);
    if (res.status === 200 && body.case)
      await fetch(`${url}/api/cases/${body.case.id}`, { method: 'DELETE', headers: { authorization: `Bearer ${token}` } });
  }
  const fiveXx = [...statuses].filter(([s]) => s >= 500).reduce((a, [, n]) => a + n, 0);
  const fmt = (m: Map<number, number>) =>
    [...m]
      .sort(([a], [b]) => a - b)
      .map(([s, n]) => `${s}×${n}`)
      .join(' ');
  console.log(
    `  DICOM uploads: ${count} in ${((performance.now() - t0) / 1000).toFixed(1)} s — ${fmt(statuses)}; 5xx ${fiveXx}, 4xx without a message ${noMessage}`,
  );
  console.log(`    by kind: ${[...byKind].map(([kind, m]) => `${kind} ${fmt(m)}`).join('; ')}`);
  return { fiveXx, noMessage };
}
