import { z } from 'zod';
import { plainText } from './text.js';
import { caseDicomSchema } from './dicom-origin.js';
import { volumeFactsSchema } from './nifti.js';

export const VOLUME_ROLES = ['dwi', 'adc', 'flair', 'mask'] as const;
export const volumeRoleSchema = z.enum(VOLUME_ROLES);
export type VolumeRole = z.infer<typeof volumeRoleSchema>;
export const caseSourceSchema = z.enum(['demo', 'import', 'upload']);
export type CaseSource = z.infer<typeof caseSourceSchema>;

/** How messages name each role. */
export const ROLE_LABELS: Record<VolumeRole, string> = { dwi: 'DWI', adc: 'ADC', flair: 'FLAIR', mask: 'Mask' };

export const listCasesSchema = z
  .object({
    search: plainText('The search').trim().max(100).optional(),
    cursor: z.uuid().optional(),
    limit: z.number().int().min(1).max(100).default(50),
  })
  .optional();

export const caseIdSchema = z.object({ id: z.uuid({ message: 'Not a valid case id' }) });

export const caseNameSchema = plainText('The case name').trim().min(1, { message: 'Give the case a name' }).max(200);

/** A stored volume as the API returns it; `url` is a short-lived signed link to the .nii.gz. */
export const volumeDescriptorSchema = volumeFactsSchema.extend({
  id: z.uuid(),
  role: volumeRoleSchema,
  sha256: z.string(),
  bytes: z.number().int(),
  url: z.string(),
  /** The same file as an attachment, with a name a person can keep (`<case>_corrected_v3.nii.gz`). */
  downloadUrl: z.string(),
});
export type VolumeDescriptor = z.infer<typeof volumeDescriptorSchema>;

export const caseSummarySchema = z.object({
  id: z.uuid(),
  name: z.string(),
  source: caseSourceSchema,
  subjectId: z.string().nullable(),
  demo: z.boolean(),
  owned: z.boolean(),
  roles: z.array(volumeRoleSchema),
  createdAt: z.string(),
});
export type CaseSummary = z.infer<typeof caseSummarySchema>;

export const caseDetailSchema = caseSummarySchema.extend({
  volumes: z.array(volumeDescriptorSchema),
  /** A case imported from DICOM: the UIDs a DICOM SEG references (and, when kept, the patient for its owner). Absent otherwise. */
  dicom: caseDicomSchema.optional(),
});
export type CaseDetail = z.infer<typeof caseDetailSchema>;

export const casePageSchema = z.object({ items: z.array(caseSummarySchema), nextCursor: z.uuid().nullable() });
