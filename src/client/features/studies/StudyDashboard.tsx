import type * as PlotNs from '@observablehq/plot';
import * as Plot from '@observablehq/plot';
import { useMemo, useState } from 'react';
import { JOB_STATUSES } from '../../../shared/jobs.js';
import { TABLE_METRICS, type StudyTable, type StudyTableRow, type TableMetric } from '../../../shared/studies.js';
import { useApiUrl } from '../../api-url.js';
import { navigate } from '../../router.js';
import { trpc } from '../../trpc.js';
import { PlotFigure } from './PlotFigure.js';
import { blandAltman, fmt, pairedDice } from './stats.js';
import { finishedOf, useOnFinishedChange, useRunProgress } from './useRunProgress.js';
import { PAGE_SIZES, type PageSize, type SortKey, useStudyRows } from './useStudyRows.js';

export const METRIC_LABEL: Record<TableMetric, string> = {
  dice: 'Dice',
  absVolumeDiffMl: 'Abs vol diff (mL)',
  lesionCountDiff: 'Lesion-count diff',
  lesionF1: 'Lesion-wise F1',
  predictedMl: 'Predicted (mL)',
  trueMl: 'True (mL)',
};

const PLOT_STYLE = { background: 'white', color: '#111', fontSize: '12px' } as const;

