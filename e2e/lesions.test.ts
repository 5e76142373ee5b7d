/// <reference lib="dom" />
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobView } from '../src/shared/jobs.js';
import type { Lesion } from '../src/shared/lesions.js';
import type { MaskVersionView } from '../src/shared/masks.js';
import { HAVE_ISLES22, ISLES22_DIR, ISLES22_TITLE } from '../src/server/test/isles22.js';
import { ROOT, type ServerProcess, builtEntry } from '../src/server/test/process.js';
import { SCREENSHOTS, launchBrowser, newPage, startServer, watch } from './helpers.js';

// Reviewing and refining a result on the real case: the lesion table, the crosshair it moves, the
// status colours, and edit mode's reject, click-to-add (the built-in interactive model through
// masks.refine), undo / redo and save with its provenance — real Chromium, real server.

const DOCS = path.join(ROOT, 'docs', 'screenshots');
mkdirSync(DOCS, { recursive: true });

type Png = { width: number; height: number; data: Buffer };
const png = async (page: Page): Promise<Png> => PNG.sync.read(await page.getByTestId('niivue-canvas').screenshot());
const at = (img: Png, x: number, y: number) => {
  const i = 4 * (y * img.width + x);
  return [img.data[i]!, img.data[i + 1]!, img.data[i + 2]!] as const;
};
/** Pixels passing `test` within `r` pixels of (cx, cy). */
function count(img: Png, cx: number, cy: number, r: number, test: (p: readonly [number, number, number]) => boolean): number {
  let n = 0;
  for (let y = Math.max(0, cy - r); y <= Math.min(img.height - 1, cy + r); y++)
    for (let x = Math.max(0, cx - r); x <= Math.min(img.width - 1, cx + r); x++) if (test(at(img, x, y))) n++;
  return n;
}
// the working mask (NiiVue's drawing, value 1) is red; the crosshair is (64, 140, 255)
const isRed = ([r, g, b]: readonly number[]) => r! > 120 && r! > g! + 60 && r! > b! + 60;
const isCrosshair = ([r, g, b]: readonly number[]) => b! > 200 && g! > 100 && g! < 190 && r! < 120;
// the status layer's colours (lesions/components.ts) over the grey image
const isWhite = ([r, g, b]: readonly number[]) => r! === 255 && g! === 255 && b! === 255;
const isYellow = ([r, g, b]: readonly number[]) => r! > 180 && g! > 150 && b! < 90;
const isMagenta = ([r, g, b]: readonly number[]) => r! > 180 && b! > 130 && g! < 100;

/** Where the crosshair's lines cross in the (single, axial) slice: the column and row with the most crosshair pixels. */
function crosshair(img: Png): { x: number; y: number } {
  const cols = new Array<number>(img.width).fill(0);
  const rows = new Array<number>(img.height).fill(0);
  for (let y = 0; y < img.height; y++)
    for (let x = 0; x < img.width; x++)
      if (isCrosshair(at(img, x, y))) {
        cols[x]!++;
        rows[y]!++;
      }
  // a line is a voxel thick (several pixels): the middle of the columns (rows) near the most
  const middle = (a: number[]) => {
    const top = Math.max(...a);
    const near = a.flatMap((v, i) => (v >= 0.8 * top ? [i] : []));
    return Math.round((near[0]! + near[near.length - 1]!) / 2);
  };
  return { x: middle(cols), y: middle(rows) };
}

