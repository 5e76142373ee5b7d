import { type Kysely, sql } from 'kysely';
import type { Database } from './tables.js';

// The fleet's shared counters (migrations/20261203_100000_fleet_limits.ts): the auth rate limit's
// windows and the leases replicas hold for live streams and uploads. Times come from the caller's
// clock (injected in tests); replicas' clocks are assumed NTP-close, as for session expiry.

type Db = Kysely<Database>;

/** One more hit on `key` in its fixed window (a fresh window when the last one has ended). */
export async function hitRateLimit(db: Db, key: string, now: Date, windowMs: number): Promise<{ hits: number; resetAt: Date }> {
  const resetAt = new Date(now.getTime() + windowMs);
  const r = await sql<{ hits: number; reset_at: Date }>`
    insert into rate_limit_hits as r (key, hits, reset_at) values (${key}, 1, ${resetAt})
    on conflict (key) do update set
      hits = case when r.reset_at <= ${now} then 1 else r.hits + 1 end,
      reset_at = case when r.reset_at <= ${now} then ${resetAt} else r.reset_at end
    returning hits, reset_at`.execute(db);
  const row = r.rows[0]!;
  return { hits: row.hits, resetAt: new Date(row.reset_at) };
}

export async function readRateLimit(db: Db, key: string, now: Date): Promise<{ hits: number; resetAt: Date } | undefined> {
  const r = await sql<{
    hits: number;
    reset_at: Date;
  }>`select hits, reset_at from rate_limit_hits where key = ${key} and reset_at > ${now}`.execute(db);
  const row = r.rows[0];
  return row ? { hits: row.hits, resetAt: new Date(row.reset_at) } : undefined;
}

export async function unhitRateLimit(db: Db, key: string): Promise<void> {
  await sql`update rate_limit_hits set hits = greatest(hits - 1, 0) where key = ${key}`.execute(db);
}

export async function resetRateLimit(db: Db, key: string): Promise<void> {
  await sql`delete from rate_limit_hits where key = ${key}`.execute(db);
}

/**
 * Takes a lease on every key or none: under a transaction-scoped lock per key (taken in one order,
 * so two acquirers cannot deadlock), counts each key's live leases and inserts one when all are
 * under their limits. Returns the lease id, or the index of the first claim at its limit with the count.
 */
export async function acquireLease(
  db: Db,
  kind: string,
  claims: { key: string; limit: number }[],
  now: Date,
  leaseMs: number,
): Promise<{ id: string } | { full: number; count: number }> {
  return db.transaction().execute(async (trx) => {
    for (const key of [...new Set(claims.map((c) => c.key))].sort()) {
      await sql`select pg_advisory_xact_lock(hashtextextended(${`lease:${kind}:${key}`}, 0))`.execute(trx);
    }
    for (const [i, c] of claims.entries()) {
      const r = await sql<{ n: number }>`
        select count(*)::int as n from fleet_leases
        where kind = ${kind} and keys @> array[${c.key}]::text[] and expires_at > ${now}`.execute(trx);
      const n = r.rows[0]!.n;
      if (n >= c.limit) return { full: i, count: n };
    }
    const keys = claims.map((c) => c.key);
    const r = await sql<{ id: string }>`
      insert into fleet_leases (kind, keys, expires_at) values (${kind}, ${keys}::text[], ${new Date(now.getTime() + leaseMs)})
      returning id`.execute(trx);
    return { id: r.rows[0]!.id };
  });
}

/** Extends the leases this replica still holds; expired ones from dead replicas go at the same time. */
export async function renewLeases(db: Db, ids: string[], now: Date, leaseMs: number): Promise<void> {
  if (ids.length > 0) {
    await sql`update fleet_leases set expires_at = ${new Date(now.getTime() + leaseMs)} where id = any(${ids}::uuid[])`.execute(db);
  }
  await sql`delete from fleet_leases where expires_at <= ${now}`.execute(db);
}

export async function releaseLease(db: Db, id: string): Promise<void> {
  await sql`delete from fleet_leases where id = ${id}`.execute(db);
}

export async function countLeases(db: Db, kind: string, key: string, now: Date): Promise<number> {
  const r = await sql<{ n: number }>`
    select count(*)::int as n from fleet_leases where kind = ${kind} and keys @> array[${key}]::text[] and expires_at > ${now}`.execute(db);
  return r.rows[0]!.n;
}
