import type { z } from 'zod';
import type { Kysely } from 'kysely';
import type { CaseDetail, CaseSummary, VolumeRole, casePageSchema } from '../../shared/cases.js';
import { MiB } from '../../shared/units.js';
import { caseLimit, storedBytesLimit } from '../auth/quotas.js';
import type { AuthUser } from '../auth/service.js';
import { type Viewer, caseVolumes, countCases, deleteCaseRow, findCase, insertCase, listCases } from '../db/cases.js';
import { lockOwnerQuota, storedBytesOf } from '../db/owner-lock.js';
import { toPage } from '../db/paging.js';
import type { Env } from '../env.js';
import type { Logger } from '../logger.js';
import type { CpuPool } from '../workers/pool.js';
import type { CaseRow, CaseSource, Database } from '../db/tables.js';
import { findUnreferencedVolumes } from '../db/volumes.js';
import { caseDicomView } from '../db/dicom.js';
import { forbidden, notFound } from '../errors.js';
import { type VolumeLinks, toVolumeDescriptor } from '../volumes/descriptors.js';
import { removeIfUnreferenced, withStoredVolumes } from '../volumes/service.js';
import type { VolumeStore } from '../volumes/store.js';
import { type PreparedVolume, prepareCaseInPool } from './prepare.js';

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

/** A page of the cases a viewer may see, newest first. */
export async function listCasePage(
  db: Db,
  viewer: Viewer,
  opts: { search?: string | undefined; cursor?: string | undefined; limit: number },
): Promise<z.infer<typeof casePageSchema>> {
  const rows = await listCases(db, viewer, { ...opts, limit: opts.limit + 1 });
  const { page, nextCursor } = toPage(rows, opts.limit);
  return { items: page.map((r) => toSummary(r, viewer)), nextCursor };
}

export async function getCaseDetail(db: Db, viewer: Viewer, id: string, links: VolumeLinks): Promise<CaseDetail> {
  const row = await findCase(db, viewer, id);
  if (!row) throw notFound('No such case');
  const volumes = await caseVolumes(db, id);
  const descriptors = volumes.map((v) => toVolumeDescriptor(v, v.role, links));
  const dicom = await caseDicomView(db, id, { patientVisible: viewer.admin || (row.owner_id !== null && row.owner_id === viewer.userId) });
  return { ...toSummary({ ...row, roles: volumes.map((v) => v.role) }, viewer), volumes: descriptors, ...(dicom ? { dicom } : {}) };
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
  /** Runs first in the storing transaction (quota checks under the owner's lock); a throw stores nothing. */
  admit?: (trx: Db) => Promise<void>,
  /** Runs last in the same transaction, with the new case's id (rows that belong to the case: its DICOM origin); a throw stores nothing. */
  onStored?: (trx: Db, caseId: string) => Promise<void>,
): Promise<string> {
  return withStoredVolumes(db, store, volumes, async (trx, volumeIds) => {
    await admit?.(trx);
    const id = await insertCase(
      trx,
      { ...meta, subjectId: meta.subjectId ?? null },
      volumes.map((v, i) => ({ role: v.role, volumeId: volumeIds[i]! })),
    );
    await onStored?.(trx, id);
    return id;
  });
}

/**
 * A case uploaded by a user, from its spooled files (or volumes made from an upload: a DICOM
 * import's): within the user's case quota, every file checked in the CPU pool (decoding,
 * validation, gzip and hashing off the event loop), then stored all or nothing. The case's id.
 */
export async function uploadCase(
  deps: { db: Db; store: VolumeStore; cpu: CpuPool; config: Env; log: Logger },
  user: AuthUser,
  input: {
    name: string;
    /** Spooled paths, or the bytes of a volume made on the server. */
    files: Partial<Record<VolumeRole, string | Uint8Array>>;
    /** Rows that belong to the case, written in its storing transaction (see createCase). */
    onStored?: (trx: Db, caseId: string) => Promise<void>;
  },
): Promise<string> {
  const { db, config } = deps;
  const maxCases = caseLimit(config, user.role);
  const overCases = async (q: Db) => Number.isFinite(maxCases) && (await countCases(q, { ownerId: user.id })) >= maxCases;
  const casesFull = () => forbidden(`Guests may keep ${maxCases} cases; delete one, or create an account for more`);
  // Counted early (a full account hears it before its files are checked) and again under the
  // owner's lock while storing (two uploads finishing together cannot both pass).
  if (await overCases(db)) throw casesFull();
  const prepared = await prepareCaseInPool(deps.cpu, input.files, {
    maxVoxels: config.MAX_VOXELS,
    maxInflatedBytes: config.MAX_INFLATED_MB * MiB,
  });
  const admit = async (trx: Db) => {
    await lockOwnerQuota(trx, user.id);
    if (await overCases(trx)) throw casesFull();
    await checkStoredBytes(
      trx,
      config,
      user,
      prepared.reduce((n, p) => n + p.stored.length, 0),
    );
  };
  const id = await createCase(db, deps.store, { ownerId: user.id, name: input.name, source: 'upload' }, prepared, admit, input.onStored);
  deps.log.info({ caseId: id, roles: prepared.map((p) => p.role) }, 'case uploaded');
  return id;
}

export async function deleteCase(db: Db, store: VolumeStore, viewer: Viewer, id: string): Promise<void> {
  const row = await findCase(db, viewer, id);
  if (!row) throw notFound('No such case');
  if (row.access !== 'manage') {
    throw forbidden(row.owner_id === null ? 'Only an administrator can delete a shared case' : "Only the case's owner can delete it");
  }
  // Only this case's volumes (and its jobs' masks) can have become unreferenced: collect those,
  // not the whole store.
  const used = await deleteCaseRow(db, id);
  await removeIfUnreferenced(db, store, await findUnreferencedVolumes(db, { ids: used }));
}

/** Refuses what would take an account past its stored-bytes quota (guests), inside the owner's lock. */
export async function checkStoredBytes(trx: Db, config: Env, user: Pick<AuthUser, 'id' | 'role'>, adding: number): Promise<void> {
  const max = storedBytesLimit(config, user.role);
  if (!Number.isFinite(max)) return;
  const used = await storedBytesOf(trx, user.id);
  if (used + adding > max) {
    throw forbidden(
      `Guests may store ${Math.round(max / MiB)} MiB of cases and masks (this would make ${Math.ceil((used + adding) / MiB)} MiB); delete something, or create an account`,
    );
  }
}
