import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { buildApp } from '../../app.js';
import { parseEnv } from '../../env.js';
import { createLogger } from '../../logger.js';
import { Readiness } from '../../readiness.js';

function builtClient(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sv-client-'));
  mkdirSync(path.join(dir, 'assets'));
  writeFileSync(
    path.join(dir, 'index.html'),
    '<!doctype html><div id="root"></div><script type="module" src="/assets/index-abc123.js"></script>',
  );
  writeFileSync(path.join(dir, 'assets', 'index-abc123.js'), 'console.log(1)');
  return dir;
}

describe('the viewer route', () => {
  const app = buildApp({
    env: parseEnv({ NODE_ENV: 'test' }),
    logger: createLogger({ level: 'silent' }),
    readiness: new Readiness(),
    process: { version: 't', startedAt: Date.now() },
    clientDir: builtClient(),
  });

  it('serves index.html uncached at / and at client routes (a reload or shared link lands there)', async () => {
    for (const p of ['/', '/cases/0b7c0c9e-1c84-4c57-9c61-1d0f4b0b8a55', '/sign-in']) {
      const res = await app.request(p);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/text\/html/);
      expect(res.headers.get('cache-control')).toBe('no-cache');
      expect(await res.text()).toContain('<div id="root">');
      // the app's security headers on all of it
      expect(res.headers.get('content-security-policy')).toContain("object-src 'none'");
      expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    }
  });

  it('serves hashed assets cached for a year as immutable; a missing asset is a 404, not the page', async () => {
    const res = await app.request('/assets/index-abc123.js');
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await app.request('/assets/nope-123.js')).status).toBe(404);
  });

  it('leaves the API alone: /trpc, /healthz and unknown API paths are not the page', async () => {
    expect((await app.request('/healthz')).headers.get('content-type')).toMatch(/json/);
    expect((await app.request('/trpc/system.info')).headers.get('content-type')).toMatch(/json/);
    expect((await app.request('/files/v/nope/dwi.nii.gz')).headers.get('content-type')).not.toMatch(/html/);
  });

  it('/config.json says where the API is (same origin by default)', async () => {
    const res = await app.request('/config.json');
    expect(await res.json()).toEqual({ apiUrl: null });
  });
});
