import type { Kysely } from 'kysely';
import type { ApiTokenInfo } from '../../shared/auth.js';
import { insertApiToken, listApiTokens, revokeApiToken } from '../db/api-tokens.js';
import type { ApiTokenRow, Database } from '../db/tables.js';
import { findUserById } from '../db/users.js';
import { forbidden, notFound } from '../errors.js';
import { API_TOKEN_PREFIX, hashToken, newToken } from './tokens.js';

// API tokens (`svt_…`) for the SDK, CLI and REST: made once (the plaintext shown once, its hash
// kept), listed, revoked. Who may manage them (a browser session, never a token) is the router's
// sessionProcedure; authenticating with one is service.ts's `authenticate`.

type Db = Kysely<Database>;
const DAY = 86_400_000;

export function toTokenInfo(t: ApiTokenRow): ApiTokenInfo {
  const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);
  return {
    id: t.id,
    name: t.name,
    createdAt: new Date(t.created_at).toISOString(),
    lastUsedAt: iso(t.last_used_at),
    expiresAt: iso(t.expires_at),
    revokedAt: iso(t.revoked_at),
  };
}

export async function createApiToken(
  db: Db,
  userId: string,
  input: { name: string; expiresInDays?: number | undefined },
): Promise<{ token: string; info: ApiTokenInfo }> {
  if ((await findUserById(db, userId))?.role === 'guest') throw forbidden('Guest accounts cannot create API tokens; register first');
  const token = newToken(API_TOKEN_PREFIX);
  const row = await insertApiToken(db, {
    user_id: userId,
    name: input.name,
    token_hash: hashToken(token),
    expires_at: input.expiresInDays ? new Date(Date.now() + input.expiresInDays * DAY) : null,
  });
  return { token, info: toTokenInfo(row) };
}

export async function listTokens(db: Db, userId: string): Promise<ApiTokenInfo[]> {
  return (await listApiTokens(db, userId)).map(toTokenInfo);
}

export async function revokeToken(db: Db, userId: string, id: string): Promise<void> {
  if (!(await revokeApiToken(db, userId, id, new Date()))) {
    throw notFound('No such token');
  }
}
