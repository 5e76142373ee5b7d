import { type Kysely, sql } from 'kysely';

// Frozen in time: imports nothing from src/.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('jobs')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('owner_id', 'uuid', (c) => c.notNull().references('users.id').onDelete('cascade'))
    .addColumn('case_id', 'uuid', (c) => c.notNull().references('cases.id').onDelete('cascade'))
    .addColumn('model_ids', 'jsonb', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c
        .notNull()
        .defaultTo('queued')
        .check(sql`status in ('queued', 'running', 'succeeded', 'failed', 'cancelled')`),
    )
    .addColumn('progress', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('message', 'text', (c) => c.notNull().defaultTo(''))
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('error', 'text')
    .addColumn('result', 'jsonb')
    // bumped on every change: the id of progress events, so a reconnecting client resumes
    .addColumn('version', 'integer', (c) => c.notNull().defaultTo(1))
    .addColumn('cancel_requested', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('idempotency_key', 'text')
    .addColumn('queue_job_id', 'text')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
  await db.schema.createIndex('jobs_owner_idx').on('jobs').columns(['owner_id', 'created_at']).execute();
  await db.schema.createIndex('jobs_case_idx').on('jobs').column('case_id').execute();
  await db.schema.createIndex('jobs_status_idx').on('jobs').column('status').execute();
  await db.schema.createIndex('jobs_expires_idx').on('jobs').column('expires_at').execute();
  await sql`create unique index jobs_idempotency_key on jobs (owner_id, idempotency_key) where idempotency_key is not null`.execute(db);

  // Volumes a job produced (the mask, and each model's mask in an ensemble), so the collector
  // knows they are in use.
  await db.schema
    .createTable('job_volumes')
    .addColumn('job_id', 'uuid', (c) => c.notNull().references('jobs.id').onDelete('cascade'))
    .addColumn('name', 'text', (c) => c.notNull())
    .addColumn('volume_id', 'uuid', (c) => c.notNull().references('volumes.id'))
    .addPrimaryKeyConstraint('job_volumes_pkey', ['job_id', 'name'])
    .execute();
  await db.schema.createIndex('job_volumes_volume_idx').on('job_volumes').column('volume_id').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('job_volumes').execute();
  await db.schema.dropTable('jobs').execute();
}
