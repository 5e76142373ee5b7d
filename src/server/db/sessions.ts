import type { Kysely } from 'kysely';
import type { Database, SessionRow, UserRow } from './tables.js';
import { JOINED_USER_COLUMNS, joinedUser } from './users.js';

type Db = Kysely<Database>;

export function insertSession(
  db: Db,
  values: { user_id: string; token_hash: string; expires_at: Date; ip_address: string | null; user_agent: string | null },
): Promise<SessionRow> {
  return db
    .insertInto('sessions')
    .values(values)
    .returning(['id', 'user_id', 'token_hash', 'created_at', 'last_seen_at', 'expires_at', 'ip_address', 'user_agent'])
    .executeTakeFirstOrThrow();
}

export interface SessionWithUser {
  session: SessionRow;
  user: UserRow;
}

/** A session and its user in one query (this runs on every cookie-authenticated request). */
export async function findSessionByHash(db: Db, tokenHash: string): Promise<SessionWithUser | undefined> {
  const row = await db
    .selectFrom('sessions as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .select([
      's.id',
      's.user_id',
      's.token_hash',
      's.created_at',
      's.last_seen_at',
      's.expires_at',
      's.ip_address',
      's.user_agent',
      ...JOINED_USER_COLUMNS,
    ])
    .where('s.token_hash', '=', tokenHash)
    .executeTakeFirst();
  return row && { session: row, user: joinedUser(row) };
}

export async function touchSession(db: Db, id: string, lastSeen: Date, expiresAt: Date): Promise<void> {
  await db.updateTable('sessions').set({ last_seen_at: lastSeen, expires_at: expiresAt }).where('id', '=', id).execute();
}

export async function deleteSession(db: Db, id: string): Promise<void> {
  await db.deleteFrom('sessions').where('id', '=', id).execute();
}

export async function deleteUserSessions(db: Db, userId: string): Promise<void> {
  await db.deleteFrom('sessions').where('user_id', '=', userId).execute();
}

export async function deleteExpiredSessions(db: Db, now: Date): Promise<number> {
  const r = await db.deleteFrom('sessions').where('expires_at', '<=', now).executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** Whether a session still signs its user in: not deleted, not expired, its user not disabled (one indexed look-up). */
export async function sessionIsLive(db: Db, id: string, now: Date): Promise<boolean> {
  const row = await db
    .selectFrom('sessions as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .select('s.id')
    .where('s.id', '=', id)
    .where('s.expires_at', '>', now)
    .where('u.disabled_at', 'is', null)
    .executeTakeFirst();
  return row !== undefined;
}
