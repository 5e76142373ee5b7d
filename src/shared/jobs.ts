import { z } from 'zod';
import { plainText } from './text.js';
import { volumeDescriptorSchema } from './cases.js';
import { lesionListSchema } from './lesions.js';
import { segmentationMetricsSchema } from './models.js';

import { JOB_STATUSES, type JobStatus } from './job-status.js';

export { JOB_STATUSES, type JobStatus, TERMINAL_STATUSES, isTerminal } from './job-status.js';
export const jobStatusSchema = z.enum(JOB_STATUSES);

export const createJobSchema = z.object({
  caseId: z.uuid({ message: 'Not a valid case id' }),
  modelIds: z.array(z.string().min(1).max(64)).min(1).max(5).optional(),
  /** A client-generated key: the same key returns the same job, so a retried create is safe. */
  idempotencyKey: plainText('The idempotency key').min(8).max(100).optional(),
});

export const jobIdSchema = z.object({ id: z.uuid({ message: 'Not a valid job id' }) });

export const listJobsSchema = z
  .object({
    caseId: z.uuid().optional(),
    cursor: z.uuid().optional(),
    limit: z.number().int().min(1).max(100).default(50),
  })
  .optional();

/** The largest job version (a PostgreSQL integer): no event id the server sends is above it. */
export const MAX_EVENT_ID = 2_147_483_647;
const EVENT_ID_MESSAGE = `lastEventId must be an event id this server sent: a whole number from 0 to ${MAX_EVENT_ID}`;

export const onProgressSchema = z.object({
  id: z.uuid({ message: 'Not a valid job id' }),
  /**
   * Set by the SSE client on reconnect (or the Last-Event-ID header): events up to this version
   * were seen. Digits only and bounded: `Number()` would take "Infinity", "1e99" or "-1" and
   * make a stream that skips every event and never ends.
   */
  lastEventId: z
    .string()
    .regex(/^\d{1,10}$/, { message: EVENT_ID_MESSAGE })
    .transform(Number)
    .refine((n) => n <= MAX_EVENT_ID, { message: EVENT_ID_MESSAGE })
    .nullish(),
});

export const jobResultViewSchema = z.object({
  mask: volumeDescriptorSchema,
  perModel: z.array(z.object({ modelId: z.string(), mask: volumeDescriptorSchema })),
  metrics: segmentationMetricsSchema,
  /** What the pipeline noticed about the inputs, e.g. "ADC in 10⁻³ mm²/s, scaled ×1000 to the model's 10⁻⁶ mm²/s". */
  notes: z.array(z.string()),
  /** Every lesion of the mask, with TP/FP/FN against the ground truth; null for results made before lesion lists existed. */
  lesions: lesionListSchema.nullable(),
});
export type JobResultView = z.infer<typeof jobResultViewSchema>;

export const jobViewSchema = z.object({
  id: z.uuid(),
  caseId: z.uuid(),
  modelIds: z.array(z.string()),
  status: jobStatusSchema,
  progress: z.number(),
  message: z.string(),
  attempts: z.number().int(),
  createdAt: z.string(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
  expiresAt: z.string(),
  error: z.string().nullable(),
  result: jobResultViewSchema.nullable(),
});
export type JobView = z.infer<typeof jobViewSchema>;

export const jobPageSchema = z.object({ items: z.array(jobViewSchema), nextCursor: z.uuid().nullable() });

/** What the progress subscription sends: the job's live state. */
export interface JobProgressEvent {
  id: string;
  status: JobStatus;
  progress: number;
  message: string;
  version: number;
  error: string | null;
  /** Server time (ms since epoch) the change was published; absent on the first snapshot of a subscription. */
  at?: number;
}
