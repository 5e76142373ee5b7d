import { randomUUID } from 'node:crypto';
import type { Kysely } from 'kysely';
import type { PublicUser } from '../../shared/auth.js';
import { apiTokenIsLive, deleteUserApiTokens, findApiTokenByHash, markApiTokenUsed } from '../db/api-tokens.js';
import { deleteSession, deleteUserSessions, findSessionByHash, insertSession, sessionIsLive, touchSession } from '../db/sessions.js';
import type { Database, UserRow } from '../db/tables.js';
import { clearFailures, findUserByEmail, findUserById, insertUser, releaseAttempt, reserveAttempt, updateUser } from '../db/users.js';
import type { Env } from '../env.js';
import { conflict, forbidden, invalid, notFound, tooMany, unauthorized } from '../errors.js';
import { type JobSystem, cancelUserJobs } from '../jobs/service.js';
import { hashPassword, verifyPassword } from './passwords.js';
import type { SessionCache } from './session-cache.js';
import { API_TOKEN_PREFIX, SESSION_TOKEN_PREFIX, hashToken, newToken, sameDigest } from './tokens.js';

type Db = Kysely<Database>;
export type AuthConfig = Pick<
  Env,
  'SESSION_IDLE_DAYS' | 'SESSION_MAX_DAYS' | 'GUEST_TTL_HOURS' | 'ALLOW_GUESTS' | 'SIGN_IN_FAILURES_MAX' | 'SIGN_IN_FAILURE_WINDOW_MIN'
>;

const DAY = 86_400_000;
const HOUR = 3_600_000;
/** Sessions are renewed (last_seen, expiry) at most this often, to keep reads from writing. */
export const SESSION_RENEW_MS = HOUR;
export const SIGN_IN_FAILED = 'Email or password is incorrect';

export interface ClientMeta {
  ip: string | null;
  userAgent: string | null;
}

export interface AuthUser {
  id: string;
  email: string;
  role: UserRow['role'];
}

export interface Authenticated {
  user: AuthUser;
  via: 'session' | 'api-token';
  sessionId?: string;
  /** The API token's id (via 'api-token'): what a long-lived stream re-checks (credentialIsLive). */
  tokenId?: string;
  /** Set when a session was renewed: the cookie should be re-sent with this expiry. */
  renewedUntil?: Date;
}

export interface IssuedSession {
  user: UserRow;
  token: string;
  expiresAt: Date;
}

export function toPublicUser(u: UserRow): PublicUser {
  return {
    id: u.id,
    email: u.email,
    role: u.role,
    disabled: u.disabled_at !== null,
    createdAt: new Date(u.created_at).toISOString(),
  };
}

/** A new session: a fresh 256-bit token, only its hash stored; expiry is the idle timeout (capped). */
export async function issueSession(db: Db, cfg: AuthConfig, user: UserRow, meta: ClientMeta, lifetimeMs?: number): Promise<IssuedSession> {
  const token = newToken(SESSION_TOKEN_PREFIX);
  const now = Date.now();
  const expiresAt = new Date(now + Math.min(lifetimeMs ?? cfg.SESSION_IDLE_DAYS * DAY, cfg.SESSION_MAX_DAYS * DAY));
  await insertSession(db, {
    user_id: user.id,
    token_hash: hashToken(token),
    expires_at: expiresAt,
    ip_address: meta.ip,
    user_agent: meta.userAgent?.slice(0, 400) ?? null,
  });
  return { user, token, expiresAt };
}

export async function register(
  db: Db,
  cfg: AuthConfig,
  input: { email: string; password: string },
  meta: ClientMeta,
): Promise<IssuedSession> {
  if (await findUserByEmail(db, input.email)) {
    throw conflict('An account with this email already exists');
  }
  const passwordHash = await hashPassword(input.password);
  // Never 'admin': an administrator is made only from the server side (ensureAdmin, the CLI).
  const role = 'user';
  let user: UserRow;
  try {
    user = await insertUser(db, { email: input.email, password_hash: passwordHash, role });
  } catch (err) {
    // Two registrations racing for one email: the unique index decides.
    if ((err as { code?: string }).code === '23505') {
      throw conflict('An account with this email already exists');
    }
    throw err;
  }
  return issueSession(db, cfg, user, meta);
}

/**
 * The administrator named by ADMIN_EMAIL/ADMIN_PASSWORD, made at boot: created when missing; an
 * existing account is promoted only if its password is ADMIN_PASSWORD — whoever registered the
 * address first without knowing the secret stays a user.
 */
