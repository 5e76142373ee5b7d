import type { Migration } from 'kysely/migration';
import * as m20261122_100000_init from './20261122_100000_init.js';
import * as m20261122_110000_auth from './20261122_110000_auth.js';
import * as m20261122_120000_cases from './20261122_120000_cases.js';
import * as m20261122_130000_jobs from './20261122_130000_jobs.js';
import * as m20261123_100000_adc_unit from './20261123_100000_adc_unit.js';
import * as m20261123_110000_mask_versions from './20261123_110000_mask_versions.js';
import * as m20261201_100000_lesions from './20261201_100000_lesions.js';
import * as m20261202_100000_case_dicom from './20261202_100000_case_dicom.js';
import * as m20261202_150000_credential_changes from './20261202_150000_credential_changes.js';
import * as m20261202_200000_studies from './20261202_200000_studies.js';
import * as m20261202_210000_pacs_pushes from './20261202_210000_pacs_pushes.js';
import * as m20261203_100000_fleet_limits from './20261203_100000_fleet_limits.js';
import * as m20261204_100000_study_runs from './20261204_100000_study_runs.js';
import * as m20261205_100000_pacs_push_adc from './20261205_100000_pacs_push_adc.js';

/**
 * Every migration, by name. A static list (rather than reading the folder) works the same from
 * TypeScript sources and from the compiled build; names sort in the order they run.
 */
export const migrations: Record<string, Migration> = {
  '20261122_100000_init': m20261122_100000_init,
  '20261122_110000_auth': m20261122_110000_auth,
  '20261122_120000_cases': m20261122_120000_cases,
  '20261122_130000_jobs': m20261122_130000_jobs,
  '20261123_100000_adc_unit': m20261123_100000_adc_unit,
  '20261123_110000_mask_versions': m20261123_110000_mask_versions,
  '20261201_100000_lesions': m20261201_100000_lesions,
  '20261202_100000_case_dicom': m20261202_100000_case_dicom,
  '20261202_150000_credential_changes': m20261202_150000_credential_changes,
  '20261202_200000_studies': m20261202_200000_studies,
  '20261202_210000_pacs_pushes': m20261202_210000_pacs_pushes,
  '20261203_100000_fleet_limits': m20261203_100000_fleet_limits,
  '20261204_100000_study_runs': m20261204_100000_study_runs,
  '20261205_100000_pacs_push_adc': m20261205_100000_pacs_push_adc,
};
