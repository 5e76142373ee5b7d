import { type Kysely, sql } from 'kysely';
import type { Database } from './tables.js';

/**
 * A transaction-scoped lock on one account's quota: what it owns is counted and the new row
 * inserted while it is held, so two uploads finishing together cannot both pass a count taken
 * before either inserted. Taken after the volume hash locks (the same order everywhere).
 */
export async function lockOwnerQuota(trx: Kysely<Database>, ownerId: string): Promise<void> {
  await sql`select pg_advisory_xact_lock(hashtextextended(${`owner:${ownerId}`}, 0))`.execute(trx);
}

/** The bytes an account's cases and corrected masks take in the store (each volume once). */
export async function storedBytesOf(db: Kysely<Database>, ownerId: string): Promise<number> {
  const r = await sql<{ bytes: string | null }>`
    select coalesce(sum(v.bytes), 0)::text as bytes from volumes v where v.id in (
      select cv.volume_id from case_volumes cv join cases c on c.id = cv.case_id where c.owner_id = ${ownerId}
      union
      select mv.volume_id from mask_versions mv where mv.author_id = ${ownerId}
    )`.execute(db);
  return Number(r.rows[0]?.bytes ?? 0);
}
