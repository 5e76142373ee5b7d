import type { Kysely } from 'kysely';
import type { z } from 'zod';
import type { StudyDetail, StudyRole, StudySummary, createStudySchema } from '../../shared/studies.js';
import { type Viewer, findCase } from '../db/cases.js';
import {
  type StudyListed,
  addStudyCases,
  countOwners,
  findOwnedStudyByName,
  sharableCaseIds,
  findStudy,
  insertStudy,
  listStudies,
  lockStudy,
  removeMember,
  removeStudyCase,
  studyCaseRows,
  studyMembers,
  upsertMember,
} from '../db/studies.js';
import type { Database } from '../db/tables.js';
import { findUserByEmail } from '../db/users.js';
import { conflict, forbidden, invalid, notFound } from '../errors.js';

// A study is a named set of cases with members in roles (#27). Who may do what:
// - any member reads the study and its cases (and fellow members' corrected masks of them);
// - owner and editor run models and save masks on its cases, and add cases they own (or shared
//   demo cases) to it;
// - the owner manages members and deletes the study; a study always keeps one owner.
// An admin may do all of it. A non-member's study ids are NOT_FOUND, like another user's case.

type Db = Kysely<Database>;

const iso = (d: Date | string) => new Date(d).toISOString();

function toSummary(s: StudyListed): StudySummary {
  return {
    id: s.id,
    name: s.name,
    description: s.description,
    role: s.role,
    cases: s.cases,
    members: s.members,
    createdAt: iso(s.created_at),
  };
}

export async function studyFor(db: Db, viewer: Viewer, id: string): Promise<StudyListed> {
  const s = await findStudy(db, viewer, id);
  if (!s) throw notFound('No such study', { field: 'studyId' });
  return s;
}

export function requireRole(viewer: Viewer, s: StudyListed, allowed: StudyRole[], what: string): void {
  if (viewer.admin || (s.role && allowed.includes(s.role))) return;
  const who = allowed.length === 1 ? "the study's owner" : "the study's owners and editors";
  throw forbidden(`Only ${who} may ${what}; you are ${s.role === 'editor' ? 'an editor' : 'a viewer'} of it`);
}

export async function createStudy(db: Db, viewer: Viewer & { userId: string }, input: z.infer<typeof createStudySchema>): Promise<string> {
  if (viewer.guest) throw forbidden('Guests cannot create studies; create an account');
  return db.transaction().execute((trx) => insertStudy(trx, { ...input, ownerId: viewer.userId }));
}

export async function listStudySummaries(db: Db, viewer: Viewer): Promise<StudySummary[]> {
  return (await listStudies(db, viewer)).map(toSummary);
}

export async function getStudy(db: Db, viewer: Viewer, id: string): Promise<StudyDetail> {
  const s = await studyFor(db, viewer, id);
  const [members, cases] = await Promise.all([studyMembers(db, id), studyCaseRows(db, id)]);
  return {
    ...toSummary(s),
    memberList: members.map((m) => ({ userId: m.user_id, email: m.email, role: m.role, addedAt: iso(m.added_at) })),
    caseList: cases.map((c) => ({ id: c.id, name: c.name, subjectId: c.subject_id, addedAt: iso(c.added_at) })),
  };
}

/** Adds a member by email, or changes a member's role. */
export async function setMember(db: Db, viewer: Viewer, input: { studyId: string; email: string; role: StudyRole }): Promise<void> {
  requireRole(viewer, await studyFor(db, viewer, input.studyId), ['owner'], 'manage its members');
  const user = await findUserByEmail(db, input.email.toLowerCase());
  if (!user || user.disabled_at) throw notFound(`No account with the email ${input.email}; ask them to register first`, { field: 'email' });
  if (user.role === 'guest') throw invalid('Guest accounts cannot be study members; ask them to register', { field: 'email' });
  await db.transaction().execute(async (trx) => {
    await lockStudy(trx, input.studyId);
    await upsertMember(trx, input.studyId, user.id, input.role);
    if ((await countOwners(trx, input.studyId)) === 0) throw conflict('A study keeps at least one owner: make another member owner first');
  });
}

/** Removes a member: the owner may remove anyone, a member themself (leaving); never the last owner. */
export async function removeStudyMember(db: Db, viewer: Viewer, input: { studyId: string; userId: string }): Promise<void> {
  const s = await studyFor(db, viewer, input.studyId);
  if (input.userId !== viewer.userId) requireRole(viewer, s, ['owner'], 'remove other members');
  await db.transaction().execute(async (trx) => {
    await lockStudy(trx, input.studyId);
    if (!(await removeMember(trx, input.studyId, input.userId))) throw notFound('No such member of this study', { field: 'userId' });
    if ((await countOwners(trx, input.studyId)) === 0) throw conflict('A study keeps at least one owner: make another member owner first');
  });
}

/**
 * Adds cases to a study. Each must be one the caller may share: their own, a shared demo case, or
 * (admins) any. A case the caller cannot see is NOT_FOUND, one they only reach through another
 * study is FORBIDDEN — checked for all before any is added.
 */
export async function addCasesToStudy(
  db: Db,
  viewer: Viewer & { userId: string },
  input: { studyId: string; caseIds: string[] },
): Promise<number> {
  requireRole(viewer, await studyFor(db, viewer, input.studyId), ['owner', 'editor'], 'add cases');
  const ids = [...new Set(input.caseIds)];
  for (const id of ids) {
    const c = await findCase(db, viewer, id);
    if (!c) throw notFound(`No such case: ${id}`, { field: 'caseIds' });
    if (c.access !== 'manage' && c.owner_id !== null) throw forbidden(`Only the owner of case ${c.name} may add it to a study`);
  }
  return db.transaction().execute((trx) => addStudyCases(trx, input.studyId, ids, viewer.userId));
}

/** Removes a case from a study (the case itself stays): the study's owner, or the case's owner. */
export async function removeCaseFromStudy(db: Db, viewer: Viewer, input: { studyId: string; caseId: string }): Promise<void> {
  const s = await studyFor(db, viewer, input.studyId);
  const c = await findCase(db, viewer, input.caseId);
  if (!(c && c.access === 'manage' && c.owner_id !== null)) requireRole(viewer, s, ['owner'], 'remove cases');
  if (!(await removeStudyCase(db, input.studyId, input.caseId))) throw notFound('This case is not in the study', { field: 'caseId' });
}

/**
 * Puts cases in the owner's study of this name, made when they have none (`strokeview import
 * --study`): the owner's own or shared cases only, as addCasesToStudy allows.
 */
export async function fillStudy(
  db: Db,
  ownerId: string,
  name: string,
  caseIds: string[],
): Promise<{ id: string; name: string; added: number; cases: number }> {
  return db.transaction().execute(async (trx) => {
    await lockStudy(trx, `owner:${ownerId}:${name}`);
    const existing = await findOwnedStudyByName(trx, ownerId, name);
    const id = existing ?? (await insertStudy(trx, { name, description: '', ownerId }));
    const sharable = await sharableCaseIds(trx, ownerId, caseIds);
    const added = await addStudyCases(trx, id, sharable, ownerId);
    const s = await findStudy(trx, { userId: ownerId, admin: false }, id);
    return { id, name, added, cases: s?.cases ?? 0 };
  });
}
