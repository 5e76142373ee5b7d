/// <reference lib="dom" />
import path from 'node:path';
import { build } from 'esbuild';
import { expect, it } from 'vitest';
import { ROOT } from '../src/server/test/process.js';
import { newPage, serverAndBrowser } from './helpers.js';

// @strokeview/sdk in a real browser: the SDK's own source bundled for the web (as a web app's
// bundler would), driving a live server — a typed call, an upload from a Blob, and a segmentation
// followed over the SSE progress stream.

const ctx = serverAndBrowser();

it('the SDK runs in Chromium: lists, uploads a Blob, segments with live progress, reads typed errors', async () => {
  const bundled = await build({
    entryPoints: [path.join(ROOT, 'src/sdk/index.ts')],
    bundle: true,
    write: false,
    format: 'iife',
    globalName: 'StrokeviewSDK',
    platform: 'browser',
    target: 'es2022',
    // Only paths (Node, Deno, Bun) reach node: modules; a browser bundler leaves them out.
    external: ['node:*'],
    logLevel: 'silent',
  });
  const code = bundled.outputFiles[0]!.text;

  const register = async (proc: string, body: unknown, cookie?: string) =>
    fetch(`${ctx.server.url}/trpc/${proc}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'sec-fetch-site': 'same-origin', ...(cookie ? { cookie } : {}) },
      body: JSON.stringify(body),
    });
  const reg = await register('auth.register', { email: 'browser-sdk@example.org', password: 'correct horse battery staple' });
  const cookie = reg.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const token = (
    (await (await register('auth.tokens.create', { name: 'browser' }, cookie)).json()) as { result: { data: { token: string } } }
  ).result.data.token;

  const { context, page } = await newPage(ctx.browser);
  try {
    await page.goto(`${ctx.server.url}/healthz`);
    const result = await page.evaluate(
      `(async () => {
        ${code}
        const sv = StrokeviewSDK.createClient({ url: location.origin, token: ${JSON.stringify(token)} });
        const cases = await sv.cases.list.query();
        const demo = await sv.cases.byId.query({ id: cases.items[0].id });
        const bytes = {};
        for (const v of demo.volumes) bytes[v.role] = await sv.download(v);
        const uploaded = await sv.uploadCase({ name: 'from a browser', dwi: new Blob([bytes.dwi]), adc: new Blob([bytes.adc]), mask: new Blob([bytes.mask]) });
        const events = [];
        const job = await sv.segment(uploaded.id, { onProgress: (p) => events.push(p.status + ' ' + p.progress) });
        let error = null;
        try { await sv.cases.byId.query({ id: '00000000-0000-4000-8000-000000000000' }); }
        catch (e) { error = { isSdkError: e instanceof StrokeviewSDK.StrokeviewError, code: e.code, status: e.status }; }
        return { hasNativeEventSource: typeof EventSource === 'function', status: job.status, dice: job.result.metrics.dice, events, error, roles: uploaded.roles };
      })()`,
    );
    const r = result as { status: string; dice: number; events: string[]; error: unknown; roles: string[] };
    expect(r.status).toBe('succeeded');
    expect(r.dice).toBeGreaterThan(0.9);
    expect(r.roles.sort()).toEqual(['adc', 'dwi', 'mask']);
    expect(r.events.at(-1)).toBe('succeeded 100');
    expect(r.error).toEqual({ isSdkError: true, code: 'NOT_FOUND', status: 404 });
  } finally {
    await context.close();
  }
});
