import { z } from 'zod';

const vec3 = z.tuple([z.number(), z.number(), z.number()]);
const ivec3 = z.tuple([z.number().int(), z.number().int(), z.number().int()]);

/** TP: a predicted lesion that overlaps a true one; FP: one that touches none; FN: a true lesion no prediction touches. */
export const LESION_STATUSES = ['TP', 'FP', 'FN'] as const;
export const lesionStatusSchema = z.enum(LESION_STATUSES);
export type LesionStatus = z.infer<typeof lesionStatusSchema>;

/**
 * One lesion: a 26-connected component of the mask (or, for an FN, of the ground truth). Voxel
 * coordinates are (i, j, k) on the DWI grid; world coordinates are the NIfTI's RAS+ millimetres.
 */
export const lesionSchema = z.object({
  /** 1-based, unique within the list: the mask's components first (largest first), then the missed true lesions. */
  id: z.number().int().min(1),
  /** Null when the case has no ground truth. */
  status: lesionStatusSchema.nullable(),
  voxels: z.number().int(),
  volumeMl: z.number(),
  centroidVoxel: vec3,
  centroidMm: vec3,
  /** A voxel of the lesion nearest its centroid (the centroid of a curved lesion may lie outside it). */
  seedVoxel: ivec3,
  bbox: z.object({ min: ivec3, max: ivec3 }),
  /** The patient's side: left or right of the head's midline (see the README's "Lesions"). */
  hemisphere: z.enum(['left', 'right', 'midline']),
  meanDwi: z.number(),
  /** In the case's ADC unit (`adcUnit`); null when the case has no ADC. */
  meanAdc: z.number().nullable(),
  minAdc: z.number().nullable(),
});
export type Lesion = z.infer<typeof lesionSchema>;

export const lesionListSchema = z.object({
  items: z.array(lesionSchema),
  /** The unit of meanAdc/minAdc: the case's own ADC unit, as found from its values. */
  adcUnit: z.enum(['1e-3', '1e-6']).nullable(),
  /** World x (mm, RAS+) of the head's midline the hemispheres are decided against. */
  midlineXMm: z.number(),
  counts: z.object({ tp: z.number().int(), fp: z.number().int(), fn: z.number().int(), total: z.number().int() }),
});
export type LesionList = z.infer<typeof lesionListSchema>;
