import { type Kysely, sql } from 'kysely';
import { compiledSelect } from './compiled.js';
import { afterCursor } from './paging.js';
import type { CaseRow, CaseSource, Database, VolumeRole, VolumeRow } from './tables.js';
import { VOLUME_COLUMNS } from './volumes.js';

type Db = Kysely<Database>;
const CASE_COLUMNS = ['c.id', 'c.owner_id', 'c.name', 'c.source', 'c.subject_id', 'c.created_at'] as const;
/**
 * Who is asking: an admin sees every case; a user their own, the shared (owner-less) ones and
 * those of the studies they are a member of.
 */
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
  const pattern = opts.search ? `%${opts.search.replace(/[\\%_]/g, (m) => `\\${m}`)}%` : null;
  const shape = { admin: viewer.admin, user: viewer.userId !== null, search: pattern !== null, cursor: Boolean(opts.cursor) };
  return caseListQuery(db, shape, viewer.userId, pattern, opts.cursor ?? null, opts.limit);
}

/** Case names by id (ids not found are absent). */
export async function caseNames(db: Db, ids: string[]): Promise<Map<string, string>> {
  if (ids.length === 0) return new Map();
  const unique = [...new Set(ids)];
  return new Map((await caseNamesQuery(db, unique.length, ...unique)).map((c) => [c.id, c.name]));
}

const caseNamesQuery = compiledSelect(
  (n: number) => (n <= 64 ? String(n) : undefined),
  (db, _n, ...ids: string[]) => db.selectFrom('cases').select(['id', 'name']).where('id', 'in', ids),
);

/** The case list's statement, compiled once per shape (db/compiled.ts): the hottest read there is. */
const caseListQuery = compiledSelect(
  (s: { admin: boolean; user: boolean; search: boolean; cursor: boolean }) => `${+s.admin}${+s.user}${+s.search}${+s.cursor}`,
  (db, shape, userId: string | null, pattern: string | null, cursor: string | null, limit: number) => {
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
      .limit(limit);
    if (!shape.admin) {
      q = q.where((eb) =>
        shape.user
          ? eb.or([
              eb('c.owner_id', 'is', null),
              eb('c.owner_id', '=', userId!),
              eb.exists(
                eb
                  .selectFrom('study_cases as sc')
                  .innerJoin('study_members as sm', 'sm.study_id', 'sc.study_id')
                  .select('sc.case_id')
                  .whereRef('sc.case_id', '=', 'c.id')
                  .where('sm.user_id', '=', userId!),
              ),
            ])
          : eb('c.owner_id', 'is', null),
      );
    }
    if (shape.search) q = q.where((eb) => eb.or([eb('c.name', 'ilike', pattern!), eb('c.subject_id', 'ilike', pattern!)]));
    if (shape.cursor) q = q.where(afterCursor('cases', cursor!, 'desc', 'c'));
    return q;
  },
);

/**
 * What a viewer may do with a case: `manage` (its owner, an admin: delete it, add it to a study),
 * `edit` (run models, save corrected masks: anyone signed in on a shared case, a study's owner or
 * editor on the study's cases), `read` (a study's viewer; anyone signed out on a shared case).
 */
export type CaseAccess = 'manage' | 'edit' | 'read';

export async function findCase(db: Db, viewer: Viewer, id: string): Promise<(CaseRow & { access: CaseAccess }) | undefined> {
  const row = await db
    .selectFrom('cases as c')
    .select([
      ...CASE_COLUMNS,
      sql<string[]>`array(select distinct sm.role from study_cases sc join study_members sm on sm.study_id = sc.study_id
        where sc.case_id = c.id and sm.user_id = ${viewer.userId})`.as('study_roles'),
    ])
    .where('c.id', '=', id)
    .executeTakeFirst();
  if (!row) return undefined;
  const { study_roles: studyRoles, ...c } = row;
  if (viewer.admin || (c.owner_id !== null && c.owner_id === viewer.userId)) return { ...c, access: 'manage' };
  if (c.owner_id === null || studyRoles.length) {
    const edits = studyRoles.some((r) => r === 'owner' || r === 'editor') || (c.owner_id === null && viewer.userId !== null);
    return { ...c, access: edits ? 'edit' : 'read' };
  }
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

/** Cases of one source (`demo`, …) or of one owner (their uploads and imports). */
export async function countCases(db: Db, which: { source: CaseSource } | { ownerId: string }): Promise<number> {
  const q = db.selectFrom('cases').select(({ fn }) => fn.countAll<string>().as('n'));
  const r = await (
    'source' in which ? q.where('source', '=', which.source) : q.where('owner_id', '=', which.ownerId)
  ).executeTakeFirstOrThrow();
  return Number(r.n);
}

export async function caseExistsForSubject(db: Db, source: CaseSource, subjectId: string): Promise<boolean> {
  const r = await db.selectFrom('cases').select('id').where('source', '=', source).where('subject_id', '=', subjectId).executeTakeFirst();
  return r !== undefined;
}
