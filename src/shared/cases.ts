import { z } from 'zod';
import type { VolumeFacts } from './nifti.js';

export const VOLUME_ROLES = ['dwi', 'adc', 'flair', 'mask'] as const;
export const volumeRoleSchema = z.enum(VOLUME_ROLES);
export type VolumeRole = z.infer<typeof volumeRoleSchema>;
export type CaseSource = 'demo' | 'import' | 'upload';

/** How messages name each role. */
export const ROLE_LABELS: Record<VolumeRole, string> = { dwi: 'DWI', adc: 'ADC', flair: 'FLAIR', mask: 'Mask' };

export const listCasesSchema = z
  .object({
    search: z.string().trim().max(100).optional(),
    cursor: z.uuid().optional(),
    limit: z.number().int().min(1).max(100).default(50),
  })
  .optional();

export const caseIdSchema = z.object({ id: z.uuid({ message: 'Not a valid case id' }) });

export const caseNameSchema = z.string().trim().min(1, { message: 'Give the case a name' }).max(200);

/** A stored volume as the API returns it; `url` is a short-lived signed link to the .nii.gz. */
export interface VolumeDescriptor extends VolumeFacts {
  id: string;
  role: VolumeRole;
  sha256: string;
  bytes: number;
  url: string;
  /** The same file as an attachment, with a name a person can keep (`<case>_corrected_v3.nii.gz`). */
  downloadUrl: string;
}

export interface CaseSummary {
  id: string;
  name: string;
  source: CaseSource;
  subjectId: string | null;
  demo: boolean;
  owned: boolean;
  roles: VolumeRole[];
  createdAt: string;
}

export interface CaseDetail extends CaseSummary {
  volumes: VolumeDescriptor[];
}
