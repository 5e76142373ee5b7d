import type { Kysely } from 'kysely';
import {
  type StudyTable,
  type StudyTableRow,
  TABLE_METRICS,
  type TableMetric,
  type MetricStats,
  type StudyRunStatus,
} from '../../shared/studies.js';
import type { Viewer } from '../db/cases.js';
import {
  type RunCaseRow,
  type StudyRunListed,
  findStudyRun,
  jobMaskFiles,
  latestVersionsByRater,
  listStudyRuns,
  runCaseRows,
} from '../db/study-runs.js';
import type { Database } from '../db/tables.js';
import { notFound } from '../errors.js';
import type { VolumeStore } from '../volumes/store.js';
import type { CpuPool } from '../workers/pool.js';
import { type CompareMasksOutput, compareMasksTask } from './compare-masks.js';
import { summarizeRun } from './runs.js';
import { studyFor } from './service.js';
import { describe } from '../../shared/summary.js';

// The study table (#27): one row per case × run with the job's own metrics, a summary per run,
// and the agreement between raters where two or more members saved versions of a case.

type Db = Kysely<Database>;

export interface TableDeps {
  db: Db;
  store: VolumeStore;
  cpu: CpuPool;
}

/** The runs a table shows: the one asked for (it must be this study's), else the newest of each model. */
export async function tableRuns(db: Db, studyId: string, runId?: string): Promise<StudyRunListed[]> {
  if (runId) {
    const run = await findStudyRun(db, runId);
    if (!run || run.study_id !== studyId) throw notFound('No such run in this study', { field: 'runId' });
    return [run];
  }
  const newest = new Map<string, StudyRunListed>();
  for (const r of await listStudyRuns(db, studyId)) if (!newest.has(r.model_id)) newest.set(r.model_id, r);
  return [...newest.values()];
}

export function toTableRow(run: StudyRunListed, r: RunCaseRow): StudyTableRow {
  const m = r.metrics;
  const lesionCountDiff =
    m?.lesionCountDiff ?? (m && m.lesionCountTrue !== null ? Math.abs(m.lesionCountTrue - m.lesionCountPredicted) : null);
  return {
    runId: run.id,
    modelId: run.model_id,
    caseId: r.case_id,
    caseName: r.case_name,
    subjectId: r.subject_id,
    jobId: r.job_id,
    status: r.status ?? 'failed',
    dice: m?.dice ?? null,
    absVolumeDiffMl: m?.absVolumeDiffMl ?? null,
    lesionCountDiff,
    lesionF1: m?.lesionF1 ?? null,
    predictedMl: m?.predictedMl ?? null,
    trueMl: m?.trueMl ?? null,
    lesionCountPredicted: m?.lesionCountPredicted ?? null,
    lesionCountTrue: m?.lesionCountTrue ?? null,
  };
}

/** Each metric over the rows that have it (succeeded cases; a metric needing a truth is null without one). */
export function summarizeRows(rows: StudyTableRow[]): Record<TableMetric, MetricStats> {
  const done = rows.filter((r) => r.status === 'succeeded');
  return Object.fromEntries(TABLE_METRICS.map((k) => [k, describe(done.flatMap((r) => (r[k] === null ? [] : [r[k]])))])) as Record<
    TableMetric,
    MetricStats
  >;
}

/** Comparisons of stored masks, by their SHA-256s in order (content-addressed: an entry never goes stale). */
const COMPARE_CACHE_MAX = 10_000;
const compareCache = new Map<string, CompareMasksOutput>();

async function compareCached(deps: TableDeps, hashes: string[]): Promise<CompareMasksOutput> {
  const key = hashes.join(',');
  const hit = compareCache.get(key);
  if (hit) {
    // most recently used last: the oldest entry is the first to go
    compareCache.delete(key);
    compareCache.set(key, hit);
    return hit;
  }
  const masks = await Promise.all(hashes.map((h) => deps.store.read(h)));
  const cmp = await deps.cpu.run(compareMasksTask, { masks: masks.map((b) => new Uint8Array(b)) });
  compareCache.set(key, cmp);
  if (compareCache.size > COMPARE_CACHE_MAX) compareCache.delete(compareCache.keys().next().value!);
  return cmp;
}

