import type { Kysely } from 'kysely';
import { type CaseAccess, type Viewer, findCase } from '../db/cases.js';
import type { CaseRow, Database } from '../db/tables.js';
import { forbidden, notFound } from '../errors.js';

/**
 * A case the viewer may change — run a model on, refine or save a mask of: NOT_FOUND when they may
 * not see it (a non-member learns nothing), FORBIDDEN when they may only read it (a study's viewer).
 */
export async function caseToEdit(
  db: Kysely<Database>,
  viewer: Viewer,
  id: string,
  field?: string,
): Promise<CaseRow & { access: CaseAccess }> {
  const row = await findCase(db, viewer, id);
  if (!row) throw notFound('No such case', field ? { field } : undefined);
  if (row.access === 'read') {
    throw forbidden(
      viewer.userId
        ? "You are a viewer of this case's study: an editor or the owner may run models and save masks"
        : 'Sign in to run models or save masks',
    );
  }
  return row;
}
