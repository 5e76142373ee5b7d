import { createHash } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import path from 'node:path';
import type { Kysely } from 'kysely';
import type { DicomImport, SeriesChoice } from '../../shared/dicom.js';
import type { DicomRole } from '../../shared/dicom-origin.js';
import { MiB } from '../../shared/units.js';
import type { AuthUser } from '../auth/service.js';
import { prepareCaseInPool } from '../cases/prepare.js';
import { createCase, uploadCase } from '../cases/service.js';
import { caseExistsForSubject } from '../db/cases.js';
import { insertCaseDicom } from '../db/dicom.js';
import type { Database } from '../db/tables.js';
import type { Env } from '../env.js';
import { isDomainError, unprocessable } from '../errors.js';
import type { Logger } from '../logger.js';
import type { VolumeStore } from '../volumes/store.js';
import type { CpuPool } from '../workers/pool.js';
import { type ConvertInput, type ConvertResult, convertDicomStudyTask } from './convert.js';
import { convertFilesTask } from './dcm2niix.js';
import { inflateInPool } from './input-file.js';
import { type InputFile, type ScanResult, type ScannedImage, type StudyIdentity, scanDicomFilesTask } from './scan.js';
import { type DicomLimits, dicomLimits } from './limits.js';
import { type Gathered, gatherDicomFiles } from './unpack.js';

/**
 * DICOM studies in, cases out. The steps, each off the event loop where it costs CPU:
 * gather (read zips' directories, drop what is not DICOM, limits) → for an upload, inflate a zip's
 * entries once, split across the pool's threads, into memory they share → scan the headers
 * (dcmjs, in the CPU pool, split across its threads) → one study → convert and choose roles (dcm2niix and the ADC, one CPU
 * task) → store through the same path as a NIfTI upload (`uploadCase`: the same checks, quotas,
 * content-addressed storage), with the DICOM origin row in the same transaction. The work folder
 * is removed whatever happens; nothing is half-written.
 *
 * Patient data: the headers' patient and study modules are read (to scrub every text the import
 * keeps or shows, and to keep them when DICOM_KEEP_PATIENT=true) but never logged.
 */

type Db = Kysely<Database>;

export interface DicomDeps {
  db: Db;
  store: VolumeStore;
  cpu: CpuPool;
  config: Env;
  log: Logger;
}

export interface Study {
  studyUid: string;
  files: InputFile[];
  images: ScannedImage[];
  identity: StudyIdentity;
}

/** Scans every file in the pool, in as many parts as the pool has threads. */
async function scanInPool(cpu: CpuPool, files: InputFile[]): Promise<ScanResult> {
  const parts = Math.max(1, Math.min(cpu.size, Math.ceil(files.length / 32)));
  const size = Math.ceil(files.length / parts);
  const results = await Promise.all(
    Array.from({ length: parts }, (_, p) =>
      cpu.run(scanDicomFilesTask, { files: files.slice(p * size, (p + 1) * size), offset: p * size }),
    ),
  );
  const merged: ScanResult = { images: [], skipped: [], studies: {} };
  for (const r of results) {
    merged.images.push(...r.images);
    merged.skipped.push(...r.skipped);
    for (const [uid, id] of Object.entries(r.studies)) {
      const known = merged.studies[uid];
      if (!known) merged.studies[uid] = id;
      else known.identifiers = [...new Set([...known.identifiers, ...id.identifiers])];
    }
  }
  return merged;
}

/** The studies among the gathered files (by the scan), and everything skipped on the way. */
function studiesOf(gathered: Gathered, scan: ScanResult): { studies: Study[]; skipped: DicomImport['skipped'] } {
  const skipped = [...gathered.skipped, ...scan.skipped.map((s) => ({ file: gathered.files[s.file]!.name, reason: s.reason }))];
  const byStudy = new Map<string, ScannedImage[]>();
  for (const img of scan.images) byStudy.set(img.studyUid, [...(byStudy.get(img.studyUid) ?? []), img]);
  const studies = [...byStudy].map(([studyUid, imgs]) => {
    // Each study's own file list, in scan order; its images re-indexed into it.
    const files = imgs.map((i) => gathered.files[i.file]!);
    return { studyUid, files, images: imgs.map((img, i) => ({ ...img, file: i })), identity: scan.studies[studyUid]! };
  });
  return { studies, skipped };
}

const noScan: ScanResult = { images: [], skipped: [], studies: {} };

/** The studies among the inputs, and everything skipped on the way. */
export async function readStudies(
  cpu: CpuPool,
  inputs: InputFile[],
  limits: DicomLimits,
): Promise<{ studies: Study[]; skipped: DicomImport['skipped'] }> {
  // Not inflated up front (inflateInPool): a local folder may hold many studies' zips, converted
  // one study at a time after this; each entry is inflated where it is read.
  const gathered = await gatherDicomFiles(cpu, inputs, limits);
  return studiesOf(gathered, gathered.files.length ? await scanInPool(cpu, gathered.files) : noScan);
}

