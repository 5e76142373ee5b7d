import { randomBytes, webcrypto } from 'node:crypto';
import { mkdir, readFile, readdir, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Readable } from 'node:stream';
import type { VolumeStore } from './store.js';

const SHA = /^[0-9a-f]{64}$/;
/** A temporary file older than this is a fill cut short (a crash), not a sibling process's write in progress. */
const STALE_TEMP_MS = 10 * 60_000;

/** SHA-256 off the event loop: WebCrypto's digest runs on libuv's thread pool. */
async function digestHex(bytes: Uint8Array): Promise<string> {
  return Buffer.from(await webcrypto.subtle.digest('SHA-256', bytes)).toString('hex');
}

export interface VolumeCacheStats {
  hits: number;
  misses: number;
  /** Cached files whose bytes no longer hashed to their name: removed and fetched again. */
  corrupt: number;
  evicted: number;
}

/**
 * A worker-local read-through cache of volumes in front of a remote store (S3): volumes are
 * content-addressed, so a copy at `<dir>/<ab>/<sha256>.nii.gz` can never be stale. A read of a
 * cached volume never touches the store; a miss reads the store and, behind the caller's back
 * (a copy of the bytes), checks they hash to their address and writes them atomically (a temp file, then a rename: a sibling process sharing the
 * folder sees no file or the whole file). Every cached read is hashed again (off the event loop), so
 * a file damaged on disk is dropped and fetched again, never returned. Bounded: past `maxBytes`
 * the least recently used copies (by mtime, touched on each hit) go, so a volume the store has
 * deleted stays at most until it is evicted. Everything else (puts, ranged streams, sizes, the
 * collector's listing and deletes) goes to the store: the store, not the cache, is the truth.
 */
export class CachedVolumeStore implements VolumeStore {
  readonly stats: VolumeCacheStats = { hits: 0, misses: 0, corrupt: 0, evicted: 0 };
  /** Bytes this process believes are cached (from the boot scan, its fills and evictions). */
  #bytes = 0;
  #ready: Promise<void>;
  readonly #filling = new Map<string, Promise<Buffer>>();
  readonly #background = new Set<Promise<void>>();
  readonly check?: () => Promise<void>;
  readonly presignedGet?: VolumeStore['presignedGet'];

  constructor(
    readonly inner: VolumeStore,
    readonly dir: string,
    readonly maxBytes: number,
    readonly options: { onError?: (err: unknown, what: string) => void } = {},
  ) {
    if (inner.check) this.check = () => inner.check!();
    if (inner.presignedGet) this.presignedGet = (...args) => inner.presignedGet!(...args);
    this.#ready = this.#boot();
  }

  pathOf(sha256: string): string {
    if (!SHA.test(sha256)) throw new Error('invalid volume address');
    return path.join(this.dir, sha256.slice(0, 2), `${sha256}.nii.gz`);
  }

  /** Removes fills a crash cut short and counts what is cached, then trims to the bound. */
  async #boot(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const files = await this.#scan(STALE_TEMP_MS);
    this.#bytes = files.reduce((n, f) => n + f.size, 0);
    if (this.#bytes > this.maxBytes) await this.#evict(files);
  }

