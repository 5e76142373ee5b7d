import { readFileSync, writeFileSync } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import path from 'node:path';
import { inflateRawSync } from 'node:zlib';
import yauzl from 'yauzl';
import { MiB } from '../../shared/units.js';
import { tooLarge, unprocessable } from '../errors.js';
import type { DicomLimits } from './limits.js';
import type { InputFile } from './scan.js';
import type { CpuPool } from '../workers/pool.js';
import { cpuTask } from '../workers/task.js';

/**
 * Gathers the DICOM files of an import from what was sent — loose files, or `.zip` archives —
 * into a spool folder, within limits: how many files, how many bytes in all and per file. Zips
 * are read with yauzl (its central directory: every entry's name and sizes, checked before a byte
 * is inflated), then inflated and written to disk one entry at a time in a CPU-pool thread (memory
 * holds one entry, whatever the archive's size): entry names that climb out of the archive
 * (`../`) or are absolute are refused, never used as paths (entries are written under
 * server-made names); a zip bomb is stopped by the declared sizes before a byte is inflated
 * (limits and a compression-ratio cap) and by the actual sizes while inflating (never past the
 * declared size). Files without the `DICM` marker at byte 128 are skipped and listed.
 */

export interface Gathered {
  files: InputFile[];
  skipped: { file: string; reason: string }[];
}

const mib = (bytes: number) => `${(bytes / MiB).toFixed(bytes < 10 * MiB ? 1 : 0)} MiB`;

/** A name from the client, fit for a message: no control characters, not too long. */
// eslint-disable-next-line no-control-regex
export const displayName = (name: string) => name.replace(/[\u0000-\u001f\u007f-\u009f]/g, '?').slice(0, 200) || 'a file';

async function head(file: string, bytes: number): Promise<Buffer> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, 0);
    return buf.subarray(0, bytesRead);
  } finally {
    await fh.close();
  }
}

const isDicom = (h: Buffer) => h.length >= 132 && h.toString('latin1', 128, 132) === 'DICM';
const isZip = (h: Buffer) => h.length >= 4 && h[0] === 0x50 && h[1] === 0x4b && ((h[2] === 3 && h[3] === 4) || (h[2] === 5 && h[3] === 6));

class Counter {
  files = 0;
  bytes = 0;
  constructor(private readonly limits: DicomLimits) {}
  add(name: string, bytes: number) {
    this.files++;
    this.bytes += bytes;
    if (this.files > this.limits.maxFiles) {
      throw tooLarge(`The import holds more than ${this.limits.maxFiles} files; send one study at a time`, { field: 'files' });
    }
    if (bytes > this.limits.maxFileBytes) {
      throw tooLarge(`${name} is ${mib(bytes)}, over the limit of ${mib(this.limits.maxFileBytes)} per file`, { field: 'files' });
    }
    if (this.bytes > this.limits.maxBytes) {
      throw tooLarge(`The import's files come to more than ${mib(this.limits.maxBytes)}`, { field: 'files' });
    }
  }
}

function openZip(bytes: Buffer): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) =>
    yauzl.fromBuffer(bytes, { lazyEntries: true, decodeStrings: true, validateEntrySizes: true, strictFileNames: false }, (err, zip) =>
      err ? reject(err) : resolve(zip),
    ),
  );
}

/** Why yauzl refused, as the person should read it. */
function zipProblem(zipName: string, err: Error): Error {
  const m = err.message;
  if (/invalid relative path|absolute path/.test(m)) {
    return unprocessable(`${zipName}: an entry's name leads outside the archive (${displayName(m)}); the zip is refused`, {
      field: 'files',
    });
  }
  if (/too many bytes|not enough bytes/.test(m)) {
    return unprocessable(
      `${zipName}: an entry inflates to a different size than it declares (${m}); the zip is refused as corrupt or a zip bomb`,
      {
        field: 'files',
      },
    );
  }
  if (/encrypt/i.test(m)) return unprocessable(`${zipName}: encrypted entries are not supported`, { field: 'files' });
  return unprocessable(`${zipName}: not a readable zip (${displayName(m).slice(0, 160)})`, { field: 'files' });
}

/** A zip entry to write: where its local header is, its sizes and method (from the central directory yauzl read and checked). */
interface ZipEntryJob {
  name: string;
  target: string;
  localHeader: number;
  compressedSize: number;
  size: number;
  method: number;
}

