import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildAdcCoreModel } from '../../../models/adc-core-v1/build.js';
import { buildAdcDwiModel } from '../../../models/adc-dwi-v2/build.js';
import type { VolumeRole } from '../../shared/cases.js';
import type { Affine } from '../../shared/nifti.js';
import { phantomVolumes } from '../cases/demo.js';
import { generatePhantom } from '../cases/phantom.js';
import { readNifti, toFloat32 } from '../nifti/read.js';
import { writeNiftiGz } from '../nifti/write.js';
import { predictProbability } from './inference.js';
import { type ModelRegistry, builtInModelsDir, loadModelRegistry, ort } from './models.js';
import { type Progress, runPipeline } from './pipeline.js';
import { applyPreprocessing } from './preprocess.js';
import { resampleTrilinear } from './resample.js';
import { modelVariants } from '../test/models.js';

const builtIn = builtInModelsDir();
const manifest = JSON.parse(readFileSync(path.join(builtIn, 'adc-core-v1', 'manifest.json'), 'utf8'));

const modelsFolder = modelVariants;

const readerOf = (seed: number) => {
  const vols = Object.fromEntries(phantomVolumes(seed).map((v) => [v.role, v.stored])) as Record<VolumeRole, Buffer>;
  return { vols, read: async (role: VolumeRole) => vols[role] };
};

let registry: ModelRegistry;
beforeAll(async () => {
  registry = await loadModelRegistry({ roots: [builtIn], provider: 'cpu', threads: 1 });
});
afterAll(async () => {
  await registry?.close();
});

describe('built-in model adc-core-v1', () => {
  it('the committed model.onnx is byte-identical to what npm run build:model writes', () => {
    const committed = readFileSync(path.join(builtIn, 'adc-core-v1', 'model.onnx'));
    expect(Buffer.from(buildAdcCoreModel()).equals(committed)).toBe(true);
  });

  it('says plainly that it is rule-based, not a trained network', () => {
    const info = registry.list().find((m) => m.id === 'adc-core-v1')!;
    expect(info.kind).toBe('rule-based');
    expect(info.description).toMatch(/Not a trained network/);
    expect(info.description).toMatch(/not for clinical use/);
  });

  it('segments the demo phantoms: mean Dice ≥ 0.85 on a fixed seed set; masks on the DWI grid', async () => {
    const model = registry.models.get('adc-core-v1')!;
    const dices: number[] = [];
    for (const seed of [101, 104, 106]) {
      const { vols, read } = readerOf(seed);
      const result = await runPipeline({ read, models: [model] });
      const dwi = readNifti(vols.dwi);
      const mask = readNifti(result.maskNifti);
      expect(mask.dims).toEqual(dwi.dims);
      expect(mask.datatype).toBe('uint8');
      for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expect(mask.affine[r]![c]).toBeCloseTo(dwi.affine[r]![c]!, 4);
      expect(result.metrics.lesionCountTrue).toBeGreaterThan(0);
      dices.push(result.metrics.dice!);
    }
    const mean = dices.reduce((a, b) => a + b, 0) / dices.length;
    expect(mean).toBeGreaterThanOrEqual(0.85);
  });
});