/**
 * The one study of an upload, converted. dcm2niix starts at once over every gathered file, beside
 * the header scan: the two are most of an import's CPU and the pool has two threads at least, so
 * the scan costs (nearly) no time of its own. The scan's verdict still comes first — a broken file,
 * mixed studies or nothing to import is refused as before, dcm2niix's work dropped — and what
 * dcm2niix says of the objects the scan skipped is left out of the warnings (convert.ts).
 */
async function readAndConvertOneStudy(
  deps: DicomDeps,
  inputs: InputFile[],
  limits: DicomLimits,
  choice: SeriesChoice,
  phases: Phases,
): Promise<{ study: Study; result: ConvertResult; skipped: DicomImport['skipped'] }> {
  let t = performance.now();
  const since = (from: number) => Math.round(performance.now() - from);
  const gathered = await gatherDicomFiles(deps.cpu, inputs, limits);
  phases.unpack = since(t);
  if (gathered.files.length === 0) throw noImages(gathered.skipped, inputs.length);
  t = performance.now();
  gathered.files = await inflateInPool(deps.cpu, gathered.files);
  phases.inflate = since(t);
  t = performance.now();
  // Started first: dcm2niix is the longest task; the scan's parts share the other thread(s).
  const conversion = deps.cpu.run(convertFilesTask, { files: gathered.files }).finally(() => (phases.dcm2niix = since(t)));
  conversion.catch(() => {}); // its failure matters only once the scan has passed (awaited below)
  const { studies, skipped } = studiesOf(gathered, await scanInPool(deps.cpu, gathered.files));
  phases.scan = since(t);
  if (studies.length === 0) throw noImages(skipped, inputs.length);
  if (studies.length > 1) throw mixedStudies(studies);
  const study = studies[0]!;
  const converted = await conversion;
  phases.dcm2niixInputs = Math.round(converted.inputsMs);
  t = performance.now();
  const result = await convertStudy(deps.cpu, deps.config, study, choice, { ...converted, inputs: gathered.files });
  phases.roles = since(t);
  return { study, result, skipped };
}

type Phases = NonNullable<DicomImport['timings']['phasesMs']>;

/** No MR image at all: what was sent instead. */
function noImages(skipped: DicomImport['skipped'], inputs: number): Error {
  const reasons = new Map<string, number>();
  for (const s of skipped) reasons.set(s.reason, (reasons.get(s.reason) ?? 0) + 1);
  const what = [...reasons].map(([r, n]) => `${n} ${r}`).join('; ');
  return unprocessable(`No DICOM MR images in the ${inputs === 1 ? 'file' : `${inputs} files`} sent${what ? ` (${what})` : ''}`, {
    field: 'files',
  });
}

/** Several studies where one is expected: a 422 describing them, without anything that identifies a patient. */
function mixedStudies(studies: Study[]): Error {
  const list = studies
    .map((s, i) => {
      const series = new Map(s.images.map((img) => [img.seriesUid, img.seriesDescription || `series ${img.seriesNumber ?? '?'}`]));
      const names = [...series.values()].slice(0, 4).join(', ');
      return `study ${i + 1}: ${series.size} series, ${s.images.length} images (${names}${series.size > 4 ? ', …' : ''})`;
    })
    .join('; ');
  return unprocessable(
    `The upload holds ${studies.length} studies — ${list}. A case is one study: upload them one at a time (\`strokeview import --dicom <dir>\` imports a folder of many studies, one case each)`,
    { field: 'files' },
  );
}

/** Converts one study (in the pool) and answers the report's series in the caller's words; `converted`: dcm2niix already ran (its bytes move to the thread). */
export async function convertStudy(
  cpu: CpuPool,
  env: Env,
  study: Study,
  choice: SeriesChoice,
  converted?: ConvertInput['converted'],
): Promise<ConvertResult> {
  return cpu.run(
    convertDicomStudyTask,
    { files: study.files, images: study.images, choice, scrub: study.identity.identifiers, maxVoxels: env.MAX_VOXELS, converted },
    { transfer: Object.values(converted?.files ?? {}) },
  );
}

function originRow(result: ConvertResult, study: Study, keepPatient: boolean) {
  return (trx: Db, caseId: string) =>
    insertCaseDicom(trx, {
      caseId,
      studyInstanceUid: study.studyUid,
      frameOfReferenceUid: result.frameOfReferenceUid,
      series: result.stored,
      patient: keepPatient ? study.identity.patient : null,
    });
}

const roleList = (volumes: Partial<Record<DicomRole, Uint8Array>>) => Object.keys(volumes) as DicomRole[];

