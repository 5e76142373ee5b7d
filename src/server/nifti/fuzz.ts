import { gzipSync } from 'node:zlib';
import { buildNifti } from './fixtures.js';

/**
 * A seeded generator of hostile NIfTI files for the fuzz test and `npm run bench`: each case is
 * one kind of lie a file can tell — random bytes, flipped header bytes, truncation, huge or
 * negative dims, a lying vox_offset, NaN/Inf in the geometry and scaling fields, corrupt gzip,
 * gzip bombs, odd datatypes — built on valid NIfTI-1/NIfTI-2 files of both byte orders. The same
 * seed gives the same cases, so a failure can be replayed.
 */

export interface FuzzCase {
  index: number;
  kind: string;
  bytes: Buffer;
}

export function seededRandom(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    // xorshift32
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}

const ADC_VALUES = Array.from({ length: 12 * 12 * 6 }, (_, i) => 700 + 3 * (i % 100));

/** Offsets of the NIfTI-1 fields a lie is told in (little- or big-endian float32 / int16). */
const N1 = {
  dim: 40,
  datatype: 70,
  bitpix: 72,
  pixdim: 76,
  voxOffset: 108,
  sclSlope: 112,
  sclInter: 116,
  qformCode: 252,
  sformCode: 254,
  quatern: 256,
  qoffset: 268,
  srow: 280,
  extension: 348,
};

export function* fuzzNiftiCases(seed: number, count: number): Generator<FuzzCase> {
  const rand = seededRandom(seed);
  const int = (n: number) => Math.floor(rand() * n);
  const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)]!;
  const weird = [Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY, 0, -1, 1e38, -1e38, 1e-38, 2 ** 31, -(2 ** 31)];
  const base = () => {
    const le = rand() < 0.8;
    const version = rand() < 0.8 ? 1 : 2;
    return {
      le,
      version: version as 1 | 2,
      bytes: buildNifti({
        version: version as 1 | 2,
        littleEndian: le,
        dim: [12, 12, 6],
        pixdim: [2, 2, 3],
        datatype: pick(['float32', 'int16', 'uint8', 'float64'] as const),
        values: ADC_VALUES,
      }),
    };
  };
  const kinds = [
    'random-bytes',
    'flipped-header-bytes',
    'truncated',
    'huge-dims',
    'bad-dims',
    'lying-vox-offset',
    'nan-inf-fields',
    'odd-datatype',
    'corrupt-gzip',
    'bomb-gzip',
    'bomb-by-header',
    'extensions-garbage',
  ] as const;
  for (let index = 0; index < count; index++) {
    const kind = kinds[index % kinds.length]!;
    const { le, version, bytes } = base();
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const f32 = (o: number, x: number) => v.setFloat32(o, x, le);
    const i16 = (o: number, x: number) => v.setInt16(o, x, le);
    let out: Buffer = bytes;
    switch (kind) {
      case 'random-bytes': {
        out = Buffer.alloc(int(4096));
        for (let i = 0; i < out.length; i++) out[i] = int(256);
        if (rand() < 0.3) out = gzipSync(out);
        break;
      }
      case 'flipped-header-bytes': {
        const n = 1 + int(12);
        const end = version === 1 ? 352 : 544;
        for (let i = 0; i < n; i++) bytes[int(end)] = int(256);
        break;
      }
      case 'truncated':
        out = bytes.subarray(0, int(bytes.length));
        break;
      case 'huge-dims':
        if (version === 1) for (let i = 1; i <= 3; i++) i16(N1.dim + 2 * i, pick([2048, 4096, 32767, 1024, 30000]));
        else for (let i = 1; i <= 3; i++) v.setBigInt64(16 + 8 * i, BigInt(pick([2 ** 20, 2 ** 31, 2 ** 40, 65536])), le);
        break;
      case 'bad-dims':
        if (version === 1) {
          i16(N1.dim, pick([0, -1, 8, 100, 4, 5]));
          i16(N1.dim + 2 * (1 + int(7)), pick([0, -5, -32768, 1]));
        } else v.setBigInt64(16 + 8 * (1 + int(3)), BigInt(pick([0, -1, -(2 ** 40)])), le);
        break;
      case 'lying-vox-offset':
        if (version === 1) f32(N1.voxOffset, pick([...weird, 2 ** 27, 1e9, 353, 351, 5000, 4 * 1024 * 1024]));
        else v.setBigInt64(168, BigInt(pick([2 ** 27, 2 ** 40, -1, 0, 545])), le);
        break;
      case 'nan-inf-fields': {
        if (version === 1) {
          const field = pick(['pixdim', 'srow', 'quatern', 'qoffset', 'scl'] as const);
          if (field === 'pixdim') f32(N1.pixdim + 4 * (1 + int(3)), pick(weird));
          if (field === 'srow') f32(N1.srow + 4 * int(12), pick(weird));
          if (field === 'quatern') f32(N1.quatern + 4 * int(3), pick(weird));
          if (field === 'qoffset') f32(N1.qoffset + 4 * int(3), pick(weird));
          if (field === 'scl') f32(pick([N1.sclSlope, N1.sclInter]), pick(weird));
          if (rand() < 0.5) i16(N1.sformCode, 0); // make the qform count
        } else {
          v.setFloat64(pick([112, 120, 128, 400, 408, 432, 176, 184]), pick(weird), le);
        }
        break;
      }
      case 'odd-datatype':
        if (version === 1) i16(N1.datatype, pick([0, 1, 32, 128, 255, 1792, 2304, -1, 32767]));
        else v.setInt16(12, pick([0, 1, 32, 128, 1792, 2304, -1]), le);
        break;
      case 'corrupt-gzip': {
        const gz = gzipSync(bytes);
        const n = 1 + int(8);
        for (let i = 0; i < n; i++) gz[10 + int(gz.length - 10)] = int(256);
        out = rand() < 0.5 ? gz : gz.subarray(0, int(gz.length));
        break;
      }
      case 'bomb-gzip':
        // an honest small header followed by megabytes of zeros past its data
        out = gzipSync(Buffer.concat([bytes, Buffer.alloc((1 + int(16)) << 20)]));
        break;
      case 'bomb-by-header': {
        // a header promising a large volume over a tiny payload (a ~100 KB file, hundreds of MiB declared)
        if (version === 1) {
          i16(N1.dim + 2, 512);
          i16(N1.dim + 4, 512);
          i16(N1.dim + 6, pick([128, 256, 300]));
        } else {
          v.setBigInt64(24, 1024n, le);
          v.setBigInt64(32, 1024n, le);
          v.setBigInt64(40, 128n, le);
        }
        out = gzipSync(Buffer.concat([bytes.subarray(0, version === 1 ? 352 : 544), Buffer.alloc(int(4) << 20)]));
        break;
      }
      case 'extensions-garbage':
        bytes[version === 1 ? N1.extension : 540] = 1;
        if (version === 1) f32(N1.voxOffset, pick([352, 368, 1 << 19, 2 << 20]));
        break;
    }
    yield { index, kind, bytes: out };
  }
}
