import { existsSync } from 'node:fs';
import path from 'node:path';
import { ensureWritableDataDir } from './data-dir.js';
import { type OpenedEmbedded, openPglite } from './db/embedded.js';

/** The embedded database as the entry started opening it, before the environment was parsed. */
export interface EarlyEmbedded {
  /** The folder it opens (DATA_DIR, resolved). */
  readonly dataDir: string;
  readonly opening: Promise<OpenedEmbedded>;
}

/**
 * The server's entry calls this first, before it loads anything else (#29): on a warm restart
 * PGlite's open (≈ 0.7 s on its own thread) is the longest step, so it starts while Node is still
 * loading the server's modules — the environment's parser among them. It reads DATABASE_URL and
 * DATA_DIR as env.ts does for them (empty is unset; DATA_DIR defaults to ./data); the boot then
 * uses this open only if the parsed environment names the same folder and no PostgreSQL
 * (`takeEarlyEmbedded`), and closes it otherwise. Only a folder that already holds a database is
 * opened early (a warm restart, the case that is timed): a first start creates it after the
 * environment is checked, so a bad variable never leaves a half-created database behind.
 */
export function openEmbeddedEarly(given: Record<string, string | undefined> = process.env): EarlyEmbedded | undefined {
  if (given.DATABASE_URL) return undefined;
  const dataDir = path.resolve(given.DATA_DIR || './data');
  if (!existsSync(path.join(dataDir, 'pgdata', 'PG_VERSION'))) return undefined;
  const opening = (async () => openPglite(ensureWritableDataDir(dataDir)))();
  opening.catch(() => {}); // its failure is reported by the boot that takes it (or is moot)
  return { dataDir, opening };
}

/** The early open if it is the one this environment wants; else it is closed and undefined returned. */
export function takeEarlyEmbedded(
  early: EarlyEmbedded | undefined,
  env: { DATABASE_URL?: string | undefined; DATA_DIR: string },
): Promise<OpenedEmbedded> | undefined {
  if (!early) return undefined;
  if (!env.DATABASE_URL && path.resolve(env.DATA_DIR) === early.dataDir) return early.opening;
  void early.opening.then(
    (opened) => opened.pglite.close().finally(() => opened.release()),
    () => {},
  );
  return undefined;
}
