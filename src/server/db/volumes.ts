import { type Kysely, sql } from 'kysely';
import { compiledSelect } from './compiled.js';
import type { Database, VolumeRow } from './tables.js';

// The volume rows: content-addressed stored files (volumes/ owns what is stored and when it goes).

type Db = Kysely<Database>;
export const VOLUME_COLUMNS = [
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

/** Several volumes in one query (ids not found are absent from the map). */
export async function findVolumes(db: Db, ids: string[]): Promise<Map<string, VolumeRow>> {
  if (ids.length === 0) return new Map();
  const unique = [...new Set(ids)];
  const rows = await volumesQuery(db, unique.length, ...unique);
  return new Map(rows.map((r) => [r.id, r]));
}

/** Compiled once per list length up to a page's worth (db/compiled.ts): every job view and case detail reads it. */
const volumesQuery = compiledSelect(
  (n: number) => (n <= 64 ? String(n) : undefined),
  (db, _n, ...ids: string[]) => db.selectFrom('volumes as v').select(VOLUME_COLUMNS).where('v.id', 'in', ids),
);

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
