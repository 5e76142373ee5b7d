import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { builtEntry } from './test/process.js';

/** Runs `script` (ESM) in a fresh Node process; resolves with its exit code and what it printed. */
function runNode(script: string, env: Record<string, string>): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], {
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('runService: the process-level unhandledRejection handler', () => {
  it('logs a rejection nobody handled — error, context, that it was unhandled — and the process carries on', async () => {
    // A service that is ready at once, then a promise rejected with nobody listening. Node's default
    // would end the process before the timer; the handler logs it and the timer still prints.
    const boot = pathToFileURL(builtEntry('src/server/boot.ts')).href;
    const script = `
      const { runService } = await import(${JSON.stringify(boot)});
      await runService(async () => ({ ready: Promise.resolve(), stop: async () => {} }));
      Promise.reject(new Error('a forgotten rejection'));
      setTimeout(() => process.stdout.write('still alive\\n'), 50);
    `;
    const { code, out } = await runNode(script, { LOG_LEVEL: 'info', DATA_DIR: mkdtempSync(path.join(tmpdir(), 'sv-boot-')) });
    expect(code, out).toBe(0);
    const lines = out
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as { level: string; msg: string; unhandled?: boolean; err?: { message: string; stack: string } });
    const logged = lines.find((l) => l.unhandled);
    expect(logged).toMatchObject({ level: 'error', unhandled: true, err: { message: 'a forgotten rejection' } });
    expect(logged!.msg).toMatch(/unhandled promise rejection.*keeps running/);
    expect(logged!.err!.stack).toContain('a forgotten rejection');
    expect(out.indexOf('still alive')).toBeGreaterThan(out.indexOf('a forgotten rejection'));
  });
});
