import type { StudyRole } from '../../shared/studies.js';
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

export type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;

export interface AppSettingsTable {
  key: string;
  value: ColumnType<unknown, string, string>;
  updated_at: Timestamp;
}
export type AppSetting = Selectable<AppSettingsTable>;
export type NewAppSetting = Insertable<AppSettingsTable>;
export type AppSettingUpdate = Updateable<AppSettingsTable>;

export type Role = 'user' | 'admin' | 'guest';

export interface UsersTable {
  id: Generated<string>;
  email: string;
  password_hash: string | null;
  role: ColumnType<Role, Role | undefined, Role>;
  disabled_at: Date | null;
  created_at: Timestamp;
  updated_at: Timestamp;
}
export type UserRow = Selectable<UsersTable>;

export interface SessionsTable {
  id: Generated<string>;
  user_id: string;
  token_hash: string;
  created_at: Timestamp;
  last_seen_at: Timestamp;
  expires_at: ColumnType<Date, Date | string, Date | string>;
  ip_address: string | null;
  user_agent: string | null;
}
export type SessionRow = Selectable<SessionsTable>;

export interface ApiTokensTable {
  id: Generated<string>;
  user_id: string;
  name: string;
  token_hash: string;
  created_at: Timestamp;
  last_used_at: Date | null;
  expires_at: Date | null;
  revoked_at: Date | null;
}
export type ApiTokenRow = Selectable<ApiTokensTable>;

export interface SignInFailuresTable {
  id: Generated<string>;
  email: string;
  created_at: Timestamp;
}

export type VolumeRole = 'dwi' | 'adc' | 'flair' | 'mask';
export type CaseSource = 'demo' | 'import' | 'upload';

export interface VolumesTable {
  id: Generated<string>;
  sha256: string;
  bytes: ColumnType<string, number | string, number | string>;
  dims: ColumnType<[number, number, number], string, string>;
  voxel_size_mm: ColumnType<[number, number, number], string, string>;
  datatype: string;
  affine: ColumnType<number[][], string, string>;
  frames: ColumnType<number, number | undefined, number>;
  /** ADC volumes: the unit of the values ('1e-3' | '1e-6' mm²/s); null otherwise. */
  adc_unit: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Timestamp;
}
export type VolumeRow = Selectable<VolumesTable>;

export interface MaskVersionsTable {
  id: Generated<string>;
  case_id: string;
  author_id: string;
  version: number;
  volume_id: string;
  job_id: string | null;
  note: ColumnType<string, string | undefined, string>;
  voxels: number;
  volume_ml: number;
  dice_vs_prediction: number | null;
  dice_vs_truth: number | null;
  /** JSON: the version's LesionList (null before #24). */
  lesions: ColumnType<unknown, string | null | undefined, string | null>;
  /** JSON: the version's MaskProvenance (null before #24). */
  provenance: ColumnType<unknown, string | null | undefined, string | null>;
  created_at: Timestamp;
}
export type MaskVersionRow = Selectable<MaskVersionsTable>;

export interface CasesTable {
  id: Generated<string>;
  owner_id: string | null;
  name: string;
  source: CaseSource;
  subject_id: string | null;
  created_at: Timestamp;
}
export type CaseRow = Selectable<CasesTable>;

/** A DICOM-origin case's source facts (dicom/origin.ts): one row per case, gone with it. */
export interface CaseDicomTable {
  case_id: string;
  study_instance_uid: string;
  frame_of_reference_uid: string | null;
  /** JSON: the series each role came from, with its SOP instances per slice (StoredDicomSeries[]). */
  series: ColumnType<unknown, string, string>;
  /** JSON: the patient and study modules; null unless DICOM_KEEP_PATIENT=true at import. */
  patient: ColumnType<unknown, string | null | undefined, string | null>;
  created_at: Timestamp;
}

export type PacsPushStatus = 'queued' | 'running' | 'succeeded' | 'failed';

