import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { threadId } from 'node:worker_threads';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fromPglite } from './connect.js';
import { openPglite } from './embedded.js';
import { PgliteThread } from './pglite-thread.js';

// The embedded engine the server runs (#29): PGlite on a thread of its own. What the server relies
// on is PGlite's own contract, held here across the thread: values and errors come back whole,
// a transaction holds the one connection, a notification comes before the committing answer.
describe('the embedded database on its own thread', () => {
  let engine: PgliteThread;
  beforeAll(async () => {
    engine = await PgliteThread.open({ moreStartParams: [] });
  });
  afterAll(async () => {
    await engine.close();
  });

  it('runs PostgreSQL on another thread, and values cross whole: dates, bytes, big integers, JSON, nulls', async () => {
    const { rows } = await engine.query<Record<string, unknown>>(
      `select $1::timestamptz as at, $2::bytea as bytes, 9007199254740993::int8 as big, $3::jsonb as doc, null::text as nothing,
              pg_backend_pid() as pid`,
      [new Date('2026-12-03T10:00:00.123Z'), new Uint8Array([0, 1, 254, 255]), JSON.stringify({ a: [1, 'b'] })],
    );
    expect(rows[0]).toMatchObject({
      at: new Date('2026-12-03T10:00:00.123Z'),
      bytes: new Uint8Array([0, 1, 254, 255]),
      doc: { a: [1, 'b'] },
      nothing: null,
    });
    expect(String(rows[0]!.big)).toBe('9007199254740993');
    expect(threadId).toBe(0); // this test is on the main thread; the engine answered from its own
    const results = await engine.exec('create temp table t (n int); insert into t values (1), (2); select n from t order by n');
    expect(results.at(-1)!.rows).toEqual([{ n: 1 }, { n: 2 }]);
  });

  it("a failed statement rejects with PostgreSQL's error: its message, SQLSTATE, constraint, detail", async () => {
    await engine.exec('create table uniq (k text primary key)');
    await engine.query('insert into uniq values ($1)', ['x']);
    const err = (await engine.query('insert into uniq values ($1)', ['x']).catch((e: unknown) => e)) as Error & Record<string, unknown>;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/duplicate key value violates unique constraint "uniq_pkey"/);
    expect(err).toMatchObject({ code: '23505', constraint: 'uniq_pkey', detail: 'Key (k)=(x) already exists.' });
    // …and the connection goes on.
    expect((await engine.query<{ n: number }>('select count(*)::int as n from uniq')).rows).toEqual([{ n: 1 }]);
    await expect(engine.query('select 1', [], { parsers: { 25: String } } as never)).rejects.toThrow(/parsers cannot cross/);
  });

  it('Kysely on it: a transaction commits or rolls back whole, and a statement sent meanwhile waits for it', async () => {
    const handle = fromPglite(engine);
    const { db } = handle;
    await sql`create table kept (n int)`.execute(db);
    await expect(
      db.transaction().execute(async (trx) => {
        await sql`insert into kept values (1)`.execute(trx);
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    let inside!: () => void;
    const entered = new Promise<void>((r) => (inside = r));
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const tx = db.transaction().execute(async (trx) => {
      await sql`insert into kept values (2)`.execute(trx);
      inside();
      await held;
      await sql`insert into kept values (3)`.execute(trx);
    });
    await entered;
    let outsideSaw: number[] | undefined;
    const outside = sql<{ n: number }>`select n from kept order by n`.execute(db).then((r) => (outsideSaw = r.rows.map((x) => x.n)));
    await new Promise((r) => setTimeout(r, 50));
    expect(outsideSaw).toBeUndefined(); // it waits for the transaction: one connection
    release();
    await tx;
    await outside;
    expect(outsideSaw).toEqual([2, 3]);
    // A statement that fails inside a transaction aborts it: the commit is refused, nothing stays.
    await expect(
      db.transaction().execute(async (trx) => {
        await sql`insert into kept values (4)`.execute(trx);
        await sql`select nope from kept`.execute(trx).catch(() => {});
      }),
    ).rejects.toThrow();
    expect((await sql<{ n: number }>`select n from kept order by n`.execute(db)).rows.map((x) => x.n)).toEqual([2, 3]);
  });

  it('a notification reaches its listener before the answer to the statement that committed it; unlisten stops it', async () => {
    const order: string[] = [];
    const unlisten = await engine.listen('changes', (payload) => order.push(`heard ${payload}`));
    await engine.query("select pg_notify('changes', 'one')").then(() => order.push('answered'));
    expect(order).toEqual(['heard one', 'answered']);
    await unlisten();
    await engine.query("select pg_notify('changes', 'two')");
    await engine.query('select 1');
    expect(order).toEqual(['heard one', 'answered']);
  });
});

it('a parameter that cannot cross is refused with a sentence; two closes share one; a killed thread fails every call, Kysely included, and says so once', async () => {
  const exits: string[] = [];
  const engine = await PgliteThread.open({ moreStartParams: [] }, (why) => exits.push(why.message));
  await expect(engine.query('select $1::text', [() => 1])).rejects.toThrow(/parameters cannot cross to the embedded database's thread/);
  expect((await engine.query<{ n: number }>('select 2 as n')).rows).toEqual([{ n: 2 }]);
  const { db } = fromPglite(engine);
  await sql`select 1`.execute(db); // Kysely's driver is set up (it refuses a closed engine up front)
  await engine.kill();
  await expect(engine.query('select 1')).rejects.toThrow(/thread exited/);
  // Kysely's transaction waits for its callback to start: it must fail, not hang on a dead thread.
  await expect(db.transaction().execute(async (trx) => sql`select 1`.execute(trx))).rejects.toThrow(/thread exited/);
  await expect(sql`select 1`.execute(db)).rejects.toThrow(/thread exited/);
  expect(exits).toEqual([expect.stringMatching(/the embedded database's thread exited/)]);
  await engine.close(); // nothing left to close: resolves

  const other = await PgliteThread.open({ moreStartParams: [] }, (why) => exits.push(why.message));
  await Promise.all([other.close(), other.close()]);
  expect(other.closed).toBe(true);
  expect(exits).toHaveLength(1); // a close is not an unexpected exit
});

it('a folder PGlite cannot open is refused with its reason, and the thread is gone', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'sv-pglite-bad-'));
  try {
    // Not a database: PG_VERSION from a PostgreSQL that PGlite is not.
    const { writeFileSync, mkdirSync } = await import('node:fs');
    mkdirSync(path.join(dataDir, 'pgdata'), { recursive: true });
    writeFileSync(path.join(dataDir, 'pgdata', 'PG_VERSION'), '9\n');
    await expect(openPglite(dataDir)).rejects.toThrow(/cannot open the embedded database in .*pgdata/);
    // The lock was released with it: the folder can be tried again.
    await expect(openPglite(dataDir)).rejects.toThrow(/cannot open the embedded database/);
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
