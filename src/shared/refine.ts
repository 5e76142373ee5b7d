import { z } from 'zod';
import { lesionListSchema } from './lesions.js';

/** At most this many prompts in one refine call. */
export const MAX_REFINE_PROMPTS = 32;
/** The largest gzipped working mask a refine call takes (base64 text). */
export const MAX_WORKING_MASK_BASE64 = 8 * 1024 * 1024;

export const refinePromptSchema = z.object({
  /** (i, j, k) on the case's DWI grid. */
  voxel: z.tuple([z.number().int(), z.number().int(), z.number().int()]),
  /** A positive click adds what is there; a negative (shift-click) one removes it. */
  positive: z.boolean(),
});
export type RefinePrompt = z.infer<typeof refinePromptSchema>;

/** The mask a refinement starts from: a job's result, a saved version, or the editor's working mask. */
export const refineFromSchema = z.union([
  z.object({ jobId: z.uuid({ message: 'Not a valid job id' }) }).strict(),
  z.object({ versionId: z.uuid({ message: 'Not a valid mask version id' }) }).strict(),
  z
    .object({
      /** The working mask: uint8 0/1 voxels on the DWI grid (x fastest), gzipped, base64. */
      maskGz: z.base64({ message: 'maskGz must be base64' }).max(MAX_WORKING_MASK_BASE64, { message: 'The working mask is too large' }),
    })
    .strict(),
]);
export type RefineFrom = z.infer<typeof refineFromSchema>;

export const refineInputSchema = z.object({
  caseId: z.uuid({ message: 'Not a valid case id' }),
  from: refineFromSchema,
  prompts: z
    .array(refinePromptSchema)
    .min(1, { message: 'Give at least one click' })
    .max(MAX_REFINE_PROMPTS, { message: `At most ${MAX_REFINE_PROMPTS} clicks per refinement` }),
  /** An interactive model (`models.list`, kind "interactive"); the built-in one when absent. */
  modelId: z.string().min(1).max(64).optional(),
});
export type RefineInput = z.infer<typeof refineInputSchema>;

export const refineResultSchema = z.object({
  /** The new mask: uint8 0/1 voxels on the DWI grid (x fastest), gzipped, base64. */
  maskGz: z.string(),
  dims: z.tuple([z.number().int(), z.number().int(), z.number().int()]),
  voxels: z.number().int(),
  volumeMl: z.number(),
  /** The box of voxels that changed (inclusive), null when nothing did. */
  changed: z
    .object({
      min: z.tuple([z.number().int(), z.number().int(), z.number().int()]),
      max: z.tuple([z.number().int(), z.number().int(), z.number().int()]),
    })
    .nullable(),
  lesions: lesionListSchema,
  modelId: z.string(),
  /** Server time, for the curious and the benchmark: whether the case's volumes were decoded for this call. */
  timingsMs: z.object({ total: z.number(), prepare: z.number(), model: z.number() }),
  cached: z.boolean(),
});
export type RefineResult = z.infer<typeof refineResultSchema>;

export const endRefineSchema = z.object({ caseId: z.uuid({ message: 'Not a valid case id' }) });

export const maskProvenanceSchema = z.object({
  from: z.object({ kind: z.enum(['job', 'version', 'none']), id: z.string().nullable(), modelIds: z.array(z.string()) }),
  rejectedLesions: z.number().int(),
  clicksAdded: z.number().int(),
  clicksRemoved: z.number().int(),
  penStrokes: z.number().int(),
  /** One line a person reads: "Started from job … (adc-dwi-v2); 2 lesions rejected; 1 click added; 3 pen strokes". */
  summary: z.string(),
});
export type MaskProvenance = z.infer<typeof maskProvenanceSchema>;
