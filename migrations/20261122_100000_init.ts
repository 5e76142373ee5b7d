import { type Kysely, sql } from 'kysely';

// Frozen in time: migrations import nothing from src/ and use `Kysely<any>` on purpose.

export async function up(db: Kysely<any>): Promise<void> {
  // A small key/value table for instance-wide facts (demo cases seeded, schema notes, …).
  await db.schema
    .createTable('app_settings')
    .addColumn('key', 'text', (c) => c.primaryKey())
    .addColumn('value', 'jsonb', (c) => c.notNull())
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('app_settings').execute();
}
