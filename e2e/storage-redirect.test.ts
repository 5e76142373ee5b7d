/// <reference lib="dom" />
import { type Server, createServer, request } from 'node:http';
import path from 'node:path';
import { DeleteBucketCorsCommand, PutBucketCorsCommand, S3Client } from '@aws-sdk/client-s3';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, type ServerProcess } from '../src/server/test/process.js';
import { type TestS3, startTestS3 } from '../src/server/test/s3.js';
import { SCREENSHOTS, launchBrowser, loaded, newPage, startServer, watch } from './helpers.js';

// #28: the viewer with its volumes served by the object store (STORAGE_SERVE=redirect), in a real
// Chromium with cross-origin isolation on (COOP same-origin + COEP require-corp, the standalone
// viewer's default). A signed link `/files/v/<token>` answers 302 to a presigned GET on s3rver — on
// another port, so another origin — and NiiVue's fetch follows it. What that takes from the bucket
// is exactly what docs/fleet.md tells a production bucket to have: a CORS rule for the viewer's
// origin (GET, HEAD; Range; the headers exposed). The store's origin goes into the page's CSP
// `connect-src` by itself (app.ts), or the browser would refuse to follow the redirect.

const BUCKET = 'redirect-volumes';
let s3: TestS3;
let admin: S3Client;
let server: ServerProcess;
let browser: Browser;
let origin: string;
/** The store as the server and the browser reach it: s3rver behind a proxy that counts the GETs it answers. */
let front: { endpoint: string; gets: string[]; close(): Promise<void> };

