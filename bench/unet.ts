import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { VolumeRole } from '../src/shared/cases.js';
import { manifestSchema } from '../src/shared/models.js';
import { readNifti, toFloat32 } from '../src/server/nifti/read.js';
import { type LoadedModel, loadModelRegistry, ort } from '../src/server/segmentation/models.js';
import { type Stage, runPipeline } from '../src/server/segmentation/pipeline.js';
import { HAVE_ISLES22, ISLES22_DIR, ISLES22_FILES } from '../src/server/test/isles22.js';
import { buildUnet } from './unet-graph.js';
import { row } from './util.js';

// #25: a real-sized network through the pipeline. A 3-D U-Net of nnU-Net's shape (4 stages,
// 16-32-64-128 feature maps, conv–InstanceNorm–LeakyReLU, strided-conv down, transposed-conv up,
// skips; 1.4 M random He-initialised weights from a fixed seed: bench/unet-graph.ts) is built into
// a temporary model folder and run as a job on the real ISLES'22 case: DWI + ADC z-scored over
// their nonzero voxels, reoriented to RAS, cropped to the foreground, resampled to 1 mm, a 96×96×64
// sliding window with Gaussian blending, softmax — once without test-time mirroring and once with
// all three axes mirrored (8 runs per window). The model's own session.run time is summed (the
// session is wrapped) and set against the whole job; goal: the job ≤ 1.15× the raw runs.
// Overlap 0.25 (MONAI's SlidingWindowInferer default; nnU-Net's step 0.5 would be ≈ 2× the
// windows) keeps the two runs under ~3 minutes on 2 cores. UNET_MIRRORING=off (or on) runs one.

const THREADS = 2;
const PATCH: [number, number, number] = [96, 96, 64];
const OVERLAP = 0.25;
const GOAL = 1.15;

function manifest(id: string, mirroring: number[]) {
  return manifestSchema.parse({
    id,
    name: `Benchmark U-Net${mirroring.length ? ' (mirroring)' : ''}`,
    version: '1.0.0',
    kind: 'trained',
    description:
      'Not a trained network: a 3-D U-Net of nnU-Net shape with random weights (fixed seed), built by bench/unet.ts to time the pipeline around a real-sized model. Its masks mean nothing.',
    inputs: ['dwi', 'adc'],
    preprocessing: [{ kind: 'zscoreNonzero' }, { kind: 'zscoreNonzero' }],
    adcUnit: '1e-6',
    patchSize: PATCH,
    axisOrder: 'xyz',
    overlap: OVERLAP,
    output: { activation: 'softmax', lesionClass: 1, classes: 2, name: 'logits' },
    threshold: 0.5,
    minLesionMl: 0.01,
    manifestVersion: 2,
    spacingMm: [1, 1, 1],
    orientation: 'RAS',
    cropToForeground: { marginMm: 0 },
    blend: 'gaussian',
    gaussianSigmaScale: 0.125,
    mirroring,
    inputType: 'float32',
    card: { intendedUse: 'benchmark only', limits: 'random weights: not a model of anything' },
  });
}

/** Window starts along one axis, as inference.ts places them (every step, the last flush with the end). */
function windows(n: number, patch: number, overlap: number): number {
  if (patch >= n) return 1;
  const step = Math.max(1, Math.round(patch * (1 - overlap)));
  let k = 0;
  for (let s = 0; s + patch < n; s += step) k++;
  return k + 1;
}
const windowCount = (dims: number[]) => dims.reduce((a, n, i) => a * windows(n, PATCH[i]!, OVERLAP), 1);

/** The session, with its run timed: every call's wall time is added to `stats`. */
function timedSession(session: ort.InferenceSession, stats: { runs: number; ms: number }): ort.InferenceSession {
  return new Proxy(session, {
    get(target, prop, receiver) {
      if (prop === 'run') {
        return async (...args: Parameters<ort.InferenceSession['run']>) => {
          const t0 = performance.now();
          try {
            return await target.run(...args);
          } finally {
            stats.ms += performance.now() - t0;
            stats.runs++;
          }
        };
      }
      const v = Reflect.get(target, prop, receiver) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
  });
}

/**
 * Peak RSS of this process, sampled every 50 ms from a child process (onnxruntime-node's run
 * holds this thread, so a timer here would not fire during it), and the kernel's own high-water
 * mark (VmHWM, reset at the start through /proc/self/clear_refs) as a cross-check.
 */
const SAMPLER = `
  const { readFileSync } = require('node:fs');
  const file = '/proc/' + process.argv[1] + '/status';
  const rss = () => Number(/VmRSS:\\s+(\\d+) kB/.exec(readFileSync(file, 'utf8'))?.[1] ?? 0);
  let peak = 0, samples = 0;
  const t = setInterval(() => { try { peak = Math.max(peak, rss()); samples++; } catch {} }, 50);
  process.stdin.on('data', () => { clearInterval(t); process.stdout.write(JSON.stringify({ peak, samples })); process.exit(0); });
  process.stdout.write('ready\\n');
`;
const status = (key: string) =>
  Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? NaN) / 1024;