/** The archive's entries from its central directory (yauzl: names checked, sizes and limits checked before a byte is inflated). */
async function zipEntries(bytes: Buffer, zipName: string, dir: string, limits: DicomLimits, count: Counter): Promise<ZipEntryJob[]> {
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(bytes);
  } catch (err) {
    throw zipProblem(zipName, err as Error);
  }
  const jobs: ZipEntryJob[] = [];
  await new Promise<void>((resolve, reject) => {
    const fail = (err: unknown) => {
      zip.close();
      reject(err);
    };
    zip.on('error', (err: Error) => fail(zipProblem(zipName, err)));
    zip.on('end', () => resolve());
    zip.on('entry', (entry: yauzl.Entry) => {
      if (entry.fileName.endsWith('/')) return zip.readEntry();
      const name = displayName(`${zipName}/${entry.fileName}`);
      const declared = entry.uncompressedSize;
      try {
        // Declared sizes first: nothing is inflated past a limit.
        count.add(name, declared);
        if (declared > MiB && entry.compressedSize > 0 && declared / entry.compressedSize > limits.maxZipRatio) {
          throw unprocessable(
            `${name} would inflate ${Math.round(declared / entry.compressedSize)} times (${mib(entry.compressedSize)} → ${mib(declared)}), over the limit of ${limits.maxZipRatio}: refused as a zip bomb`,
            { field: 'files' },
          );
        }
        if (entry.isEncrypted()) throw unprocessable(`${name}: encrypted entries are not supported`, { field: 'files' });
        if (entry.compressionMethod !== 0 && entry.compressionMethod !== 8) {
          throw unprocessable(`${zipName}: not a readable zip (unsupported compression method: ${entry.compressionMethod})`, {
            field: 'files',
          });
        }
      } catch (err) {
        return fail(err);
      }
      jobs.push({
        name,
        target: path.join(dir, String(jobs.length)),
        localHeader: entry.relativeOffsetOfLocalHeader,
        compressedSize: entry.compressedSize,
        size: declared,
        method: entry.compressionMethod,
      });
      zip.readEntry();
    });
    zip.readEntry();
  });
  return jobs;
}

/** One entry's bytes, inflated: never past its declared size (a bomb is refused without inflating it), nor short of it. */
function inflateEntry(zip: Buffer, zipName: string, e: ZipEntryJob): Buffer {
  const unreadable = (why: string) => unprocessable(`${zipName}: not a readable zip (${why})`, { field: 'files' });
  if (e.localHeader + 30 > zip.length || zip.readUInt32LE(e.localHeader) !== 0x04034b50)
    throw unreadable(`invalid local file header of ${e.name}`);
  const at = e.localHeader + 30 + zip.readUInt16LE(e.localHeader + 26) + zip.readUInt16LE(e.localHeader + 28);
  if (at + e.compressedSize > zip.length) throw unreadable(`${e.name} is cut short`);
  const compressed = zip.subarray(at, at + e.compressedSize);
  let data: Buffer;
  if (e.method === 0) data = compressed;
  else {
    try {
      data = inflateRawSync(compressed, { maxOutputLength: Math.max(1, e.size) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw unprocessable(`${e.name} inflates past its declared ${e.size} bytes: refused as a zip bomb`, { field: 'files' });
      }
      throw unreadable(`${e.name}: ${(err as Error).message}`);
    }
  }
  if (data.length !== e.size) {
    throw unprocessable(
      `${zipName}: an entry inflates to a different size than it declares (${e.name}: ${data.length} bytes, ${e.size} declared); the zip is refused as corrupt or a zip bomb`,
      { field: 'files' },
    );
  }
  return data;
}

/**
 * The CPU task: a zip unpacked into `dir` — its directory read and checked (names, limits, the
 * counts so far carried in and out), then every entry inflated and written, one after another,
 * synchronously, in a pool thread. No stream and no file-system round trip through an event loop
 * per entry: an archive of 500 slices took longer to unpack that way than dcm2niix to convert it.
 * The archive is read whole (it is smaller than the study, which dcm2niix holds whole in memory
 * later anyway); one entry is inflated at a time.
 */
export async function unzipFile(input: {
  zipPath: string;
  zipName: string;
  dir: string;
  limits: DicomLimits;
  counted: { files: number; bytes: number };
}): Promise<Gathered & { counted: { files: number; bytes: number } }> {
  const count = Object.assign(new Counter(input.limits), input.counted);
  const zip = readFileSync(input.zipPath);
  const entries = await zipEntries(zip, input.zipName, input.dir, input.limits, count);
  await mkdir(input.dir, { recursive: true });
  const out: Gathered = { files: [], skipped: [] };
  for (const e of entries) {
    const data = inflateEntry(zip, input.zipName, e);
    writeFileSync(e.target, data);
    if (isDicom(data)) out.files.push({ path: e.target, name: e.name });
    else
      out.skipped.push({
        file: e.name,
        reason: isZip(data) ? 'a zip inside the zip (unpack it first)' : 'not DICOM (no DICM marker at byte 128)',
      });
  }
  return { ...out, counted: { files: count.files, bytes: count.bytes } };
}
const unzipFileTask = cpuTask<Parameters<typeof unzipFile>[0], Awaited<ReturnType<typeof unzipFile>>>(import.meta.url, 'unzipFile');

/** The DICOM files among the inputs (zips unpacked under `workDir`), and what was skipped. Throws a 413/422 naming the limit or the file. */
export async function gatherDicomFiles(cpu: CpuPool, inputs: InputFile[], workDir: string, limits: DicomLimits): Promise<Gathered> {
  const out: Gathered = { files: [], skipped: [] };
  const count = new Counter(limits);
  for (const [i, input] of inputs.entries()) {
    const name = displayName(input.name);
    const h = await head(input.path, 132);
    if (isZip(h)) {
      const zip = await cpu.run(unzipFileTask, {
        zipPath: input.path,
        zipName: name,
        dir: path.join(workDir, `zip-${i}`),
        limits,
        counted: { files: count.files, bytes: count.bytes },
      });
      Object.assign(count, zip.counted);
      out.files.push(...zip.files);
      out.skipped.push(...zip.skipped);
      continue;
    }
    count.add(name, (await stat(input.path)).size);
    if (isDicom(h)) out.files.push({ path: input.path, name });
    else out.skipped.push({ file: name, reason: 'not DICOM (no DICM marker at byte 128)' });
  }
  return out;
}
