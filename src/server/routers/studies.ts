import { z } from 'zod';
import { okSchema } from '../../shared/errors.js';
import {
  createStudySchema,
  onRunProgressSchema,
  runStudySchema,
  studyRunDetailSchema,
  studyRunIdSchema,
  studyRunSummarySchema,
  studyRunsListSchema,
  studyRunsPageSchema,
  studyRunsPageOutputSchema,
  studyTableInputSchema,
  studyTableSchema,
  removeStudyMemberSchema,
  studyCasesInputSchema,
  studyDetailSchema,
  studyIdSchema,
  studyMemberInputSchema,
  studySummarySchema,
} from '../../shared/studies.js';
import { viewerOf } from '../context.js';
import {
  addCasesToStudy,
  createStudy,
  getStudy,
  listStudySummaries,
  removeCaseFromStudy,
  removeStudyMember,
  setMember,
} from '../studies/service.js';
import { cancelStudyRun, deleteStudyAndRuns, getStudyRun, listRunsOfStudy, pageRunsOfStudy, startStudyRun } from '../studies/runs.js';
import { runProgressStream } from '../studies/run-stream.js';
import { studyTable } from '../studies/table.js';
import { DEFAULT_MODEL_ID } from '../../shared/models.js';
import { protectedProcedure, router } from '../trpc.js';

const tags = ['studies'];

