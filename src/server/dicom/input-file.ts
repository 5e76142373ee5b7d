import { readFileSync } from 'node:fs';
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

/** One entry's bytes, inflated: never past its declared size (a bomb is refused without inflating it), nor short of it. */
export function inflateEntry(zip: Buffer, name: string, e: ZipEntryRef): Buffer {
  const unreadable = (why: string) => unprocessable(`${e.zipName}: not a readable zip (${why})`, { field: 'files' });
  if (e.localHeader + 30 > zip.length || zip.readUInt32LE(e.localHeader) !== 0x04034b50)
    throw unreadable(`invalid local file header of ${name}`);
  const at = e.localHeader + 30 + zip.readUInt16LE(e.localHeader + 26) + zip.readUInt16LE(e.localHeader + 28);
  if (at + e.compressedSize > zip.length) throw unreadable(`${name} is cut short`);
  const compressed = zip.subarray(at, at + e.compressedSize);
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
 * Reads input files in a thread: from disk, or inflated from their zip (each archive read once
 * per reader and kept while it lives: one task's reads).
 */
export function inputReader(): (f: InputFile) => Buffer {
  const zips = new Map<string, Buffer>();
  return (f) => {
    if (!f.entry) return readFileSync(f.path);
    let zip = zips.get(f.path);
    if (!zip) zips.set(f.path, (zip = readFileSync(f.path)));
    return inflateEntry(zip, f.name, f.entry);
  };
}
