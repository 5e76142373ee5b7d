/// <reference lib="dom" />
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { CaseDetail } from '../src/shared/cases.js';
import { HAVE_PHILIPS, PHILIPS_DIR, PHILIPS_SKIP_NOTE } from '../src/server/test/dicom.js';
import { HAVE_ORTHANC, ORTHANC_SKIP_NOTE, type Orthanc, startOrthanc } from '../src/server/test/orthanc.js';
import { ROOT, type ServerProcess } from '../src/server/test/process.js';
import { SCREENSHOTS, launchBrowser, newPage, startServer, watch } from './helpers.js';

// #26 in the viewer: a DICOM folder dropped in (picked), its series' roles confirmed, the case
// opens and renders, segments, and its result goes out as a DICOM SEG — downloaded, and sent to a
// real PACS (Orthanc over DICOMweb). A NIfTI case says why it has no SEG.

const DOCS = path.join(ROOT, 'docs', 'screenshots');
mkdirSync(DOCS, { recursive: true });
const HAVE_DCIODVFY = spawnSync('sh', ['-c', 'command -v dciodvfy']).status === 0;

describe.skipIf(!HAVE_PHILIPS || !HAVE_ORTHANC)(`DICOM in the viewer: import, SEG, PACS${PHILIPS_SKIP_NOTE}${ORTHANC_SKIP_NOTE}`, () => {
  let orthanc: Orthanc;
  let server: ServerProcess;
  let browser: Browser;
  beforeAll(async () => {
    orthanc = await startOrthanc();
    // patient data kept (a hospital's setting): the SEG files under the source study's patient in the PACS
    [server, browser] = await Promise.all([
      startServer({ DEMO_CASES: '1', PACS_URL: orthanc.dicomWeb, DICOM_KEEP_PATIENT: 'true' }),
      launchBrowser(),
    ]);
  }, 240_000);
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
    await orthanc?.stop();
  });

  const loaded = (page: Page, keys: string) =>
    page.waitForFunction((k) => document.querySelector('.viewer-holder')?.getAttribute('data-loaded') === k, keys, { timeout: 180_000 });
  const register = async (page: Page, email: string) => {
    await page.goto(`${server.url}/sign-in`);
    await page.getByRole('button', { name: 'No account? Register' }).click();
    await page.getByLabel('Email').fill(email);
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Register' }).click();
    await page.getByTestId('account').getByText(email).waitFor();
  };
  const run = async (page: Page) => {
    await page.getByRole('button', { name: 'Run' }).click();
    await page.getByTestId('metrics').waitFor({ timeout: 300_000 });
  };

  it('pick the folder, confirm the roles, the case renders and segments; Download DICOM SEG; Send to PACS', async () => {
    const { page, context } = await newPage(browser);
    const seen = watch(page);
    await register(page, 'radiology@x.org');
    await page.goto(server.url);
    await page.getByRole('button', { name: 'Upload a case' }).click();
    await page.getByRole('button', { name: 'Import a DICOM study instead' }).click();
    await page.getByLabel('Choose a DICOM folder').setInputFiles(PHILIPS_DIR);
    await expect.poll(() => page.getByTestId('dicom-picked').textContent(), { timeout: 60_000 }).toMatch(/54\d files/);
    await page.getByRole('button', { name: 'Check the series' }).click();
    // the confirmation: the diffusion series becomes the DWI and the ADC computed from it
    const series = page.getByTestId('dicom-series');
    await series.waitFor({ timeout: 180_000 });
    expect(await page.getByLabel('DWI series').inputValue()).not.toBe('');
    expect(await page.getByLabel('ADC series').inputValue()).not.toBe('');
    expect(await series.textContent()).toMatch(/diffusion|b ?= ?1000/i);
    await page.getByLabel('Case name').fill('Philips DWI');
    await page.screenshot({ path: path.join(DOCS, 'dicom-import.png'), fullPage: true });
    await page.getByRole('button', { name: 'Create the case' }).click();
    await page.waitForURL(/\/cases\/[0-9a-f-]{36}$/, { timeout: 180_000 });
    await page.getByRole('heading', { name: 'Philips DWI' }).waitFor();
    await loaded(page, 'background');
    const caseId = page.url().split('/').pop()!;
    const detail = (
      (await (
        await page.request.get(`${server.url}/trpc/cases.byId?input=${encodeURIComponent(JSON.stringify({ id: caseId }))}`)
      ).json()) as {
        result: { data: CaseDetail };
      }
    ).result.data;
    expect(detail.dicom?.studyInstanceUid).toBeTruthy();
    expect(detail.roles).toEqual(expect.arrayContaining(['dwi', 'adc']));

    await run(page);
    await loaded(page, 'background,prediction');
    const exportPanel = page.getByTestId('export-panel');
    await exportPanel.waitFor();
    const [download] = await Promise.all([
      page.waitForEvent('download', { timeout: 120_000 }),
      exportPanel.getByRole('button', { name: 'Download DICOM SEG' }).click(),
    ]);
    expect(download.suggestedFilename()).toMatch(/\.dcm$/);
    const file = path.join(SCREENSHOTS, 'philips-seg.dcm');
    await download.saveAs(file);
    const bytes = readFileSync(file);
    expect(bytes.subarray(128, 132).toString('latin1'), 'a DICOM Part 10 file').toBe('DICM');
    if (HAVE_DCIODVFY) {
      const check = spawnSync('dciodvfy', [file], { encoding: 'utf8' });
      expect(`${check.stdout}${check.stderr}`.split('\n').filter((l) => /^Error/.test(l))).toEqual([]);
    }

    await exportPanel.getByRole('button', { name: 'Send to PACS' }).click();
    const pushed = page.getByTestId('pacs-push');
    await expect.poll(() => pushed.getAttribute('data-status'), { timeout: 180_000 }).toBe('succeeded');
    expect(await pushed.textContent()).toContain('Sent to the PACS: the SEG and the computed ADC (a derived MR series)');
    // the PACS has a SEG series and the derived ADC (MR) in the source study
    const res = await fetch(`${orthanc.dicomWeb}/studies/${detail.dicom!.studyInstanceUid}/series`, {
      headers: { accept: 'application/dicom+json' },
    });
    expect(res.status).toBe(200);
    const modalities = ((await res.json()) as { '00080060'?: { Value?: string[] } }[]).map((s) => s['00080060']?.Value?.[0]);
    expect(modalities).toContain('SEG');
    expect(modalities).toContain('MR');
    await page.screenshot({ path: path.join(SCREENSHOTS, 'dicom-sent.png'), fullPage: true });
    seen.expectNone();
    await context.close();
  }, 900_000);

  it('a NIfTI case: the export panel says why it has no DICOM SEG', async () => {
    const { page, context } = await newPage(browser);
    const seen = watch(page);
    await register(page, 'nifti@x.org');
    await page.goto(server.url);
    await page.locator('[data-testid=case-list] a').first().click();
    await loaded(page, 'background,truth');
    await run(page);
    const why = page.getByTestId('seg-unavailable');
    await why.waitFor();
    expect(await why.textContent()).toMatch(/need a case imported from DICOM.*came as NIfTI/);
    expect(await page.getByRole('button', { name: 'Download DICOM SEG' }).count()).toBe(0);
    expect(await page.getByRole('button', { name: 'Send to PACS' }).count()).toBe(0);
    seen.expectNone();
    await context.close();
  }, 600_000);
});
