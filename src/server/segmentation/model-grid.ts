import type { ModelManifest } from '../../shared/models.js';
import type { Affine } from '../../shared/nifti.js';
import { applyPreprocessing } from './preprocess.js';

// The grid a model runs on, and the way there and back (#25): reorientation (axes permuted and
// flipped from the affine — no interpolation), a crop to the foreground, normalisation, and a
// resampling to the model's spacing; after inference the probability map goes back the same way
// (resampled trilinearly onto the cropped grid, pasted into zeros, turned back) before it is
// thresholded on the DWI grid. The order is nnU-Net's preprocessor's: transpose → crop to nonzero
// → normalise → resample.

type Dims = [number, number, number];

/** Target direction of each new voxel axis in RAS+ world terms: +1 toward R/A/S, −1 toward L/P/I. */
const TARGET_SIGNS = { RAS: [1, 1, 1], LPS: [-1, -1, 1] } as const;

export interface OrientationPlan {
  /** New axis k is old axis perm[k]. */
  perm: [number, number, number];
  /** Whether new axis k runs opposite to old axis perm[k]. */
  flip: [boolean, boolean, boolean];
}

/**
 * The permutation and flips that turn a volume with this affine into the target orientation
 * (nibabel's aff2axcodes logic: each voxel axis is the world axis its column points along most).
 */
export function orientationPlan(affine: Affine, target: 'RAS' | 'LPS' | 'native'): OrientationPlan {
  if (target === 'native') return { perm: [0, 1, 2], flip: [false, false, false] };
  const world: number[] = [];
  const sign: number[] = [];
  for (let j = 0; j < 3; j++) {
    const col = [affine[0]![j]!, affine[1]![j]!, affine[2]![j]!];
    const w = col.reduce((best, v, i) => (Math.abs(v) > Math.abs(col[best]!) ? i : best), 0);
    world.push(w);
    sign.push(Math.sign(col[w]!) || 1);
  }
  if (new Set(world).size !== 3) throw new Error('the affine does not map voxel axes to distinct world axes');
  const perm = [0, 1, 2].map((k) => world.indexOf(k)) as [number, number, number];
  const flip = perm.map((j, k) => sign[j] !== TARGET_SIGNS[target][k]) as [boolean, boolean, boolean];
  return { perm, flip };
}

const isIdentity = (p: OrientationPlan) => p.perm.every((a, k) => a === k) && p.flip.every((f) => !f);

/** Moves `data` (x fastest, dims) into the plan's orientation; returns the new array and dims. */
export function reorient<T extends Float32Array | Uint8Array>(data: T, dims: Dims, plan: OrientationPlan): { data: T; dims: Dims } {
  if (isIdentity(plan)) return { data, dims };
  const nd = plan.perm.map((a) => dims[a]!) as Dims;
  const out = new (data.constructor as new (n: number) => T)(data.length);
  const oldStride = [1, dims[0], dims[0] * dims[1]];
  // for each new axis: the step in the old array, and where it starts
  const step = plan.perm.map((a, k) => (plan.flip[k] ? -oldStride[a]! : oldStride[a]!));
  const start = plan.perm.reduce((s, a, k) => s + (plan.flip[k] ? (dims[a]! - 1) * oldStride[a]! : 0), 0);
  let o = 0;
  for (let z = 0; z < nd[2]; z++)
    for (let y = 0; y < nd[1]; y++) {
      let i = start + z * step[2]! + y * step[1]!;
      for (let x = 0; x < nd[0]; x++, i += step[0]!) out[o++] = data[i]!;
    }
  return { data: out, dims: nd };
}