export async function ensureAdmin(
  db: Db,
  admin: { email: string; password: string },
): Promise<'created' | 'promoted' | 'unchanged' | 'refused'> {
  const existing = await findUserByEmail(db, admin.email);
  if (!existing) {
    try {
      await insertUser(db, { email: admin.email, password_hash: await hashPassword(admin.password), role: 'admin' });
      return 'created';
    } catch (err) {
      if ((err as { code?: string }).code !== '23505') throw err;
      return ensureAdmin(db, admin); // another process made it at the same moment
    }
  }
  if (existing.role === 'admin') return 'unchanged';
  if (!(await verifyPassword(existing.password_hash, admin.password))) return 'refused';
  await updateUser(db, existing.id, { role: 'admin' });
  return 'promoted';
}

/**
 * Reserves one password check of an account under its failure limit (SIGN_IN_FAILURES_MAX per
 * SIGN_IN_FAILURE_WINDOW_MIN, counted per fleet in PostgreSQL) and returns the attempt's id; past
 * the limit, 429 with the wait. Sign-in and changePassword share the count: guessing through
 * either one spends the same budget. The row is written before the password is checked, so
 * parallel wrong passwords cannot all pass the count; a wrong password keeps it (that is the
 * recorded failure), anything else releases or clears it.
 */
async function reservePasswordCheck(db: Db, cfg: AuthConfig, email: string, tooManyWhat: string): Promise<string> {
  const windowMs = cfg.SIGN_IN_FAILURE_WINDOW_MIN * 60_000;
  const since = new Date(Date.now() - windowMs);
  const attempt = await reserveAttempt(db, email, since);
  if (attempt.count > cfg.SIGN_IN_FAILURES_MAX) {
    await releaseAttempt(db, attempt.id);
    const retryAfter = Math.max(1, Math.ceil(((attempt.oldest?.getTime() ?? Date.now()) + windowMs - Date.now()) / 1000));
    throw tooMany(`${tooManyWhat}. Try again in ${Math.ceil(retryAfter / 60)} minute(s).`, retryAfter);
  }
  return attempt.id;
}

export async function signIn(
  db: Db,
  cfg: AuthConfig,
  input: { email: string; password: string },
  meta: ClientMeta,
): Promise<IssuedSession> {
  const attemptId = await reservePasswordCheck(db, cfg, input.email, 'Too many failed sign-ins for this email');
  let user: UserRow | undefined;
  try {
    user = await findUserByEmail(db, input.email);
    const ok = await verifyPassword(user?.password_hash, input.password);
    if (!user || !ok) user = undefined;
  } catch (err) {
    await releaseAttempt(db, attemptId); // not the caller's failure
    throw err;
  }
  // A wrong password keeps its reserved row: that is the recorded failure.
  if (!user) throw unauthorized(SIGN_IN_FAILED);
  if (user.disabled_at) {
    await releaseAttempt(db, attemptId);
    throw forbidden('This account is disabled');
  }
  await clearFailures(db, input.email);
  return issueSession(db, cfg, user, meta);
}

export async function createGuest(db: Db, cfg: AuthConfig, meta: ClientMeta): Promise<IssuedSession> {
  if (!cfg.ALLOW_GUESTS) throw forbidden('Guest access is turned off here');
  const user = await insertUser(db, {
    email: `guest-${randomUUID()}@guest.strokeview.invalid`,
    password_hash: null,
    role: 'guest',
  });
  return issueSession(db, cfg, user, meta, cfg.GUEST_TTL_HOURS * HOUR);
}

/**
 * Resolves a session token or an API token to its user. Expired, revoked or unknown tokens and
 * disabled users give null. A session is renewed (sliding expiry, capped by the absolute
 * lifetime) at most once an hour. With a `cache`, the row and its user come from it when it has
 * them (no database round trip), and a row read from the database is stored in it; the row is
 * judged against the clock the same way either way.
 */
