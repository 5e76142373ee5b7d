import { closeSync, createReadStream, fstatSync, openSync, readSync } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import yauzl from 'yauzl';
import { MiB } from '../../shared/units.js';
import { tooLarge, unprocessable } from '../errors.js';
import { type InputFile, isDicom, isZip } from './input-file.js';
import type { DicomLimits } from './limits.js';
import type { CpuPool } from '../workers/pool.js';
import { cpuTask } from '../workers/task.js';

/**
 * Gathers the DICOM files of an import from what was sent — loose files, or `.zip` archives —
 * within limits: how many files, how many bytes in all and per file. Zips are read with yauzl
 * (its central directory: every entry's name and sizes, checked before a byte is inflated);
 * entry names that climb out of the archive (`../`) or are absolute are refused, and no entry
 * name is ever used as a path (entries are not written to disk at all: each is inflated from the
 * archive, in memory, by the thread that reads it — input-file.ts); a zip bomb is stopped by the
 * declared sizes before a byte is inflated (limits and a compression-ratio cap) and by the actual
 * sizes while inflating (never past the declared size). Loose files without the `DICM` marker at
 * byte 128 are skipped and listed here; zip entries without it, by the header scan.
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

/** The archive's directory, read from the file (yauzl reads only its end and the central directory; closed after the last entry). */
/**
 * yauzl over a 1 MiB block cache of the archive. Its own file reader asks the thread pool for two
 * small reads per entry (the fixed part, then the names): 1,094 round trips for a 547-slice
 * series, 106–196 ms here, against 9–29 ms for the same directory read from memory (#26). The
 * directory is read in order, so one block serves thousands of entries; reads are synchronous,
 * which is fine on the CPU pool's thread this runs on. Only the directory is read through it: the
 * entries are inflated later, by position (input-file.ts).
 */
class BlockReader extends yauzl.RandomAccessReader {
  #block: { start: number; bytes: Buffer } | undefined;
  constructor(
    private readonly fd: number,
    private readonly size: number,
  ) {
    super();
  }

  #bytes(position: number, length: number): Buffer {
    const b = this.#block;
    if (b && position >= b.start && position + length <= b.start + b.bytes.length)
      return b.bytes.subarray(position - b.start, position - b.start + length);
    const bytes = Buffer.allocUnsafe(Math.max(0, Math.min(Math.max(length, BLOCK_BYTES), this.size - position)));
    const got = bytes.length ? readSync(this.fd, bytes, 0, bytes.length, position) : 0;
    if (got < length) throw new Error('unexpected EOF');
    this.#block = { start: position, bytes: bytes.subarray(0, got) };
    return bytes.subarray(0, length);
  }

  override read(buffer: Buffer, offset: number, length: number, position: number, callback: (err: Error | null) => void): void {
    try {
      this.#bytes(position, length).copy(buffer, offset);
      // yauzl's callback takes the count read too (its types leave it out) and checks it.
      setImmediate(callback as (err: Error | null, bytesRead: number) => void, null, length);
    } catch (err) {
      setImmediate(callback, err as Error);
    }
  }

  override _readStreamForRange(start: number, end: number): Readable {
    return createReadStream('', { fd: this.fd, start, end: end - 1, autoClose: false });
  }

  #closed = false;
  override close(callback: (err: Error | null) => void): void {
    try {
      if (!this.#closed) closeSync(this.fd);
      this.#closed = true;
      setImmediate(callback, null);
    } catch (err) {
      setImmediate(callback, err as Error);
    }
  }
}
const BLOCK_BYTES = MiB;

function openZip(zipPath: string): Promise<yauzl.ZipFile> {
  const fd = openSync(zipPath, 'r');
  let size: number;
  try {
    size = fstatSync(fd).size;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
  const reader = new BlockReader(fd, size);
  return new Promise((resolve, reject) =>
    yauzl.fromRandomAccessReader(
      reader,
      size,
      { lazyEntries: true, autoClose: true, decodeStrings: true, validateEntrySizes: true, strictFileNames: false },
      (err, zip) => {
        if (err) reader.close(() => reject(err));
        else resolve(zip);
      },
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
  localHeader: number;
  compressedSize: number;
  size: number;
  method: number;
}

/** The archive's entries from its central directory (yauzl: names checked, sizes and limits checked before a byte is inflated). */
async function zipEntries(zipPath: string, zipName: string, limits: DicomLimits, count: Counter): Promise<ZipEntryJob[]> {
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(zipPath);
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
        // Where the directory says the entry's data lies must be inside the archive: a forged
        // compressed size must not size a read (input-file.ts) beyond the file.
        if (entry.relativeOffsetOfLocalHeader + 30 + entry.compressedSize > zip.fileSize)
          throw unprocessable(`${zipName}: not a readable zip (${name} runs past the end of the archive)`, { field: 'files' });
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

/**
 * The CPU task: a zip's directory read and checked (names, limits, the ratio cap, encryption;
 * the counts so far carried in and out). Nothing is inflated here: each entry becomes an input
 * file, inflated later (for an upload: once, into memory the pool's threads share, inflateInPool in
 * input-file.ts; for a local folder: where it is read), never past its declared size. Unpacking to disk first cost more than a third of dcm2niix's own time
 * on a 547-slice series, on the import's critical path.
 */
export async function zipDirectory(input: {
  zipPath: string;
  zipName: string;
  limits: DicomLimits;
  counted: { files: number; bytes: number };
}): Promise<{ files: InputFile[]; counted: { files: number; bytes: number } }> {
  const count = Object.assign(new Counter(input.limits), input.counted);
  const entries = await zipEntries(input.zipPath, input.zipName, input.limits, count);
  const files = entries.map(({ name, ...entry }) => ({ path: input.zipPath, name, entry: { zipName: input.zipName, ...entry } }));
  return { files, counted: { files: count.files, bytes: count.bytes } };
}
const zipDirectoryTask = cpuTask<Parameters<typeof zipDirectory>[0], Awaited<ReturnType<typeof zipDirectory>>>(
  import.meta.url,
  'zipDirectory',
);

/**
 * The DICOM files among the inputs (a zip's entries all listed, to be read from it), and what
 * was skipped. Throws a 413/422 naming the limit or the file.
 */
export async function gatherDicomFiles(cpu: CpuPool, inputs: InputFile[], limits: DicomLimits): Promise<Gathered> {
  const out: Gathered = { files: [], skipped: [] };
  const count = new Counter(limits);
  for (const input of inputs) {
    const name = displayName(input.name);
    const h = await head(input.path, 132);
    if (isZip(h)) {
      const zip = await cpu.run(zipDirectoryTask, {
        zipPath: input.path,
        zipName: name,
        limits,
        counted: { files: count.files, bytes: count.bytes },
      });
      Object.assign(count, zip.counted);
      out.files.push(...zip.files);
      continue;
    }
    count.add(name, (await stat(input.path)).size);
    if (isDicom(h)) out.files.push({ path: input.path, name });
    else out.skipped.push({ file: name, reason: 'not DICOM (no DICM marker at byte 128)' });
  }
  return out;
}
