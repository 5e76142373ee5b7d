import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { unprocessable } from '../errors.js';
import type { CpuPool } from '../workers/pool.js';
import { cpuTask } from '../workers/task.js';

/**
 * A file of a DICOM import: a file on disk, or an entry of an uploaded zip. Nothing is unpacked
 * to disk: an upload's entries are inflated once, in parallel across the pool's threads, into
 * memory the threads share (`inflated`, see inflateInPool), where the header scan and dcm2niix
 * both read them; an entry without `inflated` is inflated where it is read, straight from the archive.
 */
export interface InputFile {
  /** The file on disk, or the zip the entry is in. */
  path: string;
  /** The name it had (for messages only; never a path we open). */
  name: string;
  /** Set for a zip entry: where it is in the archive (from the central directory, checked by unpack.ts). */
  entry?: ZipEntryRef;
  /** Set for a zip entry already inflated: its bytes, in memory every thread shares (of an entry that is not DICOM, only its first 132). */
  inflated?: SharedBytes;
}

export interface SharedBytes {
  buffer: SharedArrayBuffer;
  offset: number;
  length: number;
}

export interface ZipEntryRef {
  /** The archive's name, for messages. */
  zipName: string;
  localHeader: number;
  compressedSize: number;
  size: number;
  /** 0 stored, 8 deflated (unpack.ts refuses anything else). */
  method: number;
}

export const isDicom = (h: Uint8Array) => h.length >= 132 && h[128] === 0x44 && h[129] === 0x49 && h[130] === 0x43 && h[131] === 0x4d;
export const isZip = (h: Uint8Array) =>
  h.length >= 4 && h[0] === 0x50 && h[1] === 0x4b && ((h[2] === 3 && h[3] === 4) || (h[2] === 5 && h[3] === 6));

/** Why a zip entry is not a DICOM file, or null when it is one. */
export function notDicom(bytes: Uint8Array): string | null {
  if (isDicom(bytes)) return null;
  return isZip(bytes) ? 'a zip inside the zip (unpack it first)' : 'not DICOM (no DICM marker at byte 128)';
}

/** An input's identity: its path, and for a zip entry where it is in the archive (every entry shares the zip's path). */
export const inputKey = (f: InputFile) => (f.entry ? `${f.path}#${f.entry.localHeader}` : f.path);

/** Read with an entry's data at once: its local header's name and extra field fit in this (else a second read). */
const HEADER_SLACK = 1024;

/**
 * One entry's bytes, read from the archive (open as `fd`) where its directory says it is and
 * inflated: never past its declared size (a bomb is refused without inflating it), nor short of
 * it. One positioned read of this entry only (its local header and data together): a thread
 * holds one entry at a time, whatever the archive's size.
 */
function inflateEntryAt(fd: number, name: string, e: ZipEntryRef): Buffer {
  const unreadable = (why: string) => unprocessable(`${e.zipName}: not a readable zip (${why})`, { field: 'files' });
  const read = Buffer.allocUnsafe(30 + HEADER_SLACK + e.compressedSize);
  const got = readSync(fd, read, 0, read.length, e.localHeader);
  if (got < 30 || read.readUInt32LE(0) !== 0x04034b50) throw unreadable(`invalid local file header of ${name}`);
  const skip = 30 + read.readUInt16LE(26) + read.readUInt16LE(28);
  let compressed: Buffer;
  if (skip + e.compressedSize <= got) compressed = read.subarray(skip, skip + e.compressedSize);
  else if (skip <= 30 + HEADER_SLACK)
    throw unreadable(`${name} is cut short`); // the archive ended first
  else {
    compressed = Buffer.allocUnsafe(e.compressedSize);
    if (e.compressedSize > 0 && readSync(fd, compressed, 0, e.compressedSize, e.localHeader + skip) !== e.compressedSize)
      throw unreadable(`${name} is cut short`);
  }
  let data: Buffer;
  if (e.method === 0) data = compressed;
  else {
    try {
      data = inflateRawSync(compressed, { maxOutputLength: Math.max(1, e.size) });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw unprocessable(`${name} inflates past its declared ${e.size} bytes: refused as a zip bomb`, { field: 'files' });
      }
      throw unreadable(`${name}: ${(err as Error).message}`);
    }
  }
  if (data.length !== e.size) {
    throw unprocessable(
      `${e.zipName}: an entry inflates to a different size than it declares (${name}: ${data.length} bytes, ${e.size} declared); the zip is refused as corrupt or a zip bomb`,
      { field: 'files' },
    );
  }
  return data;
}

