import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type ServerProcess, freePort, startProcess } from './process.js';

export interface LiveServer extends ServerProcess {
  dataDir: string;
  /** Registers a user through HTTP as a browser would, and returns a fresh API token of theirs. */
  token(email: string): Promise<string>;
}

/** The built server as a real process: embedded database in a throwaway DATA_DIR, demo cases seeded. */
export async function startLiveServer(opts: { demoCases?: number; env?: Record<string, string> } = {}): Promise<LiveServer> {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'sv-live-'));
  const server = startProcess({
    PORT: String(await freePort()),
    DATA_DIR: dataDir,
    DEMO_CASES: String(opts.demoCases ?? 1),
    ...opts.env,
  });
  await server.waitReady();
  return {
    ...server,
    dataDir,
    async token(email) {
      const post = async (proc: string, body: unknown, cookie?: string) => {
        const res = await fetch(`${server.url}/trpc/${proc}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin', ...(cookie ? { cookie } : {}) },
          body: JSON.stringify(body),
        });
        if (!res.ok) throw new Error(`${proc}: ${res.status} ${await res.text()}`);
        return res;
      };
      const registered = await post('auth.register', { email, password: 'correct horse battery staple' });
      const cookie = registered.headers
        .getSetCookie()
        .map((c) => c.split(';')[0])
        .join('; ');
      const created = await post('auth.tokens.create', { name: 'test' }, cookie);
      return ((await created.json()) as { result: { data: { token: string } } }).result.data.token;
    },
  };
}