async function agreement(
  deps: TableDeps,
  studyId: string,
  runs: { run: StudyRunListed; rows: RunCaseRow[] }[],
): Promise<StudyTable['agreement']> {
  const versions = await latestVersionsByRater(deps.db, studyId);
  const byCase = new Map<string, typeof versions>();
  for (const v of versions) byCase.set(v.case_id, [...(byCase.get(v.case_id) ?? []), v]);
  const rated = [...byCase.values()].filter((vs) => vs.length >= 2).sort((a, b) => a[0]!.case_name.localeCompare(b[0]!.case_name));
  const predictedJobs = new Map<string, { runId: string; modelId: string; jobId: string }[]>();
  for (const { run, rows } of runs)
    for (const r of rows)
      if (r.job_id && r.status === 'succeeded')
        predictedJobs.set(r.case_id, [...(predictedJobs.get(r.case_id) ?? []), { runId: run.id, modelId: run.model_id, jobId: r.job_id }]);
  const files = await jobMaskFiles(
    deps.db,
    rated.flatMap((vs) => (predictedJobs.get(vs[0]!.case_id) ?? []).map((p) => p.jobId)),
  );
  // Each case's comparison reads its masks and runs in the CPU pool; the cases run side by side
  // (the pool's threads share them) and a comparison already made is taken from the cache: its
  // inputs are stored files named by their SHA-256, which never change.
  const compared = await Promise.all(
    rated.map(async (vs) => {
      vs.sort((a, b) => a.email.localeCompare(b.email));
      const models = (predictedJobs.get(vs[0]!.case_id) ?? []).filter((p) => files.has(p.jobId));
      const hashes = [...vs.map((v) => v.sha256), ...models.map((p) => files.get(p.jobId)!)];
      return { vs, models, cmp: await compareCached(deps, hashes) };
    }),
  );
  const cases: StudyTable['agreement']['cases'] = [];
  const pairDice: number[] = [];
  const pairAbsDiff: number[] = [];
  for (const { vs, models, cmp } of compared) {
    const caseId = vs[0]!.case_id;
    const pairs: StudyTable['agreement']['cases'][number]['pairs'] = [];
    for (let i = 0; i < vs.length; i++)
      for (let j = i + 1; j < vs.length; j++) {
        const pair = { a: vs[i]!.email, b: vs[j]!.email, dice: cmp.dice[i]![j]!, volumeDiffMl: cmp.volumesMl[i]! - cmp.volumesMl[j]! };
        pairs.push(pair);
        if (pair.dice !== null) pairDice.push(pair.dice);
        pairAbsDiff.push(Math.abs(pair.volumeDiffMl));
      }
    const vsModel = vs.flatMap((v, i) =>
      models.map((p, k) => {
        const m = vs.length + k;
        return { a: v.email, b: p.modelId, runId: p.runId, dice: cmp.dice[i]![m]!, volumeDiffMl: cmp.volumesMl[i]! - cmp.volumesMl[m]! };
      }),
    );
    cases.push({
      caseId,
      caseName: vs[0]!.case_name,
      raters: vs.map((v, i) => ({ email: v.email, versionId: v.id, volumeMl: cmp.volumesMl[i]! })),
      pairs,
      vsModel,
    });
  }
  return { cases, summary: { dice: describe(pairDice), absVolumeDiffMl: describe(pairAbsDiff) } };
}

/** The study's table for any member: rows, a summary per run, inter-rater agreement. */
export async function studyTable(
  deps: TableDeps,
  viewer: Viewer,
  input: { studyId: string; runId?: string | undefined },
): Promise<StudyTable> {
  const study = await studyFor(deps.db, viewer, input.studyId);
  const runs = await tableRuns(deps.db, input.studyId, input.runId);
  const now = Date.now();
  const withRows = await Promise.all(runs.map(async (run) => ({ run, rows: await runCaseRows(deps.db, run.id) })));
  const rows = withRows.flatMap(({ run, rows }) => rows.map((r) => toTableRow(run, r)));
  return {
    studyId: study.id,
    studyName: study.name,
    runs: withRows.map(({ run, rows }) => ({
      id: run.id,
      modelId: run.model_id,
      createdAt: new Date(run.created_at).toISOString(),
      status: summarizeRun(run, rows, now).status as StudyRunStatus,
    })),
    rows,
    summary: withRows.map(({ run }) => ({
      runId: run.id,
      modelId: run.model_id,
      metrics: summarizeRows(rows.filter((r) => r.runId === run.id)),
    })),
    agreement: await agreement(deps, input.studyId, withRows),
  };
}

// ---- CSV ------------------------------------------------------------------------------------------

/** The CSV's columns, in order (README: "Study table and exports"). */
export const CSV_COLUMNS = [
  ['run_id', 'runId'],
  ['model_id', 'modelId'],
  ['case_id', 'caseId'],
  ['case_name', 'caseName'],
  ['subject_id', 'subjectId'],
  ['job_id', 'jobId'],
  ['status', 'status'],
  ['dice', 'dice'],
  ['abs_volume_diff_ml', 'absVolumeDiffMl'],
  ['lesion_count_diff', 'lesionCountDiff'],
  ['lesion_f1', 'lesionF1'],
  ['predicted_ml', 'predictedMl'],
  ['true_ml', 'trueMl'],
  ['lesion_count_predicted', 'lesionCountPredicted'],
  ['lesion_count_true', 'lesionCountTrue'],
] as const satisfies readonly (readonly [string, keyof StudyTableRow])[];

/** RFC 4180: a field with a comma, quote or line break is quoted, its quotes doubled; a leading =, +, - or @ is kept from spreadsheets' formulas. */
export function csvField(v: string | number | null): string {
  if (v === null) return '';
  if (typeof v === 'number') return String(v); // shortest round-trip form: parses back to the same number
  const safe = /^[=+\-@\t\r]/.test(v) ? `'${v}` : v;
  return /[",\r\n]/.test(safe) ? `"${safe.replaceAll('"', '""')}"` : safe;
}

/**
 * The table as CSV lines (header first), run by run, each run's rows read in one query and
 * written as they come: the response streams, and memory holds one run's rows at most.
 */
export async function* tableCsv(db: Db, viewer: Viewer, input: { studyId: string; runId?: string | undefined }): AsyncGenerator<string> {
  await studyFor(db, viewer, input.studyId);
  const runs = await tableRuns(db, input.studyId, input.runId);
  yield `${CSV_COLUMNS.map(([h]) => h).join(',')}\r\n`;
  for (const run of runs) {
    const rows = await runCaseRows(db, run.id);
    let chunk = '';
    for (const r of rows) {
      const row = toTableRow(run, r);
      chunk += `${CSV_COLUMNS.map(([, k]) => csvField(row[k])).join(',')}\r\n`;
      if (chunk.length > 64 * 1024) {
        yield chunk;
        chunk = '';
      }
    }
    if (chunk) yield chunk;
  }
}