/** The study dashboard: runs and their progress, the case × run table with its summary, the plots, exports. */
export function StudyDashboard({ id }: { id: string }) {
  const apiUrl = useApiUrl();
  const utils = trpc.useUtils();
  const study = trpc.studies.byId.useQuery({ id });
  const models = trpc.models.list.useQuery();
  const [runId, setRunId] = useState<string>('');
  const [modelId, setModelId] = useState<string>('');
  const runs = trpc.studies.runs.list.useQuery({ studyId: id });
  const active = runs.data?.find((r) => r.status === 'running') ?? null;
  const live = useRunProgress(active?.id ?? null).run;
  const table = trpc.studies.table.useQuery({ studyId: id, ...(runId ? { runId } : {}) });
  const start = trpc.studies.run.useMutation({
    onSuccess: () => utils.studies.runs.list.invalidate({ studyId: id }),
  });
  const cancel = trpc.studies.runs.cancel.useMutation({
    onSuccess: () => utils.studies.runs.list.invalidate({ studyId: id }),
  });

  // a live run: the table is fetched again when a case finishes and when the run ends — not on
  // every progress event (each fetch compares the raters' masks again)
  useOnFinishedChange(live, (ended) => {
    void utils.studies.table.invalidate({ studyId: id });
    if (ended) void utils.studies.runs.list.invalidate({ studyId: id });
  });

  const t = useStudyRows(table.data, id);
  const rows = t.filtered;

  if (study.isPending) return <p>Loading the study…</p>;
  if (study.isError) return <p className="error">{study.error.message}</p>;
  const s = study.data;
  const canRun = s.role === 'owner' || s.role === 'editor';
  // the live run, else the newest one (finished: its final N/M)
  const progress = live ?? active ?? runs.data?.[0] ?? null;
  const done = progress ? finishedOf(progress) : 0;
  const sort = t.sort;
  const open = (r: StudyTableRow) => {
    if (r.jobId) navigate(`/cases/${r.caseId}?job=${r.jobId}&study=${id}`);
    else navigate(`/cases/${r.caseId}?study=${id}`);
  };

  const header = (key: SortKey, label: string) => (
    <th
      key={key}
      className="sortable"
      aria-sort={sort.key === key ? (sort.dir === 1 ? 'ascending' : 'descending') : 'none'}
      onClick={() => t.sortBy(key)}
    >
      {label}
      {sort.key === key ? (sort.dir === 1 ? ' ▲' : ' ▼') : ''}
    </th>
  );

  return (
    <section className="card study" data-testid="study-dashboard">
      <div className="row">
        <h1>{s.name}</h1>
        <span className="roles">
          {s.cases} cases · {s.members} members{s.role ? ` · ${s.role.toUpperCase()}` : ''}
        </span>
      </div>
      {s.description && <p>{s.description}</p>}

      <div className="row">
        <label>
          Run{' '}
          <select aria-label="Run" value={runId} onChange={(e) => setRunId(e.target.value)}>
            <option value="">Newest run of each model</option>
            {runs.data?.map((r) => (
              <option key={r.id} value={r.id}>
                {r.modelId} · {new Date(r.createdAt).toLocaleString()} · {r.status}
              </option>
            ))}
          </select>
        </label>
        {canRun && (
          <>
            <select aria-label="Model" value={modelId} onChange={(e) => setModelId(e.target.value)}>
              <option value="">Default model</option>
              {models.data
                ?.filter((m) => m.kind !== 'interactive')
                .map((m) => (
                  <option key={m.id} value={m.id}>
                    {m.name}
                  </option>
                ))}
            </select>
            <button disabled={start.isPending || !!active} onClick={() => start.mutate({ studyId: id, ...(modelId ? { modelId } : {}) })}>
              Run {modelId ? (models.data?.find((m) => m.id === modelId)?.name ?? modelId) : (models.data?.[0]?.name ?? 'model')}
            </button>
          </>
        )}
        <a className="button" href={`${apiUrl}/api/studies/${id}/table.csv`} download>
          Download CSV
        </a>
      </div>
      {start.isError && <p className="error">{start.error.message}</p>}

      {progress && (
        <div className="run-progress row" data-testid="run-progress">
          <span>
            {progress.modelId}: <strong data-testid="run-count">{`${done}/${progress.total}`}</strong>
            {progress.failed ? ` · ${progress.failed} failed` : ''}
            {progress.status === 'running' && progress.etaSeconds !== null ? ` · about ${Math.ceil(progress.etaSeconds)} s left` : ''}
          </span>
          <progress max={progress.total || 1} value={done} aria-label="Run progress" />
          {progress.status !== 'running' && <span data-testid="run-status">{progress.status}</span>}
          {canRun && progress.status === 'running' && (
            <button disabled={cancel.isPending || progress.cancelRequested} onClick={() => cancel.mutate({ id: progress.id })}>
              Cancel
            </button>
          )}
        </div>
      )}

      {table.isError && <p className="error">{table.error.message}</p>}
      {table.data && (
        <>
          <div className="row">
            <select aria-label="Filter by status" value={t.status} onChange={(e) => t.setStatus(e.target.value)}>
              <option value="">All statuses</option>
              {JOB_STATUSES.map((st) => (
                <option key={st} value={st}>
                  {st}
                </option>
              ))}
            </select>
            <input
              type="search"
              placeholder="Filter cases"
              aria-label="Filter cases"
              value={t.search}
              onChange={(e) => t.setSearch(e.target.value)}
            />
            <span className="roles">
              {rows.length} of {table.data.rows.length} rows
            </span>
          </div>
          <Pager t={t} />
          <div className="table-scroll study-table">
            <table className="lesion-list" data-testid="study-table">
              <thead>
                <tr>
                  {header('caseName', 'Case')}
                  {header('modelId', 'Model')}
                  {header('status', 'Status')}
                  {TABLE_METRICS.map((m) => header(m, METRIC_LABEL[m]))}
                </tr>
              </thead>
              <tbody>
                {t.page.rows.map((r) => (
                  <tr
                    key={`${r.runId}:${r.caseId}`}
                    className="link-row"
                    tabIndex={0}
                    data-job={r.jobId ?? ''}
                    onClick={() => open(r)}
                    onKeyDown={(e) => {
                      if (e.key === 'Enter') open(r);
                    }}
                    title={r.jobId ? "Open the case with this run's result" : 'Open the case'}
                  >
                    <td>{r.caseName}</td>
                    <td>{r.modelId}</td>
                    <td>{r.status}</td>
                    {TABLE_METRICS.map((m) => (
                      <td key={m} data-metric={m}>
                        {m === 'lesionCountDiff' ? (r[m] ?? '—') : fmt(r[m], m === 'dice' || m === 'lesionF1' ? 3 : 2)}
                      </td>
                    ))}
                  </tr>
                ))}
                {rows.length === 0 && (
                  <tr>
                    <td colSpan={3 + TABLE_METRICS.length} className="empty">
                      {table.data.rows.length ? 'No row matches the filter.' : 'No runs yet.'}
                    </td>
                  </tr>
                )}
              </tbody>
              <tfoot>
                {t.summary.map((sum) => (
                  <tr key={sum.runId} className="summary">
                    <td>Summary</td>
                    <td>{sum.modelId}</td>
                    <td>N = {Math.max(0, ...TABLE_METRICS.map((m) => sum.metrics[m]?.n ?? 0))}</td>
                    {TABLE_METRICS.map((m) => {
                      const st = sum.metrics[m];
                      const d = m === 'dice' || m === 'lesionF1' ? 3 : 2;
                      return (
                        <td key={m}>
                          {st && st.n ? (
                            <>
                              {fmt(st.mean, d)} ± {fmt(st.sd, d)}
                              <br />
                              {fmt(st.median, d)} [{fmt(st.q1, d)}, {fmt(st.q3, d)}]
                              <br />N = {st.n}
                            </>
                          ) : (
                            '—'
                          )}
                        </td>
                      );
                    })}
                  </tr>
                ))}
              </tfoot>
            </table>
          </div>
          <p className="empty">
            Summary rows: mean ± SD, median [IQR], N over the succeeded cases{' '}
            {t.status || t.search.trim() ? 'the filter keeps' : 'of each run'} (every page).
          </p>
          <Agreement table={table.data} />
          <Plots rows={table.data.rows} runs={table.data.runs} />
        </>
      )}
    </section>
  );
}

