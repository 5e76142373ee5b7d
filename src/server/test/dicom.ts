import { execFile, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { crc32, deflateRawSync } from 'node:zlib';
import { type ConvertResult, convertDicomStudy } from '../dicom/convert.js';
import { scanDicomFiles } from '../dicom/scan.js';
import { ROOT } from './process.js';

/**
 * The real DICOM data and the DICOM variants tests make from it (with dcmtk, into temp folders):
 * the Philips diffusion series in `../shared/data/dicom/philips-dwi/DICOM` (BSD-2, never copied
 * into the repository), a JPEG-lossless copy, copies with an injected patient, broken copies,
 * and zips built by hand (so a test can make the hostile ones: `../` names, lying sizes, bombs).
 */

export const PHILIPS_DIR = path.resolve(ROOT, '../shared/data/dicom/philips-dwi/DICOM');
export const HAVE_PHILIPS = existsSync(PHILIPS_DIR);
/** For `describe.skipIf`: the reason in the suite's title. */
export const PHILIPS_SKIP_NOTE = HAVE_PHILIPS ? '' : ` (skipped: ${PHILIPS_DIR} is missing)`;

const run = promisify(execFile);

/** dcmtk must be installed (.ci/run installs it): a test that needs it fails with this, never skips. */
export function requireDcmtk(): void {
  const r = spawnSync('dcmodify', ['--version'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error('dcmtk is missing (dcmodify, dcmcjpeg, dcmconv): `apt-get install dcmtk` (.ci/run does)');
}

/** dciodvfy's (dicom3tools) error lines for a DICOM file — warnings are allowed; a missing dciodvfy fails (.ci/run installs it). */
export function dciodvfyErrors(file: string): string[] {
  const r = spawnSync('dciodvfy', [file], { encoding: 'utf8' });
  if (r.error) throw new Error(`dciodvfy is missing (\`apt-get install dicom3tools\`; .ci/run does): ${r.error.message}`);
  return `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /^Error/.test(l));
}

export const tempDir = (prefix: string) => mkdtempSync(path.join(tmpdir(), prefix));

/** The Philips series scanned and converted as an import would (dcm2niix, roles, computed ADC), with the default choice. */
export async function convertPhilipsSeries(): Promise<ConvertResult> {
  const files = readdirSync(PHILIPS_DIR).map((name) => ({ path: path.join(PHILIPS_DIR, name), name }));
  const scan = scanDicomFiles({ files, offset: 0 });
  return convertDicomStudy({
    files: scan.images.map((img) => files[img.file]!),
    images: scan.images.map((img, i) => ({ ...img, file: i })),
    choice: {},
    scrub: [],
    maxVoxels: 2 ** 26,
  });
}

/** A copy of a DICOM folder (optionally only some of its files). */
export function copyDicom(src = PHILIPS_DIR, only?: (name: string) => boolean): string {
  const dir = tempDir('sv-dicom-');
  for (const f of readdirSync(src)) if (!only || only(f)) cpSync(path.join(src, f), path.join(dir, f));
  return dir;
}

/** Runs `fn` over items, `n` at a time. */
async function inParallel<T>(items: T[], n: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < items.length) await fn(items[next++]!);
    }),
  );
}

/** A JPEG-lossless (process 14, first-order prediction) copy of a folder, made with dcmcjpeg. */
export async function jpegLosslessCopy(src = PHILIPS_DIR): Promise<string> {
  requireDcmtk();
  const dir = tempDir('sv-dicom-jpeg-');
  const files = readdirSync(src);
  await inParallel(files, 2, async (f) => {
    // Non-image objects (no pixel data) cannot be compressed: copied as they are.
    if (f.startsWith('IM_')) await run('dcmcjpeg', [path.join(src, f), path.join(dir, f)]);
    else cpSync(path.join(src, f), path.join(dir, f));
  });
  return dir;
}

/** dcmodify's `-i` (insert or overwrite) on every file of a folder at once (`-nb`: no .bak files). */
export async function modify(dir: string, assignments: string[], files = readdirSync(dir)): Promise<void> {
  requireDcmtk();
  const args = ['-nb', ...assignments.flatMap((a) => ['-i', a])];
  for (let i = 0; i < files.length; i += 200) {
    await run('dcmodify', [...args, ...files.slice(i, i + 200).map((f) => path.join(dir, f))], { maxBuffer: 16 << 20 });
  }
}

/** One file of the folder in Deflated Explicit VR Little Endian (a transfer syntax dcm2niix does not read). */
export async function deflate(dir: string, file: string): Promise<void> {
  requireDcmtk();
  const out = path.join(dir, `${file}.deflated`);
  await run('dcmconv', ['+td', path.join(dir, file), out]);
  cpSync(out, path.join(dir, file));
  spawnSync('rm', [out]);
}

/** Rewrites the declared length of the pixel data element of a file (explicit VR little endian). */
export function declarePixelLength(file: string, length: number): void {
  const bytes = readFileSync(file);
  const at = bytes.lastIndexOf(Buffer.from([0xe0, 0x7f, 0x10, 0x00]));
  if (at < 0) throw new Error(`${file} has no pixel data element`);
  bytes.writeUInt32LE(length, at + 8);
  writeFileSync(file, bytes);
}

export interface ZipEntry {
  name: string;
  data: Buffer;
  /** Stored (0) or deflated (8, the default). */
  method?: 0 | 8;
  /** Lie about the uncompressed size (a zip bomb in disguise). */
  declaredSize?: number;
}

/** A zip file by hand (local headers, central directory, end record), so tests can make hostile ones. */
export function zipOf(entries: ZipEntry[]): Uint8Array<ArrayBuffer> {
  const locals: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const e of entries) {
    const method = e.method ?? 8;
    const body = method === 8 ? deflateRawSync(e.data) : e.data;
    const name = Buffer.from(e.name, 'utf8');
    const crc = crc32(e.data);
    const size = e.declaredSize ?? e.data.length;
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(0x800, 6); // UTF-8 names
    local.writeUInt16LE(method, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(size, 22);
    local.writeUInt16LE(name.length, 26);
    locals.push(local, name, body);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0);
    cd.writeUInt16LE(20, 4);
    cd.writeUInt16LE(20, 6);
    cd.writeUInt16LE(0x800, 8);
    cd.writeUInt16LE(method, 10);
    cd.writeUInt32LE(crc, 16);
    cd.writeUInt32LE(body.length, 20);
    cd.writeUInt32LE(size, 24);
    cd.writeUInt16LE(name.length, 28);
    cd.writeUInt32LE(offset, 42);
    central.push(cd, name);
    offset += 30 + name.length + body.length;
  }
  const cdBytes = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  const count = Math.min(entries.length, 0xffff);
  end.writeUInt16LE(count, 8);
  end.writeUInt16LE(count, 10);
  end.writeUInt32LE(cdBytes.length, 12);
  end.writeUInt32LE(offset, 16);
  return new Uint8Array(Buffer.concat([...locals, cdBytes, end]));
}

/** A zip of a folder's files, under `prefix/`. */
export function zipFolder(dir: string, prefix = 'DICOM'): Uint8Array<ArrayBuffer> {
  return zipOf(readdirSync(dir).map((f) => ({ name: `${prefix}/${f}`, data: readFileSync(path.join(dir, f)) })));
}

/** A folder's files as FormData parts (`files`, repeated), named like a browser's folder upload. */
export function folderForm(dir: string, fields: Record<string, string> = {}, prefix = 'DICOM'): FormData {
  const form = new FormData();
  for (const [k, v] of Object.entries(fields)) form.set(k, v);
  for (const f of readdirSync(dir)) form.append('files', new File([readFileSync(path.join(dir, f))], `${prefix}/${f}`));
  return form;
}
