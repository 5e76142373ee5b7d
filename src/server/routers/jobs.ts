import { createJobSchema, jobIdSchema, jobPageSchema, jobViewSchema, listJobsSchema, onProgressSchema } from '../../shared/jobs.js';
import { DEFAULT_MODEL_ID } from '../../shared/models.js';
import { viewerOf, volumeLinks } from '../context.js';
import { cancelJob, createJob, listJobPage, readableJob, toJobView } from '../jobs/service.js';
import { progressStream } from '../jobs/progress-stream.js';
import { protectedProcedure, router } from '../trpc.js';

export const jobsRouter = router({
  /** Queues a segmentation. The same idempotency key returns the same job (safe to retry). */
  create: protectedProcedure
    .meta({ openapi: { method: 'POST', path: '/jobs', tags: ['jobs'], summary: 'Queue a segmentation of a case' } })
    .input(createJobSchema)
    .output(jobViewSchema)
    .mutation(async ({ ctx, input }) => {
      const modelIds = input.modelIds ?? [ctx.models.list()[0]?.id ?? DEFAULT_MODEL_ID];
      const row = await createJob(
        ctx.db,
        await ctx.jobs,
        ctx.config,
        viewerOf(ctx.user),
        { caseId: input.caseId, modelIds, idempotencyKey: input.idempotencyKey },
        new Set(ctx.models.models.keys()),
      );
      return toJobView(ctx.db, row, volumeLinks(ctx));
    }),

  byId: protectedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/jobs/{id}',
        tags: ['jobs'],
        summary: 'A job: status, progress, and when done its mask and metrics',
      },
    })
    .input(jobIdSchema)
    .output(jobViewSchema)
    .query(async ({ ctx, input }) => toJobView(ctx.db, await readableJob(ctx.db, viewerOf(ctx.user), input.id), volumeLinks(ctx))),

  list: protectedProcedure
    .meta({ openapi: { method: 'GET', path: '/jobs', tags: ['jobs'], summary: 'Your jobs, newest first (optionally of one case)' } })
    .input(listJobsSchema)
    .output(jobPageSchema)
    .query(({ ctx, input }) =>
      listJobPage(
        ctx.db,
        viewerOf(ctx.user),
        { caseId: input?.caseId, cursor: input?.cursor, limit: input?.limit ?? 50 },
        volumeLinks(ctx),
      ),
    ),

  cancel: protectedProcedure
    .meta({ openapi: { method: 'POST', path: '/jobs/{id}/cancel', tags: ['jobs'], summary: 'Cancel a queued or running job' } })
    .input(jobIdSchema)
    .output(jobViewSchema)
    .mutation(async ({ ctx, input }) =>
      toJobView(ctx.db, await cancelJob(ctx.db, await ctx.jobs, viewerOf(ctx.user), input.id), volumeLinks(ctx)),
    ),

  /** Live progress over SSE (jobs/progress-stream.ts); keep-alive pings come from the SSE layer (see trpc.ts). */
  onProgress: protectedProcedure.input(onProgressSchema).subscription(async function* ({ ctx, input, signal }) {
    yield* progressStream({
      db: ctx.db,
      jobs: await ctx.jobs,
      config: ctx.config,
      user: ctx.user,
      auth: ctx.auth,
      jobId: input.id,
      lastEventId: input.lastEventId,
      signal,
    });
  }),
});
