import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe } from 'vitest';
import { connectPostgres, type DatabaseHandle, fromPglite } from '../db/connect.js';
import { migrateToLatest } from '../db/migrate.js';
import { PgliteThread } from '../db/pglite-thread.js';

export type TestDatabaseKind = 'pglite' | 'postgres';

/** PGlite always; the real PostgreSQL too when TEST_DATABASE_URL points at a server. */
export function testDatabaseKinds(): TestDatabaseKind[] {
  return process.env.TEST_DATABASE_URL ? ['pglite', 'postgres'] : ['pglite'];
}

export interface TestDatabase {
  kind: TestDatabaseKind;
  handle: DatabaseHandle;
  /** Postgres only: the throwaway database's URL, for code that opens its own connections. */
  url?: string;
  dispose(): Promise<void>;
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/** A throwaway PostgreSQL database (created now, dropped by the returned function). */
export async function createThrowawayPostgres(): Promise<{ url: string; drop(): Promise<void> }> {
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) throw new Error('TEST_DATABASE_URL is not set');
  const name = `strokeview_test_${Date.now().toString(36)}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  return {
    url: withDatabase(adminUrl, name),
    async drop() {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      try {
        await c.query(`drop database if exists ${name} with (force)`);
      } finally {
        await c.end();
      }
    },
  };
}

/** A freshly migrated database of the given kind. */
export async function openTestDatabase(kind: TestDatabaseKind, opts: { migrate?: boolean } = {}): Promise<TestDatabase> {
  const migrate = opts.migrate ?? true;
  if (kind === 'pglite') {
    // On its own thread, in memory: the same engine the server runs embedded (db/pglite-thread.ts).
    const handle = fromPglite(await PgliteThread.open({ moreStartParams: [] }));
    if (migrate) await migrateToLatest(handle.db);
    return { kind, handle, dispose: () => handle.close() };
  }
  const throwaway = await createThrowawayPostgres();
  const handle = await connectPostgres(throwaway.url, { max: 5 });
  if (migrate) await migrateToLatest(handle.db);
  return {
    kind,
    handle,
    url: throwaway.url,
    async dispose() {
      await handle.close();
      await throwaway.drop();
    },
  };
}

/** Empties every table but the migration bookkeeping, so each test starts from a clean schema. */
export async function resetDatabase(handle: DatabaseHandle): Promise<void> {
  const { rows } = await sql<{ tablename: string }>`
    select tablename from pg_tables
    where schemaname = 'public' and tablename not like 'kysely_migration%'`.execute(handle.db);
  if (rows.length === 0) return;
  const list = rows.map((r) => `"${r.tablename}"`).join(', ');
  await sql.raw(`truncate ${list} restart identity cascade`).execute(handle.db);
}

/**
 * Runs a suite once per test database, named `[pglite]` / `[postgres]` in the output. One
 * database per suite (a PGlite takes seconds to start), emptied before each test.
 */
export function describeEachDatabase(title: string, body: (db: () => TestDatabase) => void): void {
  for (const kind of testDatabaseKinds()) {
    describe(`${title} [${kind}]`, () => {
      let current: TestDatabase | undefined;
      beforeAll(async () => {
        current = await openTestDatabase(kind);
      });
      afterAll(async () => {
        await current?.dispose();
      });
      beforeEach(async () => {
        if (current) await resetDatabase(current.handle);
      });
      body(() => {
        if (!current) throw new Error('test database is not open');
        return current;
      });
    });
  }
}
