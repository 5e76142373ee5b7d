import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrations } from '../../../migrations/index.js';
import { describeEachDatabase, openTestDatabase, type TestDatabase, testDatabaseKinds } from '../test/databases.js';
import { connectPostgres } from './connect.js';
import { migrateToLatest, pendingMigrations } from './migrate.js';

describeEachDatabase('database', (current) => {
  it('is migrated to the latest schema, and migrating again changes nothing', async () => {
    const { db } = current().handle;
    expect(await pendingMigrations(db)).toEqual([]);
    expect(await migrateToLatest(db)).toEqual([]);
    const { rows } = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(db);
    expect(rows.map((r) => r.name)).toEqual(Object.keys(migrations).sort());
  });

  it('commits and rolls back transactions', async () => {
    const { db } = current().handle;
    await db
      .insertInto('app_settings')
      .values({ key: 'kept', value: JSON.stringify(1) })
      .execute();
    await expect(
      db.transaction().execute(async (trx) => {
        await trx
          .insertInto('app_settings')
          .values({ key: 'lost', value: JSON.stringify(2) })
          .execute();
        throw new Error('abort');
      }),
    ).rejects.toThrow('abort');
    const keys = await db.selectFrom('app_settings').select('key').execute();
    expect(keys.map((k) => k.key)).toEqual(['kept']);
  });

  it('keeps a query issued during another transaction out of that transaction', async () => {
    const { db } = current().handle;
    let inside!: () => void;
    const txOpen = new Promise<void>((r) => {
      inside = r;
    });
    const tx = db
      .transaction()
      .execute(async (trx) => {
        await trx
          .insertInto('app_settings')
          .values({ key: 'in-tx', value: JSON.stringify(1) })
          .execute();
        inside();
        await new Promise((r) => setTimeout(r, 50));
        throw new Error('roll back');
      })
      .catch(() => 'rolled back');
    await txOpen;
    const outside = db
      .insertInto('app_settings')
      .values({ key: 'outside', value: JSON.stringify(2) })
      .execute();
    expect(await tx).toBe('rolled back');
    await outside;
    const keys = await db.selectFrom('app_settings').select('key').execute();
    expect(keys.map((k) => k.key)).toEqual(['outside']);
  });
});

describe.skipIf(!testDatabaseKinds().includes('postgres'))('migrations on PostgreSQL', () => {
  it('two processes migrating one fresh database at once both succeed, once', async () => {
    let fresh: TestDatabase | undefined;
    try {
      fresh = await openTestDatabase('postgres', { migrate: false });
      const a = await connectPostgres(fresh.url!, { max: 2 });
      const b = await connectPostgres(fresh.url!, { max: 2 });
      const [ra, rb] = await Promise.all([migrateToLatest(a.db), migrateToLatest(b.db)]);
      // One of them applied everything; the other found nothing left to do.
      expect([...ra, ...rb].sort()).toEqual(Object.keys(migrations).sort());
      const { rows } = await sql<{ n: number }>`select count(*)::int as n from kysely_migration`.execute(a.db);
      expect(rows[0]?.n).toBe(Object.keys(migrations).length);
      await a.close();
      await b.close();
    } finally {
      await fresh?.dispose();
    }
  });
});