describe('built-in model adc-dwi-v2 (the default)', () => {
  it('the committed model.onnx is byte-identical to what npm run build:model writes', () => {
    const committed = readFileSync(path.join(builtIn, 'adc-dwi-v2', 'model.onnx'));
    expect(Buffer.from(buildAdcDwiModel()).equals(committed)).toBe(true);
  });

  it('is listed first, says it is rule-based and cites where its constants come from', () => {
    const info = registry.list()[0]!;
    expect(info.id).toBe('adc-dwi-v2');
    expect(info.kind).toBe('rule-based');
    expect(info.description).toMatch(/Not a trained network/);
    expect(info.description).toMatch(/Purushotham/);
    expect(info.description).toMatch(/not for clinical use/);
  });

  it('segments every demo phantom with Dice ≥ 0.9 and the right lesion count', async () => {
    const model = registry.models.get('adc-dwi-v2')!;
    for (const seed of [101, 102, 103, 104, 105, 106]) {
      const result = await runPipeline({ read: readerOf(seed).read, models: [model] });
      expect(result.metrics.dice, `seed ${seed}`).toBeGreaterThanOrEqual(0.9);
      expect(result.metrics.lesionCountDiff, `seed ${seed}`).toBe(0);
    }
  });

  it('converts an ADC in 10⁻³ mm²/s and says so; the mask is the same as from 10⁻⁶', async () => {
    const model = registry.models.get('adc-dwi-v2')!;
    const { vols, read } = readerOf(103);
    const adc = readNifti(vols.adc);
    const milli = writeNiftiGz({ dims: adc.dims, affine: adc.affine, datatype: 'float32', data: toFloat32(adc).map((v) => v / 1000) });
    const seen: Progress[] = [];
    const converted = await runPipeline({
      read: async (r) => (r === 'adc' ? milli : read(r)),
      models: [model],
      onProgress: (p) => seen.push(p),
    });
    expect(converted.notes).toEqual(["ADC in 10⁻³ mm²/s, scaled ×1000 to the model's 10⁻⁶ mm²/s"]);
    expect(seen.find((p) => p.stage === 'preprocess')?.message).toMatch(/ADC in 10⁻³ mm²\/s, scaled ×1000/);
    const direct = await runPipeline({ read, models: [model] });
    expect(converted.metrics.dice).toBeCloseTo(direct.metrics.dice!, 3);
  });

  it('refuses a map that is not a plausible ADC in either unit, saying why', async () => {
    const model = registry.models.get('adc-dwi-v2')!;
    const { vols, read } = readerOf(103);
    const adc = readNifti(vols.adc);
    const wrong = writeNiftiGz({ dims: adc.dims, affine: adc.affine, datatype: 'float32', data: toFloat32(adc).map((v) => v / 20) });
    await expect(runPipeline({ read: async (r) => (r === 'adc' ? wrong : read(r)), models: [model] })).rejects.toThrow(
      /not a plausible ADC in 10⁻³ mm²\/s .* or in 10⁻⁶ mm²\/s/,
    );
  });
});

