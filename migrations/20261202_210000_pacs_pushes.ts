import { type Kysely, sql } from 'kysely';

// Frozen in time: imports nothing from src/.
// #26: a DICOM SEG sent to the deployment's PACS (STOW-RS) is a durable job: the row is what users
// see (status, attempts, the PACS's last answer, the SEG's UIDs once stored); pg-boss carries the
// work and its retries.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('pacs_pushes')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('owner_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('case_id', 'uuid', (c) => c.notNull().references('cases.id').onDelete('cascade'))
    // what the SEG is made from: a job's mask or a corrected version (exactly one)
    .addColumn('job_id', 'uuid', (c) => c.references('jobs.id').onDelete('cascade'))
    .addColumn('mask_version_id', 'uuid', (c) => c.references('mask_versions.id').onDelete('cascade'))
    .addColumn('status', 'text', (c) => c.notNull().defaultTo('queued'))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('error', 'text')
    .addColumn('study_instance_uid', 'text')
    .addColumn('series_instance_uid', 'text')
    .addColumn('sop_instance_uid', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('finished_at', 'timestamptz')
    .addCheckConstraint('pacs_pushes_one_source', sql`(job_id is null) <> (mask_version_id is null)`)
    .execute();
  await db.schema.createIndex('pacs_pushes_owner_idx').on('pacs_pushes').columns(['owner_id', 'created_at']).execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('pacs_pushes').execute();
}
