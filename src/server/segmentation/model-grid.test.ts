import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FLOAT, floatTensor, intsAttr, node, onnx, tensorType } from '../../../models/onnx-graph.js';
import type { VolumeRole } from '../../shared/cases.js';
import { type ModelManifest, manifestSchema } from '../../shared/models.js';
import type { Affine } from '../../shared/nifti.js';
import { phantomVolumes } from '../cases/demo.js';
import { readNifti, toFloat32 } from '../nifti/read.js';
import { writeNiftiGz } from '../nifti/write.js';
import { flipTensor, predictProbability } from './inference.js';
import { orientationPlan, reorient, unorient } from './model-grid.js';
import { type LoadedModel, builtInModelsDir, ort } from './models.js';
import { runPipeline } from './pipeline.js';

// #25: models whose answer depends on each step of the model grid — spacing, orientation, crop,
// mirroring, output selection, merged classes, float16 — built with onnx-proto here, run through
// the real pipeline and onnxruntime.

type Dims = [number, number, number];
const FLOAT16 = 10;

const encode = (graph: InstanceType<typeof onnx.GraphProto>) =>
  onnx.ModelProto.encode(
    onnx.ModelProto.create({ irVersion: 8, producerName: 'strokeview-test', opsetImport: [{ domain: '', version: 13 }], graph }),
  ).finish();

const io = (name: string, dims: (number | string)[]) => onnx.ValueInfoProto.create({ name, type: tensorType(dims) });
const spatial = ['N', 1, 'Z', 'Y', 'X'];

async function loaded(bytes: Uint8Array, m: Record<string, unknown>): Promise<LoadedModel & { shapes: number[][] }> {
  const manifest = manifestSchema.parse({
    id: 'test-model',
    name: 'test',
    version: '1',
    description: 'a model built by the test to depend on one step',
    kind: 'rule-based',
    inputs: ['dwi'],
    preprocessing: [{ kind: 'none' }],
    patchSize: null,
    axisOrder: 'zyx',
    output: { activation: 'none' },
    threshold: 0.5,
    manifestVersion: 2,
    ...m,
  });
  const real = await ort.InferenceSession.create(bytes);
  const shapes: number[][] = [];
  const session = {
    inputNames: real.inputNames,
    outputNames: real.outputNames,
    run: (feeds: Record<string, ort.Tensor>) => {
      shapes.push([...Object.values(feeds)[0]!.dims]);
      return real.run(feeds);
    },
  } as unknown as ort.InferenceSession;
  return { manifest, session, dir: '', shapes };
}

/** Morphological opening of (x > 0.5) by a k³ cube: only blobs at least k voxels across in every direction survive. */
function openingModel(k: number) {
  const pool = (i: string, o: string) =>
    node('MaxPool', [i], [o], [intsAttr('kernel_shape', [k, k, k]), intsAttr('pads', Array(6).fill((k - 1) / 2))]);
  return encode(
    onnx.GraphProto.create({
      name: 'opening',
      input: [io('input', spatial)],
      output: [io('probability', spatial)],
      initializer: [floatTensor('half', [], [0.5])],
      node: [
        node('Greater', ['input', 'half'], ['bright']),
        node(
          'Cast',
          ['bright'],
          ['b'],
          [onnx.AttributeProto.create({ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: FLOAT })],
        ),
        node('Neg', ['b'], ['nb']),
        pool('nb', 'nmax'),
        node('Neg', ['nmax'], ['eroded']),
        pool('eroded', 'probability'),
      ],
    }),
  );
}

/** The left edge of bright things along the tensor's last axis: x[i] − x[i−1] > 0.5. */
function leftEdgeModel() {
  return encode(
    onnx.GraphProto.create({
      name: 'left-edge',
      input: [io('input', spatial)],
      output: [io('probability', spatial)],
      initializer: [floatTensor('w', [1, 1, 1, 1, 2], [-1, 1]), floatTensor('half', [], [0.5])],
      node: [
        node('Conv', ['input', 'w'], ['d'], [intsAttr('kernel_shape', [1, 1, 2]), intsAttr('pads', [0, 0, 1, 0, 0, 0])]),
        node('Greater', ['d', 'half'], ['edge']),
        node(
          'Cast',
          ['edge'],
          ['probability'],
          [onnx.AttributeProto.create({ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: FLOAT })],
        ),
      ],
    }),
  );
}

