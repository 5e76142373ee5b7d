// @vitest-environment happy-dom
import { act, renderHook } from '@testing-library/react';
import { describe, expect, it } from 'vitest';
import type { StudyTable, StudyTableRow } from '../../../shared/studies.js';
import { summarizeRows } from '../../../server/studies/table.js';
import { filterRows, pageOf, sortRows, summarize, useStudyRows } from './useStudyRows.js';

// A study of 1,000 cases over two runs, made here: case i has Dice i/1000 on run A (a few failed,
// without metrics), 1 − i/1000 on run B.
const RUN_A = '00000000-0000-4000-8000-00000000000a';
const RUN_B = '00000000-0000-4000-8000-00000000000b';
const row = (i: number, runId: string): StudyTableRow => {
  const failed = runId === RUN_A && i % 97 === 0;
  const dice = failed ? null : runId === RUN_A ? i / 1000 : 1 - i / 1000;
  return {
    runId,
    modelId: runId === RUN_A ? 'a' : 'b',
    caseId: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    caseName: `case ${String(i).padStart(4, '0')}`,
    subjectId: null,
    jobId: null,
    status: failed ? 'failed' : 'succeeded',
    dice,
    absVolumeDiffMl: failed ? null : (i % 13) / 4,
    lesionCountDiff: failed ? null : (i % 5) - 2,
    lesionF1: failed ? null : (i % 7) / 7,
    predictedMl: failed ? null : i / 10,
    trueMl: failed ? null : i / 11,
    lesionCountPredicted: failed ? null : 1,
    lesionCountTrue: failed ? null : 1,
  };
};
const runs = [
  { id: RUN_A, modelId: 'a', createdAt: '2026-01-01T00:00:00.000Z', status: 'failed' as const },
  { id: RUN_B, modelId: 'b', createdAt: '2026-01-01T00:00:00.000Z', status: 'succeeded' as const },
];
const rowsOfRun = (runId: string) => Array.from({ length: 1000 }, (_, i) => row(i, runId));
const allRows = [...rowsOfRun(RUN_A), ...rowsOfRun(RUN_B)];
const serverSummary = runs.map((r) => ({
  runId: r.id,
  modelId: r.modelId,
  metrics: summarizeRows(allRows.filter((x) => x.runId === r.id)),
}));
const table: Pick<StudyTable, 'rows' | 'runs' | 'summary'> = { rows: allRows, runs, summary: serverSummary };

describe('the study table rows', () => {
  it('pages 2,000 rows by 50: "rows 101–150 of 2,000", a page past the end shows the last', () => {
    const p = pageOf(allRows, 2, 50);
    expect([p.from, p.to, p.total, p.pages, p.rows.length]).toEqual([101, 150, 2000, 40, 50]);
    const last = pageOf(allRows.slice(0, 120), 9, 50);
    expect([last.page, last.from, last.to, last.rows.length]).toEqual([2, 101, 120, 20]);
    expect(pageOf([], 0, 50)).toMatchObject({ from: 0, to: 0, total: 0, pages: 1, rows: [] });
  });

  it('sorts nulls last either way and filters by status and case name', () => {
    const a = rowsOfRun(RUN_A);
    for (const dir of [1, -1] as const) {
      const sorted = sortRows(a, 'dice', dir);
      const nulls = sorted.findIndex((r) => r.dice === null);
      expect(sorted.slice(nulls).every((r) => r.dice === null)).toBe(true);
      const ds = sorted.slice(0, nulls).map((r) => r.dice!);
      expect(ds).toEqual([...ds].sort((x, y) => (x - y) * dir));
    }
    expect(filterRows(allRows, 'failed', '').length).toBe(11);
    expect(filterRows(allRows, '', ' CASE 099').map((r) => r.caseName)).toEqual(
      Array(2 * 10)
        .fill(0)
        .map((_, k) => `case 099${k % 10}`),
    );
  });

  it('the summary of the unfiltered rows equals the server summary computed independently', () => {
    expect(summarize(allRows, runs)).toEqual(serverSummary);
  });

  it('sorts and filters before paging; the summary follows the filter, not the page', () => {
    const { result } = renderHook(() => useStudyRows(table));
    expect(result.current.page.rows.map((r) => r.caseName).slice(0, 2)).toEqual(['case 0000', 'case 0000']);
    expect(result.current.summary).toBe(serverSummary);

    act(() => result.current.goTo(2));
    expect([result.current.page.from, result.current.page.to]).toEqual([101, 150]);

    // sorting by Dice ascending goes back to page 1 and shows the lowest Dice of all 2,000 rows (case 0 failed on run A)
    act(() => result.current.sortBy('dice'));
    expect(result.current.page.page).toBe(0);
    expect(result.current.page.rows[0]!.dice).toBeCloseTo(0.001, 12);
    act(() => result.current.sortBy('dice'));
    expect(result.current.page.rows[0]!.dice).toBe(1);

    act(() => result.current.setSize(100));
    act(() => result.current.goTo(19));
    expect([result.current.page.from, result.current.page.to, result.current.page.total]).toEqual([1901, 2000, 2000]);
    // the last page: the nulls (failed cases)
    expect(result.current.page.rows.slice(-11).every((r) => r.dice === null)).toBe(true);

    // a filter: back to page 1; the summary is over every filtered row (all pages), per run
    act(() => result.current.setSearch('case 01'));
    expect(result.current.page.page).toBe(0);
    expect(result.current.page.total).toBe(200);
    expect(result.current.page.rows).toHaveLength(100);
    const kept = allRows.filter((r) => r.caseName.startsWith('case 01'));
    expect(result.current.summary).toEqual(summarize(kept, runs));
    const a = result.current.summary.find((s) => s.runId === RUN_A)!.metrics.dice;
    expect(a.n).toBe(100 - 1); // case 0194 failed
    expect(a.mean).toBeCloseTo(kept.filter((r) => r.runId === RUN_A && r.dice !== null).reduce((s, r) => s + r.dice!, 0) / a.n, 12);

    act(() => result.current.goTo(99));
    expect(result.current.page.page).toBe(1);
  });

  it("remembers a study table's sort, filter and page when the dashboard comes back (Back from a case)", () => {
    const first = renderHook(() => useStudyRows(table, 'study-1'));
    act(() => first.result.current.sortBy('dice'));
    act(() => first.result.current.setStatus('succeeded'));
    act(() => first.result.current.goTo(3));
    const shown = first.result.current.page.rows.map((r) => `${r.runId}:${r.caseId}`);
    first.unmount();
    const again = renderHook(() => useStudyRows(table, 'study-1'));
    expect(again.result.current.sort).toEqual({ key: 'dice', dir: 1 });
    expect(again.result.current.status).toBe('succeeded');
    expect(again.result.current.page.page).toBe(3);
    expect(again.result.current.page.rows.map((r) => `${r.runId}:${r.caseId}`)).toEqual(shown);
    // another study starts fresh
    const other = renderHook(() => useStudyRows(table, 'study-2'));
    expect(other.result.current.page.page).toBe(0);
    expect(other.result.current.sort).toEqual({ key: 'caseName', dir: 1 });
  });
});
