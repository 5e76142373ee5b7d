import { useEffect, useMemo, useState } from 'react';
import { TABLE_METRICS, type MetricStats, type StudyTable, type StudyTableRow, type TableMetric } from '../../../shared/studies.js';
import { describe } from '../../../shared/summary.js';

// The study table's rows as the dashboard shows them: filtered (status, case name), sorted, then
// cut into pages — a study of 1,000 cases draws 50 or 100 rows, not 1,000. The summary row is
// over every filtered row, not the page.

export type SortKey = 'caseName' | 'modelId' | 'status' | TableMetric;
export type Sort = { key: SortKey; dir: 1 | -1 };
export const PAGE_SIZES = [50, 100] as const;
export type PageSize = (typeof PAGE_SIZES)[number];

/** Sorts rows by a column; nulls always last, ties keep the case order (the sort is stable). */
export function sortRows(rows: readonly StudyTableRow[], key: SortKey, dir: 1 | -1): StudyTableRow[] {
  return [...rows].sort((a, b) => {
    const x = a[key];
    const y = b[key];
    if (x === null && y === null) return 0;
    if (x === null) return 1;
    if (y === null) return -1;
    if (typeof x === 'number' && typeof y === 'number') return (x - y) * dir;
    return String(x).localeCompare(String(y)) * dir;
  });
}

/** The rows with this status (any when empty) whose case name contains `search` (any case). */
export function filterRows(rows: readonly StudyTableRow[], status: string, search: string): StudyTableRow[] {
  const q = search.trim().toLowerCase();
  return rows.filter((r) => (!status || r.status === status) && (!q || r.caseName.toLowerCase().includes(q)));
}

export type Page = {
  rows: StudyTableRow[];
  /** 0-based page shown (clamped to the last page). */
  page: number;
  pages: number;
  /** 1-based first and last row shown; 0 and 0 with no rows. */
  from: number;
  to: number;
  total: number;
};

/** One page of `rows`; a page past the end shows the last one (a filter that shrank the rows). */
export function pageOf(rows: readonly StudyTableRow[], page: number, size: number): Page {
  const pages = Math.max(1, Math.ceil(rows.length / size));
  const p = Math.min(Math.max(0, page), pages - 1);
  const start = p * size;
  const shown = rows.slice(start, start + size);
  return { rows: shown, page: p, pages, from: shown.length ? start + 1 : 0, to: start + shown.length, total: rows.length };
}

export type RunSummary = StudyTable['summary'][number];

/** Per run (in the table's run order), each metric over the succeeded rows given. */
export function summarize(rows: readonly StudyTableRow[], runs: readonly { id: string; modelId: string }[]): RunSummary[] {
  return runs.map((run) => {
    const done = rows.filter((r) => r.runId === run.id && r.status === 'succeeded');
    const metrics = Object.fromEntries(
      TABLE_METRICS.map((k) => [k, describe(done.flatMap((r) => (r[k] === null ? [] : [r[k]])))]),
    ) as Record<TableMetric, MetricStats>;
    return { runId: run.id, modelId: run.modelId, metrics };
  });
}

type TableState = { sort: Sort; status: string; search: string; size: PageSize; page: number };

/** Each study's table state for this page's lifetime: opening a case and coming back keeps the sort, filter and page. */
const remembered = new Map<string, TableState>();

/**
 * The dashboard table's state: filter, sort, page. Changing the filter, the sort or the page size
 * goes back to the first page; the summary follows the filter. With a `memoryKey` (the study id)
 * the state outlives the dashboard (Back from a case returns to the same page of the table).
 */
export function useStudyRows(
  table: Pick<StudyTable, 'rows' | 'runs' | 'summary'> | undefined,
  memoryKey?: string,
  initialSize: PageSize = 50,
) {
  const [initial] = useState<TableState>(
    () =>
      (memoryKey && remembered.get(memoryKey)) || { sort: { key: 'caseName', dir: 1 }, status: '', search: '', size: initialSize, page: 0 },
  );
  const [sort, setSortState] = useState<Sort>(initial.sort);
  const [status, setStatusState] = useState(initial.status);
  const [search, setSearchState] = useState(initial.search);
  const [size, setSizeState] = useState<PageSize>(initial.size);
  const [page, setPage] = useState(initial.page);
  useEffect(() => {
    if (memoryKey) remembered.set(memoryKey, { sort, status, search, size, page });
  }, [memoryKey, sort, status, search, size, page]);
  const all = table?.rows;
  const filtered = useMemo(() => filterRows(all ?? [], status, search), [all, status, search]);
  const sorted = useMemo(() => sortRows(filtered, sort.key, sort.dir), [filtered, sort]);
  const shown = useMemo(() => pageOf(sorted, page, size), [sorted, page, size]);
  const runs = table?.runs;
  const serverSummary = table?.summary;
  const unfiltered = !status && !search.trim();
  const summary = useMemo(
    () => (unfiltered ? (serverSummary ?? []) : summarize(filtered, runs ?? [])),
    [unfiltered, serverSummary, filtered, runs],
  );
  return {
    /** Every row after the filter, sorted (the plots and the count use them). */
    filtered: sorted,
    page: shown,
    summary,
    sort,
    /** A click on a column: that column ascending, a second click descending. */
    sortBy: (key: SortKey) => {
      setSortState((o) => ({ key, dir: o.key === key ? (-o.dir as 1 | -1) : 1 }));
      setPage(0);
    },
    status,
    setStatus: (s: string) => {
      setStatusState(s);
      setPage(0);
    },
    search,
    setSearch: (s: string) => {
      setSearchState(s);
      setPage(0);
    },
    size,
    setSize: (s: PageSize) => {
      setSizeState(s);
      setPage(0);
    },
    goTo: (p: number) => setPage(Math.min(Math.max(0, p), shown.pages - 1)),
  };
}
