/// <reference lib="dom" />
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { phantomVolumes } from '../src/server/cases/demo.js';
import { readNifti, toFloat32 } from '../src/server/nifti/read.js';
import { writeNiftiGz } from '../src/server/nifti/write.js';
import { SCREENSHOTS, loaded, newPage, serverAndBrowser, watch } from './helpers.js';

// Correcting a mask and bringing one's own case, in a real Chromium against a real server.

const suite = serverAndBrowser();

async function register(page: Page, email: string) {
  await page.goto(`${suite.server.url}/sign-in`);
  await page.getByRole('button', { name: 'No account? Register' }).click();
  await page.getByLabel('Email').fill(email);
  await page.getByLabel('Password').fill('correct horse battery');
  await page.getByRole('button', { name: 'Register' }).click();
  await page.getByTestId('account').getByText(email).waitFor();
}

async function openFirstCase(page: Page, email: string) {
  await register(page, email);
  await page.goto(suite.server.url);
  await page.locator('[data-testid=case-list] a').first().click();
  await loaded(page, 'truth');
}

/** Pixels of a colour in the canvas, as [x, y] positions. */
async function pixels(page: Page, test: (r: number, g: number, b: number) => boolean): Promise<[number, number][]> {
  const { PNG } = await import('pngjs');
  const img = PNG.sync.read(await page.getByTestId('niivue-canvas').screenshot());
  const out: [number, number][] = [];
  for (let y = 0; y < img.height; y++)
    for (let x = 0; x < img.width; x++) {
      const i = 4 * (y * img.width + x);
      if (test(img.data[i]!, img.data[i + 1]!, img.data[i + 2]!)) out.push([x, y]);
    }
  return out;
}
// the overlay blue (about 50, 50, 230), not the crosshair (64, 140, 255)
const isBlue = (r: number, g: number, b: number) => b > 150 && r < 110 && g < 110;

