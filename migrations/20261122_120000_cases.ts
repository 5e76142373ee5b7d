import { type Kysely, sql } from 'kysely';

// Frozen in time: imports nothing from src/.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('volumes')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    // content address of the stored .nii.gz: the same bytes are stored once
    .addColumn('sha256', 'text', (c) => c.notNull().unique())
    .addColumn('bytes', 'bigint', (c) => c.notNull())
    .addColumn('dims', 'jsonb', (c) => c.notNull())
    .addColumn('voxel_size_mm', 'jsonb', (c) => c.notNull())
    .addColumn('datatype', 'text', (c) => c.notNull())
    .addColumn('affine', 'jsonb', (c) => c.notNull())
    .addColumn('frames', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('cases')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    // null: a demo (or shared import) case everyone can read
    .addColumn('owner_id', 'uuid', (c) => c.references('users.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('source', 'text', (c) => c.notNull().check(sql`source in ('demo', 'import', 'upload')`))
    .addColumn('subject_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('cases_owner_idx').on('cases').columns(['owner_id', 'created_at']).execute();
  await sql`create unique index cases_import_subject_key on cases (subject_id) where source = 'import'`.execute(db);
  await sql`create unique index cases_demo_subject_key on cases (subject_id) where source = 'demo'`.execute(db);

  await db.schema
    .createTable('case_volumes')
    .addColumn('case_id', 'uuid', (c) => c.notNull().references('cases.id').onDelete('cascade'))
    .addColumn('role', 'text', (c) => c.notNull().check(sql`role in ('dwi', 'adc', 'flair', 'mask')`))
    .addColumn('volume_id', 'uuid', (c) => c.notNull().references('volumes.id'))
    .addPrimaryKeyConstraint('case_volumes_pkey', ['case_id', 'role'])
    .execute();
  await db.schema.createIndex('case_volumes_volume_idx').on('case_volumes').column('volume_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('case_volumes').execute();
  await db.schema.dropTable('cases').execute();
  await db.schema.dropTable('volumes').execute();
}
