import type { Affine } from '../../shared/nifti.js';
import { unprocessable } from '../errors.js';

function invert(a: Affine): number[][] {
  // 4×4 affine inverse via its 3×3 linear part
  const [[a11, a12, a13, t1], [a21, a22, a23, t2], [a31, a32, a33, t3]] = a as number[][] as [number[], number[], number[]];
  const det = a11! * (a22! * a33! - a23! * a32!) - a12! * (a21! * a33! - a23! * a31!) + a13! * (a21! * a32! - a22! * a31!);
  if (Math.abs(det) < 1e-12) throw unprocessable('the affine is singular');
  const m = [
    [(a22! * a33! - a23! * a32!) / det, (a13! * a32! - a12! * a33!) / det, (a12! * a23! - a13! * a22!) / det],
    [(a23! * a31! - a21! * a33!) / det, (a11! * a33! - a13! * a31!) / det, (a13! * a21! - a11! * a23!) / det],
    [(a21! * a32! - a22! * a31!) / det, (a12! * a31! - a11! * a32!) / det, (a11! * a22! - a12! * a21!) / det],
  ];
  const t = [t1!, t2!, t3!];
  return m.map((row) => [...row, -(row[0]! * t[0]! + row[1]! * t[1]! + row[2]! * t[2]!)]);
}

/**
 * Resamples `src` (on its grid) onto a target grid through the two affines, with trilinear
 * interpolation; points outside the source are 0. Throws when the two do not overlap at all.
 */
export function resampleTrilinear(
  src: Float32Array,
  srcDims: readonly [number, number, number],
  srcAffine: Affine,
  dstDims: readonly [number, number, number],
  dstAffine: Affine,
  what = 'the volume',
): Float32Array {
  const inv = invert(srcAffine);
  // voxel(dst) → world → voxel(src): one 3×4 matrix
  const m = inv.map((row) =>
    [0, 1, 2, 3].map((c) => row[0]! * dstAffine[0][c]! + row[1]! * dstAffine[1][c]! + row[2]! * dstAffine[2][c]! + (c === 3 ? row[3]! : 0)),
  );
  const [sx, sy, sz] = srcDims;
  const sxy = sx * sy;
  const out = new Float32Array(dstDims[0] * dstDims[1] * dstDims[2]);
  let inside = 0;
  let o = 0;
  for (let k = 0; k < dstDims[2]; k++) {
    for (let j = 0; j < dstDims[1]; j++) {
      let x = m[0]![1]! * j + m[0]![2]! * k + m[0]![3]!;
      let y = m[1]![1]! * j + m[1]![2]! * k + m[1]![3]!;
      let z = m[2]![1]! * j + m[2]![2]! * k + m[2]![3]!;
      for (let i = 0; i < dstDims[0]; i++, o++, x += m[0]![0]!, y += m[1]![0]!, z += m[2]![0]!) {
        if (x < -0.5 || y < -0.5 || z < -0.5 || x > sx - 0.5 || y > sy - 0.5 || z > sz - 0.5) continue;
        inside++;
        const cx = Math.min(Math.max(x, 0), sx - 1);
        const cy = Math.min(Math.max(y, 0), sy - 1);
        const cz = Math.min(Math.max(z, 0), sz - 1);
        const x0 = Math.min(Math.floor(cx), sx - 2 < 0 ? 0 : sx - 2);
        const y0 = Math.min(Math.floor(cy), sy - 2 < 0 ? 0 : sy - 2);
        const z0 = Math.min(Math.floor(cz), sz - 2 < 0 ? 0 : sz - 2);
        const fx = sx > 1 ? cx - x0 : 0;
        const fy = sy > 1 ? cy - y0 : 0;
        const fz = sz > 1 ? cz - z0 : 0;
        const dx = sx > 1 ? 1 : 0;
        const dy = sy > 1 ? sx : 0;
        const dz = sz > 1 ? sxy : 0;
        const b = z0 * sxy + y0 * sx + x0;
        const c00 = src[b]! * (1 - fx) + src[b + dx]! * fx;
        const c10 = src[b + dy]! * (1 - fx) + src[b + dy + dx]! * fx;
        const c01 = src[b + dz]! * (1 - fx) + src[b + dz + dx]! * fx;
        const c11 = src[b + dz + dy]! * (1 - fx) + src[b + dz + dy + dx]! * fx;
        out[o] = (c00 * (1 - fy) + c10 * fy) * (1 - fz) + (c01 * (1 - fy) + c11 * fy) * fz;
      }
    }
  }
  if (inside === 0) {
    throw unprocessable(`${what} does not overlap the DWI: their affines place them in different parts of space`);
  }
  return out;
}
