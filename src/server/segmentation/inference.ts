import type * as ort from 'onnxruntime-node';
import type { ModelManifest } from '../../shared/models.js';
import { Float16Array } from '@petamoriken/float16';
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

/** nnU-Net's Gaussian importance map (σ = patch · sigmaScale, 1/8 by default) along one axis. */
function gaussian1d(p: number, sigmaScale = 0.125): Float32Array {
  const g = new Float32Array(p);
  const sigma = p * sigmaScale;
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
  const { manifest, dims } = opts;
  // Version 2 manifests: a grid smaller than the patch is zero-padded up to it (at the far end;
  // nnU-Net pads with zeros too) and the answer cropped back — a static-shaped graph takes nothing
  // smaller. Version 1 manifests shrink the window to the grid, as they always did.
  if (manifest.manifestVersion === 2 && manifest.patchSize && dims.some((d, a) => d < manifest.patchSize![a]!)) {
    const big = dims.map((d, a) => Math.max(d, manifest.patchSize![a]!)) as [number, number, number];
    const pad = (c: Float32Array) => {
      const out = new Float32Array(big[0] * big[1] * big[2]);
      for (let z = 0; z < dims[2]; z++)
        for (let y = 0; y < dims[1]; y++) {
          const src = z * dims[0] * dims[1] + y * dims[0];
          out.set(c.subarray(src, src + dims[0]), z * big[0] * big[1] + y * big[0]);
        }
      return out;
    };
    const prob = await predictProbability({ ...opts, channels: opts.channels.map(pad), dims: big });
    const out = new Float32Array(dims[0] * dims[1] * dims[2]);
    for (let z = 0; z < dims[2]; z++)
      for (let y = 0; y < dims[1]; y++) {
        const src = z * big[0] * big[1] + y * big[0];
        out.set(prob.subarray(src, src + dims[0]), z * dims[0] * dims[1] + y * dims[0]);
      }
    return out;
  }
  const { channels } = opts;
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
  const gauss = patch.map((p) => gaussian1d(p, manifest.gaussianSigmaScale));
  // nnU-Net/MONAI blending: every window whole, Gaussian-weighted; `interior` drops the outer half-overlap
  const interior = manifest.blend !== 'gaussian';
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
        const prob = await runMirrored(opts, input, shape, pn);
        if (whole) {
          if (!xyz) return prob;
          const vol = new Float32Array(pn);
          for (let x = 0; x < px; x++)
            for (let y = 0; y < py; y++) for (let z = 0; z < pz; z++) vol[z * py * px + y * px + x] = prob[x * py * pz + y * pz + z]!;
          return vol;
        }
        // Interior bounds: the outer half-overlap is dropped except at the volume's edges.
        const lo = interior ? [x0 === 0 ? 0 : margin[0]!, y0 === 0 ? 0 : margin[1]!, z0 === 0 ? 0 : margin[2]!] : [0, 0, 0];
        const hi = interior
          ? [x0 + px >= nx ? px : px - margin[0]!, y0 + py >= ny ? py : py - margin[1]!, z0 + pz >= nz ? pz : pz - margin[2]!]
          : [px, py, pz];
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

/** The graph output the manifest names (by name, else by index). */
export function outputNameOf(session: ort.InferenceSession, manifest: ModelManifest): string {
  const name = manifest.output.name ?? session.outputNames[manifest.output.index];
  if (!name || !session.outputNames.includes(name))
    throw new Error(
      `the model has outputs ${session.outputNames.join(', ')}; the manifest asks for ${manifest.output.name ?? `output ${manifest.output.index}`}`,
    );
  return name;
}

/** A float32 array as IEEE half floats (round to nearest even; @petamoriken/float16), for float16 inputs. */
export function toFloat16(src: Float32Array): Uint16Array {
  return new Uint16Array(new Float16Array(src).buffer);
}

/** IEEE half floats as float32 (a float16 output). */
export function fromFloat16(src: Uint16Array): Float32Array {
  return Float32Array.from(new Float16Array(src.buffer, src.byteOffset, src.length));
}

/** Flips a [1, C, A, B, D] tensor (D fastest) along the given spatial axes (0 = A, 1 = B, 2 = D). */
export function flipTensor(data: Float32Array, c: number, spatial: readonly number[], axes: readonly number[]): Float32Array {
  if (axes.length === 0) return data;
  const [a, b, d] = spatial as [number, number, number];
  const out = new Float32Array(data.length);
  const fa = axes.includes(0);
  const fb = axes.includes(1);
  const fd = axes.includes(2);
  const n = a * b * d;
  for (let ch = 0; ch < c; ch++) {
    const base = ch * n;
    for (let i = 0; i < a; i++) {
      const si = fa ? a - 1 - i : i;
      for (let j = 0; j < b; j++) {
        const sj = fb ? b - 1 - j : j;
        const src = base + si * b * d + sj * d;
        const dst = base + i * b * d + j * d;
        if (fd) for (let k = 0; k < d; k++) out[dst + k] = data[src + d - 1 - k]!;
        else out.set(data.subarray(src, src + d), dst);
      }
    }
  }
  return out;
}

/** Every subset of the mirroring axes (nnU-Net's test-time mirroring: 2^k runs). */
function mirrorSets(axes: readonly number[]): number[][] {
  let sets: number[][] = [[]];
  for (const a of axes) sets = [...sets, ...sets.map((s) => [...s, a])];
  return sets;
}

/**
 * One window through the network, with test-time mirroring: the probability (after the
 * activation, the lesion classes merged) averaged over every flip combination of the manifest's
 * `mirroring` axes, each flipped back first.
 */
async function runMirrored(opts: InferOptions, input: Float32Array, shape: number[], pn: number): Promise<Float32Array> {
  const { manifest, session } = opts;
  const spatial = shape.slice(2);
  const C = shape[1]!;
  const outName = outputNameOf(session, manifest);
  const sets = mirrorSets(manifest.mirroring);
  let sum: Float32Array | null = null;
  for (const axes of sets) {
    const flipped = flipTensor(input, C, spatial, axes);
    const tensor =
      manifest.inputType === 'float16' ? new opts.tensor('float16', toFloat16(flipped), shape) : new opts.tensor('float32', flipped, shape);
    const result = await session.run({ [session.inputNames[0]!]: tensor });
    const out = result[outName]!;
    const data = out.type === 'float16' ? fromFloat16(out.data as Uint16Array) : (out.data as Float32Array);
    const prob = toProbability(data, out.dims as number[], manifest, pn);
    if (sets.length === 1) return prob;
    const back = flipTensor(prob, 1, spatial, axes);
    if (!sum) sum = back;
    else for (let i = 0; i < pn; i++) sum[i] = sum[i]! + back[i]!;
  }
  for (let i = 0; i < pn; i++) sum![i] = sum![i]! / sets.length;
  return sum!;
}

/**
 * The lesion probability per voxel, per the manifest's activation: the lesion class's channel, or
 * with `lesionClasses` those channels merged — summed after a softmax (they are exclusive), the
 * maximum after a sigmoid or of probabilities (they may overlap).
 */
function toProbability(data: Float32Array, dims: number[], manifest: ModelManifest, n: number): Float32Array {
  const k = dims[1] ?? 1;
  const { activation } = manifest.output;
  const classes = manifest.output.lesionClasses ?? [k > 1 ? manifest.output.lesionClass : 0];
  for (const cls of classes) if (cls >= k) throw new Error(`model output has ${k} channels; lesion class ${cls} does not exist`);
  if (activation === 'none' && classes.length === 1) {
    // already a probability: the lesion channel as a view, no copy
    const cls = classes[0]!;
    return k === 1 ? data : data.subarray(cls * n, cls * n + n);
  }
  const out = new Float32Array(n);
  if (activation === 'softmax' && k === 2 && classes.length === 1) {
    // two classes: the softmax of the lesion channel is a sigmoid of the logits' difference (one exp, not three)
    const cls = classes[0]!;
    const other = 1 - cls;
    for (let i = 0; i < n; i++) out[i] = 1 / (1 + Math.exp(data[other * n + i]! - data[cls * n + i]!));
  } else if (activation === 'softmax') {
    for (let i = 0; i < n; i++) {
      let max = -Infinity;
      for (let c = 0; c < k; c++) max = Math.max(max, data[c * n + i]!);
      let sum = 0;
      for (let c = 0; c < k; c++) sum += Math.exp(data[c * n + i]! - max);
      let p = 0;
      for (const cls of classes) p += Math.exp(data[cls * n + i]! - max);
      out[i] = p / sum;
    }
  } else {
    const sigmoid = activation === 'sigmoid';
    for (let i = 0; i < n; i++) {
      let p = 0;
      for (const cls of classes) {
        const v = data[cls * n + i]!;
        p = Math.max(p, sigmoid ? 1 / (1 + Math.exp(-v)) : v);
      }
      out[i] = p;
    }
  }
  return out;
}