describe('masks and uploads in Chromium', () => {
  // 300 s each: a browser on a machine whose 2 cores are busy (test:busy) needs more than the 120 s default
  it('upload a case through the dialog: a bad file shows its error and creates nothing; a good case opens and renders', async () => {
    const { page, context } = await newPage(suite.browser);
    const seen = watch(page);
    await register(page, 'up@x.org');
    const dir = mkdtempSync(path.join(tmpdir(), 'sv-upload-'));
    const vols = Object.fromEntries(phantomVolumes(107).map((v) => [v.role, v.stored]));
    const file = (n: string, b: Uint8Array) => {
      writeFileSync(path.join(dir, n), b);
      return path.join(dir, n);
    };
    const dwi = file('patient7_dwi.nii.gz', vols.dwi!);
    const adc = file('patient7_adc.nii.gz', vols.adc!);
    const mask = file('patient7_msk.nii.gz', vols.mask!);
    const small = readNifti(vols.adc!);
    const badAdc = file(
      'other_adc.nii.gz',
      writeNiftiGz({ dims: [96, 96, 60], affine: small.affine, datatype: 'float32', data: new Float32Array(96 * 96 * 60).fill(800) }),
    );

    await page.getByRole('button', { name: 'Upload a case' }).click();
    await page.getByLabel('Choose files').setInputFiles([dwi, badAdc]);
    expect(await page.getByLabel('Role of other_adc.nii.gz').inputValue()).toBe('adc'); // guessed from the name
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    const err = page.getByTestId('upload-file').filter({ hasText: 'other_adc.nii.gz' }).getByRole('alert');
    await err.waitFor();
    expect(await err.textContent()).toMatch(/other_adc\.nii\.gz: DWI and ADC are on different grids \(DWI 112×112×73, ADC 96×96×60/);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'upload-error.png') });
    expect(
      (
        (await (await page.request.get(`${suite.server.url}/trpc/cases.list`)).json()) as {
          result: { data: { items: { owned: boolean }[] } };
        }
      ).result.data.items.filter((c) => c.owned),
    ).toEqual([]);

    await page.getByTestId('upload-file').filter({ hasText: 'other_adc.nii.gz' }).getByRole('button', { name: 'Remove' }).click();
    await page.getByLabel('Choose files').setInputFiles([adc, mask]);
    expect(await page.getByLabel('Role of patient7_msk.nii.gz').inputValue()).toBe('mask');
    await page.getByLabel('Case name').fill('Patient 7');
    await page.getByRole('button', { name: 'Upload', exact: true }).click();
    await page.waitForURL(/\/cases\/[0-9a-f-]{36}$/);
    await page.getByRole('heading', { name: 'Patient 7' }).waitFor();
    await loaded(page, 'truth');
    seen.expectNone([/HTTP 422: POST .*cases\.upload/, /status of 422/]);
    await context.close();
  }, 300_000);

  it('draw a stroke, save it, reload: the version is listed and its pixels are where they were drawn; its download has the DWI grid', async () => {
    const { page, context } = await newPage(suite.browser);
    const seen = watch(page);
    await openFirstCase(page, 'draw@x.org');
    await page.getByLabel('Layout').selectOption('axial');
    await page.getByLabel('Start from').selectOption('empty');
    await page.getByRole('button', { name: 'Edit' }).click();
    await page.getByLabel('Pen size').fill('6');
    const box = (await page.getByTestId('niivue-canvas').boundingBox())!;
    const y = box.y + box.height * 0.35;
    await page.mouse.move(box.x + box.width * 0.42, y);
    await page.mouse.down();
    for (let i = 1; i <= 10; i++) await page.mouse.move(box.x + box.width * (0.42 + 0.016 * i), y);
    await page.mouse.up();
    await page.getByRole('heading', { name: 'Editing (unsaved changes)' }).waitFor();
    await page.getByLabel('Note').fill('a stroke');
    await page.getByRole('button', { name: 'Save corrected mask' }).click();
    await page.getByTestId('version-row').first().waitFor({ timeout: 120_000 });

    await page.reload();
    await loaded(page, 'truth');
    await page.getByLabel('Layout').selectOption('axial');
    const row = page.getByTestId('version-row').first();
    expect(await row.textContent()).toMatch(/^v1draw@x\.org/);
    await row.getByRole('button', { name: 'Show' }).click();
    await loaded(page, 'version');
    await page.waitForTimeout(500);
    const blue = await pixels(page, isBlue);
    await page.screenshot({ path: path.join(SCREENSHOTS, 'mask-version-shown.png') });
    expect(blue.length).toBeGreaterThan(50);
    // the stroke was drawn along y ≈ 35% of the canvas height, between 42% and 58% of its width
    const ys = blue.map(([, py]) => py / box.height);
    const xs = blue.map(([px]) => px / box.width);
    const mean = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
    expect(Math.abs(mean(ys) - 0.35)).toBeLessThan(0.05);
    expect(Math.abs(mean(xs) - 0.5)).toBeLessThan(0.06);

    // download it and read it back: the case's DWI grid, the drawn voxels set
    const href = (await row.getByRole('link', { name: 'Download' }).getAttribute('href'))!;
    const res = await page.request.get(href);
    expect(res.headers()['content-disposition']).toBe('attachment; filename="Demo_phantom_1_corrected_v1.nii.gz"');
    const back = readNifti(new Uint8Array(await res.body()));
    const caseId = page.url().split('/').pop()!;
    const detail = (await (
      await page.request.get(`${suite.server.url}/trpc/cases.byId?input=${encodeURIComponent(JSON.stringify({ id: caseId }))}`)
    ).json()) as {
      result: { data: { volumes: { role: string; dims: number[]; affine: number[][] }[] } };
    };
    const dwi = detail.result.data.volumes.find((v) => v.role === 'dwi')!;
    expect(back.dims).toEqual(dwi.dims);
    for (let r = 0; r < 4; r++) for (let c = 0; c < 4; c++) expect(back.affine[r]![c]).toBeCloseTo(dwi.affine[r]![c]!, 3);
    expect(toFloat32(back).reduce((a, b) => a + b, 0)).toBeGreaterThan(10);
    seen.expectNone();
    await context.close();
  }, 300_000);

  it('job history lists two runs after running twice; opening the older one shows its overlay', async () => {
    const { page, context } = await newPage(suite.browser);
    const seen = watch(page);
    await openFirstCase(page, 'hist@x.org');
    for (let run = 0; run < 2; run++) {
      await page.getByRole('button', { name: 'Run' }).click();
      await expect.poll(async () => page.getByTestId('job-row').count(), { timeout: 120_000 }).toBe(run + 1);
      await expect.poll(async () => page.getByTestId('job-row').first().textContent(), { timeout: 120_000 }).toMatch(/succeeded/);
    }
    const rows = page.getByTestId('job-row');
    expect(await rows.count()).toBe(2);
    const older = rows.nth(1);
    await older.getByRole('button', { name: 'Open' }).click();
    await older.getByRole('button', { name: 'Shown' }).waitFor();
    await loaded(page, 'prediction');
    await page.screenshot({ path: path.join(SCREENSHOTS, 'job-history.png') });
    seen.expectNone();
    await context.close();
  }, 300_000);
});
