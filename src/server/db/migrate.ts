import { type Kysely, sql } from 'kysely';
import { type MigrationResultSet, Migrator } from 'kysely/migration';
import { migrations } from '../../../migrations/index.js';

export function createMigrator(db: Kysely<any>): Migrator {
  return new Migrator({ db, provider: { getMigrations: async () => migrations } });
}

/**
 * Brings the schema to the latest migration. Kysely's Migrator holds a transaction-scoped
 * advisory lock while it runs, so replicas booting together against one PostgreSQL take turns.
 */
export async function migrateToLatest(db: Kysely<any>): Promise<string[]> {
  if (await upToDate(db)) return [];
  const { error, results }: MigrationResultSet = await createMigrator(db).migrateToLatest();
  const failed = results?.find((r) => r.status === 'Error');
  if (error) {
    const name = failed ? ` ${failed.migrationName}` : '';
    throw new Error(`migration${name} failed: ${(error as Error).message ?? String(error)}`);
  }
  return (results ?? []).filter((r) => r.status === 'Success').map((r) => r.migrationName);
}

export async function pendingMigrations(db: Kysely<any>): Promise<string[]> {
  const all = await createMigrator(db).getMigrations();
  return all.filter((m) => !m.executedAt).map((m) => m.name);
}

/**
 * Whether the database has run exactly the migrations this build knows: one query, where the
 * Migrator's full pass (its tables, its lock, its checks) costs a warm restart on the embedded
 * database seconds. Anything else — a fresh database, a missing or unknown migration — takes the
 * Migrator's path, which applies or reports it as before.
 */
async function upToDate(db: Kysely<any>): Promise<boolean> {
  try {
    const { rows } = await sql<{ name: string }>`select name from kysely_migration`.execute(db);
    const known = Object.keys(migrations);
    const done = new Set(rows.map((r) => r.name));
    return done.size === known.length && known.every((name) => done.has(name));
  } catch {
    return false; // no bookkeeping table yet
  }
}