/** "Rows 101–200 of 1,000", the page size, and the page controls. */
function Pager({ t }: { t: ReturnType<typeof useStudyRows> }) {
  const { page, pages, from, to, total } = t.page;
  const n = (x: number) => x.toLocaleString('en-US');
  return (
    <nav className="row pager" aria-label="Table pages" data-testid="pager">
      <span data-testid="page-range">{total ? `Rows ${n(from)}–${n(to)} of ${n(total)}` : 'No rows'}</span>
      <button className="secondary" onClick={() => t.goTo(0)} disabled={page === 0} aria-label="First page">
        «
      </button>
      <button className="secondary" onClick={() => t.goTo(page - 1)} disabled={page === 0} aria-label="Previous page">
        ‹ Previous
      </button>
      <span>
        Page {page + 1} of {pages}
      </span>
      <button className="secondary" onClick={() => t.goTo(page + 1)} disabled={page >= pages - 1} aria-label="Next page">
        Next ›
      </button>
      <button className="secondary" onClick={() => t.goTo(pages - 1)} disabled={page >= pages - 1} aria-label="Last page">
        »
      </button>
      <label>
        Rows per page{' '}
        <select aria-label="Rows per page" value={t.size} onChange={(e) => t.setSize(Number(e.target.value) as PageSize)}>
          {PAGE_SIZES.map((size) => (
            <option key={size} value={size}>
              {size}
            </option>
          ))}
        </select>
      </label>
    </nav>
  );
}

