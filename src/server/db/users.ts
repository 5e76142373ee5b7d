import { type Kysely, sql } from 'kysely';
import { afterCursor } from './paging.js';
import type { Database, Role, UserRow } from './tables.js';

type Db = Kysely<Database>;
const USER_COLUMNS = ['id', 'email', 'password_hash', 'role', 'disabled_at', 'created_at', 'updated_at'] as const;

/** The user's columns in a query that joins `users as u`, prefixed so they cannot collide. */
export const JOINED_USER_COLUMNS = [
  'u.id as u_id',
  'u.email as u_email',
  'u.password_hash as u_password_hash',
  'u.role as u_role',
  'u.disabled_at as u_disabled_at',
  'u.created_at as u_created_at',
  'u.updated_at as u_updated_at',
] as const;

type Prefixed<T> = { [K in keyof T as `u_${K & string}`]: T[K] };

/** The user out of a row selected with JOINED_USER_COLUMNS. */
export function joinedUser(r: Prefixed<UserRow>): UserRow {
  return {
    id: r.u_id,
    email: r.u_email,
    password_hash: r.u_password_hash,
    role: r.u_role,
    disabled_at: r.u_disabled_at,
    created_at: r.u_created_at,
    updated_at: r.u_updated_at,
  };
}

export function findUserByEmail(db: Db, email: string): Promise<UserRow | undefined> {
  return db
    .selectFrom('users')
    .select(USER_COLUMNS)
    .where(sql`lower(email)`, '=', email.toLowerCase())
    .executeTakeFirst();
}

export function findUserById(db: Db, id: string): Promise<UserRow | undefined> {
  return db.selectFrom('users').select(USER_COLUMNS).where('id', '=', id).executeTakeFirst();
}

export function insertUser(db: Db, values: { email: string; password_hash: string | null; role: Role }): Promise<UserRow> {
  return db.insertInto('users').values(values).returning(USER_COLUMNS).executeTakeFirstOrThrow();
}

export async function updateUser(
  db: Db,
  id: string,
  values: Partial<{ password_hash: string; role: Role; disabled_at: Date | null }>,
): Promise<UserRow | undefined> {
  return db
    .updateTable('users')
    .set({ ...values, updated_at: sql<Date>`now()` })
    .where('id', '=', id)
    .returning(USER_COLUMNS)
    .executeTakeFirst();
}

export function listUsers(db: Db, opts: { limit: number; cursor?: string }): Promise<UserRow[]> {
  let q = db.selectFrom('users').select(USER_COLUMNS).orderBy('created_at').orderBy('id').limit(opts.limit);
  if (opts.cursor) q = q.where(afterCursor('users', opts.cursor, 'asc'));
  return q.execute();
}

export async function countFailures(db: Db, email: string, since: Date): Promise<{ count: number; oldest: Date | null }> {
  const row = await db
    .selectFrom('sign_in_failures')
    .select(({ fn }) => [fn.countAll<string>().as('count'), fn.min('created_at').as('oldest')])
    .where('email', '=', email)
    .where('created_at', '>', since)
    .executeTakeFirstOrThrow();
  return { count: Number(row.count), oldest: row.oldest ? new Date(row.oldest) : null };
}

/**
 * Reserves a sign-in attempt for an email: the attempt is written first (as a failure) and then
 * counted, so parallel attempts all see each other — at most `max` of them can find themselves
 * within the limit, whatever their interleaving. The caller removes the row when the attempt
 * turns out not to be a failure (`releaseAttempt`).
 */
export async function reserveAttempt(db: Db, email: string, since: Date): Promise<{ id: string; count: number; oldest: Date | null }> {
  const { id } = await db.insertInto('sign_in_failures').values({ email }).returning('id').executeTakeFirstOrThrow();
  const counted = await countFailures(db, email, since);
  return { id: String(id), ...counted };
}

export async function releaseAttempt(db: Db, id: string): Promise<void> {
  await db.deleteFrom('sign_in_failures').where('id', '=', id).execute();
}

/** Failure rows older than the window count for nothing: removed by the scheduled clean-up. */
export async function pruneFailures(db: Db, before: Date): Promise<number> {
  const r = await db.deleteFrom('sign_in_failures').where('created_at', '<', before).executeTakeFirst();
  return Number(r.numDeletedRows);
}

export async function clearFailures(db: Db, email: string, olderThan?: Date): Promise<void> {
  let q = db.deleteFrom('sign_in_failures').where('email', '=', email);
  if (olderThan) q = q.where('created_at', '<', olderThan);
  await q.execute();
}
