import { z } from 'zod';
import type { VolumeDescriptor } from './cases.js';

/** The non-file fields of `masks.save` (multipart form data, like `cases.upload`). */
export const saveMaskFieldsSchema = z.object({
  caseId: z.uuid({ message: 'Not a valid case id' }),
  jobId: z.uuid({ message: 'Not a valid job id' }).optional(),
  note: z
    .string()
    .trim()
    .max(500, { message: 'Keep the note under 500 characters' })
    .refine((s) => ![...s].some((ch) => { const c = ch.charCodeAt(0); return c < 32 && c !== 9 && c !== 10 && c !== 13; }), { message: "The note contains control characters" })
    .default(''),
});

export const listMasksSchema = z.object({ caseId: z.uuid({ message: 'Not a valid case id' }) });
export const maskIdSchema = z.object({ id: z.uuid({ message: 'Not a valid mask id' }) });

/** A saved corrected mask: the next version for that case and author. */
export interface MaskVersionView {
  id: string;
  caseId: string;
  version: number;
  note: string;
  jobId: string | null;
  createdAt: string;
  author: { id: string; email: string };
  voxels: number;
  volumeMl: number;
  volume: VolumeDescriptor;
  /** Dice against the job's prediction it started from (null without a job). */
  diceVsPrediction: number | null;
  /** Dice against the case's ground truth (null when the case has none). */
  diceVsGroundTruth: number | null;
}