async function rssSampler() {
  try {
    writeFileSync('/proc/self/clear_refs', '5');
  } catch {
    // not Linux, or not allowed: VmHWM is then the process's lifetime peak
  }
  const child = spawn(process.execPath, ['-e', SAMPLER, String(process.pid)], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  await new Promise<void>((resolve) => child.stdout.once('data', () => resolve()));
  return async () => {
    const done = new Promise<void>((resolve) => child.on('exit', () => resolve()));
    child.stdin.write('stop\n');
    await done;
    const { peak, samples } = JSON.parse(out.slice(out.indexOf('{'))) as { peak: number; samples: number };
    return { peakMb: peak / 1024, samples, hwmMb: status('VmHWM') };
  };
}

if (!HAVE_ISLES22) {
  console.log(`\nU-Net through the pipeline — SKIPPED: the real ISLES'22 case is missing (${ISLES22_DIR})`);
} else {
  const files = Object.fromEntries((['dwi', 'adc', 'mask'] as const).map((r) => [r, readFileSync(ISLES22_FILES[r])])) as Record<
    'dwi' | 'adc' | 'mask',
    Buffer
  >;
  const read = async (role: VolumeRole) => (role === 'dwi' || role === 'adc' || role === 'mask' ? files[role] : undefined);
  const dwi = readNifti(files.dwi);

  // What the window count would be on each grid: tells whether spacing and crop were honoured.
  const values = toFloat32(dwi);
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-1, -1, -1];
  const [nx, ny] = dwi.dims;
  for (let i = 0; i < values.length; i++) {
    if (values[i] === 0) continue;
    const c = [i % nx, Math.floor(i / nx) % ny, Math.floor(i / (nx * ny))];
    for (let a = 0; a < 3; a++) {
      lo[a] = Math.min(lo[a]!, c[a]!);
      hi[a] = Math.max(hi[a]!, c[a]!);
    }
  }
  const at1mm = (n: number, a: number) => Math.round(n * dwi.voxelSizeMm[a]!);
  const expected = {
    native: windowCount([...dwi.dims]),
    resampled: windowCount(dwi.dims.map(at1mm)),
    croppedResampled: windowCount(hi.map((h, a) => at1mm(h - lo[a]! + 1, a))),
  };

  const { bytes, parameters } = buildUnet({
    inChannels: 2,
    classes: 2,
    channels: [16, 32, 64, 128],
    patch: PATCH,
    seed: 25,
    headBias: [0, -3],
  });
  const root = mkdtempSync(path.join(tmpdir(), 'strokeview-bench-unet-'));
  console.log(
    `\nU-Net through the pipeline — ISLES'22 sub-strokecase0009 (${dwi.dims.join('×')} at ${dwi.voxelSizeMm.join('×')} mm), CPU, ${THREADS} threads`,
  );
  console.log(
    `  model: 3-D U-Net 4 stages 16-32-64-128, ${(parameters / 1e6).toFixed(2)} M random weights (${(bytes.length / 1048576).toFixed(1)} MB), ` +
      `patch ${PATCH.join('×')}, overlap ${OVERLAP}, spacing 1 mm, RAS, crop to foreground, z-score (nonzero), Gaussian blend, softmax`,
  );
  console.log(
    `  windows expected: ${expected.native} at native spacing, ${expected.resampled} at 1 mm, ${expected.croppedResampled} at 1 mm cropped to the head`,
  );
  try {
    // UNET_MIRRORING=off|on runs one of the two (default: both)
    const which = process.env.UNET_MIRRORING;
    for (const mirroring of [[], [0, 1, 2]].filter((m) => !which || (which === 'on') === m.length > 0)) {
      const id = mirroring.length ? 'bench-unet-tta' : 'bench-unet';
      const dir = path.join(root, id);
      mkdirSync(dir);
      writeFileSync(path.join(dir, 'model.onnx'), bytes);
      writeFileSync(path.join(dir, 'manifest.json'), JSON.stringify(manifest(id, mirroring), null, 2));
      const registry = await loadModelRegistry({ roots: [root], provider: 'cpu', threads: THREADS });
      try {
        const loaded = registry.models.get(id);
        if (!loaded) throw new Error(`the bench model did not load: ${JSON.stringify(registry.failed)}`);
        // one warm-up run at the patch size (a server that has run a job before), not counted
        await loaded.session.run({
          input: new ort.Tensor('float32', new Float32Array(2 * PATCH[0] * PATCH[1] * PATCH[2]), [1, 2, ...PATCH]),
        });
        const stats = { runs: 0, ms: 0 };
        const model: LoadedModel = { ...loaded, session: timedSession(loaded.session, stats) };
        let windowsTotal = 0;
        const timings: Partial<Record<Stage, number>> = {};
        const stopRss = await rssSampler();
        const t0 = performance.now();
        const result = await runPipeline({
          read,
          models: [model],
          timings,
          onProgress: (p) => {
            const m = /patch \d+ of (\d+)/.exec(p.message);
            if (m) windowsTotal = Number(m[1]);
          },
        });
        const jobMs = performance.now() - t0;
        const rss = await stopRss();
        const passes = 2 ** mirroring.length;
        const windowsRun = windowsTotal || Math.round(stats.runs / passes);
        const label = mirroring.length ? 'mirroring on (axes 0,1,2: 8 runs a window)' : 'mirroring off';
        console.log(`  ${label}`);
        for (const stage of ['load', 'preprocess', 'infer', 'postprocess', 'encode'] as Stage[]) {
          console.log(row(`    stage ${stage}`, timings[stage] ?? 0));
        }
        console.log(row(`    model session.run, summed (${stats.runs} runs)`, stats.ms));
        console.log(
          row('    whole job', jobMs, { value: jobMs / stats.ms, goal: `≤ ${GOAL}× the raw runs`, ok: jobMs / stats.ms <= GOAL }),
        );
        console.log(row(`    per window (${windowsRun} windows), job`, jobMs / windowsRun));
        console.log(row('    per window, session.run', stats.ms / windowsRun));
        console.log(row('    per session.run', stats.ms / stats.runs));
        console.log(
          `    peak RSS ${rss.peakMb.toFixed(0)} MB (${rss.samples} samples at 50 ms; VmHWM ${rss.hwmMb.toFixed(0)} MB); mask ${result.metrics.predictedMl.toFixed(1)} mL, ${result.metrics.lesionCountPredicted} components (random weights: meaningless)`,
        );
        if (result.notes.length) console.log(`    notes: ${result.notes.join('; ')}`);
        const notHonoured: string[] = [];
        if (mirroring.length && stats.runs === windowsRun) notHonoured.push('mirroring (one run per window)');
        if (windowsRun === expected.native) notHonoured.push('spacingMm (windows as at native spacing)');
        else if (windowsRun === expected.resampled && expected.resampled !== expected.croppedResampled)
          notHonoured.push('cropToForeground (windows as on the whole 1 mm grid)');
        if (notHonoured.length) console.log(`    NOT HONOURED by the pipeline: ${notHonoured.join('; ')}`);

        // The pipeline's own work, apart from the network: the same job with session.run answered
        // at once by a fixed output of the right shape (background logits 0, lesion −3).
        const pn = PATCH[0] * PATCH[1] * PATCH[2];
        const fixed = new Float32Array(2 * pn).fill(-3, pn);
        const instant = new Proxy(loaded.session, {
          get(target, prop, receiver) {
            if (prop === 'run') return async () => ({ logits: new ort.Tensor('float32', fixed, [1, 2, ...PATCH]) });
            const v = Reflect.get(target, prop, receiver) as unknown;
            return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
          },
        });
        const alone: Partial<Record<Stage, number>> = {};
        const a0 = performance.now();
        await runPipeline({ read, models: [{ ...loaded, session: instant }], timings: alone });
        const aloneMs = performance.now() - a0;
        console.log(
          row('    the pipeline alone (instant session.run)', aloneMs) +
            `  (infer stage ${(alone.infer ?? 0).toFixed(0)} ms: ${((alone.infer ?? 0) / windowsRun).toFixed(0)} ms a window; preprocess ${(alone.preprocess ?? 0).toFixed(0)} ms)`,
        );
      } finally {
        await registry.close();
        rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}
