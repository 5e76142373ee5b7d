import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterAll, expect, it } from 'vitest';
import { CpuPool } from '../workers/pool.js';
import { zipOf } from '../test/dicom.js';
import { converterWarnings } from './convert.js';
import { type InputFile, inflateInPool, inputKey, inputReader, notDicom, type ZipEntryRef } from './input-file.js';
import { zipDirectory } from './unpack.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sv-input-file-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A zip's local header + deflated data for one entry at `at` (the rest of a zip is not needed to read it). */
function localEntry(name: string, data: Buffer): Buffer {
  const header = Buffer.alloc(30);
  header.writeUInt32LE(0x04034b50, 0);
  header.writeUInt16LE(Buffer.byteLength(name), 26);
  return Buffer.concat([header, Buffer.from(name), deflateRawSync(data)]);
}

it('reads one entry from where the directory says it is, and refuses one that inflates to another size', () => {
  const a = Buffer.alloc(5000, 7);
  const b = Buffer.from('DICM but not really');
  const first = localEntry('a', a);
  const zipPath = path.join(dir, 'two.zip');
  writeFileSync(zipPath, Buffer.concat([first, localEntry('b', b)]));
  const ref = (at: number, data: Buffer, entry: Buffer, size = data.length) => ({
    zipName: 'two.zip',
    localHeader: at,
    compressedSize: entry.length - 31,
    size,
    method: 8,
  });
  const entryB = localEntry('b', b);
  const reader = inputReader();
  const read = (name: string, entry: ZipEntryRef) => reader.read({ path: zipPath, name, entry });
  try {
    expect(read('two.zip/a', ref(0, a, first))).toEqual(a);
    expect(read('two.zip/b', ref(first.length, b, entryB))).toEqual(b);
    expect(() => read('two.zip/a', ref(0, a, first, a.length - 1))).toThrow(/inflates past its declared 4999 bytes/);
    expect(() => read('two.zip/a', ref(0, a, first, a.length + 1))).toThrow(/inflates to a different size/);
    expect(() => read('two.zip/a', ref(3, a, first))).toThrow(/two.zip: not a readable zip \(invalid local file header of two.zip\/a\)/);
    expect(() => read('two.zip/b', { ...ref(first.length, b, entryB), compressedSize: 10_000 })).toThrow(/is cut short/);
  } finally {
    reader.close();
  }
});

it("drops dcm2niix's lines about a zip entry the scan skipped: entries of one zip are told apart by where they are", () => {
  const zip = '/spool/files-0.part';
  const entry = (name: string, at: number): InputFile => ({
    path: zip,
    name: `study.zip/${name}`,
    entry: { zipName: 'study.zip', localHeader: at, compressedSize: 1, size: 1, method: 8 },
  });
  const inputs = [entry('IM_0001', 0), entry('PS_0001', 4096)];
  expect(inputKey(inputs[0]!)).not.toBe(inputKey(inputs[1]!));
  const study = new Set([inputKey(inputs[0]!)]);
  const lines = ['Warning: unsupported object /in/1', 'Warning: slice spacing varies in /in/0'];
  expect(converterWarnings(lines, inputs, (f) => study.has(inputKey(f)))).toEqual(['Warning: slice spacing varies in study.zip/IM_0001']);
});

it('a task reads many entries through one open archive, a stored entry too, and a long local extra field takes a second read', () => {
  const a = Buffer.alloc(3000, 1);
  const b = Buffer.alloc(70, 2);
  const deflated = localEntry('a', a);
  // A stored entry whose local header carries a 2 kB extra field (past the first read's slack).
  const stored = Buffer.alloc(30 + 1 + 2048);
  stored.writeUInt32LE(0x04034b50, 0);
  stored.writeUInt16LE(1, 26);
  stored.writeUInt16LE(2048, 28);
  stored.write('b', 30);
  const zipPath = path.join(dir, 'many.zip');
  writeFileSync(zipPath, Buffer.concat([deflated, stored, b]));
  const entries: InputFile[] = [
    {
      path: zipPath,
      name: 'many.zip/a',
      entry: { zipName: 'many.zip', localHeader: 0, compressedSize: deflated.length - 31, size: a.length, method: 8 },
    },
    {
      path: zipPath,
      name: 'many.zip/b',
      entry: { zipName: 'many.zip', localHeader: deflated.length, compressedSize: b.length, size: b.length, method: 0 },
    },
  ];
  const reader = inputReader();
  try {
    expect(reader.read(entries[1]!)).toEqual(b);
    expect(reader.read(entries[0]!)).toEqual(a);
    expect(reader.read(entries[1]!)).toEqual(b);
    // The archive cut inside an entry's data: named, not a short buffer.
    writeFileSync(zipPath, Buffer.concat([deflated, stored, b.subarray(0, 10)]));
    expect(() => reader.read(entries[1]!)).toThrow(/many.zip\/b is cut short/);
  } finally {
    reader.close();
  }
});