/**
 * A user's DICOM upload → one case (or, with `dryRun`, only the report: which series would
 * become which role, so a person can confirm or change them). One study per upload.
 */
export async function uploadDicomCase(
  deps: DicomDeps,
  user: AuthUser,
  input: { name?: string | undefined; inputs: InputFile[]; choice: SeriesChoice; dryRun: boolean },
): Promise<{ caseId: string | null; report: DicomImport }> {
  const started = performance.now();
  if (input.inputs.length === 0) throw unprocessable('Send the DICOM files (a folder of them, or a .zip)', { field: 'files' });
  const limits = dicomLimits(deps.config, user.role);
  const phasesMs: Phases = {};
  const { study, result, skipped } = await readAndConvertOneStudy(deps, input.inputs, limits, input.choice, phasesMs);
  const report: DicomImport = {
    ...result.report,
    skipped,
    timings: { convertMs: Math.round(result.convertMs), totalMs: 0, phasesMs },
  };
  let caseId: string | null = null;
  if (!input.dryRun) {
    const t = performance.now();
    caseId = await uploadCase(deps, user, {
      name: input.name || result.suggestedName,
      files: result.volumes,
      onStored: originRow(result, study, deps.config.DICOM_KEEP_PATIENT),
    });
    phasesMs.store = Math.round(performance.now() - t);
  }
  report.timings.totalMs = Math.round(performance.now() - started);
  // Counts and timings only: series descriptions and file names stay out of the log.
  deps.log.info(
    {
      caseId,
      dryRun: input.dryRun,
      images: study.images.length,
      series: result.report.series.length,
      roles: roleList(result.volumes),
      ...report.timings,
    },
    'DICOM study imported',
  );
  return { caseId, report };
}

async function walk(dir: string, out: InputFile[] = [], root = dir): Promise<InputFile[]> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.name.startsWith('.')) continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) await walk(full, out, root);
    else if (entry.isFile()) out.push({ path: full, name: path.relative(root, full) });
  }
  return out;
}

/** The subject id a DICOM study is imported under: stable (re-imports are skipped) and nothing a person is known by. */
export const dicomSubjectId = (studyUid: string) => `dicom-${createHash('sha256').update(studyUid).digest('hex').slice(0, 12)}`;

export interface DicomImportReport {
  imported: { subject: string; caseId: string; name: string; roles: DicomRole[]; warnings: string[] }[];
  skipped: { path: string; reason: string }[];
}

/**
 * Imports a folder (or a zip) of DICOM studies on this machine, one case per study, shared
 * unless an owner is named. Idempotent: a study already imported is skipped; a study that cannot
 * be imported is skipped with its reason, the others go on.
 */
export async function importDicomFolder(
  deps: { db: Db; store: VolumeStore; cpu: CpuPool; env: Env },
  root: string,
  opts: { ownerId: string | null; onProgress?: (line: string) => void },
): Promise<DicomImportReport> {
  const report: DicomImportReport = { imported: [], skipped: [] };
  const { stat } = await import('node:fs/promises');
  const inputs = (await stat(root)).isDirectory() ? await walk(root) : [{ path: root, name: path.basename(root) }];
  const { studies, skipped } = await readStudies(deps.cpu, inputs, dicomLimits(deps.env, 'local'));
  for (const s of skipped) report.skipped.push({ path: s.file, reason: s.reason });
  if (studies.length === 0) throw noImages(skipped, inputs.length);
  for (const study of studies) {
    const subject = dicomSubjectId(study.studyUid);
    if (await caseExistsForSubject(deps.db, 'import', subject)) {
      report.skipped.push({ path: subject, reason: 'already imported' });
      continue;
    }
    try {
      const result = await convertStudy(deps.cpu, deps.env, study, {});
      const prepared = await prepareCaseInPool(deps.cpu, result.volumes, {
        maxVoxels: deps.env.MAX_VOXELS,
        maxInflatedBytes: deps.env.MAX_INFLATED_MB * MiB,
      });
      const name = `${result.suggestedName} (${subject})`;
      const caseId = await createCase(
        deps.db,
        deps.store,
        { ownerId: opts.ownerId, name, source: 'import', subjectId: subject },
        prepared,
        undefined,
        originRow(result, study, deps.env.DICOM_KEEP_PATIENT),
      );
      report.imported.push({ subject, caseId, name, roles: roleList(result.volumes), warnings: result.report.warnings });
      opts.onProgress?.(
        `imported ${subject} "${name}" (${roleList(result.volumes).join(', ')}) in ${Math.round(result.convertMs)} ms of conversion`,
      );
    } catch (err) {
      if (!isDomainError(err, 'unprocessable')) throw err;
      report.skipped.push({ path: subject, reason: err.message });
      opts.onProgress?.(`skipped ${subject}: ${err.message}`);
    }
  }
  return report;
}
