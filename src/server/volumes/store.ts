import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';

/**
 * Where volume bytes live, addressed by their sha256. A small interface so an object-store
 * backend can replace the filesystem; everything above it speaks only sha256.
 */
export interface VolumeStore {
  /**
   * Stores the bytes (atomically); `created` is false when identical bytes were already there.
   * `sha256`: the bytes' digest when the caller computed it already (off the event loop).
   * `likelyAbsent`: the caller holds the hash's lock and the database has no row for it, so the
   * bytes are almost surely not stored: a store whose look-up is a round trip (S3's HEAD) may skip
   * it and write at once (rewriting an orphan's identical bytes at worst, reported as created).
   */
  put(bytes: Uint8Array, sha256?: string, hints?: { likelyAbsent?: boolean }): Promise<{ sha256: string; created: boolean }>;
  read(sha256: string): Promise<Buffer>;
  /** A byte range [start, end] inclusive, or the whole file. */
  stream(sha256: string, range?: { start: number; end: number }): Readable;
  size(sha256: string): Promise<number | undefined>;
  remove(sha256: string): Promise<void>;
  /** Every stored object with its modification time (for collecting orphans). */
  list(): AsyncIterable<{ sha256: string; mtime: Date }>;
  /** Removes half-written temporary objects (a write cut by a crash) older than `olderThanMs` (0: all). */
  removeStaleTemps(olderThanMs: number): Promise<number>;
  /** Stores on another machine (S3): throws when they cannot be reached now (/readyz). */
  check?(): Promise<void>;
  /** Stores that can hand out their own short-lived GET links (S3: presigned), for STORAGE_SERVE=redirect. */
  presignedGet?(sha256: string, seconds: number, fileName: string, download: boolean): Promise<string>;
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex');
}

const SHA = /^[0-9a-f]{64}$/;

export class FsVolumeStore implements VolumeStore {
  constructor(readonly root: string) {}

  /** Paths are built only from a validated hex digest: nothing a user sends reaches the filesystem. */
  pathOf(sha256: string): string {
    if (!SHA.test(sha256)) throw new Error('invalid volume address');
    return path.join(this.root, sha256.slice(0, 2), `${sha256}.nii.gz`);
  }

  async put(bytes: Uint8Array, known?: string) {
    const sha256 = known ?? sha256Hex(bytes);
    const file = this.pathOf(sha256);
    if ((await this.size(sha256)) === bytes.length) return { sha256, created: false };
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = path.join(this.root, `.tmp-${randomBytes(8).toString('hex')}`);
    try {
      await writeFile(tmp, bytes);
      await rename(tmp, file); // atomic: readers see no file or the whole file
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    return { sha256, created: true };
  }

  read(sha256: string) {
    return readFile(this.pathOf(sha256));
  }

  stream(sha256: string, range?: { start: number; end: number }) {
    return createReadStream(this.pathOf(sha256), range ? { start: range.start, end: range.end } : {});
  }

  async size(sha256: string) {
    try {
      return (await stat(this.pathOf(sha256))).size;
    } catch {
      return undefined;
    }
  }

  async remove(sha256: string) {
    await rm(this.pathOf(sha256), { force: true });
  }

  async removeStaleTemps(olderThanMs: number, now = Date.now()) {
    let removed = 0;
    for (const f of await readdir(this.root).catch(() => [] as string[])) {
      if (!f.startsWith('.tmp-')) continue;
      const s = await stat(path.join(this.root, f)).catch(() => undefined);
      if (s && (olderThanMs === 0 || now - s.mtimeMs > olderThanMs)) {
        await rm(path.join(this.root, f), { force: true });
        removed++;
      }
    }
    return removed;
  }

  async *list() {
    let dirs: string[] = [];
    try {
      dirs = await readdir(this.root);
    } catch {
      return;
    }
    for (const d of dirs) {
      if (!/^[0-9a-f]{2}$/.test(d)) continue;
      for (const f of await readdir(path.join(this.root, d))) {
        const m = f.match(/^([0-9a-f]{64})\.nii\.gz$/);
        if (!m) continue;
        const s = await stat(path.join(this.root, d, f)).catch(() => undefined);
        if (s) yield { sha256: m[1]!, mtime: s.mtime };
      }
    }
  }
}