/** A grid of `spacing` mm over a 40 mm field of view centred on 0, with a 10 mm ball (value 1) at the centre. */
function ballCase(spacing: Dims) {
  const dims = spacing.map((s) => Math.round(40 / s)) as Dims;
  const affine: Affine = [
    [spacing[0], 0, 0, -20 + spacing[0] / 2],
    [0, spacing[1], 0, -20 + spacing[1] / 2],
    [0, 0, spacing[2], -20 + spacing[2] / 2],
    [0, 0, 0, 1],
  ];
  const data = new Float32Array(dims[0] * dims[1] * dims[2]);
  for (let k = 0; k < dims[2]; k++)
    for (let j = 0; j < dims[1]; j++)
      for (let i = 0; i < dims[0]; i++) {
        const [x, y, z] = [affine[0]![0]! * i + affine[0]![3]!, affine[1]![1]! * j + affine[1]![3]!, affine[2]![2]! * k + affine[2]![3]!];
        if (x * x + y * y + z * z <= 25) data[k * dims[0] * dims[1] + j * dims[0] + i] = 1;
      }
  const file = (d: Float32Array) => writeNiftiGz({ dims, affine, datatype: 'float32', data: d });
  return { dims, read: async (role: VolumeRole) => (role === 'dwi' || role === 'mask' ? file(data) : undefined) };
}

