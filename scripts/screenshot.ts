/// <reference lib="dom" />
// `npm run screenshot`: docs/screenshot.png — a case view with the prediction (red) over the
// ground truth (green), from a live server. Starts its own built server (embedded database, one
// demo case, and the real ISLES'22 case imported when ../shared/data/isles22 is there) unless
// STROKEVIEW_URL points at a running one.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { launchBrowser, newPage, startServer } from '../e2e/helpers.js';
import { HAVE_ISLES22, ISLES22_DIR } from '../src/server/test/isles22.js';
import { ROOT, builtEntry } from '../src/server/test/process.js';

async function ownServer() {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'sv-screenshot-'));
  if (HAVE_ISLES22) {
    const run = spawnSync(process.execPath, [builtEntry('src/cli/index.ts'), 'import', ISLES22_DIR], {
      env: { ...process.env, DATA_DIR: dataDir },
      encoding: 'utf8',
    });
    if (run.status !== 0) throw new Error(run.stderr);
  }
  return startServer({ DATA_DIR: dataDir });
}

const own = process.env.STROKEVIEW_URL ? undefined : await ownServer();
const url = process.env.STROKEVIEW_URL ?? own!.url;
const browser = await launchBrowser();
try {
  const { page } = await newPage(browser, { viewport: { width: 1400, height: 860 } });
  await page.goto(`${url}/sign-in`);
  await page.getByRole('button', { name: 'Continue as guest' }).click();
  await page.getByTestId('account').waitFor();
  const real = page.locator('[data-testid=case-list] a', { hasText: 'sub-strokecase0009' });
  await (HAVE_ISLES22 && !process.env.STROKEVIEW_URL ? real : page.locator('[data-testid=case-list] a')).first().click();
  await page.waitForFunction(() => document.querySelector('.viewer-holder')?.getAttribute('data-loaded')?.includes('background'), null, {
    timeout: 120_000,
  });
  await page.getByRole('button', { name: 'Run' }).click();
  await page.getByTestId('metrics').waitFor({ timeout: 120_000 });
  await page.waitForFunction(() => document.querySelector('.viewer-holder')?.getAttribute('data-loaded')?.includes('prediction'), null, {
    timeout: 120_000,
  });
  await page.waitForTimeout(1500); // NiiVue's next frames
  const out = path.join(ROOT, 'docs', 'screenshot.png');
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await own?.stop();
}