describe('pipeline', () => {
  it('reports the stages in order: load 10, preprocess 20, infer 30–85, postprocess 90, save 95', async () => {
    const seen: Progress[] = [];
    await runPipeline({ read: readerOf(102).read, models: [registry.models.get('adc-core-v1')!], onProgress: (p) => seen.push(p) });
    expect(seen.map((p) => p.stage)).toEqual(['load', 'preprocess', 'infer', 'postprocess', 'encode']);
    expect(seen.map((p) => p.percent)).toEqual([10, 20, 30, 90, 95]);
  });

  it('resamples an ADC on another grid onto the DWI grid and still segments', async () => {
    const p = generatePhantom(103);
    // ADC re-gridded at 2.5 mm with a shifted origin
    const coarse: Affine = [
      [2.5, 0, 0, p.affine[0][3] + 1.3],
      [0, 2.5, 0, p.affine[1][3] - 0.7],
      [0, 0, 2.5, p.affine[2][3] + 0.9],
      [0, 0, 0, 1],
    ];
    const dims: [number, number, number] = [90, 90, 58];
    const adc = resampleTrilinear(p.adc, p.dims, p.affine, dims, coarse);
    const { vols } = readerOf(103);
    const moved = { ...vols, adc: writeNiftiGz({ dims, affine: coarse, datatype: 'float32', data: adc }) };
    const result = await runPipeline({ read: async (r) => moved[r], models: [registry.models.get('adc-core-v1')!] });
    expect(result.dims).toEqual(p.dims);
    expect(result.metrics.dice).toBeGreaterThan(0.75);
  });

  it('a case with no ADC fails with a message naming the missing input', async () => {
    const { vols } = readerOf(101);
    const run = runPipeline({ read: async (r) => (r === 'adc' ? undefined : vols[r]), models: [registry.models.get('adc-core-v1')!] });
    await expect(run).rejects.toMatchObject({ kind: 'unprocessable' });
    await expect(run).rejects.toThrow('This case has no ADC, which model adc-core-v1 needs');
  });

  it('an ADC that does not overlap the DWI fails clearly', async () => {
    const p = generatePhantom(101);
    const far: Affine = [
      [2, 0, 0, 5000],
      [0, 2, 0, 0],
      [0, 0, 2, 0],
      [0, 0, 0, 1],
    ];
    const { vols } = readerOf(101);
    const moved = { ...vols, adc: writeNiftiGz({ dims: p.dims, affine: far, datatype: 'float32', data: p.adc }) };
    await expect(runPipeline({ read: async (r) => moved[r], models: [registry.models.get('adc-core-v1')!] })).rejects.toThrow(
      /ADC does not overlap the DWI/,
    );
  });

  it('sliding window with Gaussian blending agrees with the whole volume within 1e-4', async () => {
    const reg = await loadModelRegistry({
      roots: [modelsFolder({ windowed: { patchSize: [48, 40, 32], overlap: 0.25 } })],
      provider: 'cpu',
      threads: 1,
    });
    try {
      const p = generatePhantom(105);
      const channels = [applyPreprocessing(p.dwi, { kind: 'zscore' }), p.adc];
      const whole = registry.models.get('adc-core-v1')!;
      const windowed = reg.models.get('windowed')!;
      let patches = 0;
      const a = await predictProbability({ session: whole.session, tensor: ort.Tensor, manifest: whole.manifest, channels, dims: p.dims });
      const b = await predictProbability({
        session: windowed.session,
        tensor: ort.Tensor,
        manifest: windowed.manifest,
        channels,
        dims: p.dims,
        onPatch: () => patches++,
      });
      expect(patches).toBeGreaterThan(8);
      let maxDiff = 0;
      for (let i = 0; i < a.length; i++) maxDiff = Math.max(maxDiff, Math.abs(a[i]! - b[i]!));
      expect(maxDiff).toBeLessThan(1e-4);
    } finally {
      await reg.close();
    }
  });

  it('cancels between patches', async () => {
    const reg = await loadModelRegistry({
      roots: [modelsFolder({ windowed: { patchSize: [32, 32, 32], overlap: 0.5 } })],
      provider: 'cpu',
      threads: 1,
    });
    try {
      const ctl = new AbortController();
      const run = runPipeline({
        read: readerOf(101).read,
        models: [reg.models.get('windowed')!],
        signal: ctl.signal,
        onProgress: (p) => {
          if (p.stage === 'infer' && p.message.includes('patch 2 of')) ctl.abort();
        },
      });
      await expect(run).rejects.toMatchObject({ kind: 'cancelled' });
    } finally {
      await reg.close();
    }
  });

  it('an ensemble votes by majority and keeps each model’s mask', async () => {
    const reg = await loadModelRegistry({
      roots: [modelsFolder({ 'm-a': {}, 'm-b': { threshold: 0.3 }, 'm-c': { threshold: 0.95 } })],
      provider: 'cpu',
      threads: 1,
    });
    try {
      const models = ['m-a', 'm-b', 'm-c'].map((id) => reg.models.get(id)!);
      const r = await runPipeline({ read: readerOf(101).read, models });
      expect(r.perModel.map((m) => m.modelId)).toEqual(['m-a', 'm-b', 'm-c']);
      const count = (m: Uint8Array) => m.reduce((s, v) => s + v, 0);
      const [a, b, c] = r.perModel.map((m) => m.mask);
      expect(count(b!)).toBeGreaterThanOrEqual(count(a!));
      expect(count(a!)).toBeGreaterThan(count(c!));
      // with thresholds nested (b ⊇ a ⊇ c), the majority of three is exactly model a
      expect(Buffer.from(r.mask).equals(Buffer.from(a!))).toBe(true);
    } finally {
      await reg.close();
    }
  });
});

describe('model registry', () => {
  it('skips a bad manifest or a missing model file and reports it; the good ones load', async () => {
    const root = modelsFolder({ good: {}, 'bad-json': '{ not json', 'bad-fields': { threshold: 7, inputs: [] } });
    mkdirSync(path.join(root, 'no-onnx'));
    writeFileSync(path.join(root, 'no-onnx', 'manifest.json'), JSON.stringify({ ...manifest, id: 'no-onnx' }));
    const reg = await loadModelRegistry({ roots: [root], provider: 'cpu', threads: 1 });
    try {
      expect([...reg.models.keys()]).toEqual(['good']);
      const errors = Object.fromEntries(reg.failed.map((f) => [path.basename(f.dir), f.error]));
      expect(errors['bad-json']).toMatch(/not valid JSON/);
      expect(errors['bad-fields']).toMatch(/threshold/);
      expect(errors['no-onnx']).toMatch(/model.onnx is missing/);
    } finally {
      await reg.close();
    }
  });

  it('CUDA asked for on a machine without it: runs on CPU and says a GPU was requested and not found', async () => {
    const reg = await loadModelRegistry({ roots: [builtIn], provider: 'cuda', threads: 1 });
    try {
      expect(reg.models.has('adc-core-v1')).toBe(true);
      expect(reg.provider).toMatchObject({ requested: 'cuda', active: 'cpu', gpuMissing: true });
    } finally {
      await reg.close();
    }
  });
});
