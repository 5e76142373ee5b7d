import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, type ServerProcess, freePort } from './test/process.js';

// Docker cannot run on our machines: these tests check the Dockerfile's facts and run the very
// command its CMD names, with the environment the image sets.

const dockerfile = readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
const instructions = dockerfile
  .replace(/\\\n/g, ' ')
  .split('\n')
  .map((l) => l.trim())
  .filter((l) => l && !l.startsWith('#'));
const runtimeStage = instructions.slice(instructions.findLastIndex((l) => l.startsWith('FROM ')));
const envOf = (stage: string[]) =>
  Object.fromEntries(
    stage.filter((l) => l.startsWith('ENV ')).flatMap((l) => [...l.slice(4).matchAll(/(\w+)=(\S+)/g)].map((m) => [m[1]!, m[2]!])),
  );

describe('Dockerfile', () => {
  it('is multi-stage on node 22 slim and installs with the ONNX download skipped', () => {
    const froms = instructions.filter((l) => l.startsWith('FROM '));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    for (const f of froms) expect(f).toMatch(/^FROM node:22-slim( AS \w+)?$/);
    expect(instructions.filter((l) => l.startsWith('RUN npm ci')).length).toBeGreaterThanOrEqual(2);
    expect(envOf(instructions).ONNXRUNTIME_NODE_INSTALL).toBe('skip');
    expect(instructions).toContain('RUN npm run build');
    expect(runtimeStage.some((l) => /^RUN npm ci --omit=dev/.test(l))).toBe(true);
  });

  it('runs as uid 1000 with DATA_DIR=/data, port 7860, production, a /healthz HEALTHCHECK and the built server as CMD', () => {
    const env = envOf(runtimeStage);
    expect(env).toMatchObject({ NODE_ENV: 'production', DATA_DIR: '/data', PORT: '7860' });
    expect(runtimeStage).toContain('USER 1000');
    expect(runtimeStage.some((l) => /chown -R 1000:1000 \/data/.test(l))).toBe(true);
    expect(runtimeStage).toContain('EXPOSE 7860');
    expect(runtimeStage.find((l) => l.startsWith('HEALTHCHECK'))).toMatch(/127\.0\.0\.1:7860\/healthz/);
    expect(runtimeStage.at(-1)).toBe('CMD ["node", "dist/src/server/index.js"]');
  });

  it('.dockerignore keeps dependencies, data and git out, and what the build needs in', () => {
    const ignored = readFileSync(path.join(ROOT, '.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    for (const p of ['node_modules', 'data', '.git', 'dist', '.env']) expect(ignored).toContain(p);
    for (const p of [
      'src',
      'models',
      'migrations',
      'package.json',
      'package-lock.json',
      'bin',
      'vite.config.ts',
      'scripts/bundle-server.ts',
    ]) {
      expect(ignored.some((i) => i === p || p.startsWith(`${i}/`))).toBe(false);
    }
  });
});

describe("the image's CMD, run as the image runs it", { timeout: 300_000 }, () => {
  let server: ServerProcess | undefined;
  afterAll(async () => {
    await server?.stop('SIGKILL');
  });

  it('serves the viewer and the API in production, and the HEALTHCHECK command passes', async () => {
    const cmd = JSON.parse(runtimeStage.at(-1)!.slice('CMD '.length)) as string[];
    const port = await freePort();
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sv-image-'));
    const env = {
      ...envOf(runtimeStage),
      PORT: String(port),
      DATA_DIR: dataDir,
      SECRET_KEY: 'a-secret-key-of-at-least-thirty-two-characters',
      DEMO_CASES: '1',
    };
    const child = spawn(cmd[0] === 'node' ? process.execPath : cmd[0]!, cmd.slice(1), {
      cwd: ROOT,
      env: { PATH: process.env.PATH ?? '', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const exited = new Promise<number | string>((r) => child.on('exit', (code, sig) => r(code ?? sig ?? 'unknown')));
    server = {
      child,
      url: `http://127.0.0.1:${port}`,
      output: () => out,
      exited,
      waitReady: async () => {},
      stop: async (s = 'SIGTERM') => (child.kill(s), exited),
    };
    let ready = false;
    for (let i = 0; i < 1800 && !ready; i++) {
      ready = await fetch(`${server.url}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (!ready) await new Promise((r) => setTimeout(r, 100));
    }
    expect(ready, out).toBe(true);
    const page = await fetch(`${server.url}/`);
    expect(page.status).toBe(200);
    expect(await page.text()).toMatch(/<div id="root">/);
    const info = (await (await fetch(`${server.url}/trpc/system.info`)).json()) as { result: { data: { database: string } } };
    expect(info.result.data.database).toBe('embedded');
    // Production: no stack traces in errors.
    const bad = (await (await fetch(`${server.url}/trpc/cases.byId?input=${encodeURIComponent('{"id":"x"}')}`)).json()) as {
      error: { data: Record<string, unknown> };
    };
    expect(bad.error.data.stack).toBeUndefined();

    const health = runtimeStage.find((l) => l.startsWith('HEALTHCHECK'))!;
    const check = JSON.parse(health.slice(health.indexOf('CMD ') + 4)) as string[];
    const probe = spawnSync(
      process.execPath,
      check.slice(1).map((a) => a.replace('127.0.0.1:7860', `127.0.0.1:${port}`)),
      { encoding: 'utf8' },
    );
    expect(probe.status).toBe(0);
    expect(await server.stop()).toBe(0);
  });
});
