import { closeSync, openSync, readFileSync, readSync } from 'node:fs';
import { inflateRawSync } from 'node:zlib';
import { unprocessable } from '../errors.js';

/**
 * A file of a DICOM import: a file on disk, or an entry of an uploaded zip that is read where it
 * is needed (the header scan and dcm2niix each inflate it in their own pool thread, straight
 * from the archive: nothing is unpacked to disk).
 */
export interface InputFile {
  /** The file on disk, or the zip the entry is in. */
  path: string;
  /** The name it had (for messages only; never a path we open). */
  name: string;
  /** Set for a zip entry: where it is in the archive (from the central directory, checked by unpack.ts). */
  entry?: ZipEntryRef;
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

/**
 * One entry's bytes, read from the archive where its directory says it is and inflated: never
 * past its declared size (a bomb is refused without inflating it), nor short of it. Positioned
 * reads of this entry only: a thread holds one entry at a time, whatever the archive's size.
 */
export function inflateEntry(zipPath: string, name: string, e: ZipEntryRef): Buffer {
  const unreadable = (why: string) => unprocessable(`${e.zipName}: not a readable zip (${why})`, { field: 'files' });
  const fd = openSync(zipPath, 'r');
  let compressed: Buffer;
  try {
    const header = Buffer.alloc(30);
    if (readSync(fd, header, 0, 30, e.localHeader) !== 30 || header.readUInt32LE(0) !== 0x04034b50)
      throw unreadable(`invalid local file header of ${name}`);
    const at = e.localHeader + 30 + header.readUInt16LE(26) + header.readUInt16LE(28);
    compressed = Buffer.allocUnsafe(e.compressedSize);
    if (e.compressedSize > 0 && readSync(fd, compressed, 0, e.compressedSize, at) !== e.compressedSize)
      throw unreadable(`${name} is cut short`);
  } finally {
    closeSync(fd);
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

/** Reads an input file in a thread: from disk, or a zip entry inflated from its archive. */
export function readInput(f: InputFile): Buffer {
  return f.entry ? inflateEntry(f.path, f.name, f.entry) : readFileSync(f.path);
}
