import { type Kysely, sql } from 'kysely';

// Frozen in time: imports nothing from src/.
// #26: a case imported from DICOM keeps what a DICOM SEG needs to reference its source — the
// study, the series each role came from with its SOP instances per slice (in the stored volume's
// slice order), its frame of reference and geometry — and, only when the deployment keeps patient
// data (DICOM_KEEP_PATIENT=true), the patient and study modules. Nothing else from the headers.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema
    .createTable('case_dicom')
    .addColumn('case_id', 'uuid', (c) => c.primaryKey().references('cases.id').onDelete('cascade'))
    .addColumn('study_instance_uid', 'text', (c) => c.notNull())
    .addColumn('frame_of_reference_uid', 'text')
    // [{ role, how, seriesInstanceUid, seriesNumber, sopClassUid, geometry, slices: [{ position, refs }] }]
    .addColumn('series', 'jsonb', (c) => c.notNull())
    // the patient and study modules; null unless DICOM_KEEP_PATIENT=true at import
    .addColumn('patient', 'jsonb')
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('case_dicom_study_idx').on('case_dicom').column('study_instance_uid').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.dropTable('case_dicom').execute();
}
