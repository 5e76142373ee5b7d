import { createServer } from 'node:http';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { type ServerProcess, freePort } from '../src/server/test/process.js';
import { SCREENSHOTS, launchBrowser, newPage, startServer, watch } from './helpers.js';

// A private Hugging Face Space frames the app from another site, so its session cookie is a
// third-party cookie. Here the parent is http://localhost:<p1> and the app http://127.0.0.1:<p2>:
// different sites to the browser, as huggingface.co and *.hf.space are.

let server: ServerProcess;
let browser: Browser;
let parent: ReturnType<typeof createServer>;
let parentUrl: string;

beforeAll(async () => {
  const parentPort = await freePort();
  parentUrl = `http://localhost:${parentPort}`;
  [server, browser] = await Promise.all([startServer({ EMBED_ORIGINS: parentUrl }), launchBrowser()]);
  parent = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/html' });
    res.end(`<!doctype html><title>Space</title><h1>A private Space</h1>
<iframe src="${server.url}/sign-in" width="1200" height="760" allow="cross-origin-isolated"></iframe>`);
  });
  await new Promise<void>((r) => parent.listen(parentPort, '127.0.0.1', r));
}, 240_000);

afterAll(async () => {
  parent?.close();
  await browser?.close();
  await server?.stop();
});

it('cross-site iframe: sign in inside the frame, reload the parent, still signed in', async () => {
  const { page, context } = await newPage(browser, { viewport: { width: 1280, height: 900 } });
  const seen = watch(page);
  await page.goto(parentUrl);
  const frame = page.frameLocator('iframe');
  await frame.getByRole('button', { name: 'No account? Register' }).click();
  await frame.getByLabel('Email').fill('framed@x.org');
  await frame.getByLabel('Password').fill('correct horse battery');
  await frame.getByRole('button', { name: 'Register' }).click();
  await frame.getByTestId('account').getByText('framed@x.org').waitFor({ timeout: 120_000 });
  await frame.locator('[data-testid=case-list] a').first().waitFor();

  await page.reload();
  await frame.getByTestId('account').getByText('framed@x.org').waitFor({ timeout: 120_000 });
  // the frame's src is /sign-in: signed in already, it shows the cases, not the sign-in form
  await frame.locator('[data-testid=case-list] a').first().waitFor({ timeout: 120_000 });
  expect(await frame.getByRole('heading', { name: 'Sign in' }).count()).toBe(0);
  await page.screenshot({ path: path.join(SCREENSHOTS, 'iframe-signed-in.png') });
  const cookies = await context.cookies(server.url);
  expect(cookies.find((c) => c.name === 'strokeview_session')).toMatchObject({ sameSite: 'None', secure: true });
  seen.expectNone();
  await context.close();
});
