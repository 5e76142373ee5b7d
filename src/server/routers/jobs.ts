import { tracked } from '@trpc/server';
import {
  createJobSchema,
  jobIdSchema,
  jobPageSchema,
  jobViewSchema,
  listJobsSchema,
  onProgressSchema,
  TERMINAL_STATUSES,
} from '../../shared/jobs.js';
import type { JobProgressEvent } from '../../shared/jobs.js';
import { DEFAULT_MODEL_ID } from '../../shared/models.js';
import { viewerOf, volumeLinks } from '../context.js';
import { findJob, listJobs } from '../db/jobs.js';
import { toPage } from '../db/paging.js';
import { cancelJob, createJob, toEvent, toJobView, toJobViews, visibleJob } from '../jobs/service.js';
import type { JobEventBus } from '../jobs/events.js';
import { StreamLimits } from '../jobs/stream-limits.js';
import { protectedProcedure, router } from '../trpc.js';

/** Open streams per user and session, one count per app (its event bus). */
const streamCounts = new WeakMap<JobEventBus, StreamLimits>();
function streamsOf(bus: JobEventBus): StreamLimits {
  let limits = streamCounts.get(bus);
  if (!limits) streamCounts.set(bus, (limits = new StreamLimits()));
  return limits;
}

/** How often a subscriber re-reads the job even without events (a lost notification only delays). */
const RECHECK_MS = 3000;

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
        ctx.jobs,
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
    .query(async ({ ctx, input }) => toJobView(ctx.db, await visibleJob(ctx.db, viewerOf(ctx.user), input.id), volumeLinks(ctx))),

  list: protectedProcedure
    .meta({ openapi: { method: 'GET', path: '/jobs', tags: ['jobs'], summary: 'Your jobs, newest first (optionally of one case)' } })
    .input(listJobsSchema)
    .output(jobPageSchema)
    .query(async ({ ctx, input }) => {
      const limit = input?.limit ?? 50;
      const rows = await listJobs(ctx.db, viewerOf(ctx.user), { caseId: input?.caseId, cursor: input?.cursor, limit: limit + 1 });
      const { page, nextCursor } = toPage(rows, limit);
      return { items: await toJobViews(ctx.db, page, volumeLinks(ctx)), nextCursor };
    }),

  cancel: protectedProcedure
    .meta({ openapi: { method: 'POST', path: '/jobs/{id}/cancel', tags: ['jobs'], summary: 'Cancel a queued or running job' } })
    .input(jobIdSchema)
    .output(jobViewSchema)
    .mutation(async ({ ctx, input }) =>
      toJobView(ctx.db, await cancelJob(ctx.db, ctx.jobs, viewerOf(ctx.user), input.id), volumeLinks(ctx)),
    ),

  /**
   * Live progress over SSE: the job's state now, then every change, each with its version as the
   * event id (a reconnect with Last-Event-ID resumes without repeats), ending at a terminal state.
   * Keep-alive pings come from the SSE layer (see trpc.ts).
   */
  onProgress: protectedProcedure.input(onProgressSchema).subscription(async function* ({ ctx, input, signal }) {
    await visibleJob(ctx.db, viewerOf(ctx.user), input.id);
    const pending: JobProgressEvent[] = [];
    let wake: (() => void) | undefined;
    const unsubscribe = ctx.jobs.bus.subscribe(input.id, (e) => {
      pending.push(e);
      wake?.();
    });
    // One abort listener for the whole stream (one per wait would pile up: MaxListenersExceeded).
    const onAbort = () => wake?.();
    signal?.addEventListener('abort', onAbort, { once: true });
    // Counted from here to the finally below, which gives it back however the stream ends.
    const claims = [
      {
        key: `user:${ctx.user.id}`,
        limit: ctx.config.MAX_STREAMS_PER_USER,
        message: (n: number) => `You have ${n} live progress streams open; close a tab or wait for a job to finish`,
      },
      ...(ctx.auth?.sessionId
        ? [
            {
              key: `session:${ctx.auth.sessionId}`,
              limit: ctx.config.MAX_STREAMS_PER_SESSION,
              message: (n: number) => `This browser has ${n} live progress streams open; close a tab or wait for a job to finish`,
            },
          ]
        : []),
    ];
    let release: () => void;
    try {
      release = streamsOf(ctx.jobs.bus).acquire(claims);
    } catch (err) {
      signal?.removeEventListener('abort', onAbort);
      unsubscribe();
      throw err;
    }
    try {
      let seen = Number(input.lastEventId ?? 0) || 0;
      const current = await findJob(ctx.db, input.id);
      if (!current) return;
      // Resumed after the end: the client has seen the final state already.
      if (current.version <= seen && TERMINAL_STATUSES.includes(current.status)) return;
      pending.unshift(toEvent(current));
      for (;;) {
        while (pending.length) {
          const e = pending.shift()!;
          if (e.version <= seen) continue;
          seen = e.version;
          yield tracked(String(e.version), e);
          if (TERMINAL_STATUSES.includes(e.status)) return;
        }
        if (signal?.aborted) return;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, RECHECK_MS);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
        if (!pending.length) {
          const row = await findJob(ctx.db, input.id);
          if (!row) return; // deleted (retention, its case removed)
          if (row.version > seen) pending.push(toEvent(row));
        }
      }
    } finally {
      signal?.removeEventListener('abort', onAbort);
      unsubscribe();
      release();
    }
  }),
});
