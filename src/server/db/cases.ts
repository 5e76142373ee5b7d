import { type Kysely, sql } from 'kysely';
import { afterCursor } from './paging.js';
import type { CaseRow, CaseSource, Database, VolumeRole, VolumeRow } from './tables.js';

type Db = Kysely<Database>;
const CASE_COLUMNS = ['c.id', 'c.owner_id', 'c.name', 'c.source', 'c.subject_id', 'c.created_at'] as const;
const VOLUME_COLUMNS = [
  'v.id',
  'v.sha256',
  'v.bytes',
  'v.dims',
  'v.voxel_size_mm',
  'v.datatype',
  'v.affine',
  'v.frames',
  'v.adc_unit',
  'v.created_at',
] as const;

/** Who is asking: an admin sees every case; a user their own and the shared (owner-less) ones. */
export interface Viewer {
  userId: string | null;
  admin: boolean;
  /** A guest account (smaller quotas: auth/quotas.ts). */
  guest?: boolean;
}

export async function listCases(
  db: Db,
  viewer: Viewer,
  opts: { search?: string | undefined; cursor?: string | undefined; limit: number },
): Promise<(CaseRow & { roles: VolumeRole[] })[]> {
  let q = db
    .selectFrom('cases as c')
    .select([
      ...CASE_COLUMNS,
      sql<VolumeRole[]>`coalesce((select array_agg(cv.role order by cv.role) from case_volumes cv where cv.case_id = c.id), '{}')`.as(
        'roles',
      ),
    ])
    .orderBy('c.created_at', 'desc')
    .orderBy('c.id', 'desc')
    .limit(opts.limit);
  if (!viewer.admin) {
    q = q.where((eb) =>
      viewer.userId ? eb.or([eb('c.owner_id', 'is', null), eb('c.owner_id', '=', viewer.userId)]) : eb('c.owner_id', 'is', null),
    );
  }
  if (opts.search) {
    const pattern = `%${opts.search.replace(/[\\%_]/g, (m) => `\\${m}`)}%`;
    q = q.where((eb) => eb.or([eb('c.name', 'ilike', pattern), eb('c.subject_id', 'ilike', pattern)]));
  }
  if (opts.cursor) q = q.where(afterCursor('cases', opts.cursor, 'desc', 'c'));
  return q.execute();
}

export async function findCase(db: Db, viewer: Viewer, id: string): Promise<CaseRow | undefined> {
  const row = await db.selectFrom('cases as c').select(CASE_COLUMNS).where('c.id', '=', id).executeTakeFirst();
  if (!row) return undefined;
  if (viewer.admin || row.owner_id === null || row.owner_id === viewer.userId) return row;
  return undefined;
}

export function caseVolumes(db: Db, caseId: string): Promise<(VolumeRow & { role: VolumeRole })[]> {
  return db
    .selectFrom('case_volumes as cv')
    .innerJoin('volumes as v', 'v.id', 'cv.volume_id')
    .select(['cv.role', ...VOLUME_COLUMNS])
    .where('cv.case_id', '=', caseId)
    .orderBy('cv.role')
    .execute();
}

/** Several volumes in one query (ids not found are absent from the map). */
export async function findVolumes(db: Db, ids: string[]): Promise<Map<string, VolumeRow>> {
  if (ids.length === 0) return new Map();
  const rows = await db
    .selectFrom('volumes as v')
    .select(VOLUME_COLUMNS)
    .where('v.id', 'in', [...new Set(ids)])
    .execute();
  return new Map(rows.map((r) => [r.id, r]));
}

export function findVolume(db: Db, id: string): Promise<VolumeRow | undefined> {
  return db.selectFrom('volumes as v').select(VOLUME_COLUMNS).where('v.id', '=', id).executeTakeFirst();
}

export async function insertVolume(
  db: Db,
  v: {
    sha256: string;
    bytes: number;
    dims: number[];
    voxelSizeMm: number[];
    datatype: string;
    affine: number[][];
    frames: number;
    adcUnit?: string | null;
  },
): Promise<string> {
  await db
    .insertInto('volumes')
    .values({
      sha256: v.sha256,
      bytes: v.bytes,
      dims: JSON.stringify(v.dims),
      voxel_size_mm: JSON.stringify(v.voxelSizeMm),
      datatype: v.datatype,
      affine: JSON.stringify(v.affine),
      frames: v.frames,
      adc_unit: v.adcUnit ?? null,
    })
    .onConflict((oc) => oc.column('sha256').doNothing())
    .execute();
  const row = await db.selectFrom('volumes').select('id').where('sha256', '=', v.sha256).executeTakeFirstOrThrow();
  return row.id;
}

