import { Hono } from 'hono';
import { describe, expect, it } from 'vitest';
import { securityHeaders } from './index.js';

function appWith(opts: Partial<Parameters<typeof securityHeaders>[0]> = {}) {
  const app = new Hono();
  app.use(
    securityHeaders({
      embedOrigins: [],
      crossOriginIsolation: true,
      isHttps: (c) => new URL(c.req.url).protocol === 'https:',
      ...opts,
    }),
  );
  app.get('/', (c) => c.text('hi'));
  return app;
}

describe('securityHeaders', () => {
  it('sends CSP, nosniff, Referrer-Policy, CORP, COOP/COEP and no X-Frame-Options', async () => {
    const res = await appWith().request('http://localhost/');
    const csp = res.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'self'");
    expect(csp).toContain("object-src 'none'");
    expect(csp).toContain("base-uri 'none'");
    expect(csp).toContain("frame-ancestors 'self'");
    expect(csp).toContain("worker-src 'self' blob:");
    expect(csp).not.toMatch(/script-src[^;]*'unsafe-inline'/);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('strict-origin-when-cross-origin');
    expect(res.headers.get('cross-origin-resource-policy')).toBe('same-origin');
    expect(res.headers.get('cross-origin-opener-policy')).toBe('same-origin');
    expect(res.headers.get('cross-origin-embedder-policy')).toBe('require-corp');
    expect(res.headers.get('x-frame-options')).toBeNull();
    expect(res.headers.get('strict-transport-security')).toBeNull();
  });

  it('HSTS for a year on https only', async () => {
    const res = await appWith().request('https://example.org/');
    expect(res.headers.get('strict-transport-security')).toMatch(/max-age=31536000/);
  });

  it('embed mode: frame-ancestors lists the embedding origins; COOP/COEP can be off', async () => {
    const res = await appWith({ embedOrigins: ['https://huggingface.co'], crossOriginIsolation: false }).request('http://localhost/');
    expect(res.headers.get('content-security-policy')).toContain("frame-ancestors 'self' https://huggingface.co");
    expect(res.headers.get('cross-origin-opener-policy')).toBeNull();
    expect(res.headers.get('cross-origin-embedder-policy')).toBeNull();
  });
});
