import type * as ort from 'onnxruntime-node';
import type { ModelManifest } from '../../shared/models.js';
import { cancelled } from '../errors.js';

export function throwIfAborted(signal?: AbortSignal): void {
  if (signal?.aborted) throw cancelled();
}

type Dims = readonly [number, number, number];

/** Window starts along one axis: every `step`, the last flush with the end. */
function starts(n: number, patch: number, step: number): number[] {
  if (patch >= n) return [0];
  const out: number[] = [];
  for (let s = 0; s + patch < n; s += step) out.push(s);
  out.push(n - patch);
  return out;
}

/** nnU-Net's Gaussian importance map (σ = patch/8) along one axis. */
function gaussian1d(p: number): Float32Array {
  const g = new Float32Array(p);
  const sigma = p / 8;
  const c = (p - 1) / 2;
  for (let i = 0; i < p; i++) g[i] = Math.exp(-((i - c) ** 2) / (2 * sigma * sigma));
  return g;
}

export interface InferOptions {
  session: ort.InferenceSession;
  tensor: typeof ort.Tensor;
  manifest: ModelManifest;
  /** One float32 array per input channel, NIfTI order (x fastest), all on the same grid. */
  channels: Float32Array[];
  dims: Dims;
  signal?: AbortSignal;
  onPatch?: (done: number, total: number) => void;
}

/**
 * Runs the model over the volume and returns the lesion probability per voxel. With a patch
 * size: a sliding window; each window's prediction is weighted by a Gaussian and, on sides that
 * are not the volume's edge, its outer half-overlap is dropped — that band is where the window's
 * receptive field runs out of context, and a neighbour sees it from its interior. The windows'
 * interiors tile the volume, so a convolutional model whose receptive field fits inside the
 * overlap gives the same result as one whole-volume run.
 */
export async function predictProbability(opts: InferOptions): Promise<Float32Array> {
  const { manifest, dims, channels } = opts;
  const [nx, ny, nz] = dims;
  const patch: [number, number, number] = manifest.patchSize
    ? [Math.min(manifest.patchSize[0], nx), Math.min(manifest.patchSize[1], ny), Math.min(manifest.patchSize[2], nz)]
    : [nx, ny, nz];
  const step = patch.map((p) => Math.max(1, Math.round(p * (1 - manifest.overlap)))) as [number, number, number];
  const margin = patch.map((p, a) => Math.floor((p - step[a]!) / 2));
  const xs = starts(nx, patch[0], step[0]);
  const ys = starts(ny, patch[1], step[1]);
  const zs = starts(nz, patch[2], step[2]);
  const whole = xs.length * ys.length * zs.length === 1;
  const total = xs.length * ys.length * zs.length;
  const gauss = patch.map(gaussian1d);
  const acc = whole ? null : new Float32Array(nx * ny * nz);
  const wsum = whole ? null : new Float32Array(nx * ny * nz);
  const [px, py, pz] = patch;
  const pn = px * py * pz;
  const C = channels.length;
  const xyz = manifest.axisOrder === 'xyz';
  const shape = xyz ? [1, C, px, py, pz] : [1, C, pz, py, px];
  const input = new Float32Array(C * pn);
  let done = 0;
  for (const z0 of zs) {
    for (const y0 of ys) {
      for (const x0 of xs) {
        throwIfAborted(opts.signal);
        // gather the window (transposing to z-fastest for xyz models)
        for (let c = 0; c < C; c++) {
          if (whole && !xyz) {
            input.set(channels[c]!, c * pn); // the whole volume in NIfTI order: one copy
            continue;
          }
          const src = channels[c]!;
          const base = c * pn;
          for (let z = 0; z < pz; z++) {
            for (let y = 0; y < py; y++) {
              const row = (z0 + z) * nx * ny + (y0 + y) * nx + x0;
              if (xyz) {
                for (let x = 0; x < px; x++) input[base + x * py * pz + y * pz + z] = src[row + x]!;
              } else {
                input.set(src.subarray(row, row + px), base + z * py * px + y * px);
              }
            }
          }
        }
        const feeds = { [opts.session.inputNames[0]!]: new opts.tensor('float32', input, shape) };
        const result = await opts.session.run(feeds);
        const out = result[opts.session.outputNames[0]!]!;
        const prob = toProbability(out.data as Float32Array, out.dims as number[], manifest, pn);
        if (whole) {
          if (!xyz) return prob;
          const vol = new Float32Array(pn);
          for (let x = 0; x < px; x++)
            for (let y = 0; y < py; y++) for (let z = 0; z < pz; z++) vol[z * py * px + y * px + x] = prob[x * py * pz + y * pz + z]!;
          return vol;
        }
        // Interior bounds: the outer half-overlap is dropped except at the volume's edges.
        const lo = [x0 === 0 ? 0 : margin[0]!, y0 === 0 ? 0 : margin[1]!, z0 === 0 ? 0 : margin[2]!];
        const hi = [x0 + px >= nx ? px : px - margin[0]!, y0 + py >= ny ? py : py - margin[1]!, z0 + pz >= nz ? pz : pz - margin[2]!];
        for (let z = lo[2]!; z < hi[2]!; z++) {
          for (let y = lo[1]!; y < hi[1]!; y++) {
            const gyz = gauss[1]![y]! * gauss[2]![z]!;
            for (let x = lo[0]!; x < hi[0]!; x++) {
              const w = gauss[0]![x]! * gyz;
              const p = xyz ? prob[x * py * pz + y * pz + z]! : prob[z * py * px + y * px + x]!;
              const o = (z0 + z) * nx * ny + (y0 + y) * nx + x0 + x;
              acc![o] = acc![o]! + p * w;
              wsum![o] = wsum![o]! + w;
            }
          }
        }
        opts.onPatch?.(++done, total);
      }
    }
  }
  const out = new Float32Array(nx * ny * nz);
  for (let i = 0; i < out.length; i++) out[i] = wsum![i]! > 0 ? acc![i]! / wsum![i]! : 0;
  return out;
}

/** The lesion channel of the output as a probability, per the manifest's activation. */
function toProbability(data: Float32Array, dims: number[], manifest: ModelManifest, n: number): Float32Array {
  const k = dims[1] ?? 1;
  const { activation, lesionClass } = manifest.output;
  const cls = k > 1 ? lesionClass : 0;
  if (cls >= k) throw new Error(`model output has ${k} channels; lesionClass ${cls} does not exist`);
  if (activation === 'none') {
    // already a probability: the lesion channel as a view, no copy
    return k === 1 ? data : data.subarray(cls * n, cls * n + n);
  }
  const out = new Float32Array(n);
  if (activation === 'softmax') {
    for (let i = 0; i < n; i++) {
      let max = -Infinity;
      for (let c = 0; c < k; c++) max = Math.max(max, data[c * n + i]!);
      let sum = 0;
      for (let c = 0; c < k; c++) sum += Math.exp(data[c * n + i]! - max);
      out[i] = Math.exp(data[cls * n + i]! - max) / sum;
    }
  } else {
    for (let i = 0; i < n; i++) out[i] = 1 / (1 + Math.exp(-data[cls * n + i]!));
  }
  return out;
}
