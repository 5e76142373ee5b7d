import type { Kysely } from 'kysely';
import type { Database } from '../db/tables.js';
import { deleteVolumeIfUnreferenced, findUnreferencedVolumes, insertVolume, knownShas, lockVolumeHashes } from '../db/volumes.js';
import {
  DomainError,
  STORAGE_RETRY_AFTER_S,
  isStorageUnavailable,
  storageMisconfiguration,
  storageMisconfiguredMessage,
  systemErrorPhrase,
  unavailable,
} from '../errors.js';
import type { VolumeFacts } from '../../shared/nifti.js';
import { type VolumeStore, sha256Hex } from './store.js';

// The volumes domain: what cases, jobs and masks call to store and release volumes. Files and
// rows never drift: every "store file + insert row" and "delete row + remove file" runs under a
// lock on the content hash (db/volumes.ts lockVolumeHashes).

type Db = Kysely<Database>;

/** A checked volume ready to store: its bytes as stored, their hash (when computed already) and header facts. */
export interface VolumeToStore {
  stored: Buffer;
  sha256?: string | undefined;
  facts: VolumeFacts;
}

/**
 * Stores checked volumes, all or nothing: under a lock on their hashes (no collector or other
 * writer of the same bytes in between), files first (content-addressed, atomic), then their volume
 * rows and whatever `commit` writes, in one transaction. If anything fails, the files this call
 * created are removed while the lock is still held, and no row remains.
 */
export async function withStoredVolumes<T>(
  db: Db,
  store: VolumeStore,
  volumes: VolumeToStore[],
  commit: (trx: Kysely<Database>, volumeIds: string[]) => Promise<T>,
): Promise<T> {
  try {
    return await db.transaction().execute(async (trx) => {
      const { ids, created } = await storeVolumesIn(trx, store, volumes);
      try {
        return await commit(trx, ids);
      } catch (err) {
        await removeFiles(store, created);
        throw err;
      }
    });
  } catch (err) {
    // The disk or the store, not the request, is the problem: say so (without paths) and when to
    // come back (a full disk takes a while; a store outage is usually a blip).
    const misconfigured = storageMisconfiguration(err);
    // The bucket is missing: an operator's fix, not a blip — 503 naming it, no Retry-After.
    if (misconfigured) throw new DomainError('unavailable', `The files could not be stored: ${storageMisconfiguredMessage(misconfigured)}`);
    const phrase = systemErrorPhrase(err);
    if (phrase)
      throw unavailable(
        `The files could not be stored: ${phrase}; try again later`,
        isStorageUnavailable(err) ? STORAGE_RETRY_AFTER_S : 60,
        (err as Error).message,
      );
    throw err;
  }
}

/**
 * Inside a transaction: locks the volumes' hashes, writes the files that are missing and inserts
 * (or finds) their rows. On a failure here the files it created are removed before it throws;
 * a caller whose later step fails removes `created` itself (still inside the transaction).
 */
export async function storeVolumesIn(
  trx: Kysely<Database>,
  store: VolumeStore,
  volumes: VolumeToStore[],
): Promise<{ ids: string[]; created: string[] }> {
  const shas = volumes.map((v) => v.sha256 ?? sha256Hex(v.stored));
  await lockVolumeHashes(trx, shas);
  // Under the locks, a hash without a row is (but for a crash's orphan) not stored: the store may
  // skip its look-up. A hash with a row keeps the look-up, which also heals a lost object.
  const known = await knownShas(trx, shas);
  const created: string[] = [];
  try {
    const ids: string[] = [];
    for (const [i, v] of volumes.entries()) {
      const put = await store.put(v.stored, shas[i], { likelyAbsent: !known.has(shas[i]!) });
      if (put.created) created.push(put.sha256);
      ids.push(
        await insertVolume(trx, {
          sha256: shas[i]!,
          bytes: v.stored.length,
          dims: v.facts.dims,
          voxelSizeMm: v.facts.voxelSizeMm,
          datatype: v.facts.datatype,
          affine: v.facts.affine,
          frames: v.facts.frames,
          adcUnit: v.facts.adcUnit ?? null,
        }),
      );
    }
    return { ids, created };
  } catch (err) {
    await removeFiles(store, created);
    throw err;
  }
}

async function removeFiles(store: VolumeStore, shas: string[]): Promise<void> {
  await Promise.all(shas.map((s) => store.remove(s).catch(() => {})));
}

/**
 * Removes each volume nothing references — its row, then its file — one hash at a time under the
 * hash's lock, checking again under the lock: a writer storing the same bytes meanwhile either
 * committed its reference first (the volume stays) or waits until this is done (and writes the
 * file again). Also removes a file that has no row at all. Returns the files removed.
 */
export async function removeIfUnreferenced(db: Db, store: VolumeStore, shas: string[]): Promise<number> {
  let removed = 0;
  for (const sha of shas) {
    const gone = await db.transaction().execute(async (trx) => {
      await lockVolumeHashes(trx, [sha]);
      await deleteVolumeIfUnreferenced(trx, sha);
      if ((await knownShas(trx, [sha])).has(sha)) return false;
      await store.remove(sha);
      return true;
    });
    if (gone) removed++;
  }
  return removed;
}

/**
 * Removes volumes nothing references: their rows (older than ten minutes, so a volume whose case
 * or job is still being written is left alone), then their files, then stray files with no row at
 * all that are older than an hour (left by a crash between writing a file and committing its row).
 * Runs in the scheduled retention clean-up (jobs/retention.ts).
 */
export async function collectVolumes(db: Db, store: VolumeStore): Promise<number> {
  const shas = await findUnreferencedVolumes(db, { olderThan: new Date(Date.now() - 10 * 60_000) });
  return (await removeIfUnreferenced(db, store, shas)) + (await collectOrphanFiles(db, store, 3_600_000));
}

/**
 * Files with no volume row and half-written temporaries, older than `olderThanMs` (0: all) — what
 * a crash between writing a file and committing its row leaves. At boot with the embedded
 * database (its lock makes this the only process) everything goes at once; on shared storage only
 * what is old enough that no live writer can still be about to commit it.
 */
export async function collectOrphanFiles(db: Db, store: VolumeStore, olderThanMs: number): Promise<number> {
  let removed = await store.removeStaleTemps(olderThanMs);
  const before = Date.now() - olderThanMs;
  const candidates: string[] = [];
  for await (const f of store.list()) if (olderThanMs === 0 || f.mtime.getTime() < before) candidates.push(f.sha256);
  const known = await knownShas(db, candidates);
  removed += await removeIfUnreferenced(
    db,
    store,
    candidates.filter((s) => !known.has(s)),
  );
  return removed;
}
