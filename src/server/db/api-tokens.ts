import type { Kysely } from 'kysely';
import type { ApiTokenRow, Database, UserRow } from './tables.js';
import { JOINED_USER_COLUMNS, joinedUser } from './users.js';

type Db = Kysely<Database>;
const TOKEN_COLUMNS = ['id', 'user_id', 'name', 'token_hash', 'created_at', 'last_used_at', 'expires_at', 'revoked_at'] as const;

export function insertApiToken(
  db: Db,
  values: { user_id: string; name: string; token_hash: string; expires_at: Date | null },
): Promise<ApiTokenRow> {
  return db.insertInto('api_tokens').values(values).returning(TOKEN_COLUMNS).executeTakeFirstOrThrow();
}

export function listApiTokens(db: Db, userId: string): Promise<ApiTokenRow[]> {
  return db.selectFrom('api_tokens').select(TOKEN_COLUMNS).where('user_id', '=', userId).orderBy('created_at', 'desc').execute();
}

/** A token and its user in one query (this runs on every Bearer-authenticated request). */
export async function findApiTokenByHash(db: Db, tokenHash: string): Promise<{ token: ApiTokenRow; user: UserRow } | undefined> {
  const row = await db
    .selectFrom('api_tokens as t')
    .innerJoin('users as u', 'u.id', 't.user_id')
    .select([
      't.id',
      't.user_id',
      't.name',
      't.token_hash',
      't.created_at',
      't.last_used_at',
      't.expires_at',
      't.revoked_at',
      ...JOINED_USER_COLUMNS,
    ])
    .where('t.token_hash', '=', tokenHash)
    .executeTakeFirst();
  return row && { token: row, user: joinedUser(row) };
}

export async function markApiTokenUsed(db: Db, id: string, at: Date): Promise<void> {
  await db.updateTable('api_tokens').set({ last_used_at: at }).where('id', '=', id).execute();
}

/** Revokes one of the user's tokens; false when it is not theirs (or does not exist). */
export async function revokeApiToken(db: Db, userId: string, id: string, at: Date): Promise<boolean> {
  const r = await db
    .updateTable('api_tokens')
    .set({ revoked_at: at })
    .where('id', '=', id)
    .where('user_id', '=', userId)
    .executeTakeFirst();
  return Number(r.numUpdatedRows) > 0;
}

export async function deleteUserApiTokens(db: Db, userId: string): Promise<void> {
  await db.deleteFrom('api_tokens').where('user_id', '=', userId).execute();
}

/** Whether an API token still signs its user in: not deleted or revoked, not expired, its user not disabled. */
export async function apiTokenIsLive(db: Db, id: string, now: Date): Promise<boolean> {
  const row = await db
    .selectFrom('api_tokens as t')
    .innerJoin('users as u', 'u.id', 't.user_id')
    .select('t.id')
    .where('t.id', '=', id)
    .where('t.revoked_at', 'is', null)
    .where((eb) => eb.or([eb('t.expires_at', 'is', null), eb('t.expires_at', '>', now)]))
    .where('u.disabled_at', 'is', null)
    .executeTakeFirst();
  return row !== undefined;
}
