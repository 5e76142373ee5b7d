import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { corsAllowlist } from './index.js';

const OWNER = 'https://owner-stroke-viewer-frontend.hf.space';
const app = new Hono();
app.use(corsAllowlist({ allowedOrigins: [OWNER] }));
app.get('/x', (c) => c.text('ok'));
app.post('/x', (c) => c.text('ok'));

describe('corsAllowlist', () => {
  it('gives the allowlisted origin exact Allow-Origin and credentials, never *', async () => {
    const res = await app.request('/x', { headers: { origin: OWNER } });
    expect(res.headers.get('access-control-allow-origin')).toBe(OWNER);
    expect(res.headers.get('access-control-allow-credentials')).toBe('true');
    expect(res.headers.get('vary')).toMatch(/origin/i);
  });

  it('answers a preflight from the allowlisted origin with the methods and headers the client uses', async () => {
    const res = await app.request('/x', {
      method: 'OPTIONS',
      headers: { origin: OWNER, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type' },
    });
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(OWNER);
    expect(res.headers.get('access-control-allow-methods')).toContain('POST');
    expect(res.headers.get('access-control-allow-headers')).toMatch(/content-type/);
    expect(res.headers.get('access-control-allow-headers')).toMatch(/authorization/);
  });

  it.each([
    'https://evil-stroke-viewer-frontend.hf.space',
    'https://attacker.com-stroke-viewer-frontend-fake.hf.space',
    'https://phishing-stroke-viewer-frontend-clone.hf.space',
    'null',
    'http://owner-stroke-viewer-frontend.hf.space',
    'https://owner-stroke-viewer-frontend.hf.space.evil.com',
    'https://evil.example',
  ])('look-alike origin %s gets no CORS headers at all', async (origin) => {
    const inits: RequestInit[] = [
      { method: 'GET', headers: { origin } },
      { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST' } },
    ];
    for (const init of inits) {
      const res = await app.request('/x', init);
      expect(res.headers.get('access-control-allow-origin')).toBeNull();
      expect(res.headers.get('access-control-allow-credentials')).toBeNull();
    }
  });

  it('with an empty allowlist nobody gets CORS (same-origin only)', async () => {
    const closed = new Hono();
    closed.use(corsAllowlist({ allowedOrigins: [] }));
    closed.get('/x', (c) => c.text('ok'));
    const res = await closed.request('/x', { headers: { origin: OWNER } });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});