async function countingProxy(target: string): Promise<typeof front> {
  const to = new URL(target);
  const gets: string[] = [];
  const server: Server = createServer((req, res) => {
    if (req.method === 'GET') gets.push(new URL(req.url ?? '/', 'http://x').pathname);
    // The Host header goes through unchanged: the presigned URL's signature covers it.
    const up = request({ host: to.hostname, port: to.port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    gets,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** The bucket's CORS rule as a production bucket needs it (docs/fleet.md). */
const corsFor = (allowedOrigin: string) =>
  new PutBucketCorsCommand({
    Bucket: BUCKET,
    CORSConfiguration: {
      CORSRules: [
        {
          AllowedOrigins: [allowedOrigin],
          AllowedMethods: ['GET', 'HEAD'],
          AllowedHeaders: ['Range'],
          ExposeHeaders: ['Content-Range', 'Content-Length', 'Accept-Ranges', 'ETag'],
          MaxAgeSeconds: 600,
        },
      ],
    },
  });

beforeAll(async () => {
  s3 = await startTestS3();
  await s3.createBucket(BUCKET);
  admin = new S3Client({ endpoint: s3.endpoint, region: 'us-east-1', forcePathStyle: true });
  const port = await freePort();
  origin = `http://127.0.0.1:${port}`;
  await admin.send(corsFor(origin));
  front = await countingProxy(s3.endpoint);
  [server, browser] = await Promise.all([
    startServer({
      PORT: String(port),
      ...s3.env(BUCKET, 'e2e/'),
      S3_ENDPOINT: front.endpoint,
      STORAGE_SERVE: 'redirect',
      STORAGE_REDIRECT_TTL_S: '120',
    }),
    launchBrowser(),
  ]);
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await server?.stop();
  admin?.destroy();
  await front?.close();
  await s3?.close();
});

/** Every volume request the page makes: the API's 302s and the store's answers. */
function volumeTraffic(page: Page) {
  const redirects: string[] = [];
  const fromStore: { status: number; url: string; acao: string | undefined }[] = [];
  page.on('response', (r) => {
    const url = r.url();
    if (url.startsWith(`${origin}/files/v/`) && r.status() === 302) redirects.push(r.headers().location ?? '');
    if (url.startsWith(`${front.endpoint}/${BUCKET}/`))
      fromStore.push({ status: r.status(), url, acao: r.headers()['access-control-allow-origin'] });
  });
  return { redirects, fromStore };
}

/** Waits for a layer; a timeout says what the page reported (a CSP or CORS refusal names itself there). */
async function layer(page: Page, key: string, seen: ReturnType<typeof watch>) {
  await loaded(page, key).catch((err: Error) => {
    throw new Error(`${err.message}\nthe page reported:\n${seen.problems.join('\n')}`);
  });
}

describe('the viewer through STORAGE_SERVE=redirect (s3rver), cross-origin isolated', () => {
  it('a demo case opens: every volume comes from the store by redirect, the layers load, no console error; a model run loads its mask the same way', async () => {
    const { page, context } = await newPage(browser);
    const seen = watch(page);
    const traffic = volumeTraffic(page);
    await page.goto(`${origin}/sign-in`);
    await page.getByRole('button', { name: 'Continue as guest' }).click();
    await page.getByTestId('account').getByText('Guest').waitFor();
    await page.locator('[data-testid=case-list] a').first().click();
    await page.waitForURL(/\/cases\/[0-9a-f-]{36}$/);
    await layer(page, 'background', seen);
    await layer(page, 'truth', seen);
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);
    expect(await page.locator('.viewer-holder').getAttribute('data-loaded')).toBe('background,truth');

    // the bytes came from the store, by a presigned redirect, CORS-approved for this origin only
    expect(traffic.redirects.length).toBeGreaterThanOrEqual(2);
    for (const location of traffic.redirects) {
      expect(location.startsWith(`${front.endpoint}/${BUCKET}/e2e/volumes/`)).toBe(true);
      expect(location).toContain('X-Amz-Signature=');
    }
    expect(traffic.fromStore.length).toBeGreaterThanOrEqual(2);
    for (const r of traffic.fromStore) {
      expect(r.status).toBe(200);
      expect(r.acao).toBe(origin);
    }
    await page.screenshot({ path: path.join(SCREENSHOTS, 'storage-redirect-case.png') });
    // the viewer asks for DWI and the truth twice (its prefetch, then NiiVue): the same presigned URL
    // within half the TTL, so the browser's cache answers the second (informational: a window may
    // turn between the two)
    const volumeGets = front.gets.filter((p) => p.endsWith('.nii.gz'));
    console.info(
      `storage-redirect: ${traffic.redirects.length} redirects to ${new Set(traffic.redirects).size} distinct presigned URLs; the store answered ${volumeGets.length} GETs for ${new Set(volumeGets).size} volumes`,
    );

    // the built-in model on the in-process worker: the mask it writes to the store loads by redirect too
    const before = traffic.fromStore.length;
    await page.getByRole('button', { name: 'Run' }).click();
    await page.getByTestId('metrics').waitFor({ timeout: 180_000 });
    await layer(page, 'prediction', seen);
    expect(Number(await page.getByTestId('dice').textContent())).toBeGreaterThan(0.9);
    expect(traffic.fromStore.length).toBeGreaterThan(before);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'storage-redirect-prediction.png') });
    seen.expectNone();
    await context.close();
  }, 420_000);

  it('a bucket without a CORS rule for the viewer: the store answers but the browser refuses the bytes, and the viewer says so', async () => {
    await admin.send(new DeleteBucketCorsCommand({ Bucket: BUCKET }));
    try {
      const { page, context } = await newPage(browser);
      const seen = watch(page);
      await page.goto(`${origin}/sign-in`);
      await page.getByRole('button', { name: 'Continue as guest' }).click();
      await page.getByTestId('account').getByText('Guest').waitFor();
      await page.locator('[data-testid=case-list] a').first().click();
      await page.waitForURL(/\/cases\/[0-9a-f-]{36}$/);
      // what Chromium says: no Access-Control-Allow-Origin on the store's answer
      await expect.poll(() => seen.problems.some((p) => /blocked by CORS policy/.test(p)), { timeout: 120_000, interval: 500 }).toBe(true);
      await page.getByText(/Could not load the volumes/).waitFor();
      expect(await page.locator('.viewer-holder').getAttribute('data-loaded')).not.toContain('background');
      await page.screenshot({ path: path.join(SCREENSHOTS, 'storage-redirect-no-cors.png') });
      await context.close();
    } finally {
      await admin.send(corsFor(origin));
    }
  }, 240_000);
});
