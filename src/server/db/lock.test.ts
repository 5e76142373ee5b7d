import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { builtEntry } from '../test/process.js';
import { lockDirectory } from './lock.js';

describe('lockDirectory', () => {
  const held: { release(): void }[] = [];
  afterEach(() => {
    for (const l of held.splice(0)) l.release();
  });

  it('writes our pid and removes the lock on release', () => {
    const folder = path.join(mkdtempSync(path.join(tmpdir(), 'sv-lock-')), 'pgdata');
    const lock = lockDirectory(folder);
    expect(readFileSync(`${folder}.lock`, 'utf8').trim()).toBe(String(process.pid));
    lock.release();
    expect(existsSync(`${folder}.lock`)).toBe(false);
  });

  it('refuses a second process, naming the folder and the holder pid', () => {
    const folder = path.join(mkdtempSync(path.join(tmpdir(), 'sv-lock-')), 'pgdata');
    held.push(lockDirectory(folder));
    const script = `import { lockDirectory } from ${JSON.stringify(builtEntry('src/server/db/lock.ts'))};
      try { lockDirectory(${JSON.stringify(folder)}); console.log('TOOK IT'); }
      catch (e) { console.error(e.message); process.exit(3); }`;
    const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      encoding: 'utf8',
    });
    expect(child.status).toBe(3);
    expect(child.stdout).not.toContain('TOOK IT');
    expect(child.stderr).toContain(folder);
    expect(child.stderr).toContain(`pid ${process.pid}`);
  });

  it('takes over a lock left by a dead process', () => {
    const folder = path.join(mkdtempSync(path.join(tmpdir(), 'sv-lock-')), 'pgdata');
    const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], {
      encoding: 'utf8',
    });
    writeFileSync(`${folder}.lock`, `${dead.stdout}\n`);
    held.push(lockDirectory(folder));
    expect(readFileSync(`${folder}.lock`, 'utf8').trim()).toBe(String(process.pid));
  });
});
