import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { afterAll, expect, it } from 'vitest';
import { converterWarnings } from './convert.js';
import { type InputFile, inflateEntry, inputKey, readInput } from './input-file.js';

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
  expect(inflateEntry(zipPath, 'two.zip/a', ref(0, a, first))).toEqual(a);
  expect(readInput({ path: zipPath, name: 'two.zip/b', entry: ref(first.length, b, entryB) })).toEqual(b);
  expect(() => inflateEntry(zipPath, 'two.zip/a', ref(0, a, first, a.length - 1))).toThrow(/inflates past its declared 4999 bytes/);
  expect(() => inflateEntry(zipPath, 'two.zip/a', ref(0, a, first, a.length + 1))).toThrow(/inflates to a different size/);
  expect(() => inflateEntry(zipPath, 'two.zip/a', ref(3, a, first))).toThrow(
    /two.zip: not a readable zip \(invalid local file header of two.zip\/a\)/,
  );
  expect(() => inflateEntry(zipPath, 'two.zip/b', { ...ref(first.length, b, entryB), compressedSize: 10_000 })).toThrow(/is cut short/);
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
