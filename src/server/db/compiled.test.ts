import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import { describeEachDatabase } from '../test/databases.js';
import { compiledSelect } from './compiled.js';

// Hot reads compiled once per shape (#29): the same rows as the query built each time, one build per
// shape and database, the arguments of each call (never the first call's), transactions built as usual.

describeEachDatabase('compiledSelect', (current) => {
  const insertUser = (email: string, role: 'user' | 'admin') =>
    current()
      .handle.db.insertInto('users')
      .values({ id: randomUUID(), email, password_hash: 'x', role })
      .returning('id')
      .executeTakeFirstOrThrow();

  it('answers each call with its own arguments, building once per shape', async () => {
    const db = current().handle.db;
    const a = await insertUser('a@x.org', 'user');
    const b = await insertUser('b@x.org', 'admin');
    let builds = 0;
    const byRole = compiledSelect(
      (s: { email: boolean }) => (s.email ? 'email' : 'role'),
      (d, s, role: string, email: string | null) => {
        builds++;
        let q = d
          .selectFrom('users')
          .select(['id', 'email'])
          .where('role', '=', role as 'user')
          .orderBy('email');
        if (s.email) q = q.where('email', '=', email!);
        return q;
      },
    );
    expect((await byRole(db, { email: false }, 'user', null)).map((r) => r.id)).toEqual([a.id]);
    expect((await byRole(db, { email: false }, 'admin', null)).map((r) => r.id)).toEqual([b.id]);
    expect(await byRole(db, { email: true }, 'admin', 'a@x.org')).toEqual([]);
    expect((await byRole(db, { email: true }, 'user', 'a@x.org')).map((r) => r.id)).toEqual([a.id]);
    expect(builds).toBe(2);
    // The same rows as the query built and run as usual.
    expect(await byRole(db, { email: false }, 'user', null)).toEqual(
      await db.selectFrom('users').select(['id', 'email']).where('role', '=', 'user').orderBy('email').execute(),
    );
  });

  it('builds as usual inside a transaction (and sees its rows), and when the shape has no key', async () => {
    const db = current().handle.db;
    let builds = 0;
    const byEmail = compiledSelect(
      (n: number) => (n <= 1 ? String(n) : undefined),
      (d, _n, ...emails: string[]) => {
        builds++;
        return d.selectFrom('users').select('email').where('email', 'in', emails);
      },
    );
    await db.transaction().execute(async (trx) => {
      await trx.insertInto('users').values({ id: randomUUID(), email: 't@x.org', password_hash: 'x', role: 'user' }).execute();
      expect(await byEmail(trx, 1, 't@x.org')).toEqual([{ email: 't@x.org' }]);
      expect(await byEmail(trx, 1, 't@x.org')).toEqual([{ email: 't@x.org' }]);
    });
    expect(builds).toBe(2);
    expect(await byEmail(db, 2, 't@x.org', 'none@x.org')).toEqual([{ email: 't@x.org' }]);
    expect(await byEmail(db, 2, 't@x.org', 'none@x.org')).toEqual([{ email: 't@x.org' }]);
    expect(builds).toBe(4);
  });

  it('takes plain selects only (the embedded read cache must see every write)', async () => {
    const del = compiledSelect(
      () => 'one',
      (d, _: null, email: string) => d.deleteFrom('users').where('email', '=', email) as never,
    );
    await expect(del(current().handle.db, null, 'a@x.org')).rejects.toThrow(/plain selects only/);
  });
});
