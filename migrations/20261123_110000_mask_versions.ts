import { type Kysely, sql } from 'kysely';

// Frozen in time: imports nothing from src/.
// Corrected masks: a user's saved edits of a case's lesion mask, numbered per case and author.
// User data: result retention does not remove them; deleting the case (or the user) does.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('mask_versions')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('case_id', 'uuid', (c) => c.notNull().references('cases.id').onDelete('cascade'))
    .addColumn('author_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('version', 'integer', (c) => c.notNull())
    .addColumn('volume_id', 'uuid', (c) => c.notNull().references('volumes.id'))
    .addColumn('job_id', 'uuid', (c) => c.references('jobs.id').onDelete('set null'))
    .addColumn('note', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('voxels', 'integer', (c) => c.notNull())
    .addColumn('volume_ml', 'double precision', (c) => c.notNull())
    .addColumn('dice_vs_prediction', 'double precision')
    .addColumn('dice_vs_truth', 'double precision')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addUniqueConstraint('mask_versions_case_author_version', ['case_id', 'author_id', 'version'])
    .execute();
  await db.schema.createIndex('mask_versions_case_idx').on('mask_versions').columns(['case_id', 'created_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('mask_versions').execute();
}