it("a zip whose directory puts an entry's data past the archive's end is refused before anything is read for it", async () => {
  const zip = Buffer.from(zipOf([{ name: 'DICOM/IM_0001', data: Buffer.alloc(2000, 3) }]));
  const central = zip.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  zip.writeUInt32LE(0x7fff_ffff, central + 20); // its compressed size: 2 GiB
  const zipPath = path.join(dir, 'forged.zip');
  writeFileSync(zipPath, zip);
  const limits = { maxFiles: 10, maxBytes: 2 ** 40, maxFileBytes: 2 ** 40, maxZipRatio: 1e12 };
  await expect(zipDirectory({ zipPath, zipName: 'forged.zip', limits, counted: { files: 0, bytes: 0 } })).rejects.toThrow(
    /forged.zip: not a readable zip \(forged.zip\/DICOM\/IM_0001 runs past the end of the archive\)/,
  );
});

it("an upload's entries are inflated once, split across the pool's threads, and every thread reads the same bytes; a lying entry refuses the upload", async () => {
  // DICOM-shaped entries (the DICM marker at byte 128), and a report that is not DICOM: of it only the bytes the readers look at are kept.
  const data = Array.from({ length: 6 }, (_, i) => {
    const d = Buffer.alloc(4000 + i * 1000, i + 1);
    d.write('DICM', 128, 'latin1');
    return d;
  });
  const report = Buffer.alloc(20_000, 0x25);
  const zipPath = path.join(dir, 'study.zip');
  writeFileSync(
    zipPath,
    zipOf([...data.map((d, i) => ({ name: `DICOM/IM_000${i}`, data: d })), { name: 'DICOM/report.pdf', data: report }]),
  );
  const onDisk = path.join(dir, 'loose.dcm');
  writeFileSync(onDisk, Buffer.from('a file on disk'));
  const limits = { maxFiles: 10, maxBytes: 2 ** 30, maxFileBytes: 2 ** 30, maxZipRatio: 1e6 };
  const { files } = await zipDirectory({ zipPath, zipName: 'study.zip', limits, counted: { files: 0, bytes: 0 } });
  const cpu = new CpuPool(2);
  try {
    const loose: InputFile = { path: onDisk, name: 'loose.dcm' };
    const inputs = await inflateInPool(cpu, [files[0]!, loose, ...files.slice(1)]);
    expect(inputs.map((f) => f.name)).toEqual(['study.zip/DICOM/IM_0000', 'loose.dcm', ...files.slice(1).map((f) => f.name)]);
    const pdf = inputs.pop()!;
    expect(pdf.inflated!.length).toBe(132);
    expect(inputs[1]).toBe(loose); // a file on disk is read where it is needed, as before
    const entries = inputs.filter((f) => f.entry);
    expect(entries.every((f) => f.inflated)).toBe(true);
    expect(new Set(entries.map((f) => f.inflated!.buffer)).size).toBe(2); // one part per thread
    const reader = inputReader();
    try {
      expect(entries.map((f) => reader.read(f))).toEqual(data);
      expect(reader.read(inputs[1]!).toString()).toBe('a file on disk');
      expect(notDicom(reader.read(pdf))).toBe('not DICOM (no DICM marker at byte 128)');
    } finally {
      reader.close();
    }
    // The same entry declaring fewer bytes than it inflates to: refused, naming it, before anything reads it.
    const lying = { ...files[2]!, entry: { ...files[2]!.entry!, size: 100 } };
    await expect(inflateInPool(cpu, [files[0]!, lying])).rejects.toThrow(/study.zip\/DICOM\/IM_0002 inflates past its declared 100 bytes/);
  } finally {
    await cpu.destroy();
  }
});
