import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { gunzipSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import type { Affine, DatatypeName } from '../../shared/nifti.js';
import { buildNifti } from './fixtures.js';
import { NiftiError, qformAffine, readNifti, toFloat32 } from './read.js';
import { writeNiftiGz } from './write.js';

const oblique: Affine = (() => {
  const t = Math.PI / 7;
  return [
    [1.5 * Math.cos(t), -0.9 * Math.sin(t), 0, 12.5],
    [1.5 * Math.sin(t), 0.9 * Math.cos(t), 0, -40],
    [0, 0, 3, 7.25],
    [0, 0, 0, 1],
  ];
})();

function expectAffine(actual: Affine, expected: Affine, digits = 4) {
  for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expect(actual[r]![c]).toBeCloseTo(expected[r]![c]!, digits);
}

describe('readNifti', () => {
  const datatypes: DatatypeName[] = ['uint8', 'int8', 'int16', 'uint16', 'int32', 'uint32', 'int64', 'uint64', 'float32', 'float64'];
  it.each(
    datatypes.flatMap(
      (d) =>
        [
          [d, 1, true],
          [d, 2, false],
        ] as const,
    ),
  )('%s, NIfTI-%d, little-endian=%s: values, dims and affine come back', (datatype, version, littleEndian) => {
    const values = Array.from({ length: 60 }, (_, i) => (datatype === 'int8' ? i - 30 : i * 2));
    const file = buildNifti({ version, littleEndian, dim: [3, 4, 5], datatype, values, pixdim: [1.5, 0.9, 3], affine: oblique });
    for (const bytes of [file, gzipSync(file)]) {
      const vol = readNifti(bytes);
      expect(vol.datatype).toBe(datatype);
      expect(vol.dims).toEqual([3, 4, 5]);
      expect(vol.frames).toBe(1);
      expect(Array.from(vol.data)).toEqual(values);
      expect(vol.voxelSizeMm[0]).toBeCloseTo(1.5, 5);
      expect(vol.voxelSizeMm[2]).toBeCloseTo(3, 5);
      expectAffine(vol.affine, oblique);
    }
  });

  it('takes the affine from qform when sform_code is 0, and from pixdim when both are 0', () => {
    const qonly = readNifti(buildNifti({ dim: [2, 2, 2], affine: oblique, pixdim: [1.5, 0.9, 3], sform: false }));
    expectAffine(qonly.affine, oblique);
    const neither = readNifti(buildNifti({ dim: [4, 6, 8], pixdim: [2, 3, 4], sform: false, qform: false }));
    expectAffine(neither.affine, [
      [-2, 0, 0, 3],
      [0, 3, 0, -7.5],
      [0, 0, 4, -14],
      [0, 0, 0, 1],
    ]);
  });

  it('applies scl_slope / scl_inter, and reads the last frame of a 4D file by default', () => {
    const values = Array.from({ length: 2 * 2 * 2 * 3 }, (_, i) => i);
    const vol = readNifti(buildNifti({ dim: [2, 2, 2, 3], datatype: 'int16', values, slope: 0.5, inter: 10 }));
    expect(vol.frames).toBe(3);
    expect(vol.frame).toBe(2);
    expect(Array.from(vol.data)).toEqual(values.slice(16));
    expect(Array.from(toFloat32(vol))).toEqual(values.slice(16).map((x) => x * 0.5 + 10));
    expect(Array.from(readNifti(buildNifti({ dim: [2, 2, 2, 3], values }), { frame: 0 }).data)).toEqual(values.slice(0, 8));
  });

  it('round-trips what writeNiftiGz writes (qform and sform both)', () => {
    const data = new Uint8Array(5 * 6 * 7).map((_, i) => i % 2);
    const bytes = writeNiftiGz({ dims: [5, 6, 7], affine: oblique, datatype: 'uint8', data });
    const vol = readNifti(bytes);
    expect(vol.header.qformCode).toBe(1);
    expect(vol.header.sformCode).toBe(1);
    expectAffine(vol.affine, oblique);
    expectAffine(readNifti(bytes).affine, oblique);
    expect(Array.from(vol.data)).toEqual(Array.from(data));
    // qform alone reproduces the same affine
    const view = Buffer.from(gunzipSync(bytes));
    view.writeInt16LE(0, 254);
    expectAffine(readNifti(view).affine, oblique, 3);
  });

  it('writes the qform nifti1_io and nibabel write for a sheared affine (polar decomposition), and the sform exactly', () => {
    // Columns not orthogonal: a qform (rotation × voxel size) cannot hold it; the rotation must be
    // the polar factor. Expected values from nibabel 5.0 (Nifti1Header.set_qform, an SVD polar
    // decomposition), computed once outside the project.
    const sheared: Affine = [
      [-1.9, 0.25, 0.1, 118.7],
      [-0.2, 1.95, -0.42, -79.1],
      [0.05, 0.45, 1.96, -57.7],
      [0, 0, 0, 1],
    ];
    const nibabelQuatern = [-0.004083114210516214, -0.9935409426689148, -0.11055801808834076];
    const nibabelQform: Affine = [
      [-1.90865434, 0.02761541, 0.09881401, 118.69999695],
      [0.00484345, 1.9674341, -0.44132435, -79.09999847],
      [0.09754644, 0.44265184, 1.95536919, -57.70000076],
      [0, 0, 0, 1],
    ];
    const vol = readNifti(writeNiftiGz({ dims: [4, 4, 4], affine: sheared, datatype: 'uint8', data: new Uint8Array(64) }));
    vol.header.quatern.forEach((q, i) => expect(q).toBeCloseTo(nibabelQuatern[i]!, 6));
    expect(vol.header.pixdim[0]).toBe(-1); // qfac
    expectAffine(qformAffine(vol.header), nibabelQform, 5);
    expectAffine(vol.affine, sheared, 5); // the sform keeps the shear
  });

  it('a nearly orthogonal real-world affine (float32-rounded, slightly sheared) round-trips with qform equal to sform', () => {
    // sub-strokecase0009's DWI affine as stored (ISLES'22): its columns are orthogonal only to float32 precision.
    const isles: Affine = [
      [-1.9966226816177368, -0.11613927036523819, 0.003094025421887636, 118.68132019042969],
      [-0.11422966420650482, 1.952681064605713, -0.41711902618408203, -79.13792419433594],
      [-0.021201128140091896, 0.4165913760662079, 1.9560168981552124, -57.679962158203125],
      [0, 0, 0, 1],
    ];
    const vol = readNifti(writeNiftiGz({ dims: [4, 4, 4], affine: isles, datatype: 'uint8', data: new Uint8Array(64) }));
    expectAffine(vol.affine, isles, 5);
    expectAffine(qformAffine(vol.header), vol.affine, 5);
  });

  it('reads an int64 label mask as nibabel and SimpleITK write it', () => {
    const values = Array.from({ length: 27 }, (_, i) => (i % 5 === 0 ? 1 : 0));
    const vol = readNifti(buildNifti({ dim: [3, 3, 3], datatype: 'int64', values, gzip: true }));
    expect(vol.datatype).toBe('int64');
    expect(Array.from(toFloat32(vol))).toEqual(values);
  });

  const rejects: [string, Buffer | Uint8Array, RegExp][] = [
    ['a PNG renamed .nii.gz', Buffer.from('89504e470d0a1a0a0000000d49484452'.padEnd(800, '0'), 'hex'), /header size field/],
    ['an empty file', Buffer.alloc(0), /shorter than a NIfTI header/],
    [
      'bad magic',
      (() => {
        const b = buildNifti({ dim: [2, 2, 2] });
        b.write('xx1\0', 344, 'latin1');
        return b;
      })(),
      /bad magic/,
    ],
    ['a zero dimension', buildNifti({ dim: [2, 0, 2] }), /dimension 2 is 0/],
    ['a negative dimension', buildNifti({ dim: [2, -3, 2] }), /dimension 2 is -3/],
    ['five used dimensions', buildNifti({ dim: [2, 2, 2, 2, 2] }), /at most 4/],
    ['a dimension over 2048', buildNifti({ dim: [2049, 1, 1] }), /over the limit of 2048/],
    ['a truncated payload', buildNifti({ dim: [4, 4, 4], truncate: 10 }), /truncated/],
    ['truncated gzip', buildNifti({ dim: [16, 16, 16], gzip: true }).subarray(0, 300), /corrupt or truncated/],
    [
      'corrupt gzip',
      (() => {
        const b = Buffer.from(buildNifti({ dim: [8, 8, 8], gzip: true }));
        b.fill(7, 20, 60);
        return b;
      })(),
      /corrupt/,
    ],
    ['an unsupported datatype', buildNifti({ dim: [2, 2, 2], datatypeCode: 128, datatype: 'uint8' }), /rgb24/],
    ['a CIFTI file', buildNifti({ version: 2, dim: [1, 1, 1, 1, 20, 30], intentCode: 3006 }), /CIFTI/],
  ];
  it.each(rejects)('rejects %s with a specific message', (_name, bytes, message) => {
    expect(() => readNifti(bytes)).toThrow(NiftiError);
    expect(() => readNifti(bytes)).toThrow(message);
  });

  it('refuses more voxels than MAX_VOXELS', () => {
    expect(() => readNifti(buildNifti({ dim: [10, 10, 10] }), { maxVoxels: 999 })).toThrow(/1,000 voxels, over the limit of 999/);
  });

  it('stops a decompression bomb: gzip that inflates past what the header describes', () => {
    const honest = buildNifti({ dim: [4, 4, 4] });
    const bomb = gzipSync(Buffer.concat([honest, Buffer.alloc(50 * 1024 * 1024)]));
    expect(bomb.length).toBeLessThan(200_000);
    expect(() => readNifti(bomb)).toThrow(/decompression bomb/);
  });
});

describe('files we did not write', () => {
  // nifti-js ships the classic "minimal.nii" test image: big-endian NIfTI-1, uint8, 64×64×10, 3 mm.
  const minimal = readFileSync(createRequire(import.meta.url).resolve('nifti-js/test/minimal.nii'));

  it('reads the big-endian minimal.nii', () => {
    const vol = readNifti(minimal);
    expect(vol.header.littleEndian).toBe(false);
    expect(vol.dims).toEqual([64, 64, 10]);
    expect(vol.datatype).toBe('uint8');
    expect(vol.voxelSizeMm).toEqual([3, 3, 3]);
    expect(vol.data.length).toBe(64 * 64 * 10);
    expect(readNifti(gzipSync(minimal)).data).toEqual(vol.data);
  });

  it('never throws anything but a NiftiError on corrupted copies (1,000 random mutations)', () => {
    const rand = (() => {
      let s = 12345;
      return () => (s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32;
    })();
    const bases = [minimal, gzipSync(minimal), buildNifti({ version: 2, littleEndian: false, dim: [5, 6, 7, 2], datatype: 'int16' })];
    let refused = 0;
    for (let n = 0; n < 1000; n++) {
      const base = bases[n % bases.length]!;
      const copy = Buffer.from(base);
      const kind = rand();
      if (kind < 0.6) {
        for (let k = 0; k < 1 + rand() * 4; k++) copy[Math.floor(rand() * Math.min(copy.length, 560))] = Math.floor(rand() * 256);
      } else if (kind < 0.8) {
        copy.fill(Math.floor(rand() * 256), Math.floor(rand() * copy.length));
      }
      const bytes = kind >= 0.8 ? copy.subarray(0, Math.floor(rand() * copy.length)) : copy;
      try {
        readNifti(bytes, { maxVoxels: 1e7 });
      } catch (err) {
        expect(err).toBeInstanceOf(NiftiError);
        refused++;
      }
    }
    expect(refused).toBeGreaterThan(100);
  });
});
