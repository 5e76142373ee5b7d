/// <reference lib="dom" />
import { type IncomingMessage, type ServerResponse, createServer, request } from 'node:http';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ServerProcess, freePort } from '../src/server/test/process.js';
import { SCREENSHOTS, launchBrowser, newPage, startServer, watch } from './helpers.js';

// A sleeping Hugging Face Space: its proxy answers the API with an HTML 503 page until the
// backend is up. The proxy here does that until the test releases it (a gate, not a timer), so
// the banner is seen for certain, then the page recovers by itself, with no reload.

let server: ServerProcess;
let browser: Browser;
let proxy: ReturnType<typeof createServer>;
let proxyUrl: string;
let asleep = true;
let refused = 0;

beforeAll(async () => {
  [server, browser] = await Promise.all([startServer(), launchBrowser()]);
  const target = new URL(server.url);
  proxy = createServer((req: IncomingMessage, res: ServerResponse) => {
    if (asleep && req.url?.startsWith('/trpc/')) {
      refused++;
      res.writeHead(503, { 'content-type': 'text/html', 'retry-after': '1' });
      res.end('<html><body><h1>Your Space is waking up</h1></body></html>');
      return;
    }
    const up = request({ host: target.hostname, port: target.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    req.pipe(up);
  });
  const port = await freePort();
  await new Promise<void>((r) => proxy.listen(port, '127.0.0.1', r));
  proxyUrl = `http://127.0.0.1:${port}`;
}, 240_000);

afterAll(async () => {
  proxy?.close();
  await browser?.close();
  await server?.stop();
});

it('cold start: the "Waking up the server…" banner counts up while the API answers 503, then cases load with no reload', async () => {
  const { page, context } = await newPage(browser);
  const seen = watch(page);
  await page.goto(proxyUrl);
  const banner = page.getByTestId('waking');
  await banner.waitFor({ timeout: 120_000 });
  await expect.poll(() => banner.textContent(), { timeout: 120_000 }).toMatch(/Waking up the server… 0:0[2-9]/);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'cold-start-waking.png') });
  expect(refused).toBeGreaterThan(1); // retried, with backoff
  asleep = false;
  await page.locator('[data-testid=case-list] a').first().waitFor({ timeout: 90_000 });
  await banner.waitFor({ state: 'detached', timeout: 120_000 });
  expect(await page.evaluate(() => performance.getEntriesByType('navigation').length)).toBe(1); // no reload
  seen.expectNone([/HTTP 503/, /status of 503/]);
  await context.close();
});
