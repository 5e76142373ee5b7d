import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect, it } from 'vitest';
import { openPglite } from './embedded.js';

it('the embedded database opens with a 32 MB buffer pool (not 128 MB: zeroing it was a third of a restart), and reopens its data; once closed, a statement is refused with a sentence', async () => {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'sv-embedded-'));
  try {
    const first = await openPglite(dataDir);
    await first.pglite.exec('create table kept (n int); insert into kept values (7)');
    await first.pglite.close();
    first.release();
    expect(first.pglite.closed).toBe(true);
    await expect(first.pglite.query('select 1')).rejects.toThrow('the embedded database is closed');
    const again = await openPglite(dataDir);
    try {
      expect((await again.pglite.query<{ shared_buffers: string }>('show shared_buffers')).rows[0]!.shared_buffers).toBe('32MB');
      expect((await again.pglite.query<{ n: number }>('select n from kept')).rows).toEqual([{ n: 7 }]);
      // PGlite's own defaults still apply beside it (single-user mode, no parallel workers).
      expect((await again.pglite.query<{ max_worker_processes: string }>('show max_worker_processes')).rows[0]!.max_worker_processes).toBe(
        '0',
      );
    } finally {
      await again.pglite.close();
      again.release();
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
});
