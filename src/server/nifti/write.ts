import { gzipSync } from 'node:zlib';
import { type Affine, BYTES_PER_VOXEL, DATATYPE_CODES, type DatatypeName } from '../../shared/nifti.js';
import type { VoxelArray } from './read.js';

type Mat33 = [[number, number, number], [number, number, number], [number, number, number]];

const det33 = (m: Mat33) =>
  m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1]) -
  m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0]) +
  m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0]);

function inverse33(m: Mat33): Mat33 {
  const d = det33(m);
  const [[a, b, c], [e, f, g], [h, i, j]] = m;
  return [
    [(f * j - g * i) / d, (c * i - b * j) / d, (b * g - c * f) / d],
    [(g * h - e * j) / d, (a * j - c * h) / d, (c * e - a * g) / d],
    [(e * i - f * h) / d, (b * h - a * i) / d, (a * f - b * e) / d],
  ];
}

const rowNorm = (m: Mat33) => Math.max(...m.map((r) => Math.abs(r[0]) + Math.abs(r[1]) + Math.abs(r[2])));
const colNorm = (m: Mat33) => Math.max(...[0, 1, 2].map((c) => Math.abs(m[0][c]!) + Math.abs(m[1][c]!) + Math.abs(m[2][c]!)));

/**
 * nifti1_io's nifti_mat33_polar: the orthogonal matrix closest to `a` (the polar factor), by the
 * scaled Newton iteration X ← ½(γX + γ⁻¹X⁻ᵀ). A qform can only hold a rotation; a real affine is
 * often slightly sheared (float32 rounding, gantry tilt), and taking the polar factor — as
 * nifti1_io and nibabel do — gives the rotation nearest the sform instead of a skewed one.
 */
export function polar33(a: Mat33): Mat33 {
  let x = a.map((r) => [...r]) as Mat33;
  let gam = det33(x);
  while (gam === 0) {
    gam = 0.00001 * (0.001 + rowNorm(x));
    x[0][0] += gam;
    x[1][1] += gam;
    x[2][2] += gam;
    gam = det33(x);
  }
  let dif = 1;
  for (let k = 0; ; k++) {
    const y = inverse33(x);
    let g = 1;
    let gi = 1;
    if (dif > 0.3) {
      const alp = Math.sqrt(rowNorm(x) * colNorm(x));
      const bet = Math.sqrt(rowNorm(y) * colNorm(y));
      g = Math.sqrt(bet / alp);
      gi = 1 / g;
    }
    const z = [0, 1, 2].map((r) => [0, 1, 2].map((c) => 0.5 * (g * x[r]![c]! + gi * y[c]![r]!))) as Mat33;
    dif = 0;
    for (let r = 0; r < 3; r++) for (let c = 0; c < 3; c++) dif += Math.abs(z[r]![c]! - x[r]![c]!);
    if (k >= 100 || dif < 1e-12) return z;
    x = z;
  }
}

/**
 * nifti1_io's nifti_mat44_to_quatern: the qform parameters (quaternion, offsets, voxel sizes,
 * qfac) of an affine — column norms as voxel sizes, then the polar factor of the normalised
 * columns as the rotation.
 */
export function affineToQuatern(affine: Affine) {
  let [r11, r12, r13] = [affine[0][0], affine[0][1], affine[0][2]];
  let [r21, r22, r23] = [affine[1][0], affine[1][1], affine[1][2]];
  let [r31, r32, r33] = [affine[2][0], affine[2][1], affine[2][2]];
  const norm = (a: number, b: number, c: number) => Math.hypot(a, b, c) || 1;
  const dx = norm(r11, r21, r31);
  const dy = norm(r12, r22, r32);
  const dz = norm(r13, r23, r33);
  const p = polar33([
    [r11 / dx, r12 / dy, r13 / dz],
    [r21 / dx, r22 / dy, r23 / dz],
    [r31 / dx, r32 / dy, r33 / dz],
  ]);
  [[r11, r12, r13], [r21, r22, r23], [r31, r32, r33]] = p;
  const det = det33(p);
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
  if (datatype === 'int64' || datatype === 'uint64') throw new Error('the writer emits int32 or float64, not 64-bit integers');
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
