import { z } from 'zod';
import { plainText } from './text.js';
import { jobStatusSchema, onProgressSchema } from './jobs.js';
import { segmentationMetricsSchema } from './models.js';

/** What a member may do in a study: owner manages it; editor runs models and saves masks; viewer reads. */
export const STUDY_ROLES = ['owner', 'editor', 'viewer'] as const;
export const studyRoleSchema = z.enum(STUDY_ROLES);
export type StudyRole = z.infer<typeof studyRoleSchema>;

export const studyNameSchema = plainText('The study name').trim().min(1, { message: 'Give the study a name' }).max(200);
export const studyIdSchema = z.object({ id: z.uuid({ message: 'Not a valid study id' }) });

export const createStudySchema = z.object({
  name: studyNameSchema,
  description: plainText('The description').trim().max(2000).default(''),
});

export const studyMemberInputSchema = z.object({
  studyId: z.uuid({ message: 'Not a valid study id' }),
  email: z.email({ message: 'Not an email address' }).max(320),
  role: studyRoleSchema,
});

export const removeStudyMemberSchema = z.object({
  studyId: z.uuid({ message: 'Not a valid study id' }),
  userId: z.uuid({ message: 'Not a valid user id' }),
});

export const studyCasesInputSchema = z.object({
  studyId: z.uuid({ message: 'Not a valid study id' }),
  caseIds: z
    .array(z.uuid({ message: 'Not a valid case id' }))
    .min(1, { message: 'Name at least one case' })
    .max(1000),
});

export const studyMemberSchema = z.object({
  userId: z.uuid(),
  email: z.string(),
  role: studyRoleSchema,
  addedAt: z.string(),
});
export type StudyMember = z.infer<typeof studyMemberSchema>;

export const studySummarySchema = z.object({
  id: z.uuid(),
  name: z.string(),
  description: z.string(),
  /** The caller's role in it (an admin who is not a member: null). */
  role: studyRoleSchema.nullable(),
  cases: z.number().int(),
  members: z.number().int(),
  createdAt: z.string(),
});
export type StudySummary = z.infer<typeof studySummarySchema>;

export const studyCaseSchema = z.object({
  id: z.uuid(),
  name: z.string(),
  subjectId: z.string().nullable(),
  addedAt: z.string(),
});

export const studyDetailSchema = studySummarySchema.extend({
  memberList: z.array(studyMemberSchema),
  caseList: z.array(studyCaseSchema),
});
export type StudyDetail = z.infer<typeof studyDetailSchema>;

// ---- study runs --------------------------------------------------------------------------------

export const runStudySchema = z.object({
  studyId: z.uuid({ message: 'Not a valid study id' }),
  /** The model to run (the server's default model when left out). */
  modelId: z.string().min(1).max(64).optional(),
  /** Only these cases of the study (all of them when left out). */
  caseIds: z
    .array(z.uuid({ message: 'Not a valid case id' }))
    .min(1, { message: 'Name at least one case' })
    .max(5000)
    .optional(),
  /** Queue every case again, even those with a result of this model already. */
  rerun: z.boolean().default(false),
});

export const studyRunIdSchema = z.object({ id: z.uuid({ message: 'Not a valid run id' }) });
export const studyRunsListSchema = z.object({ studyId: z.uuid({ message: 'Not a valid study id' }) });

/** A run's state, derived from its jobs: running while any is queued or running; then cancelled, failed or succeeded by its jobs' ends. */
export const STUDY_RUN_STATUSES = ['running', 'succeeded', 'failed', 'cancelled'] as const;
export const studyRunStatusSchema = z.enum(STUDY_RUN_STATUSES);
export type StudyRunStatus = z.infer<typeof studyRunStatusSchema>;

export const studyRunSummarySchema = z.object({
  id: z.uuid(),
  studyId: z.uuid(),
  modelId: z.string(),
  createdAt: z.string(),
  /** Who started it (null once their account is gone). */
  createdBy: z.string().nullable(),
  rerun: z.boolean(),
  cancelRequested: z.boolean(),
  /** running (some job queued or running), else cancelled (some job was cancelled), failed (some job failed), succeeded. */
  status: studyRunStatusSchema,
  total: z.number().int(),
  queued: z.number().int(),
  running: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
  cancelled: z.number().int(),
  /** Cases answered by an earlier result of the same model instead of a new job. */
  reused: z.number().int(),
  /** Mean progress of the run's cases, 0–100: a finished case (succeeded, failed, cancelled) counts 100, a finished run is 100. */
  progress: z.number(),
  /** Mean wall time (start to end) of the succeeded jobs it ran (not the reused ones); null before one finished. */
  meanJobSeconds: z.number().nullable(),
  /** Time left: see estimateRunEta (studies/runs.ts); null while nothing finished yet, 0 when done. */
  etaSeconds: z.number().nullable(),
  /** Grows with every change of any of its jobs: the event id of its progress stream. */
  version: z.number().int(),
});
export type StudyRunSummary = z.infer<typeof studyRunSummarySchema>;

