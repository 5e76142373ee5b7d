import type { Kysely } from 'kysely';

// Frozen in time: imports nothing from src/.
// #24: a saved mask version keeps its lesion list (each 26-connected component with TP/FP/FN
// against the ground truth) and its provenance (what it started from, lesions rejected, clicks
// and pen strokes). Job results keep their lesion list inside `jobs.result` (already JSON).
// Both null for versions saved before.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('mask_versions').addColumn('lesions', 'jsonb').execute();
  await db.schema.alterTable('mask_versions').addColumn('provenance', 'jsonb').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('mask_versions').dropColumn('provenance').execute();
  await db.schema.alterTable('mask_versions').dropColumn('lesions').execute();
}
