import { type Kysely, sql } from 'kysely';

// Frozen in time: imports nothing from src/.
// #27: a study is a named set of cases with members in roles. Its cases are visible to its
// members under those roles (owner and editor may run models and save masks, viewer reads). A case
// may belong to several studies; deleting a case or a study removes its links, never the other side.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('studies')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('description', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('created_by', 'uuid', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('study_members')
    .addColumn('study_id', 'uuid', (c) => c.notNull().references('studies.id').onDelete('cascade'))
    .addColumn('user_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('owner', 'editor', 'viewer')`))
    .addColumn('added_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('study_members_pkey', ['study_id', 'user_id'])
    .execute();
  // "which studies may this user see" is the hot question (every case lookup asks it)
  await db.schema.createIndex('study_members_user_idx').on('study_members').columns(['user_id', 'study_id']).execute();

  await db.schema
    .createTable('study_cases')
    .addColumn('study_id', 'uuid', (c) => c.notNull().references('studies.id').onDelete('cascade'))
    .addColumn('case_id', 'uuid', (c) => c.notNull().references('cases.id').onDelete('cascade'))
    .addColumn('added_by', 'uuid', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('added_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('study_cases_pkey', ['study_id', 'case_id'])
    .execute();
  await db.schema.createIndex('study_cases_case_idx').on('study_cases').columns(['case_id', 'study_id']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('study_cases').execute();
  await db.schema.dropTable('study_members').execute();
  await db.schema.dropTable('studies').execute();
}
