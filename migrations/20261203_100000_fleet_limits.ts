import { type Kysely, sql } from 'kysely';

// Frozen in time: imports nothing from src/.
// #28: the limits that protect the service count per fleet, in the database every replica shares.
// Both tables are UNLOGGED: counters and leases are worth nothing after a crash (a restarted
// PostgreSQL empties them, which only forgives), and they skip the WAL on every request.

export async function up(db: Kysely<any>): Promise<void> {
  // The auth rate limit's fixed windows (hono-rate-limiter's Store over PostgreSQL).
  await sql`create unlogged table rate_limit_hits (
    key text primary key,
    hits integer not null,
    reset_at timestamptz not null
  )`.execute(db);
  // What a replica holds for as long as it lives: a live progress stream, an upload in flight.
  // Renewed by the holder's heartbeat; a dead replica's leases expire and stop counting.
  await sql`create unlogged table fleet_leases (
    id uuid primary key default gen_random_uuid(),
    kind text not null,
    keys text[] not null,
    expires_at timestamptz not null
  )`.execute(db);
  await sql`create index fleet_leases_keys_idx on fleet_leases using gin (keys)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop table fleet_leases`.execute(db);
  await sql`drop table rate_limit_hits`.execute(db);
}