export const studiesRouter = router({
  /** The studies you are a member of (admins: all), with your role in each. */
  list: protectedProcedure
    .meta({ openapi: { method: 'GET', path: '/studies', tags, summary: 'Studies you are a member of' } })
    .input(z.void())
    .output(z.array(studySummarySchema))
    .query(({ ctx }) => listStudySummaries(ctx.db, viewerOf(ctx.user))),

  /** A study with its members and cases; NOT_FOUND for a non-member. */
  byId: protectedProcedure
    .meta({ openapi: { method: 'GET', path: '/studies/{id}', tags, summary: 'A study, its members and cases' } })
    .input(studyIdSchema)
    .output(studyDetailSchema)
    .query(({ ctx, input }) => getStudy(ctx.db, viewerOf(ctx.user), input.id)),

  /** A new study; you are its owner. */
  create: protectedProcedure
    .meta({ openapi: { method: 'POST', path: '/studies', tags, summary: 'Create a study (you are its owner)' } })
    .input(createStudySchema)
    .output(studyDetailSchema)
    .mutation(async ({ ctx, input }) => {
      const viewer = viewerOf(ctx.user);
      const id = await createStudy(ctx.db, viewer, input);
      ctx.log.info({ studyId: id }, 'study created');
      return getStudy(ctx.db, viewer, id);
    }),

  /** Deletes a study (owner): its runs still in flight are cancelled; its cases, masks and results stay. */
  delete: protectedProcedure
    .meta({ openapi: { method: 'DELETE', path: '/studies/{id}', tags, summary: 'Delete a study (its cases stay)' } })
    .input(studyIdSchema)
    .output(okSchema)
    .mutation(async ({ ctx, input }) => {
      const stopped = await deleteStudyAndRuns(ctx.db, await ctx.jobs, viewerOf(ctx.user), input.id);
      ctx.log.info({ studyId: input.id, jobsCancelled: stopped }, 'study deleted');
      return { ok: true as const };
    }),

  members: router({
    /** Adds a member by email or changes their role (owner). */
    set: protectedProcedure
      .meta({ openapi: { method: 'POST', path: '/studies/{studyId}/members', tags, summary: 'Add a member or change their role' } })
      .input(studyMemberInputSchema)
      .output(studyDetailSchema)
      .mutation(async ({ ctx, input }) => {
        const viewer = viewerOf(ctx.user);
        await setMember(ctx.db, viewer, input);
        return getStudy(ctx.db, viewer, input.studyId);
      }),
    /** Removes a member (owner), or leaves the study (yourself). */
    remove: protectedProcedure
      .meta({ openapi: { method: 'DELETE', path: '/studies/{studyId}/members/{userId}', tags, summary: 'Remove a member (or leave)' } })
      .input(removeStudyMemberSchema)
      .output(okSchema)
      .mutation(async ({ ctx, input }) => {
        await removeStudyMember(ctx.db, viewerOf(ctx.user), input);
        return { ok: true as const };
      }),
  }),

  /**
   * Runs a model over the study's cases (or `caseIds`) as one study run (owner, editor): a job per
   * case on the one queue, a case with a result of this model reused unless `rerun`.
   */
  run: protectedProcedure
    .meta({ openapi: { method: 'POST', path: '/studies/{studyId}/runs', tags, summary: 'Run a model over the cases of a study' } })
    .input(runStudySchema)
    .output(studyRunDetailSchema)
    .mutation(async ({ ctx, input }) => {
      const viewer = viewerOf(ctx.user);
      const modelId = input.modelId ?? ctx.models.list()[0]?.id ?? DEFAULT_MODEL_ID;
      const id = await startStudyRun(ctx.db, await ctx.jobs, ctx.config, viewer, { ...input, modelId }, new Set(ctx.models.models.keys()));
      ctx.log.info({ studyId: input.studyId, runId: id, modelId }, 'study run started');
      return getStudyRun(ctx.db, viewer, id);
    }),

  /**
   * The study table: one row per case × run (the newest run of each model, or `runId`) with the
   * job's metrics, a summary per run, and inter-rater agreement. As CSV: GET /api/studies/{id}/table.csv.
   */
  table: protectedProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/studies/{studyId}/table',
        tags,
        summary: 'The study table: metrics per case and run, summary, agreement',
      },
    })
    .input(studyTableInputSchema)
    .output(studyTableSchema)
    .query(({ ctx, input }) => studyTable({ db: ctx.db, store: ctx.store, cpu: ctx.cpu }, viewerOf(ctx.user), input)),

  runs: router({
    /** The study's newest runs (at most 100), each with its progress; one query. For all of them page with runs.page. */
    list: protectedProcedure
      .meta({ openapi: { method: 'GET', path: '/studies/{studyId}/runs', tags, summary: "A study's newest runs (at most 100)" } })
      .input(studyRunsListSchema)
      .output(z.array(studyRunSummarySchema))
      .query(({ ctx, input }) => listRunsOfStudy(ctx.db, viewerOf(ctx.user), input.studyId)),
    /** The study's runs, newest first, a page at a time (`{ items, nextCursor }`), each with its progress; one query a page. */
    page: protectedProcedure
      .meta({ openapi: { method: 'GET', path: '/studies/{studyId}/runs/page', tags, summary: "A page of a study's runs, newest first" } })
      .input(studyRunsPageSchema)
      .output(studyRunsPageOutputSchema)
      .query(({ ctx, input }) => pageRunsOfStudy(ctx.db, viewerOf(ctx.user), input)),
    /** A run: N/M done, failed, cancelled, the ETA, and its row per case with the job's metrics. */
    byId: protectedProcedure
      .meta({ openapi: { method: 'GET', path: '/study-runs/{id}', tags, summary: 'A study run: progress, ETA and a row per case' } })
      .input(studyRunIdSchema)
      .output(studyRunDetailSchema)
      .query(({ ctx, input }) => getStudyRun(ctx.db, viewerOf(ctx.user), input.id)),
    /** Cancels the rest of a run (owner, editor): queued jobs at once, running ones at their next stage. */
    cancel: protectedProcedure
      .meta({ openapi: { method: 'POST', path: '/study-runs/{id}/cancel', tags, summary: 'Cancel the rest of a study run' } })
      .input(studyRunIdSchema)
      .output(studyRunDetailSchema)
      .mutation(async ({ ctx, input }) => {
        const viewer = viewerOf(ctx.user);
        const stopped = await cancelStudyRun(ctx.db, await ctx.jobs, viewer, input.id);
        ctx.log.info({ runId: input.id, jobs: stopped }, 'study run cancelled');
        return getStudyRun(ctx.db, viewer, input.id);
      }),
    /** Live progress of a run over SSE (studies/run-stream.ts), ending when it is no longer running. */
    onProgress: protectedProcedure.input(onRunProgressSchema).subscription(async function* ({ ctx, input, signal }) {
      yield* runProgressStream({
        db: ctx.db,
        jobs: await ctx.jobs,
        config: ctx.config,
        user: ctx.user,
        auth: ctx.auth,
        runId: input.id,
        lastEventId: input.lastEventId,
        signal,
      });
    }),
  }),

  cases: router({
    /** Adds cases you own (or shared demo cases) to the study (owner, editor). */
    add: protectedProcedure
      .meta({ openapi: { method: 'POST', path: '/studies/{studyId}/cases', tags, summary: 'Add cases to a study' } })
      .input(studyCasesInputSchema)
      .output(z.object({ added: z.number().int() }))
      .mutation(async ({ ctx, input }) => ({ added: await addCasesToStudy(ctx.db, viewerOf(ctx.user), input) })),
    /** Removes a case from the study; the case itself stays. */
    remove: protectedProcedure
      .meta({ openapi: { method: 'DELETE', path: '/studies/{studyId}/cases/{caseId}', tags, summary: 'Remove a case from a study' } })
      .input(z.object({ studyId: z.uuid({ message: 'Not a valid study id' }), caseId: z.uuid({ message: 'Not a valid case id' }) }))
      .output(okSchema)
      .mutation(async ({ ctx, input }) => {
        await removeCaseFromStudy(ctx.db, viewerOf(ctx.user), input);
        return { ok: true as const };
      }),
  }),
});