function Agreement({ table }: { table: StudyTable }) {
  const a = table.agreement;
  if (a.cases.length === 0) return null;
  return (
    <div className="agreement" data-testid="agreement">
      <h2>Inter-rater agreement</h2>
      <p>
        {a.cases.length} cases with two or more raters · Dice {fmt(a.summary.dice.mean)} ± {fmt(a.summary.dice.sd)} (N = {a.summary.dice.n})
        · abs volume diff {fmt(a.summary.absVolumeDiffMl.mean, 2)} ± {fmt(a.summary.absVolumeDiffMl.sd, 2)} mL
      </p>
      <table className="lesion-list">
        <thead>
          <tr>
            <th>Case</th>
            <th>A</th>
            <th>B</th>
            <th>Dice</th>
            <th>Vol diff (mL)</th>
          </tr>
        </thead>
        <tbody>
          {a.cases.flatMap((c) =>
            [...c.pairs, ...c.vsModel.map((p) => ({ ...p, b: `model ${p.b}` }))].map((p, i) => (
              <tr key={`${c.caseId}:${i}`}>
                <td>{c.caseName}</td>
                <td>{p.a}</td>
                <td>{p.b}</td>
                <td>{fmt(p.dice)}</td>
                <td>{fmt(p.volumeDiffMl, 2)}</td>
              </tr>
            )),
          )}
        </tbody>
      </table>
    </div>
  );
}

type Runs = { id: string; modelId: string; createdAt: string }[];

function Plots({ rows, runs }: { rows: StudyTableRow[]; runs: Runs }) {
  const done = useMemo(() => rows.filter((r) => r.status === 'succeeded'), [rows]);
  const several = runs.length > 1;
  const color = several ? { legend: true } : undefined;
  const byModel: string | undefined = several ? 'modelId' : undefined;

  const volume = useMemo<PlotNs.PlotOptions>(() => {
    const v = done.filter((r) => r.predictedMl !== null && r.trueMl !== null);
    const max = Math.max(1, ...v.flatMap((r) => [r.predictedMl!, r.trueMl!]));
    return {
      style: PLOT_STYLE,
      width: 420,
      height: 360,
      grid: true,
      color,
      x: { label: 'True volume (mL)', domain: [0, max * 1.05] },
      y: { label: 'Predicted volume (mL)', domain: [0, max * 1.05] },
      marks: [
        Plot.line(
          [
            [0, 0],
            [max * 1.05, max * 1.05],
          ],
          { stroke: '#888', strokeDasharray: '4,3' },
        ),
        Plot.dot(v, {
          x: 'trueMl',
          y: 'predictedMl',
          stroke: byModel ?? '#1f4e9c',
          fill: byModel ?? '#1f4e9c',
          fillOpacity: 0.7,
          r: 4,
          tip: true,
          title: 'caseName',
        }),
      ],
    };
  }, [done, several]);

  const diceOptions = useMemo<PlotNs.PlotOptions>(() => {
    const d = done.filter((r) => r.dice !== null);
    return {
      style: PLOT_STYLE,
      width: 420,
      height: several ? 80 + 60 * runs.length : 180,
      marginLeft: several ? 110 : 40,
      x: { label: 'Dice', domain: [0, 1], grid: true },
      y: several ? { label: null } : undefined,
      marks: [
        Plot.boxX(d, { x: 'dice', y: byModel, stroke: '#4a6fb5', fill: '#dfe7f5' }),
        Plot.dot(d, { x: 'dice', y: byModel, r: 4, fill: '#111', fillOpacity: 0.6, tip: true, title: 'caseName' }),
      ],
    };
  }, [done, several, runs.length, byModel]);

  if (done.length === 0) return <p className="empty">The plots appear once cases have succeeded.</p>;
  return (
    <div className="plots">
      <PlotFigure title="Predicted vs true lesion volume (dashed: identity)" name="volume-scatter" options={volume} />
      {runs.map((run) => (
        <BlandAltmanFigure
          key={run.id}
          rows={done.filter((r) => r.runId === run.id)}
          title={`Bland–Altman of lesion volume${several ? ` (${run.modelId})` : ''}: bias, 95 % limits of agreement`}
          name={several ? `bland-altman-${run.modelId}` : 'bland-altman'}
        />
      ))}
      <PlotFigure title="Dice distribution" name="dice-distribution" options={diceOptions} />
      {several && <Paired rows={rows} runs={runs} />}
    </div>
  );
}

