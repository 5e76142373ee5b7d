import type { Kysely } from 'kysely';

// Frozen in time: imports nothing from src/.
// The unit an ADC volume's values are in ('1e-3' or '1e-6' mm²/s), decided from the data when it
// is stored. Null for other roles and for volumes stored before units were checked.

export async function up(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('volumes').addColumn('adc_unit', 'text').execute();
}

export async function down(db: Kysely<any>): Promise<void> {
  await db.schema.alterTable('volumes').dropColumn('adc_unit').execute();
}
