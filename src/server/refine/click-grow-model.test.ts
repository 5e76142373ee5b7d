import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import * as ort from 'onnxruntime-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GROW_ITERATIONS, buildClickGrowModel } from '../../../models/click-grow-v1/build.js';
import { interactiveManifestSchema } from '../../shared/models.js';

const modelDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../models/click-grow-v1');

type Dims = [number, number, number]; // z, y, x
type Voxel = [number, number, number];

/** The five channels of one crop, each z-major (x fastest), as the model takes them. */
class Crop {
  readonly n: number;
  readonly dwi: Float32Array;
  readonly adc: Float32Array;
  readonly positive: Float32Array;
  readonly negative: Float32Array;
  readonly previous: Float32Array;
  constructor(readonly dims: Dims) {
    this.n = dims[0] * dims[1] * dims[2];
    this.dwi = new Float32Array(this.n); // background: the head's median, z 0
    this.adc = new Float32Array(this.n).fill(800); // background: normal parenchyma
    this.positive = new Float32Array(this.n);
    this.negative = new Float32Array(this.n);
    this.previous = new Float32Array(this.n);
  }
  index([z, y, x]: Voxel): number {
    return (z * this.dims[1] + y) * this.dims[2] + x;
  }
  /** Calls fn with the index of every voxel in the crop and its coordinates. */
  each(fn: (i: number, v: Voxel) => void): void {
    const [Z, Y, X] = this.dims;
    for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) fn(this.index([z, y, x]), [z, y, x]);
  }
  /** A 0/1 mask of the voxels within `radius` of `centre`. */
  sphere(centre: Voxel, radius: number): Uint8Array {
    const out = new Uint8Array(this.n);
    this.each((i, [z, y, x]) => {
      if ((z - centre[0]) ** 2 + (y - centre[1]) ** 2 + (x - centre[2]) ** 2 <= radius * radius) out[i] = 1;
    });
    return out;
  }
  paint(mask: Uint8Array, dwi: number, adc: number): void {
    for (let i = 0; i < this.n; i++) if (mask[i]) [this.dwi[i], this.adc[i]] = [dwi, adc];
  }
  /** A click's Gaussian (sigma in voxels), peak exactly 1 at the clicked voxel, the max where clicks overlap. */
  click(channel: Float32Array, at: Voxel, sigma = 1.5): void {
    this.each((i, [z, y, x]) => {
      const d2 = (z - at[0]) ** 2 + (y - at[1]) ** 2 + (x - at[2]) ** 2;
      channel[i] = Math.max(channel[i]!, Math.exp(-d2 / (2 * sigma * sigma)));
    });
  }
  tensor(): ort.Tensor {
    const data = new Float32Array(5 * this.n);
    [this.dwi, this.adc, this.positive, this.negative, this.previous].forEach((c, k) => data.set(c, k * this.n));
    return new ort.Tensor('float32', data, [1, 5, ...this.dims]);
  }
}

let session: ort.InferenceSession;
beforeAll(async () => {
  session = await ort.InferenceSession.create(buildClickGrowModel(), { intraOpNumThreads: 1, interOpNumThreads: 1 });
});
afterAll(async () => {
  await session?.release();
});

async function run(crop: Crop): Promise<{ dims: readonly number[]; mask: Uint8Array }> {
  const out = await session.run({ input: crop.tensor() });
  const p = out.probability!;
  const data = p.data as Float32Array;
  expect(data.every((v) => v === 0 || v === 1)).toBe(true);
  return { dims: p.dims, mask: Uint8Array.from(data) };
}

const count = (mask: Uint8Array) => mask.reduce((a, b) => a + b, 0);
const union = (a: Uint8Array, b: Uint8Array) => a.map((v, i) => v | b[i]!);

