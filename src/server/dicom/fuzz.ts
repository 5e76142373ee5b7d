import { seededRandom } from '../nifti/fuzz.js';

/**
 * Seeded hostile DICOM input (#26, beside #17's NIfTI fuzzer), for dicom/fuzz.test.ts and
 * `npm run bench -- fuzz`: real files with lies in them (flipped bytes, cuts, element lengths
 * rewritten to anything up to 4 GiB, inserted junk, no preamble), and whole uploads with the faults
 * the issue names — a truncated file, a missing image, mixed studies, an unsupported transfer
 * syntax, a zip with ../ or absolute names, too many tiny files, a huge declared element length.
 */

type Mutation = (b: Buffer, rnd: () => number) => Buffer;

export const FILE_MUTATIONS: Record<string, Mutation> = {
  'flip-bytes': (b, rnd) => {
    const out = Buffer.from(b);
    for (let i = 0, n = 1 + Math.floor(rnd() * 20); i < n; i++) out[Math.floor(rnd() * out.length)] = Math.floor(rnd() * 256);
    return out;
  },
  cut: (b, rnd) => b.subarray(0, Math.floor(rnd() * b.length)),
  'lie-length': (b, rnd) => {
    // Rewrite a 16- or 32-bit field somewhere in the header part with a large number.
    const out = Buffer.from(b);
    const at = 132 + Math.floor(rnd() * Math.min(out.length - 140, 9000));
    if (rnd() < 0.5) out.writeUInt16LE(Math.floor(rnd() * 0x10000), at);
    else out.writeUInt32LE(Math.floor(rnd() * 0x100000000), at);
    return out;
  },
  'insert-junk': (b, rnd) => {
    const at = 132 + Math.floor(rnd() * (b.length - 132));
    const junk = Buffer.from(Array.from({ length: 1 + Math.floor(rnd() * 64) }, () => Math.floor(rnd() * 256)));
    return Buffer.concat([b.subarray(0, at), junk, b.subarray(at)]);
  },
  'no-preamble': (b) => b.subarray(132),
};

export function* fuzzDicomCases(seed: number, count: number, sources: Buffer[]) {
  const rnd = seededRandom(seed);
  const kinds = Object.keys(FILE_MUTATIONS);
  for (let index = 0; index < count; index++) {
    const kind = kinds[index % kinds.length]!;
    yield { index, kind, bytes: FILE_MUTATIONS[kind]!(sources[index % sources.length]!, rnd) };
  }
}

/** An upload: loose files, or one zip of entries (names as given, which may be hostile). */
export type FuzzUpload = { kind: string; index: number } & (
  { files: { name: string; data: Buffer }[] } | { zip: { name: string; data: Buffer; method?: 0 | 8 }[] }
);

/** Replaces the first occurrence of an ASCII value (a UID) with another of the same length (padding kept). */
function replaceSameLength(b: Buffer, from: string, to: string): Buffer {
  const out = Buffer.from(b);
  const at = out.indexOf(Buffer.from(from, 'latin1'));
  if (at >= 0) out.write(to.padEnd(from.length, '\0').slice(0, from.length), at, 'latin1');
  return out;
}

/** The uid-ish value after a tag (explicit VR little endian, 2-byte length), or null. */
function valueOf(b: Buffer, group: number, element: number): string | null {
  const tag = Buffer.alloc(4);
  tag.writeUInt16LE(group, 0);
  tag.writeUInt16LE(element, 2);
  const at = b.indexOf(tag, 132);
  if (at < 0) return null;
  const len = b.readUInt16LE(at + 6);
  return b.toString('latin1', at + 8, at + 8 + len).replace(/\0+$/, '');
}

/** The last 4-byte length of a pixel data element (7FE0,0010) set to `length`. */
function declarePixelLength(b: Buffer, length: number): Buffer {
  const out = Buffer.from(b);
  const at = out.lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]));
  if (at >= 0) out.writeUInt32LE(length >>> 0, at + 8);
  return out;
}

/**
 * Whole hostile uploads of a small real study (`names`/`files`: its images): each file mutation
 * on one file (loose or zipped), and each named fault. Deterministic for a seed.
 */
export function* fuzzDicomUploads(seed: number, count: number, names: string[], files: Buffer[], maxFiles: number): Generator<FuzzUpload> {
  const rnd = seededRandom(seed);
  const int = (n: number) => Math.floor(rnd() * n);
  const study = () => files.map((data, i) => ({ name: `DICOM/${names[i]}`, data }));
  const structural: Record<string, () => { name: string; data: Buffer }[]> = {
    'truncated-file': () => study().map((f, i) => (i === 1 ? { ...f, data: f.data.subarray(0, 1000 + int(f.data.length - 1000)) } : f)),
    // One image left out. Of a full series that is a missing slice (a 422, dicom/bad-input.test.ts);
    // of the bench's six images of one slice position it still makes a (thin) case.
    'missing-image': () => study().filter((_, i) => i !== 1 + int(files.length - 2)),
    'mixed-studies': () =>
      study().map((f, i) => {
        if (i % 2 === 0) return f;
        const uid = valueOf(f.data, 0x0020, 0x000d);
        return uid ? { ...f, data: replaceSameLength(f.data, uid, `${uid.slice(0, -1)}${(Number(uid.slice(-1)) + 1) % 10}`) } : f;
      }),
    'unsupported-syntax': () =>
      study().map((f, i) => {
        if (i !== 0) return f;
        const ts = valueOf(f.data, 0x0002, 0x0010);
        return ts ? { ...f, data: replaceSameLength(f.data, ts, `${ts.slice(0, -1)}9`) } : f;
      }),
    'huge-length': () => study().map((f, i) => (i === 2 ? { ...f, data: declarePixelLength(f.data, 0x7ffffff0 + int(15)) } : f)),
  };
  const zipFaults: Record<string, () => { name: string; data: Buffer; method?: 0 | 8 }[]> = {
    'zip-dotdot': () => [...study(), { name: ['../evil.dcm', 'DICOM/../../evil.dcm', '..\\evil.dcm'][int(3)]!, data: files[0]! }],
    'zip-absolute': () => [...study(), { name: ['/etc/evil.dcm', 'C:/evil.dcm'][int(2)]!, data: files[0]! }],
    'tiny-files': () =>
      Array.from({ length: maxFiles + 1 + int(100) }, (_, i) => ({ name: `f/${i}`, data: Buffer.from(`t${i}`), method: 0 as const })),
  };
  const fileKinds = Object.keys(FILE_MUTATIONS);
  const kinds = [...fileKinds, ...Object.keys(structural), ...Object.keys(zipFaults)];
  for (let index = 0; index < count; index++) {
    const kind = kinds[index % kinds.length]!;
    const zipped = Math.floor(index / kinds.length) % 2 === 1;
    let entries: { name: string; data: Buffer; method?: 0 | 8 }[];
    if (kind in zipFaults) {
      yield { kind, index, zip: zipFaults[kind]!() };
      continue;
    }
    if (kind in structural) entries = structural[kind]!();
    else {
      const at = int(files.length);
      entries = study().map((f, i) => (i === at ? { ...f, data: FILE_MUTATIONS[kind]!(f.data, rnd) } : f));
    }
    yield zipped ? { kind, index, zip: entries } : { kind, index, files: entries };
  }
}
