import { forbidden, notFound, systemErrorPhrase, unavailable } from '../errors.js';
import type { Kysely } from 'kysely';
import type { CaseDetail, CaseSummary, VolumeDescriptor, VolumeRole } from '../../shared/cases.js';
import type { AdcUnit, Affine, DatatypeName } from '../../shared/nifti.js';
import {
  type Viewer,
  caseVolumes,
  deleteCaseRow,
  deleteVolumeIfUnreferenced,
  findUnreferencedVolumes,
  lockVolumeHashes,
  findCase,
  insertCase,
  insertVolume,
  knownShas,
} from '../db/cases.js';
import type { CaseRow, CaseSource, Database, VolumeRow } from '../db/tables.js';
import type { VolumeSigner } from '../volumes/signing.js';
import { type VolumeStore, sha256Hex } from '../volumes/store.js';
import type { PreparedVolume } from './prepare.js';

type Db = Kysely<Database>;

export function toSummary(row: CaseRow & { roles?: VolumeRole[] }, viewer: Viewer): CaseSummary {
  return {
    id: row.id,
    name: row.name,
    source: row.source,
    subjectId: row.subject_id,
    demo: row.owner_id === null,
    owned: viewer.userId !== null && row.owner_id === viewer.userId,
    roles: row.roles ?? [],
    createdAt: new Date(row.created_at).toISOString(),
  };
}

/** The public URL of a signed volume link; the file name at the end tells viewers the format. */
export function volumeUrl(baseUrl: string, token: string, role: string): string {
  return `${baseUrl.replace(/\/$/, '')}/files/v/${token}/${role}.nii.gz`;
}

export interface VolumeLinks {
  signer: VolumeSigner;
  baseUrl: string;
}

/** A file name safe in a URL path and a Content-Disposition header. */
export function safeFileName(name: string): string {
  return (
    name
      .replace(/[^A-Za-z0-9._-]+/g, '_')
      .replace(/^[._]+/, '')
      .slice(0, 120) || 'volume'
  );
}

/**
 * A stored volume as the API returns it, with a fresh signed URL ending in `<fileName>.nii.gz`,
 * and a download link named `<downloadName>.nii.gz`.
 */
export function toVolumeDescriptor(
  v: VolumeRow,
  role: VolumeRole,
  links: VolumeLinks,
  fileName: string = role,
  downloadName: string = fileName,
): VolumeDescriptor {
  const token = links.signer.sign(v.id);
  return {
    id: v.id,
    role,
    sha256: v.sha256,
    bytes: Number(v.bytes),
    dims: v.dims,
    voxelSizeMm: v.voxel_size_mm,
    datatype: v.datatype as DatatypeName,
    affine: v.affine as Affine,
    frames: v.frames,
    adcUnit: (v.adc_unit as AdcUnit | null) ?? null,
    url: volumeUrl(links.baseUrl, token, fileName),
    downloadUrl: `${volumeUrl(links.baseUrl, token, safeFileName(downloadName))}?download=1`,
  };
}

export async function getCaseDetail(db: Db, viewer: Viewer, id: string, links: VolumeLinks): Promise<CaseDetail> {
  const row = await findCase(db, viewer, id);
  if (!row) throw notFound('No such case');
  const volumes = await caseVolumes(db, id);
  const descriptors = volumes.map((v) => toVolumeDescriptor(v, v.role, links));
  return { ...toSummary({ ...row, roles: volumes.map((v) => v.role) }, viewer), volumes: descriptors };
}

/**
 * Creates a case from checked volumes, all or nothing: files are written first (content-
 * addressed, atomically), then every row in one transaction; if anything fails, the files this
 * call created and nothing else references are removed, and no row remains.
 */
export async function createCase(
  db: Db,
  store: VolumeStore,
  meta: { ownerId: string | null; name: string; source: CaseSource; subjectId?: string | null },
  volumes: PreparedVolume[],
): Promise<string> {
  return withStoredVolumes(db, store, volumes, async (trx, volumeIds) =>
    insertCase(
      trx,
      { ...meta, subjectId: meta.subjectId ?? null },
      volumes.map((v, i) => ({ role: v.role, volumeId: volumeIds[i]! })),
    ),
  );
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
  volumes: Pick<PreparedVolume, 'stored' | 'facts' | 'sha256'>[],
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
    // The disk, not the request, is the problem: say so (without paths) and when to come back.
    const phrase = systemErrorPhrase(err);
    if (phrase) throw unavailable(`The files could not be stored: ${phrase}; try again later`, 60);
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
  volumes: Pick<PreparedVolume, 'stored' | 'facts' | 'sha256'>[],
): Promise<{ ids: string[]; created: string[] }> {
  const shas = volumes.map((v) => v.sha256 ?? sha256Hex(v.stored));
  await lockVolumeHashes(trx, shas);
  const created: string[] = [];
  try {
    const ids: string[] = [];
    for (const [i, v] of volumes.entries()) {
      const put = await store.put(v.stored, shas[i]);
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

export async function deleteCase(db: Db, store: VolumeStore, viewer: Viewer, id: string): Promise<void> {
  const row = await findCase(db, viewer, id);
  if (!row) throw notFound('No such case');
  if (!viewer.admin && row.owner_id !== viewer.userId) {
    throw forbidden('Only an administrator can delete a shared case');
  }
  // Only this case's volumes (and its jobs' masks) can have become unreferenced: collect those,
  // not the whole store.
  const used = await deleteCaseRow(db, id);
  await removeIfUnreferenced(db, store, await findUnreferencedVolumes(db, { ids: used }));
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
