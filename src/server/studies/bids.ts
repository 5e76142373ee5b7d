import { promisify } from 'node:util';
import { gzip } from 'node:zlib';
import type { Kysely } from 'kysely';
import type { StudyTableRow } from '../../shared/studies.js';
import type { Viewer } from '../db/cases.js';
import { jobMaskFiles, latestVersionsByRater, runCaseRows } from '../db/study-runs.js';
import type { Database } from '../db/tables.js';
import { isGzip } from '../nifti/read.js';
import { VERSION } from '../version.js';
import type { VolumeStore } from '../volumes/store.js';
import { studyFor } from './service.js';
import { tableRuns, toTableRow } from './table.js';
import { type ZipEntry, zipStream } from './zip.js';

// A study's results as BIDS derivatives (#27), streamed as a zip:
//   derivatives/strokeview-<model>/dataset_description.json      GeneratedBy: strokeview + the model
//   derivatives/strokeview-<model>/participants.tsv, metrics.tsv (+ .json column descriptions)
//   derivatives/strokeview-<model>/sub-<s>/ses-<t>/anat/sub-<s>_ses-<t>_desc-lesion_mask.nii.gz (+ .json)
//   derivatives/strokeview-corrections/…_desc-rater<N>_mask.nii.gz  (with `corrected`: each member's latest version)
// One pipeline folder per model shown (the run asked for, or the newest run of each model).

type Db = Kysely<Database>;

export const BIDS_VERSION = '1.10.0';
export const BIDS_SESSION = '01';

/** A BIDS label (letters and digits only) for a case: its subject id without `sub-`, else its name, else its id. */
export function subjectLabel(c: { subjectId: string | null; caseName: string; caseId: string }): string {
  const clean = (s: string) => s.replace(/^sub-/i, '').replace(/[^a-zA-Z0-9]/g, '');
  return clean(c.subjectId ?? '') || clean(c.caseName) || c.caseId.replace(/-/g, '');
}

/** Labels for every case, made unique (a clash gets its case id's first characters appended). */
function labelsOf(cases: { caseId: string; subjectId: string | null; caseName: string }[]): Map<string, string> {
  const labels = new Map<string, string>();
  const used = new Set<string>();
  for (const c of cases) {
    if (labels.has(c.caseId)) continue;
    let label = subjectLabel(c);
    if (used.has(label)) label = `${label}${c.caseId.replace(/-/g, '').slice(0, 8)}`;
    used.add(label);
    labels.set(c.caseId, label);
  }
  return labels;
}

const json = (v: unknown) => new TextEncoder().encode(`${JSON.stringify(v, null, 2)}\n`);
const tsv = (rows: (string | number | null)[][]) =>
  new TextEncoder().encode(
    rows.map((r) => r.map((v) => (v === null ? 'n/a' : String(v).replace(/[\t\r\n]/g, ' '))).join('\t')).join('\n') + '\n',
  );
const gzipAsync = promisify(gzip);
/** A mask as a .nii.gz: stored gzipped already, or compressed off the event loop (zlib's thread pool). */
const gz = async (b: Buffer) => (isGzip(b) ? new Uint8Array(b) : new Uint8Array(await gzipAsync(b)));

const METRIC_COLUMNS = [
  ['dice', 'dice', 'Dice coefficient of the predicted and the true mask (1 when both are empty)'],
  ['abs_volume_diff_ml', 'absVolumeDiffMl', '|predicted − true| lesion volume, mL'],
  ['lesion_count_diff', 'lesionCountDiff', '|true − predicted| number of lesions (26-connected components)'],
  ['lesion_f1', 'lesionF1', 'lesion-wise F1: 2TP / (2TP + FP + FN) over 26-connected components'],
  ['predicted_ml', 'predictedMl', 'predicted lesion volume, mL'],
  ['true_ml', 'trueMl', 'ground-truth lesion volume, mL'],
] as const;

export interface BidsDeps {
  db: Db;
  store: VolumeStore;
  /** A model's version, for GeneratedBy (null when the model is no longer loaded). */
  modelVersion: (id: string) => string | null;
}

/**
 * The zip's entries, made one at a time as the stream asks for them (the masks are read from the
 * store only then). Access is checked before the first byte: any member may export.
 */