export async function insertCase(
  db: Db,
  c: { ownerId: string | null; name: string; source: CaseSource; subjectId: string | null },
  volumes: { role: VolumeRole; volumeId: string }[],
): Promise<string> {
  const row = await db
    .insertInto('cases')
    .values({ owner_id: c.ownerId, name: c.name, source: c.source, subject_id: c.subjectId })
    .returning('id')
    .executeTakeFirstOrThrow();
  if (volumes.length) {
    await db
      .insertInto('case_volumes')
      .values(volumes.map((v) => ({ case_id: row.id, role: v.role, volume_id: v.volumeId })))
      .execute();
  }
  return row.id;
}

/** Deletes a case (its jobs go with it) and returns the volumes it and its jobs referenced. */
export async function deleteCaseRow(db: Db, id: string): Promise<string[]> {
  return db.transaction().execute(async (trx) => {
    const used = await trx
      .selectFrom('case_volumes')
      .select('volume_id')
      .where('case_id', '=', id)
      .union(
        trx.selectFrom('job_volumes as jv').innerJoin('jobs as j', 'j.id', 'jv.job_id').select('jv.volume_id').where('j.case_id', '=', id),
      )
      .union(trx.selectFrom('mask_versions').select('volume_id').where('case_id', '=', id))
      .execute();
    await trx.deleteFrom('cases').where('id', '=', id).execute();
    return used.map((r) => r.volume_id);
  });
}

export async function countCases(db: Db, source: CaseSource): Promise<number> {
  const r = await db
    .selectFrom('cases')
    .select(({ fn }) => fn.countAll<string>().as('n'))
    .where('source', '=', source)
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

export async function caseExistsForSubject(db: Db, source: CaseSource, subjectId: string): Promise<boolean> {
  const r = await db.selectFrom('cases').select('id').where('source', '=', source).where('subject_id', '=', subjectId).executeTakeFirst();
  return r !== undefined;
}

/**
 * Deletes volume rows nothing references any more — either those older than a cut-off (so a
 * volume written a moment ago, whose case or job row is not committed yet, is never collected) or
 * the given ones — and returns their content addresses.
 */
/** The volumes nothing references (no case, job or mask version), among old ones or given ids: their hashes. */
export async function findUnreferencedVolumes(
  db: Db,
  among: { olderThan: Date } | { ids: string[] } | { shas: string[] },
): Promise<string[]> {
  if ('ids' in among && among.ids.length === 0) return [];
  if ('shas' in among && among.shas.length === 0) return [];
  const rows = await db
    .selectFrom('volumes as v')
    .select('v.sha256')
    .where((eb) =>
      'ids' in among
        ? eb('v.id', 'in', among.ids)
        : 'shas' in among
          ? eb('v.sha256', 'in', among.shas)
          : eb('v.created_at', '<', among.olderThan),
    )
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('case_volumes as cv').select('cv.volume_id').whereRef('cv.volume_id', '=', 'v.id'))),
    )
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('job_volumes as jv').select('jv.volume_id').whereRef('jv.volume_id', '=', 'v.id'))),
    )
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('mask_versions as mv').select('mv.volume_id').whereRef('mv.volume_id', '=', 'v.id'))),
    )
    .execute();
  return rows.map((r) => r.sha256);
}

/** Deletes the volume row of `sha256` if nothing references it; whether it did. */
export async function deleteVolumeIfUnreferenced(db: Db, sha256: string): Promise<boolean> {
  const [sha] = await findUnreferencedVolumes(db, { shas: [sha256] });
  if (!sha) return false;
  await db.deleteFrom('volumes').where('sha256', '=', sha).execute();
  return true;
}

/**
 * Transaction-scoped locks on content hashes, taken in one order (no deadlock between two
 * writers): while held, nobody else stores, links or collects the same bytes. Every "store file +
 * insert row" and every "delete row + remove file" runs under it, so rows and files cannot drift.
 */
export async function lockVolumeHashes(trx: Db, shas: string[]): Promise<void> {
  for (const sha of [...new Set(shas)].sort())
    await sql`select pg_advisory_xact_lock(hashtextextended(${`volume:${sha}`}, 0))`.execute(trx);
}

export async function knownShas(db: Db, shas: string[]): Promise<Set<string>> {
  if (shas.length === 0) return new Set();
  const rows = await db.selectFrom('volumes').select('sha256').where('sha256', 'in', shas).execute();
  return new Set(rows.map((r) => r.sha256));
}

/** Cases a user owns (their uploads and imports). */
export async function countOwnCases(db: Db, ownerId: string): Promise<number> {
  const row = await db
    .selectFrom('cases')
    .select(({ fn }) => fn.countAll<string>().as('n'))
    .where('owner_id', '=', ownerId)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
