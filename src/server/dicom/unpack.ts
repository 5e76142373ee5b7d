import { createWriteStream } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import yauzl from 'yauzl';
import { MiB } from '../../shared/units.js';
import { tooLarge, unprocessable } from '../errors.js';
import type { DicomLimits } from './limits.js';
import type { InputFile } from './scan.js';

/**
 * Gathers the DICOM files of an import from what was sent — loose files, or `.zip` archives —
 * into a spool folder, within limits: how many files, how many bytes in all and per file. Zips
 * are read with yauzl (its central directory first, entries streamed to disk one at a time, so
 * memory stays flat whatever the archive's size): entry names that climb out of the archive
 * (`../`) or are absolute are refused, never used as paths (entries are written under
 * server-made names); a zip bomb is stopped by the declared sizes before a byte is inflated
 * (limits and a compression-ratio cap) and by the actual sizes while inflating (yauzl checks
 * them against the declared ones, and so do we). Files without the `DICM` marker at byte 128
 * are skipped and listed.
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

function openZip(file: string): Promise<yauzl.ZipFile> {
  return new Promise((resolve, reject) =>
    yauzl.open(
      file,
      { lazyEntries: true, autoClose: true, decodeStrings: true, validateEntrySizes: true, strictFileNames: false },
      (err, zip) => (err ? reject(err) : resolve(zip)),
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

/** Entries inflated at once: the work is I/O and zlib on libuv's threads, so a few in flight hide each one's round trips. */
const UNZIP_CONCURRENCY = 8;

async function unzip(zipPath: string, zipName: string, dir: string, limits: DicomLimits, count: Counter, out: Gathered): Promise<void> {
  let zip: yauzl.ZipFile;
  try {
    zip = await openZip(zipPath);
  } catch (err) {
    throw zipProblem(zipName, err as Error);
  }
  await mkdir(dir, { recursive: true });
  // Results by entry, so the files keep the archive's order whatever finishes first.
  const results: ({ file: InputFile } | { skip: Gathered['skipped'][number] } | undefined)[] = [];
  await new Promise<void>((resolve, reject) => {
    let failed = false;
    let ended = false;
    let active = 0;
    let waiting = false; // the next entry is asked for once a slot frees
    const fail = (err: unknown) => {
      if (failed) return;
      failed = true;
      zip.close();
      reject(err);
    };
    const settle = () => {
      if (failed) return;
      if (ended && active === 0) resolve();
      else if (waiting && active < UNZIP_CONCURRENCY) {
        waiting = false;
        zip.readEntry();
      }
    };
    zip.on('error', (err: Error) => fail(zipProblem(zipName, err)));
    zip.on('end', () => {
      ended = true;
      settle();
    });
    zip.on('entry', (entry: yauzl.Entry) => {
      if (failed) return;
      if (entry.fileName.endsWith('/')) return zip.readEntry();
      const n = results.length;
      results.push(undefined);
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
      } catch (err) {
        return fail(err);
      }
      active++;
      void (async () => {
        const target = path.join(dir, String(n));
        const stream = await new Promise<NodeJS.ReadableStream>((res, rej) =>
          zip.openReadStream(entry, (e, s) => (e ? rej(zipProblem(zipName, e)) : res(s))),
        );
        let actual = 0;
        // The first bytes, kept on the way past: the DICM marker is judged without reading the file back.
        const head: Buffer[] = [];
        const guard = new Transform({
          transform(chunk: Buffer, _enc, cb) {
            if (actual < 132) head.push(chunk.subarray(0, 132 - actual));
            actual += chunk.length;
            if (actual > declared)
              cb(unprocessable(`${name} inflates past its declared ${declared} bytes: refused as a zip bomb`, { field: 'files' }));
            else cb(null, chunk);
          },
        });
        try {
          await pipeline(stream, guard, createWriteStream(target));
        } catch (err) {
          throw err instanceof Error && 'kind' in err ? err : zipProblem(zipName, err as Error);
        }
        const h = Buffer.concat(head);
        results[n] = isDicom(h)
          ? { file: { path: target, name } }
          : {
              skip: { file: name, reason: isZip(h) ? 'a zip inside the zip (unpack it first)' : 'not DICOM (no DICM marker at byte 128)' },
            };
        active--;
        settle();
      })().catch(fail);
      if (active < UNZIP_CONCURRENCY) zip.readEntry();
      else waiting = true;
    });
    zip.readEntry();
  });
  for (const r of results) {
    if (r && 'file' in r) out.files.push(r.file);
    else if (r) out.skipped.push(r.skip);
  }
}

/** The DICOM files among the inputs (zips unpacked under `workDir`), and what was skipped. Throws a 413/422 naming the limit or the file. */
export async function gatherDicomFiles(inputs: InputFile[], workDir: string, limits: DicomLimits): Promise<Gathered> {
  const out: Gathered = { files: [], skipped: [] };
  const count = new Counter(limits);
  for (const [i, input] of inputs.entries()) {
    const name = displayName(input.name);
    const h = await head(input.path, 132);
    if (isZip(h)) {
      await unzip(input.path, name, path.join(workDir, `zip-${i}`), limits, count, out);
      continue;
    }
    count.add(name, (await stat(input.path)).size);
    if (isDicom(h)) out.files.push({ path: input.path, name });
    else out.skipped.push({ file: name, reason: 'not DICOM (no DICM marker at byte 128)' });
  }
  return out;
}
