import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface ServerProcess {
  child: ChildProcess;
  url: string;
  output(): string;
  /** Resolves with the exit code (or signal name). */
  exited: Promise<number | string>;
  waitReady(timeoutMs?: number): Promise<void>;
  /** Resolves once the process has written `text` (a log line's message); rejects if it exits first. */
  waitForOutput?(text: string): Promise<void>;
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * The built file of a source entry (`src/server/index.ts` → `dist/src/server/index.js`). The test
 * run's global setup builds once, so a spawned process starts from plain JavaScript instead of
 * compiling itself on every spawn (which a busy machine makes take tens of seconds).
 */
export function builtEntry(entry: string): string {
  const file = path.join(ROOT, 'dist', entry.replace(/\.ts$/, '.js'));
  if (!existsSync(file)) throw new Error(`${file} is missing: run \`npm run build\` (the test run's global setup does)`);
  return file;
}

/** Starts `src/server/index.ts` (or another entry, with `args`: `src/cli/index.ts worker`), built, as a real child process. */
export function startProcess(env: Record<string, string>, entry = 'src/server/index.ts', args: string[] = []): ServerProcess {
  const child = spawn(process.execPath, [builtEntry(entry), ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH ?? '', LOG_LEVEL: 'warn', HOST: '127.0.0.1', DEMO_CASES: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout?.on('data', (d) => {
    out += d;
  });
  child.stderr?.on('data', (d) => {
    out += d;
  });
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'unknown'));
  });
  const url = `http://127.0.0.1:${env.PORT ?? '7860'}`;
  let done = false;
  void exited.then(() => {
    done = true;
  });
  return {
    child,
    url,
    output: () => out,
    exited,
    async waitReady(timeoutMs = 180_000) {
      const deadline = Date.now() + timeoutMs;
      while (Date.now() < deadline) {
        if (done) throw new Error(`server exited before it was ready:\n${out}`);
        try {
          const res = await fetch(`${url}/readyz`);
          if (res.status === 200) return;
        } catch {
          // not listening yet
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`server not ready after ${timeoutMs} ms:\n${out}`);
    },
    waitForOutput(text: string) {
      return new Promise<void>((resolve, reject) => {
        const check = () => {
          if (out.includes(text)) {
            child.stdout?.off('data', check);
            child.stderr?.off('data', check);
            resolve();
          }
        };
        child.stdout?.on('data', check);
        child.stderr?.on('data', check);
        void exited.then(() => (out.includes(text) ? resolve() : reject(new Error(`exited before writing "${text}":\n${out}`))));
        check();
      });
    },
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (!done) child.kill(signal);
      return exited;
    },
  };
}
