import { gzipSync } from 'node:zlib';
import { type Affine, BYTES_PER_VOXEL, DATATYPE_CODES, type DatatypeName } from '../../shared/nifti.js';
import type { VoxelArray } from './read.js';

/** nifti1_io's mat44_to_quatern: the qform parameters (quaternion, offsets, voxel sizes, qfac) of an affine. */
export function affineToQuatern(affine: Affine) {
  let [r11, r12, r13] = [affine[0][0], affine[0][1], affine[0][2]];
  let [r21, r22, r23] = [affine[1][0], affine[1][1], affine[1][2]];
  let [r31, r32, r33] = [affine[2][0], affine[2][1], affine[2][2]];
  const norm = (a: number, b: number, c: number) => Math.hypot(a, b, c) || 1;
  const dx = norm(r11, r21, r31);
  const dy = norm(r12, r22, r32);
  const dz = norm(r13, r23, r33);
  [r11, r21, r31] = [r11 / dx, r21 / dx, r31 / dx];
  [r12, r22, r32] = [r12 / dy, r22 / dy, r32 / dy];
  [r13, r23, r33] = [r13 / dz, r23 / dz, r33 / dz];
  const det = r11 * r22 * r33 - r11 * r32 * r23 - r21 * r12 * r33 + r21 * r32 * r13 + r31 * r12 * r23 - r31 * r22 * r13;
  let qfac = 1;
  if (det < 0) {
    qfac = -1;
    r13 = -r13;
    r23 = -r23;
    r33 = -r33;
  }
  let a = r11 + r22 + r33 + 1;
  let b: number;
  let c: number;
  let d: number;
  if (a > 0.5) {
    a = 0.5 * Math.sqrt(a);
    b = (0.25 * (r32 - r23)) / a;
    c = (0.25 * (r13 - r31)) / a;
    d = (0.25 * (r21 - r12)) / a;
  } else {
    const xd = 1 + r11 - (r22 + r33);
    const yd = 1 + r22 - (r11 + r33);
    const zd = 1 + r33 - (r11 + r22);
    if (xd > 1) {
      b = 0.5 * Math.sqrt(xd);
      c = (0.25 * (r12 + r21)) / b;
      d = (0.25 * (r13 + r31)) / b;
      a = (0.25 * (r32 - r23)) / b;
    } else if (yd > 1) {
      c = 0.5 * Math.sqrt(yd);
      b = (0.25 * (r12 + r21)) / c;
      d = (0.25 * (r23 + r32)) / c;
      a = (0.25 * (r13 - r31)) / c;
    } else {
      d = 0.5 * Math.sqrt(zd);
      b = (0.25 * (r13 + r31)) / d;
      c = (0.25 * (r23 + r32)) / d;
      a = (0.25 * (r21 - r12)) / d;
    }
    if (a < 0) {
      b = -b;
      c = -c;
      d = -d;
    }
  }
  return { b, c, d, qfac, pixdim: [dx, dy, dz] as const, offset: [affine[0][3], affine[1][3], affine[2][3]] as const };
}

export interface WriteInput {
  dims: [number, number, number];
  affine: Affine;
  datatype: DatatypeName;
  data: VoxelArray;
  description?: string;
}

/** Encodes a little-endian NIfTI-1 `.nii` (uncompressed) with qform and sform both set from the affine. */
export function encodeNifti(input: WriteInput): Buffer {
  const { dims, affine, datatype, data } = input;
  const count = dims[0] * dims[1] * dims[2];
  if (data.length !== count) throw new Error(`data has ${data.length} values, dims need ${count}`);
  const width = BYTES_PER_VOXEL[datatype];
  const out = Buffer.alloc(352 + count * width);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const q = affineToQuatern(affine);
  v.setInt32(0, 348, true);
  out[39] = 0; // dim_info
  v.setInt16(40, 3, true);
  dims.forEach((d, i) => v.setInt16(42 + 2 * i, d, true));
  for (let i = 4; i < 8; i++) v.setInt16(40 + 2 * i, 1, true);
  v.setInt16(70, DATATYPE_CODES[datatype], true);
  v.setInt16(72, width * 8, true);
  v.setFloat32(76, q.qfac, true);
  q.pixdim.forEach((p, i) => v.setFloat32(80 + 4 * i, p, true));
  for (let i = 4; i < 8; i++) v.setFloat32(76 + 4 * i, 1, true);
  v.setFloat32(108, 352, true); // vox_offset
  v.setFloat32(112, 1, true); // scl_slope
  v.setFloat32(116, 0, true); // scl_inter
  out[123] = 2; // xyzt_units: millimetres
  out.write((input.description ?? 'strokeview').slice(0, 79), 148, 'latin1');
  v.setInt16(252, 1, true); // qform_code: scanner
  v.setInt16(254, 1, true); // sform_code: scanner
  v.setFloat32(256, q.b, true);
  v.setFloat32(260, q.c, true);
  v.setFloat32(264, q.d, true);
  q.offset.forEach((o, i) => v.setFloat32(268 + 4 * i, o, true));
  for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) v.setFloat32(280 + 16 * r + 4 * c, affine[r]![c]!, true);
  out.write('n+1\0', 344, 'latin1');
  // bytes 348–351: no extensions
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, 352);
  return out;
}

/** `.nii.gz` bytes. Level 6 (zlib's default) balances size and time for masks and images. */
export function writeNiftiGz(input: WriteInput, level = 6): Buffer {
  return gzipSync(encodeNifti(input), { level });
}
