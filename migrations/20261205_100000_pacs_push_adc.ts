import type { Kysely } from 'kysely';

// Frozen in time: imports nothing from src/.
// #26: a push stores the SEG and, when the case's ADC was computed by the import (not the
// scanner's), that ADC as a derived MR series in the same study; the row keeps that series' UID
// (null when there was none to send).

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('pacs_pushes').addColumn('adc_series_instance_uid', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('pacs_pushes').dropColumn('adc_series_instance_uid').execute();
}
