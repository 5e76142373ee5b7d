import { gzipSync } from 'node:zlib';
import { type Affine, BYTES_PER_VOXEL, DATATYPE_CODES, type DatatypeName } from '../../shared/nifti.js';
import { affineToQuatern } from './write.js';

export interface FixtureSpec {
  version?: 1 | 2;
  littleEndian?: boolean;
  /** All used dims, e.g. [4, 5, 6] or [4, 5, 6, 3]. */
  dim: number[];
  datatype?: DatatypeName;
  datatypeCode?: number;
  /** Values in file order (x fastest), all frames. */
  values?: ArrayLike<number>;
  pixdim?: [number, number, number];
  affine?: Affine;
  sform?: boolean;
  qform?: boolean;
  slope?: number;
  inter?: number;
  intentCode?: number;
  gzip?: boolean;
  /** Drop this many bytes from the end (a truncated file). */
  truncate?: number;
}

/**
 * Writes NIfTI-1 or NIfTI-2 files of either byte order for tests: the shapes real scanners and
 * tools produce (big-endian, 4D, scaled, qform-only, …) without shipping binary fixtures.
 */
export function buildNifti(spec: FixtureSpec): Buffer {
  const version = spec.version ?? 1;
  const le = spec.littleEndian ?? true;
  const datatype = spec.datatype ?? 'float32';
  const code = spec.datatypeCode ?? DATATYPE_CODES[datatype];
  const width = BYTES_PER_VOXEL[datatype] ?? 4;
  const count = spec.dim.reduce((a, b) => a * b, 1);
  const headerSize = version === 1 ? 352 : 544;
  const out = Buffer.alloc(headerSize + Math.max(0, count) * width);
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const pix = spec.pixdim ?? [1, 1, 1];
  const affine: Affine = spec.affine ?? [
    [pix[0], 0, 0, -10],
    [0, pix[1], 0, -20],
    [0, 0, pix[2], -30],
    [0, 0, 0, 1],
  ];
  const q = affineToQuatern(affine);
  const sform = spec.sform ?? true;
  const qform = spec.qform ?? true;
  if (version === 1) {
    v.setInt32(0, 348, le);
    v.setInt16(40, spec.dim.length, le);
    for (let i = 0; i < 7; i++) v.setInt16(42 + 2 * i, spec.dim[i] ?? 1, le);
    v.setInt16(68, spec.intentCode ?? 0, le);
    v.setInt16(70, code, le);
    v.setInt16(72, width * 8, le);
    v.setFloat32(76, q.qfac, le);
    pix.forEach((p, i) => v.setFloat32(80 + 4 * i, p, le));
    v.setFloat32(92, 1, le);
    v.setFloat32(108, 352, le);
    v.setFloat32(112, spec.slope ?? 0, le);
    v.setFloat32(116, spec.inter ?? 0, le);
    v.setInt16(252, qform ? 1 : 0, le);
    v.setInt16(254, sform ? 1 : 0, le);
    v.setFloat32(256, q.b, le);
    v.setFloat32(260, q.c, le);
    v.setFloat32(264, q.d, le);
    q.offset.forEach((o, i) => v.setFloat32(268 + 4 * i, o, le));
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) v.setFloat32(280 + 16 * r + 4 * c, affine[r]![c]!, le);
    out.write('n+1\0', 344, 'latin1');
  } else {
    v.setInt32(0, 540, le);
    out.write('n+2\0\r\n\x1a\n', 4, 'latin1');
    v.setInt16(12, code, le);
    v.setInt16(14, width * 8, le);
    v.setBigInt64(16, BigInt(spec.dim.length), le);
    for (let i = 0; i < 7; i++) v.setBigInt64(24 + 8 * i, BigInt(spec.dim[i] ?? 1), le);
    v.setFloat64(104, q.qfac, le);
    pix.forEach((p, i) => v.setFloat64(112 + 8 * i, p, le));
    v.setBigInt64(168, 544n, le);
    v.setFloat64(176, spec.slope ?? 0, le);
    v.setFloat64(184, spec.inter ?? 0, le);
    v.setInt32(344, qform ? 1 : 0, le);
    v.setInt32(348, sform ? 1 : 0, le);
    v.setFloat64(352, q.b, le);
    v.setFloat64(360, q.c, le);
    v.setFloat64(368, q.d, le);
    q.offset.forEach((o, i) => v.setFloat64(376 + 8 * i, o, le));
    for (let r = 0; r < 3; r++) for (let c = 0; c < 4; c++) v.setFloat64(400 + 32 * r + 8 * c, affine[r]![c]!, le);
    v.setInt32(500, 2, le);
    v.setInt32(504, spec.intentCode ?? 0, le);
  }
  const values = spec.values ?? Array.from({ length: count }, (_, i) => i % 100);
  for (let i = 0; i < count; i++) {
    const o = headerSize + i * width;
    const x = values[i] ?? 0;
    switch (datatype) {
      case 'uint8':
        v.setUint8(o, x);
        break;
      case 'int8':
        v.setInt8(o, x);
        break;
      case 'int16':
        v.setInt16(o, x, le);
        break;
      case 'uint16':
        v.setUint16(o, x, le);
        break;
      case 'int32':
        v.setInt32(o, x, le);
        break;
      case 'uint32':
        v.setUint32(o, x, le);
        break;
      case 'float32':
        v.setFloat32(o, x, le);
        break;
      case 'float64':
        v.setFloat64(o, x, le);
        break;
      case 'int64':
        v.setBigInt64(o, BigInt(x), le);
        break;
      case 'uint64':
        v.setBigUint64(o, BigInt(x), le);
        break;
    }
  }
  const bytes = spec.truncate ? out.subarray(0, out.length - spec.truncate) : out;
  return spec.gzip ? gzipSync(bytes) : bytes;
}

/** The grid most API tests upload on: 16×16×8 at 2×2×3 mm. */
export const TEST_AFFINE: Affine = [
  [2, 0, 0, -15],
  [0, 2, 0, -15],
  [0, 0, 3, -10],
  [0, 0, 0, 1],
];

/**
 * A small gzipped volume on TEST_AFFINE whose values (700–997) are a plausible ADC in 10⁻⁶ mm²/s
 * (uploads check the unit from the values), so it serves as DWI or ADC in an upload.
 */
export function testVolume(extra: Partial<FixtureSpec> = {}): Buffer {
  return buildNifti({
    dim: [16, 16, 8],
    pixdim: [2, 2, 3],
    affine: TEST_AFFINE,
    gzip: true,
    values: Array.from({ length: 2048 }, (_, i) => 700 + 3 * (i % 100)),
    ...extra,
  });
}
