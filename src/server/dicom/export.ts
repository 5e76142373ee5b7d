import type { Kysely } from 'kysely';
import type { SegSource } from '../../shared/dicom.js';
import { type Viewer, findCase } from '../db/cases.js';
import { findCaseDicom } from '../db/dicom.js';
import { findJob } from '../db/jobs.js';
import type { Database } from '../db/tables.js';
import { findVolume } from '../db/volumes.js';
import { notFound, unprocessable } from '../errors.js';
import { visibleJob } from '../jobs/service.js';
import { findMaskVersion } from '../masks/service.js';
import { VERSION } from '../version.js';
import type { VolumeStore } from '../volumes/store.js';
import type { CpuPool } from '../workers/pool.js';
import { buildAdcSeriesTask } from './adc-series.js';
import { type SegAlgorithmType, buildSegTask } from './seg.js';

/**
 * A job's mask or a corrected version of a DICOM-origin case as a DICOM SEG (seg.ts builds it
 * in the CPU pool). Who may export what: whoever may see the job or the version. The SEG's
 * patient and study modules are the case's only when the import kept them
 * (DICOM_KEEP_PATIENT=true) and the caller may see them (the case's owner, admins); otherwise
 * they are empty and the SEG says the identity was removed — an export never carries more than
 * the case shows its caller.
 */

type Db = Kysely<Database>;

export interface SegExport {
  bytes: Uint8Array;
  /** `<case>_<model>_prediction.seg.dcm` or `<case>_corrected_v3.seg.dcm`. */
  fileName: string;
  caseId: string;
  studyInstanceUid: string;
  seriesInstanceUid: string;
  sopInstanceUid: string;
  frames: number;
  algorithmType: SegAlgorithmType;
}

const safeName = (s: string) => s.replace(/[^A-Za-z0-9._-]+/g, '_').slice(0, 80);

/** What the SEG is made from: the mask volume, the case, how it was made (and by which model). */
export async function resolveSource(db: Db, viewer: Viewer, source: SegSource, modelVersion: (id: string) => string | null) {
  if ('jobId' in source) {
    const job = await visibleJob(db, viewer, source.jobId);
    const maskVolumeId = (job.result as { maskVolumeId?: string } | null)?.maskVolumeId;
    if (job.status !== 'succeeded' || !maskVolumeId) {
      throw unprocessable(`Job ${job.id} has no mask to export (it is ${job.status})`, { field: 'jobId' });
    }
    const modelId = job.model_ids.join('+');
    return {
      caseId: job.case_id,
      volumeId: maskVolumeId,
      algorithm: { type: 'AUTOMATIC' as const, name: modelId, version: job.model_ids.length === 1 ? modelVersion(modelId) : null },
      creator: null,
      label: `${modelId}_prediction`,
      description: `strokeview lesion (${modelId})`,
    };
  }
  const version = await findMaskVersion(db, viewer, source.maskVersionId);
  const job = version.job_id ? await findJob(db, version.job_id) : undefined;
  const modelId = job ? job.model_ids.join('+') : null;
  return {
    caseId: version.case_id,
    volumeId: version.volume_id,
    // Corrected from a model's result: SEMIAUTOMATIC, the model named; drawn from nothing: MANUAL.
    algorithm: modelId
      ? { type: 'SEMIAUTOMATIC' as const, name: modelId, version: job!.model_ids.length === 1 ? modelVersion(modelId) : null }
      : { type: 'MANUAL' as const, name: null, version: null },
    creator: version.email,
    label: `corrected_v${version.version}`,
    description: `strokeview lesion (corrected v${version.version})`,
  };
}

export async function exportSeg(
  deps: { db: Db; store: VolumeStore; cpu: CpuPool; modelVersion: (id: string) => string | null; now?: () => number },
  viewer: Viewer,
  source: SegSource,
): Promise<SegExport> {
  const { db, store, cpu } = deps;
  const from = await resolveSource(db, viewer, source, deps.modelVersion);
  const row = await findCase(db, viewer, from.caseId);
  if (!row) throw notFound('No such case');
  const origin = await findCaseDicom(db, from.caseId);
  if (!origin) {
    throw unprocessable(
      `Case "${row.name}" was not imported from DICOM, so there is no source series for a DICOM SEG to reference; download the mask as NIfTI instead`,
      { field: 'caseId' },
    );
  }
  const dwi = origin.series.find((s) => s.role === 'dwi');
  if (!dwi) throw unprocessable(`Case "${row.name}" keeps no DICOM source for its DWI; a DICOM SEG cannot reference it`);
  const volume = await findVolume(db, from.volumeId);
  if (!volume) throw notFound('The mask file is missing');
  const patientVisible = viewer.admin || (row.owner_id !== null && row.owner_id === viewer.userId);
  const seg = await cpu.run(buildSegTask, {
    mask: await store.read(volume.sha256),
    studyInstanceUid: origin.studyInstanceUid,
    frameOfReferenceUid: origin.frameOfReferenceUid ?? dwi.frameOfReferenceUid,
    source: dwi,
    patient: patientVisible ? origin.patient : null,
    algorithm: from.algorithm,
    creator: from.creator,
    seriesDescription: from.description,
    softwareVersion: VERSION,
    now: (deps.now ?? Date.now)(),
  });
  return {
    bytes: seg.bytes,
    fileName: `${safeName(row.name)}_${safeName(from.label)}.seg.dcm`,
    caseId: from.caseId,
    studyInstanceUid: origin.studyInstanceUid,
    seriesInstanceUid: seg.seriesInstanceUid,
    sopInstanceUid: seg.sopInstanceUid,
    frames: seg.frames,
    algorithmType: from.algorithm.type,
  };
}

export interface AdcSeriesExport {
  files: Uint8Array[];
  seriesInstanceUid: string;
}

/**
 * A DICOM-origin case's ADC as a derived MR series (adc-series.ts, in the CPU pool) — only when
 * the import computed it (a scanner's own ADC is in the PACS already): null otherwise. The patient
 * and study modules follow the SEG's rule (kept at import and the caller the owner or an admin).
 */
export async function exportComputedAdc(
  deps: { db: Db; store: VolumeStore; cpu: CpuPool; now?: () => number },
  viewer: Viewer,
  caseId: string,
): Promise<AdcSeriesExport | null> {
  const { db, store, cpu } = deps;
  const row = await findCase(db, viewer, caseId);
  if (!row) throw notFound('No such case');
  const origin = await findCaseDicom(db, caseId);
  const source = origin?.series.find((s) => s.role === 'adc');
  if (!origin || !source || source.how !== 'computed') return null;
  const adc = await db
    .selectFrom('case_volumes as cv')
    .innerJoin('volumes as v', 'v.id', 'cv.volume_id')
    .select('v.sha256')
    .where('cv.case_id', '=', caseId)
    .where('cv.role', '=', 'adc')
    .executeTakeFirst();
  if (!adc) throw notFound('The ADC file is missing');
  const patientVisible = viewer.admin || (row.owner_id !== null && row.owner_id === viewer.userId);
  const built = await cpu.run(buildAdcSeriesTask, {
    adc: await store.read(adc.sha256),
    studyInstanceUid: origin.studyInstanceUid,
    frameOfReferenceUid: origin.frameOfReferenceUid ?? source.frameOfReferenceUid,
    source,
    patient: patientVisible ? origin.patient : null,
    softwareVersion: VERSION,
    now: (deps.now ?? Date.now)(),
  });
  return { files: built.files, seriesInstanceUid: built.seriesInstanceUid };
}
