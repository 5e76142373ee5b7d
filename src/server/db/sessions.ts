import type { Kysely } from 'kysely';
import type { Database, SessionRow, UserRow } from './tables.js';

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

export async function findSessionByHash(db: Db, tokenHash: string): Promise<SessionWithUser | undefined> {
  const row = await db
    .selectFrom('sessions as s')
    .innerJoin('users as u', 'u.id', 's.user_id')
    .select([
      's.id as s_id',
      's.user_id as s_user_id',
      's.token_hash as s_token_hash',
      's.created_at as s_created_at',
      's.last_seen_at as s_last_seen_at',
      's.expires_at as s_expires_at',
      's.ip_address as s_ip_address',
      's.user_agent as s_user_agent',
      'u.id',
      'u.email',
      'u.password_hash',
      'u.role',
      'u.disabled_at',
      'u.created_at',
      'u.updated_at',
    ])
    .where('s.token_hash', '=', tokenHash)
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    session: {
      id: row.s_id,
      user_id: row.s_user_id,
      token_hash: row.s_token_hash,
      created_at: row.s_created_at,
      last_seen_at: row.s_last_seen_at,
      expires_at: row.s_expires_at,
      ip_address: row.s_ip_address,
      user_agent: row.s_user_agent,
    },
    user: {
      id: row.id,
      email: row.email,
      password_hash: row.password_hash,
      role: row.role,
      disabled_at: row.disabled_at,
      created_at: row.created_at,
      updated_at: row.updated_at,
    },
  };
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
