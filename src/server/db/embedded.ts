import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { BootError } from '../data-dir.js';
import { type DirectoryLock, lockDirectory } from './lock.js';

/** The embedded engine on DATA_DIR/pgdata, open, with its folder's lock held until `release`. */
export interface OpenedEmbedded {
  readonly pglite: PGlite;
  release(): void;
}

/**
 * Locks DATA_DIR/pgdata and opens PGlite on it. Kept apart from connect.ts (Kysely, pg) so the
 * server's entry can start this first and let the rest of its modules load meanwhile: most of
 * PGlite's start is WebAssembly compilation off the event loop (#29).
 */
export async function openPglite(dataDir: string): Promise<OpenedEmbedded> {
  const folder = path.join(path.resolve(dataDir), 'pgdata');
  const lock: DirectoryLock = lockDirectory(folder);
  try {
    mkdirSync(folder, { recursive: true });
    const pglite = await PGlite.create({ dataDir: folder });
    return { pglite, release: () => lock.release() };
  } catch (err) {
    lock.release();
    if (err instanceof BootError) throw err;
    throw new BootError(`cannot open the embedded database in ${folder}: ${(err as Error).message}`);
  }
}