export async function authenticate(
  db: Db,
  cfg: AuthConfig,
  token: string,
  opts: { now?: Date; cache?: SessionCache | undefined } = {},
): Promise<Authenticated | null> {
  const now = opts.now ?? new Date();
  const { cache } = opts;
  const digest = hashToken(token);
  const isApiToken = token.startsWith(API_TOKEN_PREFIX);
  if (!isApiToken && !token.startsWith(SESSION_TOKEN_PREFIX)) return null;
  let found = cache?.get(digest);
  if (!found) {
    const generation = cache?.generation ?? 0;
    if (isApiToken) {
      const row = await findApiTokenByHash(db, digest);
      found = row && { kind: 'api-token', token: row.token, user: row.user };
    } else {
      const row = await findSessionByHash(db, digest);
      found = row && { kind: 'session', session: row.session, user: row.user };
    }
    if (found) cache?.store(digest, found, generation);
  }
  if (!found) return null;
  if (found.kind === 'api-token') {
    const { token: row, user } = found;
    if (!sameDigest(row.token_hash, digest)) return null;
    if (row.revoked_at || (row.expires_at && new Date(row.expires_at) <= now) || user.disabled_at) return null;
    if (!row.last_used_at || now.getTime() - new Date(row.last_used_at).getTime() > 60_000) {
      await markApiTokenUsed(db, row.id, now);
      // The cached row learns its new stamp, so the next request does not write it again.
      row.last_used_at = now;
    }
    return { user: { id: user.id, email: user.email, role: user.role }, via: 'api-token', tokenId: row.id };
  }
  const { session, user } = found;
  if (!sameDigest(session.token_hash, digest)) return null;
  if (new Date(session.expires_at) <= now) {
    cache?.drop(digest);
    await deleteSession(db, session.id);
    return null;
  }
  if (user.disabled_at) return null;
  const result: Authenticated = {
    user: { id: user.id, email: user.email, role: user.role },
    via: 'session',
    sessionId: session.id,
  };
  if (user.role !== 'guest' && now.getTime() - new Date(session.last_seen_at).getTime() >= SESSION_RENEW_MS) {
    const absoluteEnd = new Date(session.created_at).getTime() + cfg.SESSION_MAX_DAYS * DAY;
    const expiresAt = new Date(Math.min(now.getTime() + cfg.SESSION_IDLE_DAYS * DAY, absoluteEnd));
    await touchSession(db, session.id, now, expiresAt);
    // As for tokens: the cached row is renewed with the database's, so renewals stay hourly.
    session.last_seen_at = now;
    session.expires_at = expiresAt;
    result.renewedUntil = expiresAt;
  }
  return result;
}

export async function signOut(db: Db, sessionId: string | undefined): Promise<void> {
  if (sessionId) await deleteSession(db, sessionId);
}

/** Every session and API token of the user goes: on password change and disable (pass the transaction). */
async function revokeEverything(trx: Db, userId: string): Promise<void> {
  await deleteUserSessions(trx, userId);
  await deleteUserApiTokens(trx, userId);
}

export async function changePassword(
  db: Db,
  cfg: AuthConfig,
  userId: string,
  input: { current: string; next: string },
  meta: ClientMeta,
): Promise<IssuedSession> {
  const user = await findUserById(db, userId);
  if (!user) throw unauthorized('Sign in to continue');
  if (user.role === 'guest') throw forbidden('Guest accounts have no password; register instead');
  // The current password is a password guess like a sign-in's: the same per-account budget.
  const attemptId = await reservePasswordCheck(db, cfg, user.email, 'Too many wrong passwords for this account');
  let ok: boolean;
  try {
    ok = await verifyPassword(user.password_hash, input.current);
  } catch (err) {
    await releaseAttempt(db, attemptId); // not the caller's failure
    throw err;
  }
  if (!ok) throw invalid('The current password is incorrect', { field: 'current' });
  await clearFailures(db, user.email);
  const passwordHash = await hashPassword(input.next);
  const updated = await db.transaction().execute(async (trx) => {
    const u = await updateUser(trx, userId, { password_hash: passwordHash });
    await revokeEverything(trx, userId);
    return u!;
  });
  // The caller stays signed in on a brand-new session; every other session and token is gone.
  return issueSession(db, cfg, updated, meta);
}

/** The signed-in user as the API shows them (null when the account is gone). */
export async function currentUser(db: Db, userId: string): Promise<PublicUser | null> {
  const user = await findUserById(db, userId);
  return user ? toPublicUser(user) : null;
}

/**
 * Disabling stops everything the user has going: every session and token is deleted (so their
 * open progress streams end at their next re-check, see credentialIsLive) and their queued and
 * running jobs are cancelled the way their owner would (a running one is stopped by its worker).
 * The jobs go after the commit: a job created in between still finds the account disabled at its
 * next request, and a cancel that fails leaves the account disabled, which matters more.
 */
export async function setUserDisabled(db: Db, jobs: JobSystem, userId: string, disabled: boolean): Promise<UserRow> {
  const user = await db.transaction().execute(async (trx) => {
    const u = await updateUser(trx, userId, { disabled_at: disabled ? new Date() : null });
    if (u && disabled) await revokeEverything(trx, userId);
    return u;
  });
  if (!user) throw notFound('No such user');
  if (disabled) await cancelUserJobs(db, jobs, userId);
  return user;
}

/**
 * Whether the credential a request was authenticated with still holds: its session or API token
 * not deleted, revoked or expired, its user not disabled. A long-lived stream authorizes once at
 * its start, so it asks this at each re-check and ends when the answer is no.
 */
export async function credentialIsLive(
  db: Db,
  auth: Pick<Authenticated, 'via' | 'sessionId' | 'tokenId'>,
  now = new Date(),
): Promise<boolean> {
  if (auth.via === 'session') return auth.sessionId !== undefined && sessionIsLive(db, auth.sessionId, now);
  return auth.tokenId !== undefined && apiTokenIsLive(db, auth.tokenId, now);
}
