import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseEnv } from './env.js';
import { BootAborted, openRuntime } from './runtime.js';

const env = () => parseEnv({ DATA_DIR: mkdtempSync(path.join(tmpdir(), 'sv-runtime-')) });

describe('openRuntime', { timeout: 120_000 }, () => {
  it('task: opens, migrates, works, closes — and the next open finds the schema done', async () => {
    const e = env();
    const first = await openRuntime(e, 'task');
    expect(first.applied.length).toBeGreaterThan(0);
    expect(first.database.kind).toBe('embedded');
    await first.stop();
    // The embedded database's lock went with stop(): a second open of the same folder works.
    const second = await openRuntime(e, 'task');
    expect(second.applied).toEqual([]);
    await second.stop();
  });

  it('an aborted signal stops opening before the next step and closes what it opened', async () => {
    const e = env();
    const abort = new AbortController();
    abort.abort();
    await expect(openRuntime(e, 'task', { signal: abort.signal })).rejects.toBeInstanceOf(BootAborted);
    const again = await openRuntime(e, 'task');
    expect(again.applied.length).toBeGreaterThan(0); // the aborted open migrated nothing
    await again.stop();
  });
});
