/** NIfTI facts both sides use. Nothing here touches Node or the DOM. */
import { z } from 'zod';

export const DATATYPES = {
  2: 'uint8',
  4: 'int16',
  8: 'int32',
  16: 'float32',
  64: 'float64',
  256: 'int8',
  512: 'uint16',
  768: 'uint32',
  // nibabel and SimpleITK write label masks as int64; read as float64 (exact below 2^53).
  1024: 'int64',
  1280: 'uint64',
} as const;

export type DatatypeCode = keyof typeof DATATYPES;
export type DatatypeName = (typeof DATATYPES)[DatatypeCode];

/** The header code of each datatype name (the inverse of DATATYPES). */
export const DATATYPE_CODES = Object.fromEntries(Object.entries(DATATYPES).map(([code, name]) => [name, Number(code)])) as Record<
  DatatypeName,
  number
>;

/** Names of the NIfTI datatypes we do not read, for error messages. */
export const UNSUPPORTED_DATATYPES: Record<number, string> = {
  1: 'binary (1 bit)',
  32: 'complex64',
  128: 'rgb24',
  1536: 'float128',
  1792: 'complex128',
  2048: 'complex256',
  2304: 'rgba32',
};

export const BYTES_PER_VOXEL: Record<DatatypeName, number> = {
  uint8: 1,
  int8: 1,
  int16: 2,
  uint16: 2,
  int32: 4,
  uint32: 4,
  float32: 4,
  float64: 8,
  int64: 8,
  uint64: 8,
};

/** A 4×4 affine, row-major: voxel (i, j, k, 1) → world millimetres. */
const affineRow = z.tuple([z.number(), z.number(), z.number(), z.number()]);
export const affineSchema = z.tuple([affineRow, affineRow, affineRow, affineRow]);
export type Affine = z.infer<typeof affineSchema>;

/**
 * The unit of an ADC map's values: 10⁻³ mm²/s (tissue ≈ 0.8, as many scanners and ISLES'22
 * export) or 10⁻⁶ mm²/s (tissue ≈ 800, the ISLES convention many models assume).
 */
export const adcUnitSchema = z.enum(['1e-3', '1e-6']);
export type AdcUnit = z.infer<typeof adcUnitSchema>;
export const ADC_UNIT_LABELS: Record<AdcUnit, string> = { '1e-3': '10⁻³ mm²/s', '1e-6': '10⁻⁶ mm²/s' };

/** The header facts of a stored volume, as the API reports them. */
export const volumeFactsSchema = z.object({
  dims: z.tuple([z.number().int(), z.number().int(), z.number().int()]),
  voxelSizeMm: z.tuple([z.number(), z.number(), z.number()]),
  datatype: z.enum(Object.values(DATATYPES) as [DatatypeName, ...DatatypeName[]]),
  affine: affineSchema,
  /** Frames in the file (4th dimension); a volume is read as one of them. */
  frames: z.number().int(),
  /** ADC volumes: the unit found from the data (null for other roles, or not yet known). */
  adcUnit: adcUnitSchema.nullish(),
});
export type VolumeFacts = z.infer<typeof volumeFactsSchema>;
