import { gunzipSync } from 'node:zlib';
import type { VolumeRole } from '../src/shared/cases.js';
import { DEMO_SEEDS, phantomVolumes } from '../src/server/cases/demo.js';
import { readNifti } from '../src/server/nifti/read.js';
import { writeNiftiGz } from '../src/server/nifti/write.js';
import { builtInModelsDir, loadModelRegistry, ort } from '../src/server/segmentation/models.js';
import { type Stage, runPipeline } from '../src/server/segmentation/pipeline.js';
import { row, timeMedian } from './util.js';

const registry = await loadModelRegistry({ roots: [builtInModelsDir()], provider: 'cpu', threads: 2 });
const model = registry.models.get('adc-core-v1')!;
const vols = Object.fromEntries(phantomVolumes(DEMO_SEEDS[0]!).map((v) => [v.role, v.stored])) as Record<VolumeRole, Buffer>;
const read = async (role: VolumeRole) => vols[role];
const dims = readNifti(vols.dwi).dims;

console.log(`\nSegmentation — demo case (${dims.join('×')}), model adc-core-v1, CPU, 2 threads`);

// Baseline: the unavoidable work — gunzip what the pipeline reads (DWI, ADC, mask), one
// session.run over the whole volume, gzip of the mask.
const baseline = await timeMedian(
  async () => {
    const dwi = gunzipSync(vols.dwi);
    const adc = gunzipSync(vols.adc);
    gunzipSync(vols.mask);
    const n = dims[0] * dims[1] * dims[2];
    const input = new Float32Array(2 * n);
    input.set(new Float32Array(dwi.buffer, dwi.byteOffset + 352, n), 0);
    input.set(new Float32Array(adc.buffer, adc.byteOffset + 352, n), n);
    const out = await model.session.run({ input: new ort.Tensor('float32', input, [1, 2, dims[2], dims[1], dims[0]]) });
    const p = out.probability!.data as Float32Array;
    const mask = new Uint8Array(n);
    for (let i = 0; i < n; i++) if (p[i]! >= 0.5) mask[i] = 1;
    writeNiftiGz({
      dims,
      affine: [
        [2, 0, 0, 0],
        [0, 2, 0, 0],
        [0, 0, 2, 0],
        [0, 0, 0, 1],
      ],
      datatype: 'uint8',
      data: mask,
    });
  },
  9,
  3,
);

const stageRuns: Partial<Record<Stage, number>>[] = [];
const pipeline = await timeMedian(
  async () => {
    const timings: Partial<Record<Stage, number>> = {};
    await runPipeline({ read, models: [model], timings });
    stageRuns.push(timings);
  },
  9,
  3,
);
const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
for (const stage of ['load', 'preprocess', 'infer', 'postprocess', 'encode'] as Stage[]) {
  console.log(row(`  stage ${stage}`, median(stageRuns.slice(-9).map((t) => t[stage] ?? 0))));
}
console.log(row('baseline: gunzip inputs + session.run + gzip mask', baseline));
console.log(row('whole pipeline', pipeline, { value: pipeline / baseline, goal: '≤ 1.25× baseline', ok: pipeline / baseline <= 1.25 }));

let sum = 0;
const dices: string[] = [];
for (const seed of DEMO_SEEDS.slice(0, 6)) {
  const v = Object.fromEntries(phantomVolumes(seed).map((x) => [x.role, x.stored])) as Record<VolumeRole, Buffer>;
  const r = await runPipeline({ read: async (role) => v[role], models: [model] });
  sum += r.metrics.dice!;
  dices.push(r.metrics.dice!.toFixed(3));
}
const mean = sum / 6;
console.log(`mean Dice over the 6 demo cases: ${mean.toFixed(3)} (${dices.join(', ')}) — goal ≥ 0.9 ${mean >= 0.9 ? 'ok' : 'MISSED'}`);
await registry.close();
