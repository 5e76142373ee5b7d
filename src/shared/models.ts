import { z } from 'zod';

export const modelInputRoleSchema = z.enum(['dwi', 'adc', 'flair']);

export const preprocessingSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('none') }),
  /** (x - mean) / std over the head (voxels above 10% of the 99.5th percentile). */
  z.object({ kind: z.literal('zscore') }),
  /** (x - median) / (1.4826 · MAD) over the head: a z-score a lesion's own bright voxels cannot inflate. */
  z.object({ kind: z.literal('robustZscore') }),
  /** x * factor + offset. */
  z.object({ kind: z.literal('scale'), factor: z.number(), offset: z.number().default(0) }),
]);

/** A model folder's manifest.json. */
export const manifestSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9._-]{1,63}$/, 'lowercase letters, digits, dot, dash, underscore'),
    name: z.string().min(1).max(120),
    version: z.string().min(1).max(40),
    /** The method, how it was built or trained, intended use and limits. */
    description: z.string().min(20),
    kind: z.enum(['rule-based', 'trained']),
    /** Input roles in channel order. */
    inputs: z.array(modelInputRoleSchema).min(1).max(3),
    preprocessing: z.array(preprocessingSchema),
    /** Sliding-window patch size (x, y, z) in voxels; null runs the whole volume at once. */
    patchSize: z.tuple([z.number().int().min(8), z.number().int().min(8), z.number().int().min(1)]).nullable(),
    /**
     * Axis order of the network's spatial dims. `xyz` (nibabel/PyTorch: tensor [N, C, X, Y, Z],
     * z fastest) is what models trained in Python expect; `zyx` matches NIfTI's memory order.
     */
    axisOrder: z.enum(['xyz', 'zyx']).default('xyz'),
    /** Fraction of the patch shared by neighbouring windows. */
    overlap: z.number().min(0).max(0.9).default(0.5),
    output: z.object({
      /** What the network's output is: logits for a sigmoid or softmax, or already a probability. */
      activation: z.enum(['sigmoid', 'softmax', 'none']),
      /** With softmax: the channel holding the lesion class. */
      lesionClass: z.number().int().min(0).default(1),
    }),
    threshold: z.number().gt(0).lt(1),
    /** The unit the model's ADC channel expects; the pipeline converts what the case has. */
    adcUnit: z.enum(['1e-3', '1e-6']).default('1e-6'),
    /** Connected components (26-neighbourhood) smaller than this are dropped. */
    minLesionMl: z.number().min(0).default(0),
  })
  .refine((m) => m.preprocessing.length === m.inputs.length, {
    message: 'preprocessing must have one entry per input',
    path: ['preprocessing'],
  });

export type ModelManifest = z.infer<typeof manifestSchema>;

/** The model a job runs when it names none (listed first by `models.list`). */
export const DEFAULT_MODEL_ID = 'adc-dwi-v2';

/**
 * An interactive model's manifest.json (`kind: "interactive"`): a network that takes the image
 * around a click plus guidance channels and answers the mask there — the DeepGrow/DeepEdit
 * convention. Its input tensor's channels, in order: the image `inputs` (each preprocessed as
 * listed), then the positive and the negative guidance (a Gaussian of `prompts.sigmaMm` around
 * each click, peak 1, the maximum where clicks overlap), then — with `previousMask` — the mask
 * it is refining (0/1). The crop is a box of `cropMm` around the clicks; the output, after
 * `output.activation`, at or above `threshold` is the mask inside the crop (pasted back in place).
 */
export const interactiveManifestSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9._-]{1,63}$/, 'lowercase letters, digits, dot, dash, underscore'),
    name: z.string().min(1).max(120),
    version: z.string().min(1).max(40),
    description: z.string().min(20),
    kind: z.literal('interactive'),
    /** How it was made: a fixed rule, or a trained network. */
    method: z.enum(['rule-based', 'trained']),
    inputs: z.array(modelInputRoleSchema).min(1).max(3),
    preprocessing: z.array(preprocessingSchema),
    adcUnit: z.enum(['1e-3', '1e-6']).default('1e-6'),
    prompts: z.object({
      encoding: z.literal('gaussian'),
      /** The guidance Gaussian's sigma in mm. */
      sigmaMm: z.number().positive().max(50),
    }),
    /** Whether the mask being refined is given as the last channel. */
    previousMask: z.boolean(),
    /** The crop around the clicks, mm per axis (x, y, z): the model sees only this box. */
    cropMm: z.tuple([z.number().positive(), z.number().positive(), z.number().positive()]),
    axisOrder: z.enum(['xyz', 'zyx']).default('xyz'),
    output: z.object({ activation: z.enum(['sigmoid', 'none']) }),
    threshold: z.number().gt(0).lt(1),
  })
  .refine((m) => m.preprocessing.length === m.inputs.length, {
    message: 'preprocessing must have one entry per input',
    path: ['preprocessing'],
  });
export type InteractiveManifest = z.infer<typeof interactiveManifestSchema>;

/** The interactive model refine uses when it names none. */
export const DEFAULT_INTERACTIVE_MODEL_ID = 'click-grow-v1';

/** A model as `models.list` returns it. */
export const modelInfoSchema = z.object({
  id: z.string(),
  name: z.string(),
  version: z.string(),
  description: z.string(),
  /** Segmentation models: how they were made; `interactive` for click-refinement models (see `method`). */
  kind: z.enum(['rule-based', 'trained', 'interactive']),
  /** How it was made (for segmentation models, the same as `kind`). */
  method: z.enum(['rule-based', 'trained']),
  inputs: z.array(modelInputRoleSchema),
  patchSize: z.tuple([z.number().int(), z.number().int(), z.number().int()]).nullable(),
});
export type ModelInfo = z.infer<typeof modelInfoSchema>;

/** ISLES'22 metrics of a job's mask (against the case's ground truth where it has one). */
export const segmentationMetricsSchema = z.object({
  /** Null when the case has no ground-truth mask. */
  dice: z.number().nullable(),
  predictedMl: z.number(),
  trueMl: z.number().nullable(),
  absVolumeDiffMl: z.number().nullable(),
  lesionCountPredicted: z.number().int(),
  lesionCountTrue: z.number().int().nullable(),
  lesionF1: z.number().nullable(),
  /** |true lesion count − predicted lesion count| (the challenge's absolute lesion count difference). */
  lesionCountDiff: z.number().int().nullable(),
});
export type SegmentationMetrics = z.infer<typeof segmentationMetricsSchema>;