/** A DICOM SEG sent to the PACS (pacs/push.ts): what users see of the durable job. */
export interface PacsPushesTable {
  id: Generated<string>;
  owner_id: string;
  case_id: string;
  job_id: string | null;
  mask_version_id: string | null;
  status: ColumnType<PacsPushStatus, PacsPushStatus | undefined, PacsPushStatus>;
  attempts: ColumnType<number, number | undefined, number>;
  error: string | null;
  study_instance_uid: string | null;
  series_instance_uid: string | null;
  sop_instance_uid: string | null;
  /** The derived ADC series stored with the SEG (only when the import computed the ADC). */
  adc_series_instance_uid: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Timestamp;
  finished_at: Date | null;
}
export type PacsPushRow = Selectable<PacsPushesTable>;

export interface CaseVolumesTable {
  case_id: string;
  role: VolumeRole;
  volume_id: string;
}

export type JobStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'cancelled';

export interface JobsTable {
  id: Generated<string>;
  owner_id: string;
  case_id: string;
  model_ids: ColumnType<string[], string, string>;
  status: ColumnType<JobStatus, JobStatus | undefined, JobStatus>;
  progress: ColumnType<number, number | undefined, number>;
  message: ColumnType<string, string | undefined, string>;
  attempts: ColumnType<number, number | undefined, number>;
  error: string | null;
  result: ColumnType<unknown, string | null | undefined, string | null>;
  version: ColumnType<number, number | undefined, number>;
  cancel_requested: ColumnType<boolean, boolean | undefined, boolean>;
  idempotency_key: string | null;
  queue_job_id: string | null;
  created_at: Timestamp;
  started_at: Date | null;
  finished_at: Date | null;
  expires_at: ColumnType<Date, Date | string, Date | string>;
  /** The study run that queued this job (admitted apart from single jobs, at a lower priority); null for single jobs. */
  study_run_id: ColumnType<string | null, string | null | undefined, string | null>;
}
export type JobRow = Selectable<JobsTable>;

export interface JobVolumesTable {
  job_id: string;
  name: string;
  volume_id: string;
}

/** A named set of cases (#27); what members may do is in study_members. */
export interface StudiesTable {
  id: Generated<string>;
  name: string;
  description: Generated<string>;
  created_by: string | null;
  created_at: Timestamp;
}
export type StudyRow = Selectable<StudiesTable>;

export interface StudyMembersTable {
  study_id: string;
  user_id: string;
  role: StudyRole;
  added_at: Timestamp;
}

export interface StudyCasesTable {
  study_id: string;
  case_id: string;
  added_by: string | null;
  added_at: Timestamp;
}

/** A model run over a study's cases (#27): what was asked; its progress is derived from its jobs. */
export interface StudyRunsTable {
  id: Generated<string>;
  study_id: string;
  model_id: string;
  created_by: string | null;
  rerun: ColumnType<boolean, boolean | undefined, boolean>;
  cancel_requested: ColumnType<boolean, boolean | undefined, boolean>;
  created_at: Timestamp;
}
export type StudyRunRow = Selectable<StudyRunsTable>;

/** A run's row per case: the job that answers it (queued by the run, or an earlier result reused). */
export interface StudyRunJobsTable {
  run_id: string;
  case_id: string;
  job_id: string | null;
  reused: ColumnType<boolean, boolean | undefined, boolean>;
}

export interface Database {
  study_runs: StudyRunsTable;
  study_run_jobs: StudyRunJobsTable;
  jobs: JobsTable;
  job_volumes: JobVolumesTable;
  volumes: VolumesTable;
  mask_versions: MaskVersionsTable;
  cases: CasesTable;
  case_volumes: CaseVolumesTable;
  case_dicom: CaseDicomTable;
  studies: StudiesTable;
  study_members: StudyMembersTable;
  study_cases: StudyCasesTable;
  pacs_pushes: PacsPushesTable;
  app_settings: AppSettingsTable;
  users: UsersTable;
  sessions: SessionsTable;
  api_tokens: ApiTokensTable;
  sign_in_failures: SignInFailuresTable;
}
