import { type Kysely, sql } from 'kysely';
import type { StudyRole } from '../../shared/studies.js';
import type { Viewer } from './cases.js';
import type { Database, StudyRow } from './tables.js';

type Db = Kysely<Database>;

export type StudyListed = StudyRow & { role: StudyRole | null; cases: number; members: number };

const counted = (db: Db, userId: string | null) =>
  db
    .selectFrom('studies as s')
    .select([
      's.id',
      's.name',
      's.description',
      's.created_by',
      's.created_at',
      sql<number>`(select count(*)::int from study_cases sc where sc.study_id = s.id)`.as('cases'),
      sql<number>`(select count(*)::int from study_members sm where sm.study_id = s.id)`.as('members'),
      sql<StudyRole | null>`(select sm.role from study_members sm where sm.study_id = s.id and sm.user_id = ${userId})`.as('role'),
    ]);

/** The studies a viewer is a member of (admins: every study), newest first. */
export function listStudies(db: Db, viewer: Viewer): Promise<StudyListed[]> {
  let q = counted(db, viewer.userId).orderBy('s.created_at', 'desc').orderBy('s.id', 'desc');
  if (!viewer.admin) {
    q = q.where((eb) =>
      eb.exists(
        eb
          .selectFrom('study_members as m')
          .select('m.user_id')
          .whereRef('m.study_id', '=', 's.id')
          .where('m.user_id', '=', viewer.userId ?? '00000000-0000-0000-0000-000000000000'),
      ),
    );
  }
  return q.execute();
}

/** A study the viewer is a member of (admins: any), with their role in it; undefined otherwise. */
export async function findStudy(db: Db, viewer: Viewer, id: string): Promise<StudyListed | undefined> {
  const row = await counted(db, viewer.userId).where('s.id', '=', id).executeTakeFirst();
  if (!row || (!viewer.admin && row.role === null)) return undefined;
  return row;
}

export async function insertStudy(trx: Db, s: { name: string; description: string; ownerId: string }): Promise<string> {
  const { id } = await trx
    .insertInto('studies')
    .values({ name: s.name, description: s.description, created_by: s.ownerId })
    .returning('id')
    .executeTakeFirstOrThrow();
  await trx.insertInto('study_members').values({ study_id: id, user_id: s.ownerId, role: 'owner' }).execute();
  return id;
}

export function deleteStudyRow(db: Db, id: string) {
  return db.deleteFrom('studies').where('id', '=', id).execute();
}

export function studyMembers(db: Db, studyId: string) {
  return db
    .selectFrom('study_members as m')
    .innerJoin('users as u', 'u.id', 'm.user_id')
    .select(['m.user_id', 'u.email', 'm.role', 'm.added_at'])
    .where('m.study_id', '=', studyId)
    .orderBy('m.added_at')
    .orderBy('u.email')
    .execute();
}

export function studyCaseRows(db: Db, studyId: string) {
  return db
    .selectFrom('study_cases as sc')
    .innerJoin('cases as c', 'c.id', 'sc.case_id')
    .select(['c.id', 'c.name', 'c.subject_id', 'sc.added_at'])
    .where('sc.study_id', '=', studyId)
    .orderBy('c.name')
    .orderBy('c.id')
    .execute();
}

/** Adds a member or changes their role. */
export async function upsertMember(trx: Db, studyId: string, userId: string, role: StudyRole): Promise<void> {
  await trx
    .insertInto('study_members')
    .values({ study_id: studyId, user_id: userId, role })
    .onConflict((oc) => oc.columns(['study_id', 'user_id']).doUpdateSet({ role }))
    .execute();
}

export async function removeMember(trx: Db, studyId: string, userId: string): Promise<boolean> {
  const r = await trx.deleteFrom('study_members').where('study_id', '=', studyId).where('user_id', '=', userId).executeTakeFirst();
  return r.numDeletedRows > 0n;
}

export async function countOwners(trx: Db, studyId: string): Promise<number> {
  const r = await trx
    .selectFrom('study_members')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('study_id', '=', studyId)
    .where('role', '=', 'owner')
    .executeTakeFirstOrThrow();
  return Number(r.n);
}

/** Links cases to a study (a case already in it stays as it was); the number newly added. */
export async function addStudyCases(trx: Db, studyId: string, caseIds: string[], addedBy: string): Promise<number> {
  if (!caseIds.length) return 0;
  const r = await trx
    .insertInto('study_cases')
    .values(caseIds.map((caseId) => ({ study_id: studyId, case_id: caseId, added_by: addedBy })))
    .onConflict((oc) => oc.columns(['study_id', 'case_id']).doNothing())
    .executeTakeFirst();
  return Number(r.numInsertedOrUpdatedRows ?? 0n);
}

export async function removeStudyCase(trx: Db, studyId: string, caseId: string): Promise<boolean> {
  const r = await trx.deleteFrom('study_cases').where('study_id', '=', studyId).where('case_id', '=', caseId).executeTakeFirst();
  return r.numDeletedRows > 0n;
}

/** Serialises changes to one study's membership (the last owner cannot be removed by two calls at once). */
export async function lockStudy(trx: Db, studyId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtext('study:' || ${studyId}))`.execute(trx);
}

/**
 * The members of the studies that hold this case and that this user is a member of — whose
 * corrected masks of the case the user may see (a second rater compares with the first).
 */
export async function coRaters(db: Db, userId: string, caseId: string): Promise<string[]> {
  const rows = await db
    .selectFrom('study_members as other')
    .innerJoin('study_cases as sc', 'sc.study_id', 'other.study_id')
    .innerJoin('study_members as me', 'me.study_id', 'other.study_id')
    .select('other.user_id')
    .distinct()
    .where('sc.case_id', '=', caseId)
    .where('me.user_id', '=', userId)
    .execute();
  return rows.map((r) => r.user_id);
}

/** The oldest study of this name the user owns, if any. */
export async function findOwnedStudyByName(db: Db, ownerId: string, name: string): Promise<string | undefined> {
  const row = await db
    .selectFrom('studies as s')
    .innerJoin('study_members as m', 'm.study_id', 's.id')
    .select('s.id')
    .where('m.user_id', '=', ownerId)
    .where('m.role', '=', 'owner')
    .where('s.name', '=', name)
    .orderBy('s.created_at')
    .executeTakeFirst();
  return row?.id;
}

/** Of these cases, those the user owns or that are shared (owner-less). */
export async function sharableCaseIds(db: Db, userId: string, caseIds: string[]): Promise<string[]> {
  if (!caseIds.length) return [];
  const rows = await db
    .selectFrom('cases')
    .select('id')
    .where('id', 'in', caseIds)
    .where((eb) => eb.or([eb('owner_id', 'is', null), eb('owner_id', '=', userId)]))
    .execute();
  return rows.map((r) => r.id);
}
