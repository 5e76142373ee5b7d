import { z } from 'zod';
import { volumeDescriptorSchema } from './cases.js';
import { lesionListSchema } from './lesions.js';
import { maskProvenanceSchema } from './refine.js';

/** The non-file fields of `masks.save` (multipart form data, like `cases.upload`). */
export const saveMaskFieldsSchema = z.object({
  caseId: z.uuid({ message: 'Not a valid case id' }),
  jobId: z.uuid({ message: 'Not a valid job id' }).optional(),
  note: z
    .string()
    .trim()
    .max(500, { message: 'Keep the note under 500 characters' })
    .refine(
      (s) =>
        ![...s].some((ch) => {
          const c = ch.charCodeAt(0);
          return c < 32 && c !== 9 && c !== 10 && c !== 13;
        }),
      { message: 'The note contains control characters' },
    )
    .default(''),
  /** What the editor did (the server writes the provenance note from these and its own click count). */
  rejectedLesions: z.coerce.number().int().min(0).max(100_000).default(0),
  penStrokes: z.coerce.number().int().min(0).max(1_000_000).default(0),
});

export const listMasksSchema = z.object({ caseId: z.uuid({ message: 'Not a valid case id' }) });
export const maskIdSchema = z.object({ id: z.uuid({ message: 'Not a valid mask id' }) });

/** A saved corrected mask: the next version for that case and author. */
export const maskVersionViewSchema = z.object({
  id: z.uuid(),
  caseId: z.uuid(),
  version: z.number().int(),
  note: z.string(),
  jobId: z.uuid().nullable(),
  createdAt: z.string(),
  author: z.object({ id: z.uuid(), email: z.string() }),
  voxels: z.number().int(),
  volumeMl: z.number(),
  volume: volumeDescriptorSchema,
  /** Dice against the job's prediction it started from (null without a job). */
  diceVsPrediction: z.number().nullable(),
  /** Dice against the case's ground truth (null when the case has none). */
  diceVsGroundTruth: z.number().nullable(),
  /** The version's lesions (TP/FP/FN against the ground truth); null for versions saved before lesion lists existed. */
  lesions: lesionListSchema.nullable(),
  /** What the version was made from and how (written by the server at save); null for older versions. */
  provenance: maskProvenanceSchema.nullable(),
});
export type MaskVersionView = z.infer<typeof maskVersionViewSchema>;

export const maskPageSchema = z.object({ items: z.array(maskVersionViewSchema), nextCursor: z.null() });
