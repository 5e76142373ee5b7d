/// <reference lib="dom" />
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HAVE_ISLES22, ISLES22_DIR, ISLES22_TITLE } from '../src/server/test/isles22.js';
import { type ServerProcess, builtEntry } from '../src/server/test/process.js';
import { SCREENSHOTS, launchBrowser, newPage, overlayPixels, startServer, watch } from './helpers.js';

// The real case in the viewer: its FLAIR is on its own 512×512×29 grid; NiiVue resamples the
// masks (on the DWI grid) onto it through the affines.
describe.skipIf(!HAVE_ISLES22)(`${ISLES22_TITLE} in the viewer`, () => {
  let server: ServerProcess;
  let browser: Browser;
  beforeAll(async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sv-e2e-isles-'));
    const run = spawnSync(process.execPath, [builtEntry('src/cli/index.ts'), 'import', ISLES22_DIR], {
      env: { ...process.env, DATA_DIR: dataDir },
      encoding: 'utf8',
    });
    expect(run.status, run.stderr).toBe(0);
    [server, browser] = await Promise.all([startServer({ DATA_DIR: dataDir, DEMO_CASES: '0' }), launchBrowser()]);
  }, 240_000);
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('shows DWI, then the FLAIR on its own grid, with the ground truth over both', async () => {
    const { page, context } = await newPage(browser);
    const seen = watch(page);
    await page.goto(server.url);
    await page.locator('[data-testid=case-list] a', { hasText: 'sub-strokecase0009' }).click();
    const loaded = (url: string) =>
      page.waitForFunction((u) => (document.querySelector('.viewer-holder')?.getAttribute('data-loaded') ?? '') === u, url, {
        timeout: 120_000,
      });
    await loaded('background,truth');
    await page.getByLabel('Background image').selectOption('flair');
    await loaded('');
    await loaded('background,truth');
    await page.waitForTimeout(1000);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'isles22-flair.png') });
    const px = overlayPixels(await page.getByTestId('niivue-canvas').screenshot());
    expect(px.green).toBeGreaterThan(0);
    // the crosshair readout: millimetres, voxel, and the value of every loaded volume
    await page.getByTestId('niivue-canvas').click({ position: { x: 250, y: 560 } });
    await expect
      .poll(() => page.getByTestId('readout').textContent())
      .toMatch(/mm · voxel \d+, \d+, \d+ · flair\.nii\.gz: [\d.]+ · truth\.nii\.gz: [01]/);
    seen.expectNone();
    await context.close();
  }, 300_000);
});
