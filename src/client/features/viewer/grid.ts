// NiiVue keeps every volume (and the drawing) in RAS voxel order — its own permutation and flips of
// the file's axes — while the server, the lesion lists and refine speak the file's native voxel
// order (i fastest). These convert between the two for one volume.

export type Vec3 = [number, number, number];

/** The facts of one NiiVue volume these conversions need: the file's dims and NiiVue's `permRAS` (1-based axes, negative = flipped). */
export interface RasOrder {
  dims: Vec3;
  permRAS: readonly number[];
}

/** A native voxel (i, j, k) as NiiVue's RAS voxel. */
export function nativeToRas(o: RasOrder, v: readonly number[]): Vec3 {
  const out: Vec3 = [0, 0, 0];
  for (let p = 0; p < 3; p++) {
    const a = Math.abs(o.permRAS[p]!) - 1;
    out[p] = o.permRAS[p]! < 0 ? o.dims[a]! - 1 - v[a]! : v[a]!;
  }
  return out;
}

/** A RAS voxel of NiiVue's as the file's native voxel (i, j, k). */
export function rasToNative(o: RasOrder, r: readonly number[]): Vec3 {
  const out: Vec3 = [0, 0, 0];
  for (let p = 0; p < 3; p++) {
    const a = Math.abs(o.permRAS[p]!) - 1;
    out[a] = o.permRAS[p]! < 0 ? o.dims[a]! - 1 - r[p]! : r[p]!;
  }
  return out;
}

/** For every voxel in RAS order (x fastest), its index in native order: one pass converts a whole bitmap either way. */
export function rasToNativeLut(o: RasOrder): Uint32Array {
  const [n0, n1] = o.dims;
  const nativeStep = [1, n0, n0 * n1];
  const rasDims = [0, 1, 2].map((p) => o.dims[Math.abs(o.permRAS[p]!) - 1]) as Vec3;
  const step = [0, 0, 0];
  let start = 0;
  for (let p = 0; p < 3; p++) {
    const a = Math.abs(o.permRAS[p]!) - 1;
    step[p] = o.permRAS[p]! < 0 ? -nativeStep[a]! : nativeStep[a]!;
    if (o.permRAS[p]! < 0) start += nativeStep[a]! * (o.dims[a]! - 1);
  }
  const lut = new Uint32Array(rasDims[0] * rasDims[1] * rasDims[2]);
  let r = 0;
  for (let z = 0; z < rasDims[2]; z++)
    for (let y = 0; y < rasDims[1]; y++) {
      let idx = start + y * step[1]! + z * step[2]!;
      for (let x = 0; x < rasDims[0]; x++, idx += step[0]!) lut[r++] = idx;
    }
  return lut;
}

export const voxelIndex = (dims: readonly number[], v: readonly number[]) => v[0]! + dims[0]! * (v[1]! + dims[1]! * v[2]!);
