import { sql } from 'kysely';
import type { Kysely } from 'kysely';
import { collectVolumes } from '../volumes/service.js';
import { deleteExpiredJobs } from '../db/jobs.js';
import { deleteExpiredSessions } from '../db/sessions.js';
import { pruneFailures } from '../db/users.js';
import type { Database } from '../db/tables.js';
import type { VolumeStore } from '../volumes/store.js';

/**
 * The scheduled clean-up: jobs past their `expires_at`, expired sessions, guest accounts with no
 * session left (their cases and jobs go with them), failed sign-ins past their window (any email,
 * known or not), then every volume nothing references.
 */
export async function runRetention(
  db: Kysely<Database>,
  store: VolumeStore,
  opts: { now?: Date; signInFailureWindowMs?: number } = {},
): Promise<{ jobs: number; sessions: number; guests: number; signInFailures: number; volumes: number }> {
  const now = opts.now ?? new Date();
  const jobs = await deleteExpiredJobs(db, now);
  const sessions = await deleteExpiredSessions(db, now);
  const guests = await db
    .deleteFrom('users as u')
    .where('u.role', '=', 'guest')
    .where('u.created_at', '<', new Date(now.getTime() - 3_600_000))
    .where(({ not, exists, selectFrom }) =>
      not(
        exists(
          selectFrom('sessions as s')
            .select(sql`1`.as('one'))
            .whereRef('s.user_id', '=', 'u.id'),
        ),
      ),
    )
    .executeTakeFirst();
  const signInFailures = await pruneFailures(db, new Date(now.getTime() - (opts.signInFailureWindowMs ?? 86_400_000)));
  const volumes = await collectVolumes(db, store);
  return { jobs, sessions, guests: Number(guests.numDeletedRows), signInFailures, volumes };
}
