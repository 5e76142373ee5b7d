import { z } from 'zod';
import type { VolumeDescriptor } from './cases.js';
import type { SegmentationMetrics } from './models.js';

export const JOB_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'cancelled'] as const;
export type JobStatus = (typeof JOB_STATUSES)[number];
export const TERMINAL_STATUSES: readonly JobStatus[] = ['succeeded', 'failed', 'cancelled'];

export const createJobSchema = z.object({
  caseId: z.uuid({ message: 'Not a valid case id' }),
  modelIds: z.array(z.string().min(1).max(64)).min(1).max(5).optional(),
  /** A client-generated key: the same key returns the same job, so a retried create is safe. */
  idempotencyKey: z.string().min(8).max(100).optional(),
});

export const jobIdSchema = z.object({ id: z.uuid({ message: 'Not a valid job id' }) });

export const listJobsSchema = z
  .object({
    caseId: z.uuid().optional(),
    cursor: z.uuid().optional(),
    limit: z.number().int().min(1).max(100).default(50),
  })
  .optional();

export const onProgressSchema = z.object({
  id: z.uuid({ message: 'Not a valid job id' }),
  /** Set by the SSE client on reconnect: events up to this version were seen. */
  lastEventId: z.string().max(40).nullish(),
});

export interface JobResultView {
  mask: VolumeDescriptor;
  perModel: { modelId: string; mask: VolumeDescriptor }[];
  metrics: SegmentationMetrics;
  /** What the pipeline noticed about the inputs, e.g. "ADC in 10⁻³ mm²/s, scaled ×1000 to the model's 10⁻⁶ mm²/s". */
  notes: string[];
}

export interface JobView {
  id: string;
  caseId: string;
  modelIds: string[];
  status: JobStatus;
  progress: number;
  message: string;
  attempts: number;
  createdAt: string;
  startedAt: string | null;
  finishedAt: string | null;
  expiresAt: string;
  error: string | null;
  result: JobResultView | null;
}

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
