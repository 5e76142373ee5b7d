import { z } from 'zod';
import { segSourceSchema } from './dicom.js';
import { plainText } from './text.js';

/** QIDO-RS filters: all optional; a date is `YYYYMMDD` or a range `YYYYMMDD-YYYYMMDD`. */
export const pacsSearchSchema = z
  .strictObject({
    patientId: plainText('patientId').trim().min(1).max(64).optional(),
    studyDate: z
      .string()
      .regex(/^\d{8}(-\d{8})?$|^-\d{8}$|^\d{8}-$/, { error: 'studyDate: YYYYMMDD, or a range YYYYMMDD-YYYYMMDD' })
      .optional(),
    studyInstanceUid: z
      .string()
      .regex(/^[0-9.]{1,64}$/, { error: 'studyInstanceUid: a DICOM UID (digits and dots)' })
      .optional(),
    limit: z.number().int().min(1).max(200).default(50),
  })
  .optional()
  .default({ limit: 50 });

export const pacsStudyViewSchema = z.object({
  studyInstanceUid: z.string(),
  studyDate: z.string().nullable(),
  studyDescription: z.string().nullable(),
  modalities: z.array(z.string()),
  series: z.number().int().nullable(),
  instances: z.number().int().nullable(),
});
export type PacsStudyView = z.infer<typeof pacsStudyViewSchema>;

export const pacsPullSchema = z.strictObject({
  studyInstanceUid: z.string().regex(/^[0-9.]{1,64}$/, { error: 'studyInstanceUid: a DICOM UID (digits and dots)' }),
  name: plainText('name').trim().min(1).max(200).optional(),
  dryRun: z.boolean().optional(),
});

/** What to send: a job's mask (`jobId`) or a corrected version (`maskVersionId`), exactly one (an object for REST's sake). */
export const pacsPushInputSchema = z
  .strictObject({
    jobId: z.uuid({ error: 'jobId: expected a job id (a UUID)' }).optional(),
    maskVersionId: z.uuid({ error: 'maskVersionId: expected a mask version id (a UUID)' }).optional(),
  })
  .refine((v) => (v.jobId === undefined) !== (v.maskVersionId === undefined), {
    error: 'Name what to send: a jobId (its mask) or a maskVersionId (a corrected version), not both',
  });

export const pacsPushStatusSchema = z.enum(['queued', 'running', 'succeeded', 'failed']);

export const pacsPushSchema = z.object({
  id: z.string(),
  caseId: z.string(),
  source: segSourceSchema,
  status: pacsPushStatusSchema,
  attempts: z.number().int(),
  /** The PACS's last answer when it refused or could not be reached (while retrying too). */
  error: z.string().nullable(),
  studyInstanceUid: z.string().nullable(),
  seriesInstanceUid: z.string().nullable(),
  sopInstanceUid: z.string().nullable(),
  /** The computed ADC sent with the SEG as a derived MR series (null when the ADC is the scanner's, or not sent yet). */
  adcSeriesInstanceUid: z.string().nullable(),
  createdAt: z.string(),
  finishedAt: z.string().nullable(),
});
export type PacsPush = z.infer<typeof pacsPushSchema>;
