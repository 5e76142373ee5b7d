import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createThrowawayPostgres, testDatabaseKinds } from './test/databases.js';
import { freePort, type ServerProcess, startProcess } from './test/process.js';

const tmp = () => mkdtempSync(path.join(tmpdir(), 'sv-boot-'));
const running: ServerProcess[] = [];
afterAll(async () => {
  await Promise.all(running.map((p) => p.stop('SIGKILL')));
});

describe('boot and shutdown of the real server process', { timeout: 300_000 }, () => {
  it('refuses a bad PORT, naming it', async () => {
    const p = startProcess({ PORT: 'abc', DATA_DIR: tmp() });
    expect(await p.exited).not.toBe(0);
    expect(p.output()).toMatch(/strokeview: invalid environment: PORT: .*"abc"/);
  });

  it('refuses an unwritable DATA_DIR with a clear line', async () => {
    const file = path.join(tmp(), 'a-file');
    writeFileSync(file, 'not a folder');
    const p = startProcess({ PORT: String(await freePort()), DATA_DIR: path.join(file, 'data') });
    expect(await p.exited).not.toBe(0);
    expect(p.output()).toMatch(/strokeview: DATA_DIR .*a-file\/data is not writable/);
  });

  it('refuses an unreachable DATABASE_URL with a clear line', async () => {
    const p = startProcess({
      PORT: String(await freePort()),
      DATA_DIR: tmp(),
      DATABASE_URL: 'postgres://someone:hunter2@127.0.0.1:1/nowhere',
    });
    expect(await p.exited).not.toBe(0);
    expect(p.output()).toMatch(/strokeview: cannot reach DATABASE_URL postgres:\/\/someone:\*\*\*@127\.0\.0\.1:1\/nowhere/);
    expect(p.output()).not.toContain('hunter2');
  });

  it('embedded: ready, answers system.info, locks its folder against a second process, exits 0 on SIGTERM', async () => {
    const dataDir = tmp();
    const port = await freePort();
    const first = startProcess({ PORT: String(port), DATA_DIR: dataDir });
    running.push(first);
    await first.waitReady();
    const info = await fetch(`${first.url}/trpc/system.info`);
    expect(info.status).toBe(200);
    expect(((await info.json()) as { result: { data: unknown } }).result.data).toMatchObject({
      database: 'embedded',
      version: expect.any(String),
    });

    const second = startProcess({ PORT: String(await freePort()), DATA_DIR: dataDir });
    expect(await second.exited).not.toBe(0);
    expect(second.output()).toContain(`${path.join(dataDir, 'pgdata')} is locked`);
    expect(second.output()).toContain(`pid ${first.child.pid}`);
    // The first server is untouched.
    expect((await fetch(`${first.url}/readyz`)).status).toBe(200);

    // No deadline on the stop beyond the test's own: how fast it closes is the CPU's business.
    expect(await first.stop('SIGTERM')).toBe(0);
    expect(first.output()).not.toMatch(/"level":"(error|fatal)"/); // stopped cleanly, nothing logged as an error

    // The lock went with it: a restart on the same folder works and finds its data.
    const again = startProcess({ PORT: String(port), DATA_DIR: dataDir });
    running.push(again);
    await again.waitReady();
    expect(await again.stop('SIGINT')).toBe(0);
  });

  it('embedded: the database opens while the modules load (#29); the ready line names the phases, the job system (after ready) its own; a SIGTERM mid-boot exits 0 and unlocks the folder', async () => {
    const dataDir = tmp();
    const first = startProcess({ PORT: String(await freePort()), DATA_DIR: dataDir, LOG_LEVEL: 'info' });
    running.push(first);
    await first.waitReady();
    expect((await fetch(`${first.url}/trpc/system.info`)).status).toBe(200);
    await first.waitForOutput!('"msg":"job system started"');
    const lines = first
      .output()
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { msg?: string; phases?: Record<string, number> });
    const ready = lines.find((l) => l.msg === 'ready');
    expect(Object.keys(ready?.phases ?? {})).toEqual(
      expect.arrayContaining(['loadModules', 'openDatabase', 'awaitDatabase', 'migrations', 'demoCheck', 'models', 'cpuPool']),
    );
    const jobs = lines.find((l) => l.msg === 'job system started');
    expect(Object.keys(jobs?.phases ?? {})).toEqual(expect.arrayContaining(['queue', 'eventBus', 'workers']));
    // The open started before the modules loaded: what the runtime still waited for is part of it.
    expect(ready!.phases!.awaitDatabase).toBeLessThanOrEqual(ready!.phases!.openDatabase!);
    expect(await first.stop('SIGTERM')).toBe(0);

    // Stopped while its boot is under way (listening, the database opening or just open): exits 0
    // and closes the database, so the next process on the folder gets the lock.
    const second = startProcess({ PORT: String(await freePort()), DATA_DIR: dataDir, LOG_LEVEL: 'info' });
    running.push(second);
    await second.waitForOutput!('"msg":"listening"');
    expect(await second.stop('SIGTERM')).toBe(0);
    const third = startProcess({ PORT: String(await freePort()), DATA_DIR: dataDir });
    running.push(third);
    await third.waitReady();
    expect(await third.stop('SIGTERM')).toBe(0);
    expect(third.output()).not.toMatch(/"level":"(error|fatal)"/);
  });

  it('finishes a request in flight after SIGTERM, then exits 0', async () => {
    const port = await freePort();
    const p = startProcess({ PORT: String(port), DATA_DIR: tmp() });
    running.push(p);
    await p.waitReady();
    // Open a keep-alive connection, then signal while a request is on it.
    const inflight = fetch(`${p.url}/trpc/system.info`);
    p.child.kill('SIGTERM');
    const res = await inflight.catch((e) => e as Error);
    expect(res instanceof Response ? res.status : 'refused').not.toBe(500);
    expect(await p.exited).toBe(0);
  });

  it.skipIf(!testDatabaseKinds().includes('postgres'))('DATABASE_URL: boots on the real PostgreSQL', async () => {
    const pgdb = await createThrowawayPostgres();
    try {
      const p = startProcess({ PORT: String(await freePort()), DATA_DIR: tmp(), DATABASE_URL: pgdb.url });
      running.push(p);
      await p.waitReady();
      const info = await fetch(`${p.url}/trpc/system.info`);
      expect(((await info.json()) as { result: { data: { database: string } } }).result.data.database).toBe('postgres');
      expect(await p.stop()).toBe(0);
    } finally {
      await pgdb.drop();
    }
  });
});
