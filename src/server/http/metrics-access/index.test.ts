import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { isLoopback, metricsAccess } from './index.js';

const TOKEN = 'metrics-token-0123456789abcdef';

function app(token: string | undefined) {
  const a = new Hono();
  // the client address comes from a header here: app.request() has no socket
  a.use('/metrics', metricsAccess({ token, clientAddress: (c) => c.req.header('x-client') ?? 'unknown' }));
  a.get('/metrics', (c) => c.text('strokeview_up 1\n'));
  return a;
}

describe('metricsAccess', () => {
  it('knows loopback addresses, IPv4-mapped ones included, and nothing else', () => {
    for (const a of ['127.0.0.1', '127.1.2.3', '::1', '::ffff:127.0.0.1']) expect(isLoopback(a), a).toBe(true);
    for (const a of ['10.0.0.1', '::ffff:10.0.0.1', '128.0.0.1', 'unknown', '', '127.0.0.1.evil', '::2'])
      expect(isLoopback(a), a).toBe(false);
  });

  it('with a token: only that bearer token, from anywhere; 401 with WWW-Authenticate otherwise', async () => {
    const a = app(TOKEN);
    const get = (headers: Record<string, string>) => a.request('/metrics', { headers });
    expect((await get({ authorization: `Bearer ${TOKEN}`, 'x-client': '203.0.113.9' })).status).toBe(200);
    expect((await get({ authorization: `bearer ${TOKEN}` })).status).toBe(200);
    for (const authorization of [undefined, `Bearer ${TOKEN}x`, `Bearer ${TOKEN.slice(1)}`, `Basic ${TOKEN}`, 'Bearer ', TOKEN]) {
      const res = await get({ 'x-client': '127.0.0.1', ...(authorization === undefined ? {} : { authorization }) });
      expect(res.status, String(authorization)).toBe(401); // loopback does not skip the token once one is set
      expect(res.headers.get('www-authenticate')).toBe('Bearer realm="metrics"');
      expect(await res.text()).not.toContain('strokeview_up');
    }
  });

  it('without a token: loopback clients only, 403 naming METRICS_TOKEN for the rest', async () => {
    const a = app(undefined);
    expect((await a.request('/metrics', { headers: { 'x-client': '127.0.0.1' } })).status).toBe(200);
    expect((await a.request('/metrics', { headers: { 'x-client': '::1' } })).status).toBe(200);
    const away = await a.request('/metrics', { headers: { 'x-client': '198.51.100.7' } });
    expect(away.status).toBe(403);
    expect(await away.text()).toMatch(/set METRICS_TOKEN/);
    expect((await a.request('/metrics')).status).toBe(403); // no address known: not local
  });
});
