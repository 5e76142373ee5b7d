import { constants as zlibConstants, gunzipSync } from 'node:zlib';
import {
  type Affine,
  BYTES_PER_VOXEL,
  DATATYPES,
  type DatatypeCode,
  type DatatypeName,
  UNSUPPORTED_DATATYPES,
} from '../../shared/nifti.js';
import { MiB } from '../../shared/units.js';

/**
 * A NIfTI-1/NIfTI-2 reader. Hand-written rather than nifti-reader-js: it inflates with Node's
 * native zlib under a byte cap (no decompression bombs) and returns the voxels as a zero-copy
 * typed-array view when the file is little-endian, so decoding costs little more than the gunzip
 * itself; `npm run bench` measures it against both. One file (~400 lines) on purpose: every
 * header check a hostile file must pass (sizes, offsets, datatypes, affines, the inflate cap)
 * sits beside the parse it guards, and the fuzzer (fuzz.ts) drives them together.
 */

export class NiftiError extends Error {
  override name = 'NiftiError';
}

export type VoxelArray = Uint8Array | Int8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | Float32Array | Float64Array;

export interface NiftiHeader {
  version: 1 | 2;
  littleEndian: boolean;
  /** Used dimensions (dim[1..dim[0]]). */
  dim: number[];
  datatypeCode: number;
  pixdim: number[];
  voxOffset: number;
  sclSlope: number;
  sclInter: number;
  qformCode: number;
  sformCode: number;
  quatern: [number, number, number];
  qoffset: [number, number, number];
  srow: [number[], number[], number[]];
  intentCode: number;
  xyztUnits: number;
  /** The first byte of the `extension` field after the header: non-zero when extensions follow. */
  hasExtensions: boolean;
}

export interface NiftiVolume {
  header: NiftiHeader;
  dims: [number, number, number];
  voxelSizeMm: [number, number, number];
  datatype: DatatypeName;
  affine: Affine;
  frames: number;
  /** Which frame `data` holds (0-based). */
  frame: number;
  /** The raw stored values of that frame (before scl_slope/scl_inter). */
  data: VoxelArray;
  /** scl_slope/scl_inter as they apply (slope 1, inter 0 when the header says "none"). */
  scale: { slope: number; inter: number };
}

export interface ReadOptions {
  /** Largest number of voxels accepted (all frames). */
  maxVoxels?: number;
  /** Largest size of one dimension. */
  maxDim?: number;
  /** Frame of a 4D file to read; default the last (as DeepISLES does for DWI). */
  frame?: number | 'last';
}

const GZIP_MAGIC = [0x1f, 0x8b];
/** 512×512×256: the largest clinical brain MRI with room to spare (ISLES'22 DWI is 112×112×73). */
export const DEFAULT_MAX_VOXELS = 2 ** 26; // 64 Mi voxels: 512×512×256
const DEFAULT_MAX_DIM = 2048;
/** Header + extensions (DICOM fields, AFNI XML…): more than enough for any writer we know. */
export const MAX_HEADER_BYTES = MiB;
/** Padding tolerated between the end of the header (no extensions) and the voxel data. */
const MAX_PADDING = 4096;

export function isGzip(bytes: Uint8Array): boolean {
  return bytes.length >= 2 && bytes[0] === GZIP_MAGIC[0] && bytes[1] === GZIP_MAGIC[1];
}

/** The first bytes of a gzip stream, inflated without reading the rest (enough for a header). */
function inflateHead(bytes: Uint8Array, want: number): Buffer {
  try {
    // A truncated input with a sync flush yields what inflated so far instead of an error.
    return gunzipSync(bytes.subarray(0, Math.min(bytes.length, 16 * 1024)), {
      finishFlush: zlibConstants.Z_SYNC_FLUSH,
    }).subarray(0, want);
  } catch {
    throw new NiftiError('The file starts like gzip but is corrupt (cannot be decompressed)');
  }
}