export async function bidsExport(
  deps: BidsDeps,
  viewer: Viewer,
  input: { studyId: string; runId?: string | undefined; corrected: boolean },
): Promise<{ fileName: string; stream: ReadableStream<Uint8Array> }> {
  const study = await studyFor(deps.db, viewer, input.studyId);
  const runs = await tableRuns(deps.db, input.studyId, input.runId);
  const perRun = await Promise.all(
    runs.map(async (run) => ({ run, rows: (await runCaseRows(deps.db, run.id)).map((r) => toTableRow(run, r)) })),
  );
  const versions = input.corrected ? await latestVersionsByRater(deps.db, input.studyId) : [];
  const labels = labelsOf([
    ...perRun.flatMap((p) => p.rows),
    ...versions.map((v) => ({ caseId: v.case_id, subjectId: v.subject_id, caseName: v.case_name })),
  ]);
  const masks = await jobMaskFiles(
    deps.db,
    perRun.flatMap((p) => p.rows.flatMap((r) => (r.jobId && r.status === 'succeeded' ? [r.jobId] : []))),
  );
  const anat = (label: string) => `sub-${label}/ses-${BIDS_SESSION}/anat/sub-${label}_ses-${BIDS_SESSION}`;

  async function* entries(): AsyncGenerator<ZipEntry> {
    for (const { run, rows } of perRun) {
      const root = `derivatives/strokeview-${run.model_id}`;
      const version = deps.modelVersion(run.model_id);
      yield {
        name: `${root}/dataset_description.json`,
        compress: true,
        data: json({
          Name: `${study.name}: lesion masks predicted by ${run.model_id}`,
          BIDSVersion: BIDS_VERSION,
          DatasetType: 'derivative',
          GeneratedBy: [
            {
              Name: 'strokeview',
              Version: VERSION,
              Description: `Ischemic-stroke lesion segmentation with the model ${run.model_id}${version ? ` version ${version}` : ''} (study run ${run.id}, ${new Date(run.created_at).toISOString()})`,
            },
          ],
        }),
      };
      const done = rows.filter((r) => r.status === 'succeeded' && r.jobId && masks.has(r.jobId));
      const subjects = [...new Set(done.map((r) => labels.get(r.caseId)!))].sort();
      yield { name: `${root}/participants.tsv`, compress: true, data: tsv([['participant_id'], ...subjects.map((s) => [`sub-${s}`])]) };
      yield {
        name: `${root}/metrics.tsv`,
        compress: true,
        data: tsv([
          ['participant_id', 'session_id', 'case_id', 'case_name', 'job_id', ...METRIC_COLUMNS.map(([h]) => h)],
          ...done.map((r) => [
            `sub-${labels.get(r.caseId)!}`,
            `ses-${BIDS_SESSION}`,
            r.caseId,
            r.caseName,
            r.jobId,
            ...METRIC_COLUMNS.map(([, k]) => r[k as keyof StudyTableRow] as number | null),
          ]),
        ]),
      };
      yield {
        name: `${root}/metrics.json`,
        compress: true,
        data: json(Object.fromEntries(METRIC_COLUMNS.map(([h, , d]) => [h, { Description: d }]))),
      };
      for (const r of done) {
        const base = `${root}/${anat(labels.get(r.caseId)!)}_desc-lesion_mask`;
        yield { name: `${base}.nii.gz`, compress: false, data: await gz(await deps.store.read(masks.get(r.jobId!)!)) };
        yield {
          name: `${base}.json`,
          compress: true,
          data: json({
            Type: 'Lesion',
            Description: `Ischemic lesion predicted by ${run.model_id} (strokeview)`,
            ModelId: run.model_id,
            ModelVersion: version,
            StudyRunId: run.id,
            JobId: r.jobId,
            CaseId: r.caseId,
            CaseName: r.caseName,
          }),
        };
      }
    }
    if (versions.length) {
      const root = 'derivatives/strokeview-corrections';
      const raters = [...new Set(versions.map((v) => v.email))].sort();
      const rater = (email: string) => `rater${raters.indexOf(email) + 1}`;
      yield {
        name: `${root}/dataset_description.json`,
        compress: true,
        data: json({
          Name: `${study.name}: lesion masks corrected by its raters`,
          BIDSVersion: BIDS_VERSION,
          DatasetType: 'derivative',
          GeneratedBy: [
            {
              Name: 'strokeview',
              Version: VERSION,
              Description: "Each study member's latest corrected mask, drawn in the strokeview viewer",
            },
          ],
        }),
      };
      yield { name: `${root}/raters.tsv`, compress: true, data: tsv([['rater', 'email'], ...raters.map((e) => [rater(e), e])]) };
      for (const v of versions) {
        const base = `${root}/${anat(labels.get(v.case_id)!)}_desc-${rater(v.email)}_mask`;
        yield { name: `${base}.nii.gz`, compress: false, data: await gz(await deps.store.read(v.sha256)) };
        yield {
          name: `${base}.json`,
          compress: true,
          data: json({
            Type: 'Lesion',
            Description: `Ischemic lesion corrected by ${rater(v.email)} (strokeview)`,
            MaskVersionId: v.id,
            CaseId: v.case_id,
            CaseName: v.case_name,
            Created: new Date(v.created_at).toISOString(),
          }),
        };
      }
    }
  }

  const slug = study.name.replace(/[^a-zA-Z0-9._-]+/g, '_').replace(/^_+|_+$/g, '') || 'study';
  return { fileName: `${slug}_bids-derivatives.zip`, stream: zipStream(entries()) };
}
