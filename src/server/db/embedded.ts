import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { BootError } from '../data-dir.js';
import { type DirectoryLock, lockDirectory } from './lock.js';
import { type EmbeddedEngine, PgliteThread } from './pglite-thread.js';

/** The embedded engine on DATA_DIR/pgdata, open, with its folder's lock held until `release`. */
export interface OpenedEmbedded {
  readonly pglite: EmbeddedEngine;
  release(): void;
}

/**
 * The embedded engine's buffer pool. PostgreSQL's default (128 MB) is laid out and zeroed inside
 * PGlite's WebAssembly memory at every start: measured here, 128 MB took 1,020–1,260 ms to open an
 * existing folder and 32 MB 680–810 ms (16 MB barely less again), with the same query times.
 * 32 MB holds an embedded deployment's whole database many times over (cases, jobs and sessions
 * are rows; volumes live in files), pages it evicts come back from the OS's cache, and the process
 * is ~100 MB smaller.
 */
const SHARED_BUFFERS = '32MB';

/**
 * Locks DATA_DIR/pgdata and opens PGlite on it, on its own thread (pglite-thread.ts). Kept apart
 * from connect.ts (Kysely, pg) so the server's entry can start this first and let the rest of its
 * modules load meanwhile, on the other core (#29).
 */
export async function openPglite(dataDir: string): Promise<OpenedEmbedded> {
  const folder = path.join(path.resolve(dataDir), 'pgdata');
  const lock: DirectoryLock = lockDirectory(folder);
  try {
    mkdirSync(folder, { recursive: true });
    const pglite = await PgliteThread.open(
      { dataDir: folder, moreStartParams: ['-c', `shared_buffers=${SHARED_BUFFERS}`] },
      // The database's thread died (PostgreSQL aborted, out of memory): every statement now fails,
      // so the process stops with one line, as it did when PGlite ran in it (a supervisor restarts it).
      (why) => {
        process.stderr.write(`strokeview: ${why.message}; the process stops\n`);
        process.exit(1);
      },
    );
    return { pglite, release: () => lock.release() };
  } catch (err) {
    lock.release();
    if (err instanceof BootError) throw err;
    throw new BootError(`cannot open the embedded database in ${folder}: ${(err as Error).message}`);
  }
}