/** The inverse of `reorient`: back to the original orientation and dims. */
export function unorient(data: Float32Array, originalDims: Dims, plan: OrientationPlan): Float32Array {
  if (isIdentity(plan)) return data;
  const nd = plan.perm.map((a) => originalDims[a]!) as Dims;
  const out = new Float32Array(data.length);
  const oldStride = [1, originalDims[0], originalDims[0] * originalDims[1]];
  const step = plan.perm.map((a, k) => (plan.flip[k] ? -oldStride[a]! : oldStride[a]!));
  const start = plan.perm.reduce((s, a, k) => s + (plan.flip[k] ? (originalDims[a]! - 1) * oldStride[a]! : 0), 0);
  let o = 0;
  for (let z = 0; z < nd[2]; z++)
    for (let y = 0; y < nd[1]; y++) {
      let i = start + z * step[2]! + y * step[1]!;
      for (let x = 0; x < nd[0]; x++, i += step[0]!) out[i] = data[o++]!;
    }
  return out;
}

export interface Box {
  lo: Dims;
  size: Dims;
}

/** The bounding box of voxels nonzero in any channel, grown by `margin` voxels per axis; null when all are zero. */
export function foregroundBox(channels: Float32Array[], dims: Dims, margin: Dims): Box | null {
  const [nx, ny, nz] = dims;
  const lo = [Infinity, Infinity, Infinity];
  const hi = [-1, -1, -1];
  for (const c of channels)
    for (let z = 0; z < nz; z++)
      for (let y = 0; y < ny; y++) {
        const row = z * nx * ny + y * nx;
        for (let x = 0; x < nx; x++) {
          if (c[row + x] === 0) continue;
          if (x < lo[0]!) lo[0] = x;
          if (x > hi[0]!) hi[0] = x;
          if (y < lo[1]!) lo[1] = y;
          if (y > hi[1]!) hi[1] = y;
          if (z < lo[2]!) lo[2] = z;
          if (z > hi[2]!) hi[2] = z;
        }
      }
  if (hi[0]! < 0) return null;
  const l = lo.map((v, a) => Math.max(0, v - margin[a]!)) as Dims;
  const h = hi.map((v, a) => Math.min(dims[a]! - 1, v + margin[a]!));
  return { lo: l, size: [h[0]! - l[0] + 1, h[1]! - l[1] + 1, h[2]! - l[2] + 1] };
}

export function crop(data: Float32Array, dims: Dims, box: Box): Float32Array {
  const [cx, cy, cz] = box.size;
  const out = new Float32Array(cx * cy * cz);
  for (let z = 0; z < cz; z++)
    for (let y = 0; y < cy; y++) {
      const src = (box.lo[2] + z) * dims[0] * dims[1] + (box.lo[1] + y) * dims[0] + box.lo[0];
      out.set(data.subarray(src, src + cx), z * cx * cy + y * cx);
    }
  return out;
}

/** The crop pasted back into a zero volume of `dims`. */
export function uncrop(data: Float32Array, dims: Dims, box: Box): Float32Array {
  const [cx, cy, cz] = box.size;
  const out = new Float32Array(dims[0] * dims[1] * dims[2]);
  for (let z = 0; z < cz; z++)
    for (let y = 0; y < cy; y++) {
      const dst = (box.lo[2] + z) * dims[0] * dims[1] + (box.lo[1] + y) * dims[0] + box.lo[0];
      out.set(data.subarray(z * cx * cy + y * cx, z * cx * cy + y * cx + cx), dst);
    }
  return out;
}

/**
 * Trilinear resampling of a whole grid to new dims over the same field of view (voxel centres
 * mapped as `(i + 0.5) · n/m − 0.5`, edges clamped: PyTorch's align_corners=False, MONAI's Spacingd
 * with mode bilinear up to its border handling).
 */