  /** The cached files, oldest use first; temporaries older than `staleMs` are removed on the way. */
  async #scan(staleMs: number, now = Date.now()): Promise<{ file: string; size: number; used: number }[]> {
    const out: { file: string; size: number; used: number }[] = [];
    for (const d of await readdir(this.dir).catch(() => [] as string[])) {
      const full = path.join(this.dir, d);
      if (d.startsWith('.tmp-')) {
        const s = await stat(full).catch(() => undefined);
        if (s && now - s.mtimeMs > staleMs) await rm(full, { force: true });
        continue;
      }
      if (!/^[0-9a-f]{2}$/.test(d)) continue;
      for (const f of await readdir(full).catch(() => [] as string[])) {
        if (!/^[0-9a-f]{64}\.nii\.gz$/.test(f)) continue;
        const s = await stat(path.join(full, f)).catch(() => undefined);
        if (s) out.push({ file: path.join(full, f), size: s.size, used: s.mtimeMs });
      }
    }
    return out.sort((a, b) => a.used - b.used);
  }

  /** Deletes the least recently used copies until the cache is within its bound. */
  async #evict(files: { file: string; size: number }[]): Promise<void> {
    let total = files.reduce((n, f) => n + f.size, 0);
    for (const f of files) {
      if (total <= this.maxBytes) break;
      await rm(f.file, { force: true });
      total -= f.size;
      this.stats.evicted++;
    }
    this.#bytes = total;
  }

  /** Bytes in the cache folder now (a scan: counts what sibling processes wrote too). */
  async cachedBytes(): Promise<number> {
    await this.#ready;
    return (await this.#scan(Infinity)).reduce((n, f) => n + f.size, 0);
  }

  async read(sha256: string): Promise<Buffer> {
    const file = this.pathOf(sha256);
    await this.#ready;
    const cached = await readFile(file).catch(() => undefined);
    if (cached) {
      if ((await digestHex(cached)) === sha256) {
        this.stats.hits++;
        const now = new Date();
        await utimes(file, now, now).catch(() => {}); // its last use, for the LRU bound
        return cached;
      }
      this.stats.corrupt++;
      await rm(file, { force: true });
      this.#bytes = Math.max(0, this.#bytes - cached.length);
    }
    this.stats.misses++;
    // Reads of one volume at once (two jobs on one case) fetch it once. Each caller gets bytes of
    // its own: the worker moves its inputs to a CPU thread (detaching them), so none is shared.
    const joining = this.#filling.get(sha256);
    if (joining) return Buffer.from(await joining);
    const fetched = this.inner.read(sha256);
    const copy = fetched.then((b) => Buffer.from(b));
    copy.catch(() => {}); // the store's error reaches the caller through `fetched`
    this.#filling.set(sha256, copy);
    // The copy is checked and written behind the caller's back: a cold read costs what a read
    // from the store costs, not the hash and the write too. Only bytes that are the volume are kept.
    const fill: Promise<void> = copy
      .then(
        async (c) => {
          if (c.length <= this.maxBytes && (await digestHex(c)) === sha256) await this.#fill(file, c);
        },
        () => {},
      )
      .catch((err: unknown) => this.options.onError?.(err, 'filling the volume cache'))
      .finally(() => {
        this.#filling.delete(sha256);
        this.#background.delete(fill);
      });
    this.#background.add(fill);
    return fetched;
  }

  /** Resolves once the fills under way are written (tests; a clean shutdown). */
  async idle(): Promise<void> {
    while (this.#background.size > 0) await Promise.all([...this.#background]);
  }

  async #fill(file: string, bytes: Buffer): Promise<void> {
    await mkdir(path.dirname(file), { recursive: true });
    const tmp = path.join(this.dir, `.tmp-${randomBytes(8).toString('hex')}`);
    try {
      await writeFile(tmp, bytes);
      await rename(tmp, file);
    } catch (err) {
      await rm(tmp, { force: true });
      throw err;
    }
    this.#bytes += bytes.length;
    if (this.#bytes > this.maxBytes) await this.#evict(await this.#scan(STALE_TEMP_MS));
  }

  put(bytes: Uint8Array, sha256?: string, hints?: { likelyAbsent?: boolean }) {
    return this.inner.put(bytes, sha256, hints);
  }

  stream(sha256: string, range?: { start: number; end: number }): Readable {
    return this.inner.stream(sha256, range);
  }

  size(sha256: string) {
    return this.inner.size(sha256);
  }

  /** Deleted in the store, and here; other processes' copies go by their own bound. */
  async remove(sha256: string): Promise<void> {
    await this.inner.remove(sha256);
    const file = this.pathOf(sha256);
    const s = await stat(file).catch(() => undefined);
    await rm(file, { force: true });
    if (s) this.#bytes = Math.max(0, this.#bytes - s.size);
  }

  list() {
    return this.inner.list();
  }

  removeStaleTemps(olderThanMs: number) {
    return this.inner.removeStaleTemps(olderThanMs);
  }
}
