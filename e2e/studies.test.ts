/// <reference lib="dom" />
import { mkdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../src/server/test/process.js';
import { newPage, serverAndBrowser, watch } from './helpers.js';

// The study dashboard in real Chromium against a real server: a study of three demo phantoms is
// run from the page, its N/M progress (the run's SSE stream) reaches M/M, the table sorts by Dice,
// the plots render, the CSV downloads, and the worst row opens its case with that run's result
// (by click, by Enter, by a shared link) — Back returns to the study.

const DOCS = path.join(ROOT, 'docs', 'screenshots');
mkdirSync(DOCS, { recursive: true });
const N = 3;

/** A tRPC call from the page (its session cookie, same origin). */
async function call<T>(page: Page, proc: string, input: unknown, mutation = false): Promise<T> {
  return page.evaluate(
    async ({ proc, input, mutation }) => {
      const res = mutation
        ? await fetch(`/trpc/${proc}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(input) })
        : await fetch(`/trpc/${proc}?input=${encodeURIComponent(JSON.stringify(input))}`);
      const body = (await res.json()) as { result?: { data: unknown }; error?: unknown };
      if (!res.ok) throw new Error(`${proc}: ${res.status} ${JSON.stringify(body)}`);
      return body.result!.data as never;
    },
    { proc, input, mutation },
  ) as Promise<T>;
}

describe('study dashboard', () => {
  const env = serverAndBrowser({ DEMO_CASES: String(N) });

  it('runs a study with live N/M progress, sorts by Dice, draws the plots, downloads the CSV, opens the worst case with its run', async () => {
    const { server, browser } = env;
    const { page, context } = await newPage(browser, { viewport: { width: 1400, height: 1600 } });
    const seen = watch(page);
    await page.goto(`${server.url}/sign-in`);
    await page.getByRole('button', { name: 'No account? Register' }).click();
    await page.getByLabel('Email').fill('study@x.org');
    await page.getByLabel('Password').fill('correct horse battery');
    await page.getByRole('button', { name: 'Register' }).click();
    await page.getByTestId('account').getByText('study@x.org').waitFor();

    const cases = await call<{ items: { id: string; name: string }[] }>(page, 'cases.list', { limit: 20 });
    expect(cases.items).toHaveLength(N);
    const study = await call<{ id: string }>(page, 'studies.create', { name: 'Phantom study' }, true);
    await call(page, 'studies.cases.add', { studyId: study.id, caseIds: cases.items.map((c) => c.id) }, true);

    // the case list links to the study
    await page.goto(server.url);
    await page.getByTestId('study-list').getByRole('link', { name: 'Phantom study' }).click();
    await page.getByTestId('study-dashboard').getByRole('heading', { name: 'Phantom study' }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/studies/${study.id}`);

    // run it: N/M counts up to M/M
    await page.getByRole('button', { name: /^Run / }).click();
    const counts = new Set<string>();
    await expect
      .poll(
        async () => {
          const t =
            (await page
              .getByTestId('run-count')
              .textContent()
              .catch(() => null)) ?? '';
          if (t) counts.add(t);
          return t;
        },
        { timeout: 600_000, interval: 250 },
      )
      .toBe(`${N}/${N}`);
    await page.getByTestId('run-status').getByText('succeeded').waitFor();
    const seenCounts = [...counts].map((c) => Number(c.split('/')[0]));
    expect(seenCounts, 'monotone').toEqual([...seenCounts].sort((a, b) => a - b));

    // one row per case, all succeeded, each with a Dice; one page of them
    const rows = page.getByTestId('study-table').locator('tbody tr');
    await expect.poll(() => rows.count(), { timeout: 60_000 }).toBe(N);
    expect(await page.getByTestId('page-range').textContent()).toBe(`Rows 1–${N} of ${N}`);
    await expect
      .poll(() => page.getByTestId('study-table').locator('tbody td:nth-child(3)').allTextContents())
      .toEqual(Array(N).fill('succeeded'));
    const dice = async () => (await page.locator('tbody td[data-metric=dice]').allTextContents()).map(Number);
    expect((await dice()).every((d) => d >= 0 && d <= 1)).toBe(true);

    // sort by Dice: ascending, then descending
    await page.getByRole('columnheader', { name: /^Dice/ }).click();
    const asc = await dice();
    expect(asc).toEqual([...asc].sort((a, b) => a - b));
    await page.getByRole('columnheader', { name: /^Dice/ }).click();
    const desc = await dice();
    expect(desc).toEqual([...desc].sort((a, b) => b - a));

    // the summary row: mean ± SD, median [IQR], N
    const summary = await page.locator('tfoot tr.summary').first().textContent();
    expect(summary).toMatch(/±/);
    expect(summary).toContain(`N = ${N}`);

    // the plots: an <svg> in each
    for (const name of ['volume-scatter', 'bland-altman', 'dice-distribution']) {
      await page.getByTestId(`plot-${name}`).locator('svg').first().waitFor();
      expect(await page.getByTestId(`plot-${name}`).locator('svg circle').count(), name).toBeGreaterThan(0);
    }
    // Download SVG gives an SVG file
    const [svgDownload] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('plot-dice-distribution').getByRole('button', { name: 'Download SVG' }).click(),
    ]);
    expect(svgDownload.suggestedFilename()).toBe('dice-distribution.svg');
    const svgText = readFileSync((await svgDownload.path())!, 'utf8');
    expect(svgText).toMatch(/^<svg[^>]*xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    expect(svgText).toContain('Dice');
    const [pngDownload] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('plot-bland-altman').getByRole('button', { name: 'Download PNG' }).click(),
    ]);
    expect(pngDownload.suggestedFilename()).toBe('bland-altman.png');

    // the Download CSV link downloads the table with the session cookie: a header and a row per case
    const [csvDownload] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download CSV' }).click()]);
    const csvLines = readFileSync((await csvDownload.path())!, 'utf8')
      .trim()
      .split(/\r?\n/);
    expect(csvLines).toHaveLength(N + 1);
    const diceCol = csvLines[0]!.split(',').indexOf('dice');
    expect(diceCol).toBeGreaterThanOrEqual(0);
    expect(
      csvLines
        .slice(1)
        .map((l) => Number(l.split(',')[diceCol]).toFixed(3))
        .sort(),
    ).toEqual(desc.map((d) => d.toFixed(3)).sort());

    // a second model on the same cases: a row per case × run and the paired comparison with its Wilcoxon p-value
    await page.getByLabel('Model', { exact: true }).selectOption('adc-core-v1');
    await page.getByRole('button', { name: /^Run / }).click();
    await expect
      .poll(
        async () =>
          (await page
            .getByTestId('run-progress')
            .textContent()
            .catch(() => null)) ?? '',
        { timeout: 600_000, interval: 250 },
      )
      .toMatch(new RegExp(`^adc-core-v1: ${N}/${N}.*succeeded`));
    await expect.poll(() => rows.count(), { timeout: 60_000 }).toBe(2 * N);
    await page.getByTestId('paired').getByTestId('plot-paired-dice').locator('svg').first().waitFor();
    // the table refetches after the run's last job: the pairs reach N once it has
    await expect
      .poll(() => page.getByTestId('wilcoxon').textContent(), { timeout: 60_000 })
      .toMatch(new RegExp(`^${N} paired cases .*Wilcoxon signed-rank (V = \\d+(\\.\\d+)?, p = [\\d.e+-]+|not computable)`));
    for (const model of ['adc-dwi-v2', 'adc-core-v1'])
      await page.getByTestId(`plot-bland-altman-${model}`).locator('svg').first().waitFor();
    // with a legend, Download SVG takes the plot's own svg, not a legend swatch
    const [both] = await Promise.all([
      page.waitForEvent('download'),
      page.getByTestId('plot-volume-scatter').getByRole('button', { name: 'Download SVG' }).click(),
    ]);
    expect(readFileSync((await both.path())!, 'utf8')).toContain('Predicted volume');
    await page.getByLabel('Filter cases').fill('phantom 1');
    await expect.poll(() => rows.count()).toBe(2);
    await page.getByLabel('Filter cases').fill('');

    await page.screenshot({ path: path.join(DOCS, 'study-dashboard.png'), fullPage: true });

    // the worst case (lowest Dice: the last row while still sorted descending) opens with that run's result
    expect(await page.getByRole('columnheader', { name: /^Dice/ }).getAttribute('aria-sort')).toBe('descending');
    await expect.poll(() => page.getByTestId('page-range').textContent()).toBe(`Rows 1–${2 * N} of ${2 * N}`);
    const worstRow = rows.last();
    const worst = (await worstRow.locator('td').first().textContent())!;
    const worstModel = (await worstRow.locator('td').nth(1).textContent())!;
    const worstDice = (await worstRow.locator('td[data-metric=dice]').textContent())!;
    const worstJob = (await worstRow.getAttribute('data-job'))!;
    expect(worstJob).toMatch(/^[0-9a-f-]{36}$/);
    expect(Math.min(...(await dice()))).toBeCloseTo(Number(worstDice), 3);
    const caseId = cases.items.find((c) => c.name === worst)!.id;
    const caseUrl = `/cases/${caseId}?job=${worstJob}&study=${study.id}`;
    const expectCaseWithJob = async () => {
      await expect.poll(() => new URL(page.url()).pathname + new URL(page.url()).search).toBe(caseUrl);
      // the viewer's metrics are that run's job's: its model, its Dice — the row's
      await expect.poll(() => page.getByTestId('metrics').locator('h3').textContent(), { timeout: 60_000 }).toBe(`Result (${worstModel})`);
      expect(await page.getByTestId('metrics').getByTestId('dice').textContent()).toBe(worstDice);
    };
    await worstRow.click();
    await expectCaseWithJob();
    // Back returns to the study, its table as it was
    await page.goBack();
    await page.getByTestId('study-dashboard').getByRole('heading', { name: 'Phantom study' }).waitFor();
    expect(new URL(page.url()).pathname).toBe(`/studies/${study.id}`);
    await expect.poll(() => rows.count(), { timeout: 60_000 }).toBe(2 * N);
    expect(await page.getByRole('columnheader', { name: /^Dice/ }).getAttribute('aria-sort'), 'the sort is kept').toBe('descending');
    expect(await rows.last().getAttribute('data-job')).toBe(worstJob);

    // the keyboard: a row is focusable and Enter opens it
    const worstAgain = page.getByTestId('study-table').locator(`tbody tr[data-job="${worstJob}"]`);
    await worstAgain.focus();
    await page.keyboard.press('Enter');
    await expectCaseWithJob();
    // the case page's own way back
    await page.getByTestId('back-to-study').click();
    await page.getByTestId('study-dashboard').getByRole('heading', { name: 'Phantom study' }).waitFor();

    // a shared link lands on the same screen
    await page.goto(`${server.url}${caseUrl}`);
    await expectCaseWithJob();

    // the same case's row of the other run opens that run's job, not the case's newest result
    await page.goto(`${server.url}/studies/${study.id}`);
    const otherRow = page
      .getByTestId('study-table')
      .locator('tbody tr')
      .filter({ has: page.locator('td:first-child', { hasText: new RegExp(`^${worst}$`) }) })
      .filter({ hasNot: page.locator('td:nth-child(2)', { hasText: new RegExp(`^${worstModel}$`) }) });
    await expect.poll(() => otherRow.count(), { timeout: 60_000 }).toBe(1);
    const otherModel = (await otherRow.locator('td').nth(1).textContent())!;
    const otherDice = (await otherRow.locator('td[data-metric=dice]').textContent())!;
    const otherJob = (await otherRow.getAttribute('data-job'))!;
    expect(otherJob).not.toBe(worstJob);
    await otherRow.click();
    await expect.poll(() => new URL(page.url()).searchParams.get('job')).toBe(otherJob);
    await expect.poll(() => page.getByTestId('metrics').locator('h3').textContent(), { timeout: 60_000 }).toBe(`Result (${otherModel})`);
    expect(await page.getByTestId('metrics').getByTestId('dice').textContent()).toBe(otherDice);

    seen.expectNone();
    await context.close();
  }, 900_000);
});
