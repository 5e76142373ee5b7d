import type { Kysely } from 'kysely';
import type { PublicUser, Role } from '../../shared/auth.js';
import { toPage } from '../db/paging.js';
import type { Database } from '../db/tables.js';
import { listUsers, updateUser } from '../db/users.js';
import { invalid, notFound } from '../errors.js';
import type { JobSystem } from '../jobs/service.js';
import { setUserDisabled, toPublicUser } from './service.js';

// What administrators do to accounts; the guards against locking oneself out live here.

type Db = Kysely<Database>;

export async function listUsersPage(
  db: Db,
  opts: { limit: number; cursor?: string | undefined },
): Promise<{ items: PublicUser[]; nextCursor: string | null }> {
  const rows = await listUsers(db, { limit: opts.limit + 1, ...(opts.cursor ? { cursor: opts.cursor } : {}) });
  const { page, nextCursor } = toPage(rows, opts.limit);
  return { items: page.map(toPublicUser), nextCursor };
}

export async function setRole(db: Db, actorId: string, userId: string, role: Role): Promise<PublicUser> {
  if (userId === actorId && role !== 'admin') throw invalid('You cannot remove your own admin role');
  const user = await updateUser(db, userId, { role });
  if (!user) throw notFound('No such user');
  return toPublicUser(user);
}

/** Disabling signs the user out everywhere (sessions, API tokens, open streams) and cancels their jobs. */
export async function setDisabled(db: Db, jobs: JobSystem, actorId: string, userId: string, disabled: boolean): Promise<PublicUser> {
  if (userId === actorId) throw invalid('You cannot disable your own account');
  return toPublicUser(await setUserDisabled(db, jobs, userId, disabled));
}
