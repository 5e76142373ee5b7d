import { sql } from 'kysely';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { insertCase } from '../db/cases.js';
import { findUnreferencedVolumes, knownShas } from '../db/volumes.js';
import { describeEachDatabase } from '../test/databases.js';
import { STORE_KINDS, testStores } from '../test/s3.js';
import { type VolumeStore, sha256Hex } from '../volumes/store.js';
import { phantomVolumes } from './demo.js';
import { removeIfUnreferenced, withStoredVolumes } from '../volumes/service.js';

// #16 item 5: rows and files must not drift apart when a collector and a writer of the same
// bytes, or two writers, meet. Each interleaving is forced with a gate, not left to timing.

function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  let reached!: () => void;
  const arrived = new Promise<void>((r) => (reached = r));
  return { wait: async () => (reached(), opened), open, arrived };
}

// Both volume backends: the filesystem and an S3-compatible store (s3rver).
for (const storeKind of STORE_KINDS)
  describeEachDatabase(`volume rows and files stay together (${storeKind} store)`, (current) => {
    const stores = testStores(storeKind);
    beforeAll(() => stores.open());
    afterAll(() => stores.close());
    /**
     * Until the other transaction is provably waiting on a lock (PostgreSQL: pg_stat_activity), so
     * the gate opens with it blocked — on the hash's lock now, on the volume row before the fix.
     * PGlite runs one transaction at a time on its one connection: the other is queued already.
     */
    const untilBlocked = async () => {
      if (current().kind !== 'postgres') return;
      await vi.waitFor(
        async () => {
          const r = await sql<{
            n: number;
          }>`select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'`.execute(
            current().handle.db,
          );
          expect(r.rows[0]!.n).toBeGreaterThan(0);
        },
        { timeout: 30_000, interval: 20 },
      );
    };
    const mask = () => phantomVolumes(201).find((v) => v.role === 'mask')!;
    const setup = async () => {
      const db = current().handle.db;
      const store = await stores.make();
      return { db, store };
    };
    const stored = async (store: VolumeStore, sha: string) => (await store.size(sha)) !== undefined;
    const storeAsCase = (db: Awaited<ReturnType<typeof setup>>['db'], store: VolumeStore, name: string, hold?: () => Promise<void>) =>
      withStoredVolumes(db, store, [mask()], async (trx, [id]) => {
        await hold?.();
        return insertCase(trx, { ownerId: null, name, source: 'demo', subjectId: name }, [{ role: 'mask', volumeId: id! }]);
      });

    it('a collector removing an old identical volume while a writer stores the same bytes again: the row and its file both remain', async () => {
      const { db, store } = await setup();
      // an old volume nothing references any more
      const sha = sha256Hex(mask().stored);
      await withStoredVolumes(db, store, [mask()], async () => undefined);
      expect(await findUnreferencedVolumes(db, { shas: [sha] })).toEqual([sha]);

      // The collector has decided to remove it and is held just before removing the file...
      const held = gate();
      const remove = store.remove.bind(store);
      store.remove = async (s: string) => {
        await held.wait();
        return remove(s);
      };
      const collecting = removeIfUnreferenced(db, store, [sha]);
      await held.arrived;
      // ...when a re-run stores identical bytes (before the fix: it saw the file, skipped writing,
      // and committed a row whose file the collector then removed).
      const writing = storeAsCase(db, store, 'rerun');
      await untilBlocked();
      held.open();
      expect(await collecting).toBe(1);
      store.remove = remove;
      await writing;
      expect((await knownShas(db, [sha])).has(sha)).toBe(true);
      expect(await stored(store, sha)).toBe(true);
      expect(await findUnreferencedVolumes(db, { shas: [sha] })).toEqual([]);
    });

    it('a collector that finds the volume referenced again under the lock leaves row and file alone', async () => {
      const { db, store } = await setup();
      const sha = sha256Hex(mask().stored);
      await withStoredVolumes(db, store, [mask()], async () => undefined);
      const candidates = await findUnreferencedVolumes(db, { shas: [sha] });
      await storeAsCase(db, store, 'relinked'); // referenced between the collector's look and its lock
      expect(await removeIfUnreferenced(db, store, candidates)).toBe(0);
      expect(await stored(store, sha)).toBe(true);
    });

    it('two identical uploads at once, the first failing after writing the file: the second keeps a row and its file', async () => {
      const { db, store } = await setup();
      const sha = sha256Hex(mask().stored);
      const held = gate();
      const failing = storeAsCase(db, store, 'fails', async () => {
        await held.wait();
        throw new Error('the first upload fails after storing its file');
      }).catch((e: Error) => e);
      await held.arrived;
      expect(await stored(store, sha)).toBe(true); // written by the first, not yet committed
      const second = storeAsCase(db, store, 'succeeds');
      await untilBlocked();
      held.open();
      expect(String(await failing)).toMatch(/the first upload fails/);
      const caseId = await second;
      expect(caseId).toBeTruthy();
      expect((await knownShas(db, [sha])).has(sha)).toBe(true);
      expect(await stored(store, sha)).toBe(true);
    });
  });
