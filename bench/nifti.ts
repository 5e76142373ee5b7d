import { gunzipSync } from 'node:zlib';
import * as niftiReader from 'nifti-reader-js';
import { readNifti } from '../src/server/nifti/read.js';
import { writeNiftiGz } from '../src/server/nifti/write.js';
import { row, timeMedian } from './util.js';

// A 256×256×160 float32 volume shaped like an MRI (smooth anatomy plus noise), as .nii.gz.
const dims: [number, number, number] = [256, 256, 160];
const data = new Float32Array(dims[0] * dims[1] * dims[2]);
let seed = 1;
const rand = () => (seed = (seed * 1664525 + 1013904223) >>> 0) / 2 ** 32;
for (let z = 0, i = 0; z < dims[2]; z++)
  for (let y = 0; y < dims[1]; y++)
    for (let x = 0; x < dims[0]; x++, i++) {
      const r = Math.hypot((x - 128) / 100, (y - 128) / 110, (z - 80) / 70);
      data[i] = r < 1 ? Math.round(800 + 200 * Math.cos(r * 6) + 40 * rand()) : Math.round(10 * rand());
    }
const file = writeNiftiGz({
  dims,
  affine: [
    [1, 0, 0, 0],
    [0, 1, 0, 0],
    [0, 0, 1, 0],
    [0, 0, 0, 1],
  ],
  datatype: 'float32',
  data,
});

console.log(
  `\nNIfTI decode — 256×256×160 float32 .nii.gz (${(file.length / 1e6).toFixed(1)} MB compressed, ${(data.byteLength / 1e6).toFixed(1)} MB raw)`,
);
const gunzip = await timeMedian(() => gunzipSync(file));
const ours = await timeMedian(() => readNifti(file));
const reader = await timeMedian(() => {
  const buf = file.buffer.slice(file.byteOffset, file.byteOffset + file.byteLength) as ArrayBuffer;
  const raw = (niftiReader.isCompressed(buf) ? niftiReader.decompress(buf) : buf) as ArrayBuffer;
  const header = niftiReader.readHeader(raw)!;
  const image = niftiReader.readImage(header, raw);
  return new Float32Array(image);
});
console.log(row('zlib.gunzipSync (baseline)', gunzip));
console.log(row('strokeview readNifti', ours, { value: ours / gunzip, goal: '≤ 1.10× gunzip', ok: ours / gunzip <= 1.1 }));
console.log(row('nifti-reader-js (same bytes)', reader, { value: reader / ours, goal: '≥ 2× slower than ours', ok: reader / ours >= 2 }));
