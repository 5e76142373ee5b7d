/// <reference lib="dom" />
import path from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { SCREENSHOTS, loaded, newPage, overlayPixels, serverAndBrowser, watch } from './helpers.js';

// The viewer in a real Chromium against a real built server (embedded database, one demo case,
// the built-in model). What a person sees is the point: screenshots land in e2e/screenshots/.

const suite = serverAndBrowser();

/** NiiVue draws on the next animation frames after a load: wait until two canvas shots agree. */
async function settledCanvas(page: Page): Promise<Buffer> {
  const canvas = page.getByTestId('niivue-canvas');
  let previous = await canvas.screenshot();
  for (let i = 0; i < 50; i++) {
    await page.evaluate(() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))));
    const next = await canvas.screenshot();
    if (next.equals(previous)) return next;
    previous = next;
  }
  return previous;
}

async function continueAsGuest(page: Page) {
  await page.goto(`${suite.server.url}/sign-in`);
  await page.getByRole('button', { name: 'Continue as guest' }).click();
  await page.getByTestId('account').getByText('Guest').waitFor();
}

describe('the viewer in Chromium', () => {
  it('full flow: guest → demo case → run the built-in model → live progress, metrics, and a red overlay where the green truth is', async () => {
    const { page, context } = await newPage(suite.browser);
    const seen = watch(page);
    await continueAsGuest(page);
    await page.locator('[data-testid=case-list] a').first().click();
    await page.waitForURL(/\/cases\/[0-9a-f-]{36}$/);
    await loaded(page, 'truth');
    // cross-origin isolation is on by default for the standalone viewer, and the volumes still load
    expect(await page.evaluate(() => crossOriginIsolated)).toBe(true);

    const before = overlayPixels(await settledCanvas(page));
    await page.screenshot({ path: path.join(SCREENSHOTS, 'full-flow-before.png') });
    expect(before.green).toBeGreaterThan(100); // the ground truth, in green
    expect(before.red).toBe(0); // nothing red yet: the crosshair (blue) does not count

    await page.getByRole('button', { name: 'Run' }).click();
    await page.getByTestId('progress').waitFor();
    await page.getByTestId('metrics').waitFor({ timeout: 120_000 });
    await loaded(page, 'prediction');
    expect(await page.getByTestId('progress').textContent()).toContain('succeeded');
    const dice = Number(await page.getByTestId('dice').textContent());
    expect(dice).toBeGreaterThan(0.9);
    await expect.poll(() => page.getByTestId('metrics').textContent()).toMatch(/Lesion-wise F1/);

    const after = overlayPixels(await settledCanvas(page));
    await page.screenshot({ path: path.join(SCREENSHOTS, 'full-flow-after.png') });
    expect(after.red).toBeGreaterThan(100);
    // the red prediction lies where the green truth was
    let redOnTruth = 0;
    for (let i = 0; i < after.redMask.length; i++) if (after.redMask[i] && before.greenMask[i]) redOnTruth++;
    expect(redOnTruth / after.red).toBeGreaterThan(0.8);

    // the layout switch: axial only, 3D only, back to all four — each drawn without an error
    for (const layout of ['axial', 'render', 'multiplanar']) {
      await page.getByLabel('Layout').selectOption(layout);
      await settledCanvas(page);
      await page.screenshot({ path: path.join(SCREENSHOTS, `layout-${layout}.png`) });
    }

    // reopening the case shows the latest result without running again
    await page.reload();
    await page.getByTestId('metrics').waitFor();
    await loaded(page, 'prediction');
    seen.expectNone();
    await context.close();
  });

  it('a case id that does not exist shows "Case not found" at once', async () => {
    const { page, context } = await newPage(suite.browser);
    const seen = watch(page);
    await page.goto(`${suite.server.url}/cases/00000000-0000-4000-8000-000000000000`);
    await page.getByText('Case not found').waitFor({ timeout: 60_000 }); // a deadline; "at once" = no retry (below)
    expect(await page.getByTestId('waking').count()).toBe(0); // a 404 is an answer, not retried
    seen.expectNone([/HTTP 404: GET .*cases\.byId/, /status of 404/]);
    await context.close();
  });

  it('lifecycle: open and leave a case 20 times — no console error, no lost context, at most one live canvas', async () => {
    const { page, context } = await newPage(suite.browser);
    const seen = watch(page);
    const warnings: string[] = [];
    page.on('console', (m) => {
      if (/too many active webgl contexts|oldest context will be lost|shader failed/i.test(m.text())) warnings.push(m.text());
    });
    await page.goto(suite.server.url);
    for (let i = 0; i < 20; i++) {
      await page.locator('[data-testid=case-list] a').first().click();
      await loaded(page, 'background');
      expect(await page.locator('canvas').count()).toBe(1);
      console.info(`lifecycle: round ${i + 1} of 20 done at ${new Date().toISOString()}`);
      await page.locator('a.brand').click();
      await page.getByTestId('case-list').waitFor();
    }
    expect(await page.locator('canvas').count()).toBe(0);
    expect(warnings).toEqual([]);
    seen.expectNone();
    await context.close();
  }, 900_000);
});