export function zoomTrilinear(data: Float32Array, dims: Dims, to: Dims): Float32Array {
  if (dims.every((d, a) => d === to[a])) return data;
  const [nx, ny, nz] = dims;
  const [mx, my, mz] = to;
  const axis = (n: number, m: number) => {
    const i0 = new Int32Array(m);
    const i1 = new Int32Array(m);
    const w = new Float32Array(m);
    for (let i = 0; i < m; i++) {
      const s = Math.min(n - 1, Math.max(0, (i + 0.5) * (n / m) - 0.5));
      i0[i] = Math.floor(s);
      i1[i] = Math.min(n - 1, i0[i]! + 1);
      w[i] = s - i0[i]!;
    }
    return { i0, i1, w };
  };
  const X = axis(nx, mx);
  const Y = axis(ny, my);
  const Z = axis(nz, mz);
  const out = new Float32Array(mx * my * mz);
  const sxy = nx * ny;
  let o = 0;
  for (let z = 0; z < mz; z++) {
    const z0 = Z.i0[z]! * sxy;
    const z1 = Z.i1[z]! * sxy;
    const wz = Z.w[z]!;
    for (let y = 0; y < my; y++) {
      const y0 = Y.i0[y]! * nx;
      const y1 = Y.i1[y]! * nx;
      const wy = Y.w[y]!;
      for (let x = 0; x < mx; x++) {
        const x0 = X.i0[x]!;
        const x1 = X.i1[x]!;
        const wx = X.w[x]!;
        const c00 = data[z0 + y0 + x0]! * (1 - wx) + data[z0 + y0 + x1]! * wx;
        const c01 = data[z0 + y1 + x0]! * (1 - wx) + data[z0 + y1 + x1]! * wx;
        const c10 = data[z1 + y0 + x0]! * (1 - wx) + data[z1 + y0 + x1]! * wx;
        const c11 = data[z1 + y1 + x0]! * (1 - wx) + data[z1 + y1 + x1]! * wx;
        out[o++] = (c00 * (1 - wy) + c01 * wy) * (1 - wz) + (c10 * (1 - wy) + c11 * wy) * wz;
      }
    }
  }
  return out;
}

/** Whether a manifest asks for any step of the model grid (else the DWI grid is used as it is, as before #25). */
export const usesModelGrid = (m: ModelManifest) => m.orientation !== 'native' || m.spacingMm !== null || m.cropToForeground !== null;

export interface ModelGrid {
  /** The grid the network sees. */
  dims: Dims;
  /** An input channel on the DWI grid (raw, in the model's units) → normalised, on the model's grid. */
  toModel(channel: number): Float32Array;
  /** The probability map on the model's grid → on the DWI grid. */
  fromModel(prob: Float32Array): Float32Array;
}

/** Plans the model's grid for a case (raw channels on the DWI grid, in the manifest's input order). */
export function planModelGrid(m: ModelManifest, dims: Dims, affine: Affine, voxelSizeMm: Dims, raw: Float32Array[]): ModelGrid {
  const plan = orientationPlan(affine, m.orientation);
  const oriented = raw.map((c) => reorient(c, dims, plan).data);
  const odims = plan.perm.map((a) => dims[a]!) as Dims;
  const ospacing = plan.perm.map((a) => voxelSizeMm[a]!) as Dims;
  let box: Box = { lo: [0, 0, 0], size: odims };
  if (m.cropToForeground) {
    const margin = ospacing.map((s) => Math.ceil(m.cropToForeground!.marginMm / s)) as Dims;
    box = foregroundBox(oriented, odims, margin) ?? box;
  }
  const cropped = box.size;
  const modelDims = m.spacingMm ? (cropped.map((n, a) => Math.max(1, Math.round((n * ospacing[a]!) / m.spacingMm![a]!))) as Dims) : cropped;
  const whole = box.size.every((n, a) => n === odims[a]);
  return {
    dims: modelDims,
    toModel(c) {
      const o = oriented[c]!;
      const inBox = whole ? o : crop(o, odims, box);
      return zoomTrilinear(applyPreprocessing(inBox, m.preprocessing[c]!), cropped, modelDims);
    },
    fromModel(prob) {
      const onCrop = zoomTrilinear(prob, modelDims, cropped);
      const full = whole ? onCrop : uncrop(onCrop, odims, box);
      return unorient(full, dims, plan);
    },
  };
}