function readHeaderBytes(bytes: Uint8Array): NiftiHeader {
  if (bytes.length < 348) {
    throw new NiftiError(`Not a NIfTI file: ${bytes.length} bytes is shorter than a NIfTI header (348 bytes)`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const le = view.getInt32(0, true);
  const be = view.getInt32(0, false);
  let version: 1 | 2;
  let littleEndian: boolean;
  if (le === 348 || be === 348) {
    version = 1;
    littleEndian = le === 348;
  } else if (le === 540 || be === 540) {
    version = 2;
    littleEndian = le === 540;
  } else {
    throw new NiftiError('Not a NIfTI file: the header size field is neither 348 (NIfTI-1) nor 540 (NIfTI-2)');
  }
  const text = (offset: number, length: number) => String.fromCharCode(...bytes.subarray(offset, offset + length)).replace(/\0+$/, '');

  if (version === 1) {
    const magic = text(344, 4);
    checkMagic(magic, 1);
    const i16 = (o: number) => view.getInt16(o, littleEndian);
    const f32 = (o: number) => view.getFloat32(o, littleEndian);
    const dim0 = i16(40);
    return {
      version,
      littleEndian,
      dim: checkDim0(dim0, (i) => i16(40 + 2 * i)),
      datatypeCode: i16(70),
      pixdim: Array.from({ length: 8 }, (_, i) => f32(76 + 4 * i)),
      voxOffset: f32(108),
      sclSlope: f32(112),
      sclInter: f32(116),
      xyztUnits: bytes[123]!,
      qformCode: i16(252),
      sformCode: i16(254),
      quatern: [f32(256), f32(260), f32(264)],
      qoffset: [f32(268), f32(272), f32(276)],
      srow: [0, 1, 2].map((r) => [0, 1, 2, 3].map((c) => f32(280 + 16 * r + 4 * c))) as NiftiHeader['srow'],
      intentCode: i16(68),
      hasExtensions: bytes.length > 348 && bytes[348] !== 0,
    };
  }
  if (bytes.length < 540) throw new NiftiError('Truncated NIfTI-2 header (shorter than 540 bytes)');
  const magic = text(4, 3);
  checkMagic(magic, 2);
  const i64 = (o: number) => Number(view.getBigInt64(o, littleEndian));
  const f64 = (o: number) => view.getFloat64(o, littleEndian);
  const dim0 = i64(16);
  return {
    version,
    littleEndian,
    dim: checkDim0(dim0, (i) => i64(16 + 8 * i)),
    datatypeCode: view.getInt16(12, littleEndian),
    pixdim: Array.from({ length: 8 }, (_, i) => f64(104 + 8 * i)),
    voxOffset: i64(168),
    sclSlope: f64(176),
    sclInter: f64(184),
    qformCode: view.getInt32(344, littleEndian),
    sformCode: view.getInt32(348, littleEndian),
    quatern: [f64(352), f64(360), f64(368)],
    qoffset: [f64(376), f64(384), f64(392)],
    srow: [0, 1, 2].map((r) => [0, 1, 2, 3].map((c) => f64(400 + 32 * r + 8 * c))) as NiftiHeader['srow'],
    xyztUnits: view.getInt32(500, littleEndian),
    intentCode: view.getInt32(504, littleEndian),
    hasExtensions: bytes.length > 540 && bytes[540] !== 0,
  };
}

/** `n+1`/`n+2` is a single-file NIfTI; `ni1`/`ni2` a .hdr/.img pair, which we do not read. */
function checkMagic(magic: string, version: 1 | 2): void {
  if (magic === `ni${version}`) throw new NiftiError('Two-file NIfTI (.hdr/.img pairs) is not supported; convert to .nii');
  if (magic !== `n+${version}`) {
    throw new NiftiError(`Not a NIfTI-${version} file: bad magic ${JSON.stringify(magic)} (expected "n+${version}")`);
  }
}

function checkDim0(dim0: number, dimAt: (i: number) => number): number[] {
  if (dim0 < 1 || dim0 > 7) throw new NiftiError(`Bad header: dim[0] is ${dim0} (must be 1–7)`);
  return Array.from({ length: dim0 }, (_, i) => dimAt(i + 1));
}

/** nifti1_io's quatern_to_mat44: rotation from (b, c, d), scaled by pixdim, qfac from pixdim[0]. */
export function qformAffine(h: NiftiHeader): Affine {
  const [b, c, d] = h.quatern;
  let a = 1 - (b * b + c * c + d * d);
  let bb = b;
  let cc = c;
  let dd = d;
  if (a < 1e-7) {
    // special case: a 180° rotation; renormalise (b, c, d)
    const n = 1 / Math.sqrt(b * b + c * c + d * d);
    bb *= n;
    cc *= n;
    dd *= n;
    a = 0;
  } else {
    a = Math.sqrt(a);
  }
  const dx = h.pixdim[1]! > 0 ? h.pixdim[1]! : 1;
  const dy = h.pixdim[2]! > 0 ? h.pixdim[2]! : 1;
  const dzRaw = h.pixdim[3]! > 0 ? h.pixdim[3]! : 1;
  const dz = h.pixdim[0]! < 0 ? -dzRaw : dzRaw;
  const [x, y, z] = h.qoffset;
  return [
    [(a * a + bb * bb - cc * cc - dd * dd) * dx, 2 * (bb * cc - a * dd) * dy, 2 * (bb * dd + a * cc) * dz, x],
    [2 * (bb * cc + a * dd) * dx, (a * a + cc * cc - bb * bb - dd * dd) * dy, 2 * (cc * dd - a * bb) * dz, y],
    [2 * (bb * dd - a * cc) * dx, 2 * (cc * dd + a * bb) * dy, (a * a + dd * dd - cc * cc - bb * bb) * dz, z],
    [0, 0, 0, 1],
  ];
}

/** The voxel-to-world affine with nibabel's precedence: sform, else qform, else from pixdim. */
export function affineOf(h: NiftiHeader, dims: [number, number, number]): Affine {
  if (h.sformCode > 0) {
    const [r0, r1, r2] = h.srow;
    return [[...r0], [...r1], [...r2], [0, 0, 0, 1]] as Affine;
  }
  if (h.qformCode > 0) return qformAffine(h);
  // nibabel's base affine: x flipped, origin at the centre of the grid
  const [dx, dy, dz] = [1, 2, 3].map((i) => (h.pixdim[i]! > 0 ? h.pixdim[i]! : 1)) as [number, number, number];
  return [
    [-dx, 0, 0, ((dims[0] - 1) / 2) * dx],
    [0, dy, 0, -((dims[1] - 1) / 2) * dy],
    [0, 0, dz, -((dims[2] - 1) / 2) * dz],
    [0, 0, 0, 1],
  ];
}

/**
 * A voxel-to-world transform every later step can use: finite numbers, and invertible (a volume
 * whose voxels all map to one plane has no geometry to resample or measure in).
 */
export function checkAffine(affine: Affine): void {
  if (affine.some((row) => row.some((x) => !Number.isFinite(x)))) {
    throw new NiftiError('Bad header: the voxel-to-world transform (sform/qform) holds NaN or infinite values');
  }
  const [[a, b, c], [d, e, f], [g, h, i]] = affine as number[][] as [
    [number, number, number],
    [number, number, number],
    [number, number, number],
  ];
  const det = a * (e * i - f * h) - b * (d * i - f * g) + c * (d * h - e * g);
  const scale = Math.max(...affine.slice(0, 3).flatMap((r) => r.slice(0, 3).map(Math.abs)), 1e-30);
  if (!(Math.abs(det) > 1e-9 * scale ** 3)) {
    throw new NiftiError('Bad header: the voxel-to-world transform (sform/qform) is singular (its determinant is 0)');
  }
}

type ArrayOf = new (buffer: ArrayBufferLike, offset: number, length: number) => VoxelArray | BigInt64Array | BigUint64Array;
const ARRAYS: Record<DatatypeName, ArrayOf> = {
  uint8: Uint8Array,
  int8: Int8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  float32: Float32Array,
  float64: Float64Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
};

/** 64-bit integers (label masks from nibabel/SimpleITK) as float64: exact for every realistic label. */
function toVoxelArray(a: VoxelArray | BigInt64Array | BigUint64Array): VoxelArray {
  if (!(a instanceof BigInt64Array || a instanceof BigUint64Array)) return a;
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = Number(a[i]!);
  return out;
}

/** Checks a header's shape and datatype; returns what decoding needs. */
export function validateHeader(h: NiftiHeader, opts: ReadOptions = {}) {
  const maxVoxels = opts.maxVoxels ?? DEFAULT_MAX_VOXELS;
  const maxDim = opts.maxDim ?? DEFAULT_MAX_DIM;
  if (h.intentCode >= 3000 && h.intentCode < 3100) {
    throw new NiftiError('This is a CIFTI file (surface/grayordinate data), not a volume; upload a NIfTI volume');
  }
  const used = h.dim;
  if (used.length > 4 && used.slice(4).some((d) => d > 1)) {
    throw new NiftiError(`The file has ${used.length} dimensions (${used.join('×')}); at most 4 are supported`);
  }
  for (const [i, d] of used.entries()) {
    if (!Number.isInteger(d) || d <= 0) throw new NiftiError(`Bad header: dimension ${i + 1} is ${d} (must be ≥ 1)`);
    if (d > maxDim) throw new NiftiError(`Dimension ${i + 1} is ${d}, over the limit of ${maxDim}`);
  }
  const dims = [used[0] ?? 1, used[1] ?? 1, used[2] ?? 1] as [number, number, number];
  const frames = used[3] ?? 1;
  const voxels = dims[0] * dims[1] * dims[2] * frames;
  if (voxels > maxVoxels) {
    throw new NiftiError(`The volume has ${voxels.toLocaleString('en')} voxels, over the limit of ${maxVoxels.toLocaleString('en')}`);
  }
  const datatype = DATATYPES[h.datatypeCode as DatatypeCode];
  if (!datatype) {
    const name = UNSUPPORTED_DATATYPES[h.datatypeCode] ?? `code ${h.datatypeCode}`;
    throw new NiftiError(
      `Unsupported NIfTI datatype ${name}; supported: uint8, int8, int16, uint16, int32, uint32, int64, uint64, float32, float64`,
    );
  }
  // vox_offset only ever points past the header and its extensions: a larger one would pad a
  // tiny volume to any size (all of it inflated and read), so it is bounded before anything is.
  const headerEnd = h.version === 1 ? 352 : 544;
  if (!Number.isFinite(h.voxOffset) || h.voxOffset < 0) throw new NiftiError(`Bad header: vox_offset is ${h.voxOffset}`);
  const voxOffset = Math.max(h.voxOffset, headerEnd);
  const room = h.hasExtensions ? MAX_HEADER_BYTES : headerEnd + MAX_PADDING;
  if (voxOffset > room) {
    throw new NiftiError(
      h.hasExtensions
        ? `Bad header: vox_offset is ${h.voxOffset}, past the ${MAX_HEADER_BYTES} bytes allowed for the header and its extensions`
        : `Bad header: vox_offset is ${h.voxOffset}, but the file has no header extensions (the voxel data starts at byte ${headerEnd})`,
    );
  }
  const frameBytes = dims[0] * dims[1] * dims[2] * BYTES_PER_VOXEL[datatype];
  return { dims, frames, datatype, voxOffset: Math.floor(voxOffset), frameBytes, totalBytes: Math.floor(voxOffset) + frameBytes * frames };
}

/**
 * The header alone, checked, with the bytes decoding would inflate (`totalBytes`): what a caller
 * adds up against a budget before inflating anything.
 */
export function inspectNifti(fileBytes: Uint8Array, opts: ReadOptions = {}) {
  const header = readHeaderBytes(isGzip(fileBytes) ? inflateHead(fileBytes, 544) : fileBytes);
  return { header, ...validateHeader(header, opts) };
}

/** Reads a `.nii` or `.nii.gz` (detected from the bytes, not the name). */
export function readNifti(fileBytes: Uint8Array, opts: ReadOptions = {}): NiftiVolume {
  const gz = isGzip(fileBytes);
  const { header, ...v } = inspectNifti(fileBytes, opts);
  let bytes: Uint8Array;
  let trailing = 0;
  if (gz) {
    try {
      // Inflate at most what the header promises (plus slack for trailing bytes): a bomb stops here.
      // 1 MiB output chunks instead of zlib's 16 KiB: far fewer buffer copies (measured ~25% faster).
      const inflated = gunzipSync(fileBytes, { maxOutputLength: v.totalBytes + 65_536, chunkSize: 1 << 20, info: true }) as unknown as {
        buffer: Buffer;
        engine: { bytesWritten: number };
      };
      bytes = inflated.buffer;
      // What is stored is the file as sent: bytes after the gzip data (zero padding) would be
      // stored and served for nothing, so they are refused rather than kept.
      trailing = fileBytes.length - inflated.engine.bytesWritten;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ERR_BUFFER_TOO_LARGE') {
        throw new NiftiError('The gzip data inflates to more than the header describes (refused as a decompression bomb)');
      }
      throw new NiftiError('The gzip data is corrupt or truncated');
    }
  } else {
    bytes = fileBytes;
  }
  if (trailing > 0) throw new NiftiError(`The file has ${trailing} bytes after the end of its gzip data; send the gzip file alone`);
  if (bytes.length < v.totalBytes) {
    throw new NiftiError(
      `The voxel data is truncated: dims ${[...v.dims, v.frames].join('×')} of ${v.datatype} need ${v.totalBytes} bytes, the file has ${bytes.length}`,
    );
  }
  const frame = opts.frame === undefined || opts.frame === 'last' ? v.frames - 1 : opts.frame;
  if (!Number.isInteger(frame) || frame < 0 || frame >= v.frames) {
    throw new NiftiError(`Frame ${frame} does not exist (the file has ${v.frames})`);
  }
  const start = v.voxOffset + frame * v.frameBytes;
  const width = BYTES_PER_VOXEL[v.datatype];
  const count = v.frameBytes / width;
  let data: VoxelArray;
  if (header.littleEndian && (bytes.byteOffset + start) % width === 0) {
    data = toVoxelArray(new ARRAYS[v.datatype](bytes.buffer, bytes.byteOffset + start, count)); // zero-copy (but 64-bit ints)
  } else {
    const copy = new Uint8Array(bytes.subarray(start, start + v.frameBytes));
    if (!header.littleEndian && width > 1) {
      for (let i = 0; i < copy.length; i += width) copy.subarray(i, i + width).reverse();
    }
    data = toVoxelArray(new ARRAYS[v.datatype](copy.buffer, 0, count));
  }
  const slope = header.sclSlope;
  const useScale = Number.isFinite(slope) && slope !== 0;
  const pix = [1, 2, 3].map((i) => Math.abs(header.pixdim[i]!) || 1) as [number, number, number];
  if (pix.some((p) => !Number.isFinite(p))) {
    throw new NiftiError(`Bad header: the voxel size (pixdim) is ${pix.join(' × ')} mm; it must be finite`);
  }
  const affine = affineOf(header, v.dims);
  checkAffine(affine);
  return {
    header,
    dims: v.dims,
    // The header's voxel size (pixdim), as nibabel's get_zooms() reports it.
    voxelSizeMm: pix,
    datatype: v.datatype,
    affine,
    frames: v.frames,
    frame,
    data,
    scale: useScale ? { slope, inter: Number.isFinite(header.sclInter) ? header.sclInter : 0 } : { slope: 1, inter: 0 },
  };
}

/**
 * The frame's values as float32 with scl_slope/scl_inter applied (what the model sees). Float32
 * data without scaling is returned as is (no copy): treat the result as read-only.
 */
export function toFloat32(vol: Pick<NiftiVolume, 'data' | 'scale'>): Float32Array {
  const { slope, inter } = vol.scale;
  const src = vol.data;
  if (src instanceof Float32Array && slope === 1 && inter === 0) return src;
  const out = new Float32Array(vol.data.length);
  if (slope === 1 && inter === 0) {
    for (let i = 0; i < src.length; i++) out[i] = src[i]!;
  } else {
    for (let i = 0; i < src.length; i++) out[i] = src[i]! * slope + inter;
  }
  return out;
}
