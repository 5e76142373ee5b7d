import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { csrfGuard } from './index.js';

const ALLOWED = 'https://owner-stroke-viewer-frontend.hf.space';
const app = new Hono();
app.use(csrfGuard({ trustedOrigins: [ALLOWED] }));
app.post('/trpc/x', (c) => c.text('done'));
app.get('/trpc/x', (c) => c.text('read'));
const cookie = 'strokeview_session=svs_abc';

describe('csrfGuard', () => {
  it('refuses a cookie-carrying POST from a foreign Origin (a cross-site form post)', async () => {
    const res = await app.request('http://localhost/trpc/x', {
      method: 'POST',
      headers: {
        cookie,
        origin: 'https://evil.example',
        'sec-fetch-site': 'cross-site',
        'content-type': 'application/x-www-form-urlencoded',
      },
      body: 'a=1',
    });
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/another site/);
  });

  it('refuses a cookie-carrying POST with neither Sec-Fetch-Site nor Origin', async () => {
    expect((await app.request('http://localhost/trpc/x', { method: 'POST', headers: { cookie } })).status).toBe(403);
  });

  it('lets through same-origin pages, allowlisted origins, reads and cookie-less (bearer) calls', async () => {
    const post = (headers: Record<string, string>) => app.request('http://localhost/trpc/x', { method: 'POST', headers });
    expect((await post({ cookie, 'sec-fetch-site': 'same-origin' })).status).toBe(200);
    expect((await post({ cookie, origin: ALLOWED, 'sec-fetch-site': 'cross-site' })).status).toBe(200);
    expect((await post({ cookie, origin: 'http://localhost' })).status).toBe(200);
    expect((await post({ authorization: 'Bearer svt_x', origin: 'https://evil.example' })).status).toBe(200);
    expect((await app.request('http://localhost/trpc/x', { headers: { cookie, origin: 'https://evil.example' } })).status).toBe(200);
  });
});
