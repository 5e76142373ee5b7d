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
  /** (x - mean) / std over every voxel of the (cropped) volume: nnU-Net's ZScoreNormalization without a mask, MONAI's NormalizeIntensityd(nonzero=False). */
  z.object({ kind: z.literal('zscoreAll') }),
  /**
   * (x - mean) / std over the nonzero voxels only, zero outside them: nnU-Net's ZScoreNormalization
   * with `use_mask_for_norm` true, MONAI's NormalizeIntensityd(nonzero=True).
   */
  z.object({ kind: z.literal('zscoreNonzero') }),
  /**
   * Clip to [lower, upper], then (x - mean) / sd with dataset-wide values: nnU-Net's CTNormalization
   * (its plans' `foreground_intensity_properties_per_channel`: percentile_00_5, percentile_99_5, mean, std).
   */
  z.object({ kind: z.literal('clipZscore'), lower: z.number(), upper: z.number(), mean: z.number(), sd: z.number().positive() }),
  /** (x - min) / (max - min) over the volume, to [0, 1]: MONAI's ScaleIntensityd. */
  z.object({ kind: z.literal('rescale01') }),
]);

const mm3 = z.tuple([z.number().positive().max(20), z.number().positive().max(20), z.number().positive().max(20)]);

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
      /** Several lesion classes, merged (their probabilities summed after the activation); overrides lesionClass. */
      lesionClasses: z.array(z.number().int().min(0)).min(1).max(16).optional(),
      /** Which graph output (deep-supervision exports have several): by name, else by index (default the first). */
      name: z.string().min(1).max(200).optional(),
      index: z.number().int().min(0).max(15).default(0),
      /** The channel count the graph's output has (checked at load); default: taken from the graph. */
      classes: z.number().int().min(1).max(64).optional(),
    }),
    threshold: z.number().gt(0).lt(1),
    /** The unit the model's ADC channel expects; the pipeline converts what the case has. */
    adcUnit: z.enum(['1e-3', '1e-6']).default('1e-6'),
    /** Connected components (26-neighbourhood) smaller than this are dropped. */
    minLesionMl: z.number().min(0).default(0),

    // ---- manifest version 2 (#25): every field optional, its default today's behaviour ----
    /** 1 (today's fields only) or 2; informational — every v2 field has a default. */
    manifestVersion: z.union([z.literal(1), z.literal(2)]).default(1),
    /**
     * The voxel spacing (mm, x y z) the network was trained at: inputs are resampled to it
     * (trilinear) and the probability map back onto the DWI grid before thresholding. null: native.
     */
    spacingMm: mm3.nullable().default(null),
    /** Voxel orientation the network expects: volumes are reoriented (axes permuted and flipped from the affine, no interpolation) and back. */
    orientation: z.enum(['RAS', 'LPS', 'native']).default('native'),
    /** Crop to the bounding box of the nonzero voxels (of any input, plus a margin) first, paste the result back (nnU-Net crops to nonzero). */
    cropToForeground: z
      .object({ marginMm: z.number().min(0).max(100).default(0) })
      .nullable()
      .default(null),
    /**
     * How overlapping windows are blended: `interior` (today's: Gaussian-weighted, each window's
     * outer half-overlap dropped) or `gaussian` (nnU-Net's and MONAI's mode="gaussian": every
     * window's whole prediction weighted by a Gaussian of sigma = gaussianSigmaScale × patch).
     */
    blend: z.enum(['interior', 'gaussian']).default('interior'),
    /** The Gaussian's sigma as a fraction of the patch (nnU-Net 1/8; MONAI sigma_scale 0.125). */
    gaussianSigmaScale: z.number().gt(0).max(1).default(0.125),
    /**
     * Test-time mirroring: the spatial axes of the network's input tensor (0, 1, 2 after `axisOrder`)
     * to flip — nnU-Net's `allowed_mirroring_axes`; the probability is averaged over all 2^k combinations.
     */
    mirroring: z.array(z.number().int().min(0).max(2)).max(3).default([]),
    /** Input tensor element type (fp16 exports take float16). */
    inputType: z.enum(['float32', 'float16']).default('float32'),
    /** Model card: shown in `models.list` and the viewer's model picker. */
    card: z
      .object({
        trainedOn: z.string().max(500).optional(),
        intendedUse: z.string().max(500).optional(),
        limits: z.string().max(1000).optional(),
        citation: z.string().max(1000).optional(),
        licence: z.string().max(200).optional(),
      })
      .default({}),
  })
  .refine((m) => m.preprocessing.length === m.inputs.length, {
    message: 'preprocessing must have one entry per input',
    path: ['preprocessing'],
  })
  .refine((m) => new Set(m.mirroring).size === m.mirroring.length, { message: 'mirroring lists an axis twice', path: ['mirroring'] });

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
  /** The spacing inputs are resampled to (null: native), and the orientation they are turned to. */
  spacingMm: z.tuple([z.number(), z.number(), z.number()]).nullable(),
  orientation: z.enum(['RAS', 'LPS', 'native']),
  /** The output's channel count (1 for a sigmoid/probability map) and the lesion classes merged from it. */
  classes: z.number().int().nullable(),
  lesionClasses: z.array(z.number().int()),
  mirroring: z.array(z.number().int()),
  card: z.object({
    trainedOn: z.string().optional(),
    intendedUse: z.string().optional(),
    limits: z.string().optional(),
    citation: z.string().optional(),
    licence: z.string().optional(),
  }),
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