describe.skipIf(!HAVE_ISLES22)(`review and refine: ${ISLES22_TITLE}`, () => {
  let server: ServerProcess;
  let browser: Browser;
  beforeAll(async () => {
    const dataDir = mkdtempSync(path.join(tmpdir(), 'sv-e2e-lesions-'));
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

  const api = async <T>(page: Page, proc: string, input: unknown): Promise<T> => {
    const res = await page.request.get(`${server.url}/trpc/${proc}?input=${encodeURIComponent(JSON.stringify(input))}`);
    expect(res.status(), await res.text()).toBe(200);
    return ((await res.json()) as { result: { data: T } }).result.data;
  };
  const loaded = (page: Page, keys: string) =>
    page.waitForFunction((k) => document.querySelector('.viewer-holder')?.getAttribute('data-loaded') === k, keys, { timeout: 120_000 });
  const voxel = (page: Page) => page.getByTestId('readout').getAttribute('data-voxel');
  /** The crosshair's centre on screen; the crosshair is then hidden, so what is under its lines can be counted. */
  const crosshairAt = async (page: Page) => {
    await page.getByLabel('Crosshair').check();
    await page.waitForTimeout(200);
    const c = crosshair(await png(page));
    await page.getByLabel('Crosshair').uncheck();
    await page.waitForTimeout(200);
    return c;
  };

  it('table, crosshair, status colours; edit: reject two FPs, add an FN with a click, undo / redo, save with provenance', async () => {
    const { page, context } = await newPage(browser);
    const seen = watch(page);
    await page.goto(`${server.url}/sign-in`);
    await page.getByRole('button', { name: 'No account? Register' }).click();
    await page.getByLabel('Email').fill('review@x.org');
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Register' }).click();
    await page.getByTestId('account').getByText('review@x.org').waitFor();
    await page.goto(server.url);
    await page.locator('[data-testid=case-list] a', { hasText: 'sub-strokecase0009' }).click();
    await loaded(page, 'background,truth');
    const caseId = page.url().split('/').pop()!;

    // run the default model; its result lists its lesions
    await page.getByRole('button', { name: 'Run' }).click();
    await page.getByTestId('metrics').waitFor({ timeout: 300_000 });
    await loaded(page, 'background,truth,prediction');
    const listed = (await api<{ items: JobView[] }>(page, 'jobs.list', { caseId })).items[0]!;
    const job = await api<JobView>(page, 'jobs.byId', { id: listed.id });
    const list = job.result!.lesions!;
    const rows = page.locator('[data-testid^="lesion-row-"]');
    await expect.poll(() => rows.count(), { timeout: 60_000 }).toBe(list.items.length);
    // the heading's counts and the rows' chips are jobs.byId's
    const { tp: nTp, fp: nFp, fn: nFn } = list.counts;
    expect(await page.getByTestId('lesion-counts').textContent()).toBe(`(${list.items.length}: ${nTp} TP · ${nFp} FP · ${nFn} FN)`);
    for (const s of ['TP', 'FP', 'FN'] as const)
      expect(await page.locator(`[data-testid^="lesion-row-"][data-status="${s}"]`).count()).toBe(
        list.items.filter((l) => l.status === s).length,
      );
    expect(list.items.length).toBeGreaterThan(0);
    const fps = list.items.filter((l) => l.status === 'FP');
    const fn = list.items.find((l) => l.status === 'FN');
    const tp = list.items.find((l) => l.status === 'TP') ?? list.items[0]!;
    expect(fps.length, 'the default model leaves at least two false positives on this case').toBeGreaterThanOrEqual(2);
    expect(fn, 'and misses at least one true lesion').toBeTruthy();

    // a row click puts the crosshair on the lesion's seed voxel (the readout is on the DWI grid) and selects the row
    await page.getByTestId(`lesion-row-${tp.id}`).click();
    await expect.poll(() => voxel(page), { timeout: 60_000 }).toBe(tp.seedVoxel.join(','));
    expect(await page.getByTestId(`lesion-row-${tp.id}`).getAttribute('aria-selected')).toBe('true');
    // and outlines it: a white ring (the grey image is never pure white at the seed of a lesion's ring)
    await expect
      .poll(
        async () => {
          const c = await crosshairAt(page);
          const n = count(await png(page), c.x, c.y, 30, isWhite);
          await page.getByLabel('Crosshair').check();
          return n;
        },
        { timeout: 60_000, message: 'the selected lesion is outlined' },
      )
      .toBeGreaterThan(0);
    // N / P: the next and previous row in the table's order (by id until sorted)
    const byId = [...list.items].sort((a, b) => a.id - b.id);
    const after = byId[(byId.findIndex((l) => l.id === tp.id) + 1) % byId.length]!;
    await page.keyboard.press('n');
    await expect.poll(() => voxel(page), { timeout: 60_000 }).toBe(after.seedVoxel.join(','));
    await page.keyboard.press('p');
    await expect.poll(() => voxel(page), { timeout: 60_000 }).toBe(tp.seedVoxel.join(','));
    // sorted by volume (a header click): largest first
    await page.getByTestId('lesion-table').getByRole('columnheader', { name: 'mL' }).click();
    const largest = [...list.items].sort((a, b) => b.voxels - a.voxels || a.id - b.id)[0]!;
    expect(await rows.first().getAttribute('data-testid')).toBe(`lesion-row-${largest.id}`);

    // colour by status: the prediction is drawn TP yellow / FP magenta (the crosshair sits on a TP)
    await page.getByLabel('Colour by status').check();
    await page.getByTestId('status-legend').waitFor();
    await expect.poll(async () => count(await png(page), 0, 0, 10_000, isYellow), { timeout: 60_000 }).toBeGreaterThan(0);
    await page.getByTestId(`lesion-row-${fps[0]!.id}`).click();
    await expect.poll(async () => count(await png(page), 0, 0, 10_000, isMagenta), { timeout: 60_000 }).toBeGreaterThan(0);
    await page.getByTestId(`lesion-row-${tp.id}`).click();
    await page.waitForTimeout(500);
    await page.screenshot({ path: path.join(DOCS, 'lesion-table.png'), fullPage: true });
    await page.getByLabel('Colour by status').uncheck();

    // edit the prediction, one slice at a time (the crosshair's lines find the seed on screen)
    await page.getByLabel('Layout').selectOption('axial');
    await page.getByRole('button', { name: 'Edit' }).click();
    await page.getByRole('heading', { name: /^Editing/ }).waitFor();
    await expect.poll(() => rows.count(), { timeout: 60_000 }).toBe(list.items.length);

    // reject two FPs with their rows' ✕: their pixels go from the slice through them
    for (const fp of fps.slice(0, 2)) {
      await page.getByTestId(`lesion-row-${fp.id}`).click();
      await expect.poll(() => voxel(page), { timeout: 60_000 }).toBe(fp.seedVoxel.join(','));
      await page.screenshot({ path: path.join(SCREENSHOTS, 'lesions-reject.png'), fullPage: true });
      // where the crosshair's lines cross, then without them: a lesion one voxel wide in this slice hides under a line
      let c = { x: 0, y: 0 };
      await expect
        .poll(
          async () => {
            c = await crosshairAt(page);
            return count(await png(page), c.x, c.y, 6, isRed);
          },
          { timeout: 60_000, message: `lesion ${fp.id} is drawn at the crosshair` },
        )
        .toBeGreaterThan(0);
      await page.getByRole('button', { name: `Reject lesion ${fp.id}`, exact: true }).click();
      await expect.poll(() => page.getByTestId(`lesion-row-${fp.id}`).count(), { timeout: 60_000 }).toBe(0);
      await expect.poll(async () => count(await png(page), c.x, c.y, 6, isRed), { timeout: 60_000 }).toBe(0);
    }
    expect(await page.getByTestId('edit-counts').textContent()).toBe('0 strokes · 2 rejected · 0 refined');
    expect(await rows.count()).toBe(list.items.length - 2);

    // click to add: the crosshair on the missed lesion's seed, then a click right there with the tool
    await page.getByTestId(`lesion-row-${fn!.id}`).click();
    await expect.poll(() => voxel(page), { timeout: 60_000 }).toBe(fn!.seedVoxel.join(','));
    // the truth's green is drawn over a missed lesion: hidden, the working mask's red shows alone
    await page.getByRole('checkbox', { name: 'Ground truth' }).uncheck();
    await page.waitForTimeout(300);
    const c = await crosshairAt(page);
    const redBefore = count(await png(page), c.x, c.y, 8, isRed);
    await page.getByRole('button', { name: 'Click to add' }).click();
    const box = (await page.getByTestId('niivue-canvas').boundingBox())!;
    await page.mouse.click(box.x + c.x, box.y + c.y);
    await expect.poll(() => page.getByTestId('edit-counts').textContent(), { timeout: 120_000 }).toBe('0 strokes · 2 rejected · 1 refined');
    expect(await voxel(page), 'the click landed on the seed voxel').toBe(fn!.seedVoxel.join(','));
    await expect.poll(async () => count(await png(page), c.x, c.y, 8, isRed), { timeout: 60_000 }).toBeGreaterThan(redBefore + 10);
    const refined = count(await png(page), c.x, c.y, 8, isRed);
    // the working mask's fresh list (refine's): one missed lesion fewer, the rejected FPs still gone
    const missedRows = page.locator('[data-testid^="lesion-row-"][data-status="FN"]');
    await expect.poll(() => missedRows.count(), { timeout: 60_000 }).toBeLessThanOrEqual(list.counts.fn - 1);
    expect(await page.locator('[data-testid^="lesion-row-"][data-status="FP"]').count()).toBeLessThanOrEqual(list.counts.fp - 2);
    await page.screenshot({ path: path.join(DOCS, 'refine.png'), fullPage: true });

    // undo takes the refinement back, redo brings it again
    await page.keyboard.press('Control+z');
    await expect.poll(async () => count(await png(page), c.x, c.y, 8, isRed), { timeout: 60_000 }).toBe(redBefore);
    expect(await page.getByTestId('edit-counts').textContent()).toBe('0 strokes · 2 rejected · 0 refined');
    await page.keyboard.press('Control+Shift+z');
    await expect.poll(async () => count(await png(page), c.x, c.y, 8, isRed), { timeout: 60_000 }).toBe(refined);
    expect(await page.getByTestId('edit-counts').textContent()).toBe('0 strokes · 2 rejected · 1 refined');

    // save: the version's provenance says what was done; its lesion list has two FPs and one FN fewer
    await page.getByLabel('Note').fill('two FPs rejected, one lesion added');
    await page.getByRole('button', { name: 'Save corrected mask' }).click();
    const note = page.getByTestId('provenance');
    await note.waitFor({ timeout: 120_000 });
    const saved = (await api<{ items: MaskVersionView[] }>(page, 'masks.list', { caseId })).items[0]!;
    const version = await api<MaskVersionView>(page, 'masks.byId', { id: saved.id });
    expect(await note.textContent()).toContain(version.provenance!.summary);
    expect(version.provenance).toMatchObject({ rejectedLesions: 2, penStrokes: 0, clicksAdded: 1 });
    const counts = version.lesions!.counts;
    expect(counts.fp).toBeLessThanOrEqual(list.counts.fp - 2);
    expect(counts.fn).toBeLessThanOrEqual(list.counts.fn - 1);
    expect(version.diceVsGroundTruth!).toBeGreaterThan(job.result!.metrics.dice!);
    // the table now lists the version shown
    await expect.poll(() => rows.count(), { timeout: 60_000 }).toBe(version.lesions!.items.length);
    const missed = (ls: Lesion[]) => ls.filter((l) => l.status === 'FN').length;
    expect(missed(version.lesions!.items)).toBe(counts.fn);
    seen.expectNone();
    await context.close();
  }, 900_000);
});