describe('the model grid (#25)', () => {
  it('spacing: a model answering only to blobs ≥ 3 voxels across finds a 10 mm lesion at 1, 2 and 0.9×0.9×5 mm with spacingMm [1,1,1], and not at 0.9×0.9×5 without', async () => {
    const opening = openingModel(3);
    const withSpacing = await loaded(opening, { spacingMm: [1, 1, 1] });
    const native = await loaded(opening, {});
    for (const spacing of [
      [1, 1, 1],
      [2, 2, 2],
      [0.9, 0.9, 5],
    ] as Dims[]) {
      const c = ballCase(spacing);
      const r = await runPipeline({ read: c.read, models: [withSpacing] });
      expect(r.metrics.dice!, `at ${spacing.join('×')} mm`).toBeGreaterThanOrEqual(0.8);
    }
    // the model saw the 1 mm grid: 40³ from the 0.9×0.9×5 case (44×44×8)
    expect(withSpacing.shapes.at(-1)).toEqual([1, 1, 40, 40, 40]);
    const anisotropic = await runPipeline({ read: ballCase([0.9, 0.9, 5]).read, models: [native] });
    expect(anisotropic.metrics.dice).toBe(0);
  });

  it('orientation: a model answering to the left edge of a lesion (in RAS) gives the same world mask for a case stored RAS and LPS', async () => {
    const dims: Dims = [20, 16, 12];
    const n = dims[0] * dims[1] * dims[2];
    const ras = new Float32Array(n);
    for (let k = 4; k < 8; k++) for (let j = 5; j < 10; j++) for (let i = 6; i < 13; i++) ras[k * dims[0] * dims[1] + j * dims[0] + i] = 1;
    const rasAffine: Affine = [
      [2, 0, 0, -20],
      [0, 2, 0, -16],
      [0, 0, 2, -12],
      [0, 0, 0, 1],
    ];
    // the same world, stored with i toward the left and j toward the back
    const lpsAffine: Affine = [
      [-2, 0, 0, -20 + 2 * (dims[0] - 1)],
      [0, -2, 0, -16 + 2 * (dims[1] - 1)],
      [0, 0, 2, -12],
      [0, 0, 0, 1],
    ];
    const plan = orientationPlan(lpsAffine, 'RAS');
    expect(plan).toEqual({ perm: [0, 1, 2], flip: [true, true, false] });
    const lps = reorient(ras, dims, plan).data; // flipping i and j is its own inverse
    const run = async (data: Float32Array, affine: Affine, orientation: string) => {
      const model = await loaded(leftEdgeModel(), { orientation });
      const file = writeNiftiGz({ dims, affine, datatype: 'float32', data });
      const r = await runPipeline({ read: async (role) => (role === 'dwi' ? file : undefined), models: [model] });
      return r.mask;
    };
    const fromRas = await run(ras, rasAffine, 'RAS');
    const fromLps = await run(lps, lpsAffine, 'RAS');
    const lpsInRas = reorient(Float32Array.from(fromLps), dims, plan).data;
    expect(fromRas.reduce((a, b) => a + b, 0)).toBe(4 * 5); // one left-edge face
    expect(Array.from(lpsInRas)).toEqual(Array.from(fromRas));
    // without the step the LPS case lights up the other (right) face: the step matters
    const nativeLps = reorient(Float32Array.from(await run(lps, lpsAffine, 'native')), dims, plan).data;
    expect(Array.from(nativeLps)).not.toEqual(Array.from(fromRas));
    // reorient/unorient are inverse for every permutation the planner can give
    const odd: Affine = [
      [0, 0, -3, 10],
      [2, 0, 0, 0],
      [0, -1, 0, 5],
      [0, 0, 0, 1],
    ];
    const p2 = orientationPlan(odd, 'LPS');
    const moved = reorient(ras, dims, p2);
    expect(Array.from(unorient(moved.data, dims, p2))).toEqual(Array.from(ras));
  });

  it('crop to foreground: the same mask as no crop on a head in a big field of view, from a smaller tensor', async () => {
    const vols = Object.fromEntries(phantomVolumes(101).map((v) => [v.role, v.stored])) as Record<VolumeRole, Buffer>;
    // the phantom in a field of view 24 voxels larger on every side, zeros around it
    const pad = 24;
    const padded: Partial<Record<VolumeRole, Buffer>> = {};
    let bigDims: Dims = [0, 0, 0];
    for (const role of ['dwi', 'adc', 'mask'] as const) {
      const v = readNifti(vols[role]);
      const src = toFloat32(v);
      const d = v.dims;
      bigDims = [d[0] + 2 * pad, d[1] + 2 * pad, d[2] + 2 * pad];
      const out = new Float32Array(bigDims[0] * bigDims[1] * bigDims[2]);
      for (let k = 0; k < d[2]; k++)
        for (let j = 0; j < d[1]; j++)
          for (let i = 0; i < d[0]; i++)
            out[(k + pad) * bigDims[0] * bigDims[1] + (j + pad) * bigDims[0] + i + pad] = src[k * d[0] * d[1] + j * d[0] + i]!;
      const affine = v.affine.map((row) => [...row]) as Affine;
      for (let r = 0; r < 3; r++) affine[r]![3] = affine[r]![3]! - pad * (affine[r]![0]! + affine[r]![1]! + affine[r]![2]!);
      padded[role] = writeNiftiGz({ dims: bigDims, affine, datatype: 'float32', data: out });
    }
    const builtIn = path.join(builtInModelsDir(), 'adc-dwi-v2');
    const bytes = readFileSync(path.join(builtIn, 'model.onnx'));
    const base = JSON.parse(readFileSync(path.join(builtIn, 'manifest.json'), 'utf8')) as Record<string, unknown>;
    const plain = await loaded(bytes, { ...base, id: 'plain' });
    const cropped = await loaded(bytes, { ...base, id: 'cropped', cropToForeground: { marginMm: 4 } });
    const read = async (role: VolumeRole) => padded[role];
    const a = await runPipeline({ read, models: [plain] });
    const b = await runPipeline({ read, models: [cropped] });
    expect(a.metrics.dice!).toBeGreaterThan(0.9);
    expect(Buffer.from(b.mask).equals(Buffer.from(a.mask))).toBe(true);
    const voxels = (s: number[]) => s.slice(2).reduce((x, y) => x * y, 1);
    expect(voxels(cropped.shapes[0]!)).toBeLessThan(voxels(plain.shapes[0]!) / 2);
  });

  it('mirroring: the probability equals the mean of the eight explicitly flipped runs (to 1e-5)', async () => {
    const dims: Dims = [12, 10, 8];
    const n = dims[0] * dims[1] * dims[2];
    let s = 7;
    const x = Float32Array.from({ length: n }, () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32);
    const bytes = leftEdgeModel();
    const model = await loaded(bytes, { mirroring: [0, 1, 2] });
    const got = await predictProbability({ session: model.session, tensor: ort.Tensor, manifest: model.manifest, channels: [x], dims });
    const raw = await ort.InferenceSession.create(bytes);
    const shape = [1, 1, dims[2], dims[1], dims[0]];
    const mean = new Float32Array(n);
    for (const axes of [[], [0], [1], [2], [0, 1], [0, 2], [1, 2], [0, 1, 2]]) {
      const out = await raw.run({ input: new ort.Tensor('float32', flipTensor(x, 1, shape.slice(2), axes), shape) });
      const back = flipTensor(out.probability!.data as Float32Array, 1, shape.slice(2), axes);
      for (let i = 0; i < n; i++) mean[i] = mean[i]! + back[i]! / 8;
    }
    for (let i = 0; i < n; i++) expect(Math.abs(got[i]! - mean[i]!)).toBeLessThanOrEqual(1e-5);
    // and it is not the unmirrored answer (the model is not symmetric)
    const plain = await loaded(bytes, {});
    const once = await predictProbability({ session: plain.session, tensor: ort.Tensor, manifest: plain.manifest, channels: [x], dims });
    expect(Array.from(once)).not.toEqual(Array.from(got));
  });

  it('a 3-class softmax with two lesion classes merged; a two-output graph read at output 1 (and by name); float16 inputs', async () => {
    const dims: Dims = [6, 5, 4];
    const n = dims[0] * dims[1] * dims[2];
    const a = Float32Array.from({ length: n }, (_, i) => (i % 7) / 7 - 0.3);
    const b = Float32Array.from({ length: n }, (_, i) => (i % 5) / 5 - 0.4);
    const three = encode(
      onnx.GraphProto.create({
        name: 'three',
        input: [io('input', ['N', 2, 'Z', 'Y', 'X'])],
        output: [io('logits', ['N', 3, 'Z', 'Y', 'X'])],
        initializer: [floatTensor('w', [3, 2, 1, 1, 1], [0, 0, 2, 0, 0, 2])],
        node: [node('Conv', ['input', 'w'], ['logits'], [intsAttr('kernel_shape', [1, 1, 1])])],
      }),
    );
    const m3 = await loaded(three, {
      inputs: ['dwi', 'adc'],
      preprocessing: [{ kind: 'none' }, { kind: 'none' }],
      output: { activation: 'softmax', lesionClasses: [1, 2], classes: 3 },
    });
    const p3 = await predictProbability({ session: m3.session, tensor: ort.Tensor, manifest: m3.manifest, channels: [a, b], dims });
    for (let i = 0; i < n; i++) {
      const e1 = Math.exp(2 * a[i]!);
      const e2 = Math.exp(2 * b[i]!);
      expect(p3[i]).toBeCloseTo((e1 + e2) / (1 + e1 + e2), 5);
    }
    const two = encode(
      onnx.GraphProto.create({
        name: 'two',
        input: [io('input', spatial)],
        output: [io('deep_supervision', spatial), io('main', spatial)],
        node: [node('Neg', ['input'], ['deep_supervision']), node('Identity', ['input'], ['main'])],
      }),
    );
    for (const output of [
      { activation: 'none', index: 1 },
      { activation: 'none', name: 'main' },
    ]) {
      const m2 = await loaded(two, { output });
      const p2 = await predictProbability({ session: m2.session, tensor: ort.Tensor, manifest: m2.manifest, channels: [a], dims });
      expect(Array.from(p2)).toEqual(Array.from(a));
    }
    const half = encode(
      onnx.GraphProto.create({
        name: 'half',
        input: [
          onnx.ValueInfoProto.create({
            name: 'input',
            type: onnx.TypeProto.create({
              tensorType: {
                elemType: FLOAT16,
                shape: { dim: spatial.map((d) => (typeof d === 'number' ? { dimValue: d } : { dimParam: d })) },
              },
            }),
          }),
        ],
        output: [io('probability', spatial)],
        node: [
          node(
            'Cast',
            ['input'],
            ['probability'],
            [onnx.AttributeProto.create({ name: 'to', type: onnx.AttributeProto.AttributeType.INT, i: FLOAT })],
          ),
        ],
      }),
    );
    const mh = await loaded(half, { inputType: 'float16' });
    const ph = await predictProbability({ session: mh.session, tensor: ort.Tensor, manifest: mh.manifest, channels: [a], dims });
    for (let i = 0; i < n; i++) expect(Math.abs(ph[i]! - a[i]!)).toBeLessThanOrEqual(1e-3);
  });

  it('a grid smaller than a static patch is zero-padded up to it and the answer cropped back (v2)', async () => {
    const dims: Dims = [6, 5, 4];
    const a = Float32Array.from({ length: 6 * 5 * 4 }, (_, i) => i / 120);
    const fixed = encode(
      onnx.GraphProto.create({
        name: 'fixed',
        input: [io('input', [1, 1, 8, 8, 8])],
        output: [io('probability', [1, 1, 8, 8, 8])],
        node: [node('Identity', ['input'], ['probability'])],
      }),
    );
    const m = await loaded(fixed, { patchSize: [8, 8, 8] });
    const p = await predictProbability({ session: m.session, tensor: ort.Tensor, manifest: m.manifest, channels: [a], dims });
    expect(m.shapes).toEqual([[1, 1, 8, 8, 8]]);
    expect(Array.from(p)).toEqual(Array.from(a));
  });

  it('a manifest without the v2 fields parses to today’s behaviour', () => {
    const m: ModelManifest = manifestSchema.parse(
      JSON.parse(readFileSync(path.join(builtInModelsDir(), 'adc-dwi-v2', 'manifest.json'), 'utf8')),
    );
    expect(m).toMatchObject({
      manifestVersion: 1,
      spacingMm: null,
      orientation: 'native',
      cropToForeground: null,
      blend: 'interior',
      mirroring: [],
      inputType: 'float32',
    });
  });
});
