import type { Kysely } from 'kysely';
import type { CaseDicom, DicomPatient } from '../../shared/dicom-origin.js';
import type { Database } from './tables.js';

type Db = Kysely<Database>;

/** What `case_dicom.series` holds per role (written by the DICOM import; see dicom/convert.ts). */
export interface StoredDicomSeriesRow {
  role: 'dwi' | 'adc' | 'flair';
  how: 'computed' | 'scanner';
  seriesInstanceUid: string;
  seriesNumber: number | null;
  sopClassUid: string;
  frameOfReferenceUid: string | null;
  geometry: Record<string, unknown>;
  slices: { imagePositionPatient: number[] | null; refs: { sopInstanceUid: string; frameNumber?: number }[] }[];
}

export async function insertCaseDicom(
  db: Db,
  row: {
    caseId: string;
    studyInstanceUid: string;
    frameOfReferenceUid: string | null;
    series: StoredDicomSeriesRow[];
    /** Only with DICOM_KEEP_PATIENT=true. */
    patient: DicomPatient | null;
  },
): Promise<void> {
  await db
    .insertInto('case_dicom')
    .values({
      case_id: row.caseId,
      study_instance_uid: row.studyInstanceUid,
      frame_of_reference_uid: row.frameOfReferenceUid,
      series: JSON.stringify(row.series),
      patient: row.patient ? JSON.stringify(row.patient) : null,
    })
    .execute();
}

/** The whole row, for code that builds DICOM objects referencing the case's sources (SEG export). */
export async function findCaseDicom(db: Db, caseId: string) {
  const row = await db
    .selectFrom('case_dicom')
    .select(['case_id', 'study_instance_uid', 'frame_of_reference_uid', 'series', 'patient'])
    .where('case_id', '=', caseId)
    .executeTakeFirst();
  if (!row) return undefined;
  return {
    caseId: row.case_id,
    studyInstanceUid: row.study_instance_uid,
    frameOfReferenceUid: row.frame_of_reference_uid,
    series: row.series as StoredDicomSeriesRow[],
    patient: (row.patient ?? null) as DicomPatient | null,
  };
}

/** A DICOM-origin case's facts as the API shows them; the patient only when the viewer may see it (owner, admin). */
export async function caseDicomView(db: Db, caseId: string, opts: { patientVisible: boolean }): Promise<CaseDicom | undefined> {
  const row = await findCaseDicom(db, caseId);
  if (!row) return undefined;
  return {
    studyInstanceUid: row.studyInstanceUid,
    frameOfReferenceUid: row.frameOfReferenceUid,
    series: row.series.map((s) => ({ role: s.role, seriesInstanceUid: s.seriesInstanceUid, seriesNumber: s.seriesNumber, how: s.how })),
    patient: opts.patientVisible ? row.patient : null,
  };
}
