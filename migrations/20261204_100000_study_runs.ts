import { type Kysely, sql } from 'kysely';

// Frozen in time: imports nothing from src/.
// #27: a study run runs one model over a study's cases as ordinary jobs (the same queue and
// workers). The run row holds only what was asked (model, rerun, cancel); its progress is derived
// from its jobs, so it resumes after a restart with them. study_run_jobs is the run's row per case:
// the job that answers it — one the run queued, or an earlier result it reused (the same model on
// the same case), so one job may answer several runs. jobs.study_run_id marks the jobs a run
// queued: they are admitted apart from single jobs and enqueued at a lower priority.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('study_runs')
    .addColumn('id', 'uuid', (c) => c.primaryKey().defaultTo(sql`gen_random_uuid()`))
    .addColumn('study_id', 'uuid', (c) => c.notNull().references('studies.id').onDelete('cascade'))
    .addColumn('model_id', 'text', (c) => c.notNull())
    .addColumn('created_by', 'uuid', (c) => c.references('users.id').onDelete('set null'))
    .addColumn('rerun', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('cancel_requested', 'boolean', (c) => c.notNull().defaultTo(false))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('study_runs_study_idx').on('study_runs').columns(['study_id', 'created_at']).execute();

  await db.schema
    .alterTable('jobs')
    .addColumn('study_run_id', 'uuid', (c) => c.references('study_runs.id').onDelete('set null'))
    .execute();
  await sql`create index jobs_study_run_idx on jobs (study_run_id) where study_run_id is not null`.execute(db);

  await db.schema
    .createTable('study_run_jobs')
    .addColumn('run_id', 'uuid', (c) => c.notNull().references('study_runs.id').onDelete('cascade'))
    .addColumn('case_id', 'uuid', (c) => c.notNull().references('cases.id').onDelete('cascade'))
    // null once retention deleted the job: the row stays, saying its result expired
    .addColumn('job_id', 'uuid', (c) => c.references('jobs.id').onDelete('set null'))
    .addColumn('reused', 'boolean', (c) => c.notNull().defaultTo(false))
    .addPrimaryKeyConstraint('study_run_jobs_pkey', ['run_id', 'case_id'])
    .execute();
  await db.schema.createIndex('study_run_jobs_job_idx').on('study_run_jobs').column('job_id').execute();
  // reuse looks for an earlier result of the same model on the same case
  await sql`create index jobs_case_models_idx on jobs (case_id, status) include (model_ids)`.execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  await sql`drop index if exists jobs_case_models_idx`.execute(db);
  await db.schema.dropTable('study_run_jobs').execute();
  await db.schema.alterTable('jobs').dropColumn('study_run_id').execute();
  await db.schema.dropTable('study_runs').execute();
}
