import { z } from 'zod';
import { caseDetailSchema } from './cases.js';
import { DICOM_ROLES } from './dicom-origin.js';
import { plainText } from './text.js';

export { DICOM_ROLES, type DicomRole } from './dicom-origin.js';

/** What a converted series looks like, from its b-values and sequence facts. */
export const seriesKindSchema = z.enum(['diffusion', 'trace', 'adc', 'flair', 'other']);
export type SeriesKind = z.infer<typeof seriesKindSchema>;

/** A series is named by its number (`701`) or its SeriesInstanceUID; `computed` / `none` are the special choices. */
const seriesRef = plainText('A series choice').trim().min(1).max(80);

/**
 * The caller's choice of series per role (the `series` field of an import, as JSON): a series
 * number or SeriesInstanceUID; for `adc` also `computed` (from the diffusion series), for `flair`
 * also `none`. Roles left out are chosen as the import would.
 */
export const seriesChoiceSchema = z.strictObject(
  { dwi: seriesRef.optional(), adc: seriesRef.optional(), flair: seriesRef.optional() },
  { error: 'The series choice names only dwi, adc and flair' },
);
export type SeriesChoice = z.infer<typeof seriesChoiceSchema>;

/** One series of the study as the import saw it, and what became of it. */
export const dicomSeriesSchema = z.object({
  seriesInstanceUid: z.string(),
  seriesNumber: z.number().nullable(),
  description: z.string(),
  kind: seriesKindSchema,
  /** dcm2niix's output grid (x, y, z) and volumes, or null when it produced none. */
  dims: z.array(z.number()).nullable(),
  volumes: z.number(),
  /** Distinct b-values (s/mm²), rounded; empty for non-diffusion series. */
  bValues: z.array(z.number()),
  images: z.number(),
  role: z.enum(DICOM_ROLES).nullable(),
  /** Why it has (or has not) a role, in a sentence. */
  reason: z.string(),
});
export type DicomSeries = z.infer<typeof dicomSeriesSchema>;

export const roleSourceSchema = z.object({
  seriesInstanceUid: z.string(),
  seriesNumber: z.number().nullable(),
  /** `computed`: trace or ADC computed here from the diffusion series; `scanner`: the scanner's own series used as it is. */
  how: z.enum(['computed', 'scanner']),
  reason: z.string(),
});
export type RoleSource = z.infer<typeof roleSourceSchema>;

/** What an import found and did: every series, the role each became, warnings, and the files skipped. */
export const dicomImportSchema = z.object({
  studyInstanceUid: z.string(),
  series: z.array(dicomSeriesSchema),
  roles: z.object({ dwi: roleSourceSchema, adc: roleSourceSchema, flair: roleSourceSchema.nullable() }),
  /** The converter's warnings (and ours) a person should read; file names are the upload's own. */
  warnings: z.array(z.string()),
  /** Files not used: not DICOM, not an MR image (reports, presentation states), a DICOMDIR. */
  skipped: z.array(z.object({ file: z.string(), reason: z.string() })),
  /** How long the conversion took, ms (dcm2niix alone, and the whole import), and the import's phases (wall clock, ms; they overlap where they run side by side). */
  timings: z.object({
    convertMs: z.number(),
    totalMs: z.number(),
    phasesMs: z
      .object({
        unpack: z.number(),
        inflate: z.number(),
        scan: z.number(),
        dcm2niix: z.number(),
        dcm2niixInputs: z.number(),
        roles: z.number(),
        store: z.number(),
      })
      .partial()
      .optional(),
  }),
});
export type DicomImport = z.infer<typeof dicomImportSchema>;

/** `cases.uploadDicom`'s answer: the case (null on a dry run) and the import report. */
export const dicomUploadResultSchema = z.object({ case: caseDetailSchema.nullable(), import: dicomImportSchema });
export type DicomUploadResult = z.infer<typeof dicomUploadResultSchema>;

/** What a DICOM SEG is made from: a job's mask (the model's result) or a saved corrected version. */
export const segSourceSchema = z.union([
  z.strictObject({ jobId: z.uuid({ error: 'jobId: expected a job id (a UUID)' }) }),
  z.strictObject({ maskVersionId: z.uuid({ error: 'maskVersionId: expected a mask version id (a UUID)' }) }),
]);
export type SegSource = z.infer<typeof segSourceSchema>;

/** A DICOM SEG as `masks.exportSeg` returns it over tRPC (REST and the SDK download the bytes from `…/seg.dcm`). */
export const segExportSchema = z.object({
  fileName: z.string(),
  caseId: z.string(),
  studyInstanceUid: z.string(),
  seriesInstanceUid: z.string(),
  sopInstanceUid: z.string(),
  frames: z.number().int(),
  algorithmType: z.enum(['AUTOMATIC', 'SEMIAUTOMATIC', 'MANUAL']),
  /** The Part 10 file, base64. */
  data: z.string(),
});
export type SegExportView = z.infer<typeof segExportSchema>;