/** runs.page: a study's runs, newest first, `limit` at a time; `cursor` is the previous page's nextCursor. */
export const studyRunsPageSchema = z.object({
  studyId: z.uuid({ message: 'Not a valid study id' }),
  cursor: z.uuid({ message: 'Not a valid cursor (pass the nextCursor of the previous page)' }).optional(),
  limit: z.number().int().min(1).max(100).default(20),
});
export const studyRunsPageOutputSchema = z.object({ items: z.array(studyRunSummarySchema), nextCursor: z.uuid().nullable() });

export const studyRunCaseSchema = z.object({
  caseId: z.uuid(),
  caseName: z.string(),
  /** Null once result retention deleted the job. */
  jobId: z.uuid().nullable(),
  reused: z.boolean(),
  status: jobStatusSchema,
  progress: z.number(),
  message: z.string(),
  error: z.string().nullable(),
  metrics: segmentationMetricsSchema.nullable(),
  startedAt: z.string().nullable(),
  finishedAt: z.string().nullable(),
});
export type StudyRunCase = z.infer<typeof studyRunCaseSchema>;

export const studyRunDetailSchema = studyRunSummarySchema.extend({ cases: z.array(studyRunCaseSchema) });
export type StudyRunDetail = z.infer<typeof studyRunDetailSchema>;

export const onRunProgressSchema = z.object({
  id: z.uuid({ message: 'Not a valid run id' }),
  lastEventId: onProgressSchema.shape.lastEventId,
});

// ---- the study table (one row per case × run), its summary and inter-rater agreement ------------

export const studyTableInputSchema = z.object({
  studyId: z.uuid({ message: 'Not a valid study id' }),
  /** One run; by default the newest run of each model. */
  runId: z.uuid({ message: 'Not a valid run id' }).optional(),
});

/** The table's metric columns, in CSV order (definitions: README, "Study table and exports"). */
export const TABLE_METRICS = ['dice', 'absVolumeDiffMl', 'lesionCountDiff', 'lesionF1', 'predictedMl', 'trueMl'] as const;
export type TableMetric = (typeof TABLE_METRICS)[number];

export const studyTableRowSchema = z.object({
  runId: z.uuid(),
  modelId: z.string(),
  caseId: z.uuid(),
  caseName: z.string(),
  subjectId: z.string().nullable(),
  jobId: z.uuid().nullable(),
  status: jobStatusSchema,
  dice: z.number().nullable(),
  absVolumeDiffMl: z.number().nullable(),
  lesionCountDiff: z.number().int().nullable(),
  lesionF1: z.number().nullable(),
  predictedMl: z.number().nullable(),
  trueMl: z.number().nullable(),
  lesionCountPredicted: z.number().int().nullable(),
  lesionCountTrue: z.number().int().nullable(),
});
export type StudyTableRow = z.infer<typeof studyTableRowSchema>;

export const metricStatsSchema = z.object({
  n: z.number().int(),
  mean: z.number().nullable(),
  /** Sample standard deviation (n − 1); null below two values. */
  sd: z.number().nullable(),
  median: z.number().nullable(),
  q1: z.number().nullable(),
  q3: z.number().nullable(),
});
export type MetricStats = z.infer<typeof metricStatsSchema>;

export const raterPairSchema = z.object({
  a: z.string(),
  b: z.string(),
  dice: z.number().nullable(),
  /** a's lesion volume − b's, mL. */
  volumeDiffMl: z.number(),
});

export const caseAgreementSchema = z.object({
  caseId: z.uuid(),
  caseName: z.string(),
  /** Each member's latest saved version of the case. */
  raters: z.array(z.object({ email: z.string(), versionId: z.uuid(), volumeMl: z.number() })),
  /** Every pair of raters. */
  pairs: z.array(raterPairSchema),
  /** Each rater against each shown run's predicted mask (a = the rater, b = the run's model). */
  vsModel: z.array(raterPairSchema.extend({ runId: z.uuid() })),
});

export const studyTableSchema = z.object({
  studyId: z.uuid(),
  studyName: z.string(),
  runs: z.array(z.object({ id: z.uuid(), modelId: z.string(), createdAt: z.string(), status: studyRunStatusSchema })),
  rows: z.array(studyTableRowSchema),
  /** Per run, each metric over its succeeded cases (nulls left out). */
  summary: z.array(z.object({ runId: z.uuid(), modelId: z.string(), metrics: z.record(z.enum(TABLE_METRICS), metricStatsSchema) })),
  /** Cases where two or more members saved versions. */
  agreement: z.object({
    cases: z.array(caseAgreementSchema),
    /** Over every pair of raters of every such case. */
    summary: z.object({ dice: metricStatsSchema, absVolumeDiffMl: metricStatsSchema }),
  }),
});
export type StudyTable = z.infer<typeof studyTableSchema>;