describe('built-in interactive model click-grow-v1', () => {
  it('a positive click at the centre of a bright, restricted sphere answers exactly the sphere', async () => {
    const crop = new Crop([40, 40, 40]);
    const sphere = crop.sphere([20, 20, 20], 6);
    crop.paint(sphere, 5, 450);
    crop.click(crop.positive, [20, 20, 20]);
    const { dims, mask } = await run(crop);
    expect(dims).toEqual([1, 1, 40, 40, 40]);
    expect(count(sphere)).toBeGreaterThan(800);
    expect(mask).toEqual(sphere);
  });

  it('does not add a second sphere two voxels away that the first does not touch', async () => {
    const crop = new Crop([40, 40, 40]);
    const clicked = crop.sphere([20, 20, 20], 6); // x 14..26
    const other = crop.sphere([20, 20, 34], 5); // x 29..39: x 27 and 28 lie between
    crop.paint(clicked, 5, 450);
    crop.paint(other, 5, 450);
    crop.click(crop.positive, [20, 20, 20]);
    const { mask } = await run(crop);
    expect(mask).toEqual(clicked);
  });

  it('a negative click inside a blob of the previous mask removes that blob and keeps the others', async () => {
    const crop = new Crop([40, 40, 40]);
    const removed = crop.sphere([10, 10, 10], 4);
    const kept = crop.sphere([28, 28, 28], 5);
    crop.paint(union(removed, kept), 5, 450);
    crop.previous.set(union(removed, kept));
    crop.click(crop.negative, [10, 10, 10]);
    const { mask } = await run(crop);
    expect(mask).toEqual(kept);
  });

  it('a negative click removes the whole blob even when the blob is not bright or restricted', async () => {
    const crop = new Crop([40, 40, 40]);
    const removed = crop.sphere([10, 10, 10], 4);
    const kept = crop.sphere([28, 28, 28], 5);
    crop.previous.set(union(removed, kept)); // drawn by hand on normal tissue
    crop.click(crop.negative, [11, 9, 10]);
    const { mask } = await run(crop);
    expect(mask).toEqual(kept);
  });

  it('a positive click on background adds nothing (and keeps the previous mask)', async () => {
    const crop = new Crop([40, 40, 40]);
    crop.paint(crop.sphere([8, 8, 8], 5), 5, 450); // a lesion elsewhere in the crop
    const previous = crop.sphere([30, 30, 30], 3);
    crop.previous.set(previous);
    crop.click(crop.positive, [20, 20, 20]);
    const { mask } = await run(crop);
    expect(mask).toEqual(previous);
  });

  it('grows only through voxels at least half as bright as the clicked one, and only into restricted tissue', async () => {
    const crop = new Crop([40, 40, 40]);
    const core = crop.sphere([20, 20, 20], 3);
    const lesion = crop.sphere([20, 20, 20], 6);
    crop.paint(lesion, 4, 500); // rim: z 4
    crop.paint(core, 10, 400); // core: z 10, so from the core the DWI bound is 5
    const edema = crop.sphere([20, 20, 20], 9).map((v, i) => v & (1 - lesion[i]!));
    crop.paint(edema, 6, 1100); // bright but not restricted: never taken
    crop.click(crop.positive, [20, 20, 20]);
    expect((await run(crop)).mask).toEqual(core);

    crop.positive.fill(0);
    crop.click(crop.positive, [20, 20, 25]); // on the rim: the DWI bound is max(2, 2)
    expect((await run(crop)).mask).toEqual(lesion);
  });

  it(`reaches at most ${GROW_ITERATIONS} voxels from the click, and keeps the axis order of a non-cubic crop`, async () => {
    const crop = new Crop([6, 8, 64]);
    const bar = new Uint8Array(crop.n);
    crop.each((i, [z, y, x]) => {
      if (z >= 2 && z <= 3 && y >= 3 && y <= 4 && x >= 1 && x <= 60) bar[i] = 1;
    });
    crop.paint(bar, 5, 450);
    crop.click(crop.positive, [2, 3, 2]);
    const { dims, mask } = await run(crop);
    expect(dims).toEqual([1, 1, 6, 8, 64]);
    const expected = new Uint8Array(crop.n);
    crop.each((i, [, , x]) => {
      if (bar[i] && x <= 2 + GROW_ITERATIONS) expected[i] = 1;
    });
    expect(mask).toEqual(expected);
  });

  it('the committed model.onnx is byte-identical to what npm run build:model writes', () => {
    const committed = readFileSync(path.join(modelDir, 'model.onnx'));
    expect(Buffer.from(buildClickGrowModel()).equals(committed)).toBe(true);
  });

  it('its manifest is a valid interactive manifest that says it is rule-based and not for clinical use', () => {
    const manifest = interactiveManifestSchema.parse(JSON.parse(readFileSync(path.join(modelDir, 'manifest.json'), 'utf8')));
    expect(manifest.id).toBe('click-grow-v1');
    expect(manifest.method).toBe('rule-based');
    expect(manifest.inputs).toEqual(['dwi', 'adc']);
    expect(manifest.previousMask).toBe(true);
    expect(manifest.description).toMatch(/Not a trained network/);
    expect(manifest.description).toMatch(/not for clinical use/);
  });

  it('times one run on a 32³ and a 64³ crop (printed; nothing asserted about speed)', async () => {
    for (const side of [32, 64]) {
      const crop = new Crop([side, side, side]);
      const c = side / 2;
      crop.paint(crop.sphere([c, c, c], side / 4), 5, 450);
      crop.click(crop.positive, [c, c, c]);
      const input = crop.tensor();
      const t0 = performance.now();
      await session.run({ input });
      const first = performance.now() - t0;
      const t1 = performance.now();
      await session.run({ input });
      const second = performance.now() - t1;
      process.stdout.write(`click-grow-v1 ${side}³ crop, 1 thread: first run ${first.toFixed(0)} ms, second ${second.toFixed(0)} ms\n`);
    }
  });
});
