import { sql } from 'kysely';
import { expect, it } from 'vitest';
import type { CaseSummary } from '../../shared/cases.js';
import { seedDemoCases } from '../cases/demo.js';
import { testVolume } from '../nifti/fixtures.js';
import { makeTestApp } from '../test/app.js';
import { TestBrowser } from '../test/browser.js';
import { describeEachDatabase } from '../test/databases.js';

// The embedded database's read cache (#29): cases.list pages are kept until any write. Every
// write path that touches what the list shows must be seen at once — a procedure's transaction,
// another module's Kysely update, raw SQL, a rolled-back transaction, a study membership — and a
// read that overlapped a write is never kept. Run on both databases: PostgreSQL has no cache, and
// the same answers are expected from it.

const PASSWORD = 'correct horse battery';
type Page = { items: CaseSummary[]; nextCursor: string | null };

function form(name: string): FormData {
  const fd = new FormData();
  fd.set('name', name);
  fd.set('dwi', new File([new Uint8Array(testVolume())], 'dwi.nii.gz'));
  fd.set('adc', new File([new Uint8Array(testVolume({ values: Array(2048).fill(800) }))], 'adc.nii.gz'));
  return fd;
}

describeEachDatabase('the read cache (cases.list)', (current) => {
  const setup = async () => {
    const t = makeTestApp({ database: current().handle });
    const user = new TestBrowser(t.app);
    await user.mutate('auth.register', { email: 'u@x.org', password: PASSWORD });
    await seedDemoCases(current().handle.db, t.store, 1);
    return { ...t, user, anon: new TestBrowser(t.app) };
  };
  const names = async (b: TestBrowser, input?: unknown) => (await b.query<Page>('cases.list', input)).data.items.map((c) => c.name).sort();
  const cache = () => current().handle.readCache;

  it('embedded only: a repeated page is answered from the cache; PostgreSQL has none', async () => {
    const { anon } = await setup();
    expect(cache() === undefined).toBe(current().kind === 'postgres');
    const first = await names(anon);
    const hits = cache()?.hits ?? 0;
    expect(await names(anon)).toEqual(first);
    if (cache()) expect(cache()!.hits).toBe(hits + 1);
  });

  it('every write path is seen at once: upload (a transaction), rename by raw SQL, a Kysely update elsewhere, delete', async () => {
    const { user, anon } = await setup();
    const demo = await names(anon);
    expect(await names(user)).toEqual(demo);

    const up = await user.upload<{ id: string }>('cases.upload', form('Patient 7'));
    expect(up.status).toBe(200);
    expect(await names(user)).toEqual([...demo, 'Patient 7'].sort());
    expect(await names(anon)).toEqual(demo);

    await sql`update cases set name = 'Patient 8' where id = ${up.data.id}`.execute(current().handle.db);
    expect(await names(user)).toEqual([...demo, 'Patient 8'].sort());
    expect(await names(user, { search: 'patient' })).toEqual(['Patient 8']);

    // Another module's write: the case becomes shared (owner-less), so the signed-out list shows it.
    await current().handle.db.updateTable('cases').set({ owner_id: null }).where('id', '=', up.data.id).execute();
    expect(await names(anon)).toEqual([...demo, 'Patient 8'].sort());

    // A select whose WITH writes (a data-modifying CTE) is a write too.
    await current()
      .handle.db.with('renamed', (db) => db.updateTable('cases').set({ name: 'Patient 9' }).where('id', '=', up.data.id).returning('id'))
      .selectFrom('renamed')
      .selectAll()
      .execute();
    expect(await names(anon)).toEqual([...demo, 'Patient 9'].sort());

    const userId = (await user.query<{ id: string }>('auth.me')).data.id;
    await current().handle.db.updateTable('cases').set({ owner_id: userId }).where('id', '=', up.data.id).execute();
    expect(await names(anon)).toEqual(demo);
    expect((await user.mutate('cases.delete', { id: up.data.id })).status).toBe(200);
    expect(await names(user)).toEqual(demo);
  });

  it('a study membership (rows the list joins) changes what a member sees', async () => {
    const { app, user } = await setup();
    const owner = new TestBrowser(app);
    await owner.mutate('auth.register', { email: 'owner@x.org', password: PASSWORD });
    const up = await owner.upload<{ id: string }>('cases.upload', form('Shared by study'));
    expect(up.status).toBe(200);
    const before = await names(user);
    expect(before).not.toContain('Shared by study');
    const db = current().handle.db;
    const ownerId = (await owner.query<{ id: string }>('auth.me')).data.id;
    const userId = (await user.query<{ id: string }>('auth.me')).data.id;
    const study = await db.insertInto('studies').values({ name: 'S', created_by: ownerId }).returning('id').executeTakeFirstOrThrow();
    await db.insertInto('study_cases').values({ study_id: study.id, case_id: up.data.id, added_by: ownerId }).execute();
    expect(await names(user)).toEqual(before); // not a member yet
    await db.insertInto('study_members').values({ study_id: study.id, user_id: userId, role: 'viewer' }).execute();
    expect(await names(user)).toEqual([...before, 'Shared by study'].sort());
  });

  it('a transaction that wrote and rolled back leaves the committed page; a read overlapping a write is not kept', async () => {
    const { anon } = await setup();
    const demo = await names(anon);
    const db = current().handle.db;
    await expect(
      db.transaction().execute(async (trx) => {
        await trx.updateTable('cases').set({ name: 'never committed' }).execute();
        throw new Error('roll back');
      }),
    ).rejects.toThrow('roll back');
    expect(await names(anon)).toEqual(demo);

    const c = cache();
    if (!c) return; // PostgreSQL: nothing is kept
    // A load held at a gate while a write runs: its answer (from before the write) is not kept.
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const held = c.read('k', async () => {
      const rows = await db.selectFrom('cases').select('name').execute();
      await gate;
      return rows.map((r) => r.name);
    });
    await db.updateTable('cases').set({ name: 'renamed' }).execute();
    open();
    expect(await held).toEqual(demo);
    const loads = c.loads;
    expect(await c.read('k', async () => (await db.selectFrom('cases').select('name').execute()).map((r) => r.name))).toEqual(
      demo.map(() => 'renamed'),
    );
    expect(c.loads).toBe(loads + 1);
    expect(await names(anon)).toEqual(demo.map(() => 'renamed'));
  });
});
