import type { Affine } from '../../shared/nifti.js';

/**
 * Whether two grids are the same: equal dims, and affines equal within `tol` — absolute for the
 * rotation/zoom part, relative (to at least 1 mm) for the offsets, which float32 headers round.
 */
export function sameGrid(a: { dims: number[]; affine: Affine }, b: { dims: number[]; affine: Affine }, tol = 1e-2): boolean {
  if (a.dims.some((d, i) => d !== b.dims[i])) return false;
  for (let r = 0; r < 3; r++) {
    for (let c = 0; c < 4; c++) {
      const scale = c === 3 ? Math.max(1, Math.abs(a.affine[r]![c]!)) : 1;
      // written so NaN (never within any tolerance) makes the grids differ
      if (!(Math.abs(a.affine[r]![c]! - b.affine[r]![c]!) <= tol * scale)) return false;
    }
  }
  return true;
}

/** One voxel's volume in mL, from the header's voxel size in mm (anisotropic voxels included). */
export function voxelVolumeMl(voxelSizeMm: readonly [number, number, number] | readonly number[]): number {
  return (voxelSizeMm[0]! * voxelSizeMm[1]! * voxelSizeMm[2]!) / 1000;
}