/** Two runs on the same cases: per-case Dice differences and a Wilcoxon signed-rank test. */
function Paired({ rows, runs }: { rows: StudyTableRow[]; runs: Runs }) {
  const [a, setA] = useState(runs[1]?.id ?? '');
  const [b, setB] = useState(runs[0]?.id ?? '');
  const cmp = useMemo(() => pairedDice(rows, a, b), [rows, a, b]);
  const name = (rid: string) => runs.find((r) => r.id === rid)?.modelId ?? rid;
  const options = useMemo<PlotNs.PlotOptions>(
    () => ({
      style: PLOT_STYLE,
      width: 420,
      height: 160,
      x: { label: `Dice ${name(b)} − ${name(a)}`, grid: true },
      marks: [
        Plot.ruleX([0], { stroke: '#888' }),
        Plot.dot(cmp.diffs, { x: 'diff', r: 4, fill: '#111', fillOpacity: 0.6, tip: true, title: 'caseName' }),
      ],
    }),
    [cmp, a, b],
  );
  const select = (v: string, set: (s: string) => void, label: string) => (
    <select aria-label={label} value={v} onChange={(e) => set(e.target.value)}>
      {runs.map((r) => (
        <option key={r.id} value={r.id}>
          {r.modelId} · {new Date(r.createdAt).toLocaleString()}
        </option>
      ))}
    </select>
  );
  return (
    <div className="paired" data-testid="paired">
      <h2>Paired comparison</h2>
      <div className="row">
        {select(b, setB, 'Run B')} vs {select(a, setA, 'Run A')}
      </div>
      <p data-testid="wilcoxon">
        {cmp.diffs.length} paired cases · mean Dice difference {fmt(cmp.meanDiff)} · median {fmt(cmp.medianDiff)} · Wilcoxon signed-rank{' '}
        {cmp.pValue !== null
          ? `V = ${cmp.statistic}, p = ${cmp.pValue < 0.001 ? cmp.pValue.toExponential(2) : cmp.pValue.toFixed(3)}`
          : 'not computable (no non-zero differences)'}
      </p>
      {cmp.diffs.length > 0 && <PlotFigure title="Per-case Dice differences" name="paired-dice" options={options} />}
    </div>
  );
}

/** Bland–Altman of one run's volumes: mean vs difference, the bias and ±1.96 SD limits. */
function BlandAltmanFigure({ rows, title, name }: { rows: StudyTableRow[]; title: string; name: string }) {
  const options = useMemo<PlotNs.PlotOptions>(() => {
    const ba = blandAltman(rows);
    const rules = [
      ba.meanDiff !== null ? { y: ba.meanDiff, label: `mean ${ba.meanDiff.toFixed(2)}`, dash: '0' } : null,
      ba.upper !== null ? { y: ba.upper, label: `+1.96 SD ${ba.upper.toFixed(2)}`, dash: '4,3' } : null,
      ba.lower !== null ? { y: ba.lower, label: `−1.96 SD ${ba.lower.toFixed(2)}`, dash: '4,3' } : null,
    ].filter((x): x is { y: number; label: string; dash: string } => x !== null);
    return {
      style: PLOT_STYLE,
      width: 420,
      height: 360,
      grid: true,
      marginRight: 110,
      marginLeft: 56,
      x: { label: 'Mean of predicted and true (mL)' },
      y: { label: 'Predicted − true (mL)' },
      marks: [
        Plot.ruleY([0], { stroke: '#ccc' }),
        ...rules.map((r) => Plot.ruleY([r.y], { stroke: '#c0392b', strokeDasharray: r.dash })),
        Plot.text(rules, { frameAnchor: 'right', y: 'y', text: 'label', textAnchor: 'start', dx: 4, fill: '#c0392b' }),
        Plot.dot(ba.points, {
          x: 'mean',
          y: 'diff',
          stroke: '#1f4e9c',
          fill: '#1f4e9c',
          fillOpacity: 0.7,
          r: 4,
          tip: true,
          title: 'caseName',
        }),
      ],
    };
  }, [rows]);
  if (rows.length === 0) return null;
  return <PlotFigure title={title} name={name} options={options} />;
}