/**
 * Reads a task's inputs one after another, keeping each archive open between its entries: one
 * read per entry instead of an open, two reads and a close (#26: 547 entries per import). An entry
 * already inflated (`inflated`) is a view of that memory, no copy. `close` when done.
 */
export function inputReader(): { read(f: InputFile): Buffer; close(): void } {
  const open = new Map<string, number>();
  return {
    read(f) {
      if (f.inflated) return Buffer.from(f.inflated.buffer, f.inflated.offset, f.inflated.length);
      if (!f.entry) return readFileSync(f.path);
      let fd = open.get(f.path);
      if (fd === undefined) open.set(f.path, (fd = openSync(f.path, 'r')));
      return inflateEntryAt(fd, f.name, f.entry);
    },
    close() {
      for (const fd of open.values()) closeSync(fd);
      open.clear();
    },
  };
}

/** What is kept of an entry that is not DICOM: the bytes up to its missing DICM marker (all that notDicom and dcm2niix's check read). */
const NOT_DICOM_KEPT = 132;

/**
 * The CPU task: some zip entries inflated (each checked as inputReader checks it) into one shared
 * buffer, at `spans` ([offset, length] per entry). An entry that is not DICOM (a PDF, a video, a
 * nested zip) is inflated whole all the same — to check it — but only its first bytes are kept:
 * the scan lists it as skipped and dcm2niix leaves it out. The buffer is sized for every declared
 * byte; what is never written is never touched (zero pages the system has not handed out).
 */
export function inflateEntries(input: { files: InputFile[] }): { buffer: SharedArrayBuffer; spans: [number, number][] } {
  const buffer = new SharedArrayBuffer(input.files.reduce((n, f) => n + f.entry!.size, 0));
  const into = new Uint8Array(buffer);
  const spans: [number, number][] = [];
  let at = 0;
  const reader = inputReader();
  try {
    for (const f of input.files) {
      const bytes = reader.read(f);
      const kept = isDicom(bytes) ? bytes : bytes.subarray(0, NOT_DICOM_KEPT);
      into.set(kept, at);
      spans.push([at, kept.length]);
      at += kept.length;
    }
  } finally {
    reader.close();
  }
  return { buffer, spans };
}
const inflateEntriesTask = cpuTask<{ files: InputFile[] }, ReturnType<typeof inflateEntries>>(import.meta.url, 'inflateEntries');

/** The most bytes one part of inflateInPool holds in one buffer (Node 20's Buffer and Uint8Array stop at 4 GiB). */
export const MAX_PART_BYTES = 2 ** 30;

/**
 * An upload's zip entries inflated once, before anything reads them, in as many parts as the pool
 * has threads (of about equal bytes): the header scan and dcm2niix then read the same shared bytes,
 * where each used to inflate every entry itself (#26: the inflating was the part of dcm2niix's
 * task before its run). Files on disk are left as they are. An entry that does not inflate to its
 * declared size refuses the upload here, with inputReader's message.
 */
export async function inflateInPool(cpu: CpuPool, files: InputFile[]): Promise<InputFile[]> {
  const entries = files.filter((f) => f.entry && !f.inflated);
  if (entries.length === 0) return files;
  const total = entries.reduce((n, f) => n + f.entry!.size, 0);
  // One part per thread, more if a part would pass MAX_PART_BYTES (one buffer each; an entry
  // larger than that, if DICOM_MAX_FILE_MB allows one, is a part of its own).
  const count = Math.max(cpu.size, Math.ceil(total / MAX_PART_BYTES));
  const parts: InputFile[][] = [[]];
  let filled = 0;
  for (const f of entries) {
    if (filled >= (total * parts.length) / count && parts.length < count) parts.push([]);
    parts.at(-1)!.push(f);
    filled += f.entry!.size;
  }
  const done = await Promise.all(parts.map((part) => cpu.run(inflateEntriesTask, { files: part })));
  const inflated = new Map<InputFile, SharedBytes>();
  parts.forEach((part, p) =>
    part.forEach((f, i) => {
      const [offset, length] = done[p]!.spans[i]!;
      inflated.set(f, { buffer: done[p]!.buffer, offset, length });
    }),
  );
  return files.map((f) => (inflated.has(f) ? { ...f, inflated: inflated.get(f)! } : f));
}
