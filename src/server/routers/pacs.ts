import path from 'node:path';
import { z } from 'zod';
import { dicomUploadResultSchema } from '../../shared/dicom.js';
import { pacsPullSchema, pacsPushInputSchema, pacsPushSchema, pacsSearchSchema, pacsStudyViewSchema } from '../../shared/pacs.js';
import { getCaseDetail } from '../cases/service.js';
import { viewerOf, volumeLinks } from '../context.js';
import { findPush, requestPush, toPushView } from '../pacs/push.js';
import { pullPacsStudy, searchPacsStudies } from '../pacs/service.js';
import { protectedProcedure, router } from '../trpc.js';

/** The deployment's PACS over DICOMweb (PACS_URL): search, pull a study into a case, send a SEG back as a durable job. */
export const pacsRouter = router({
  search: protectedProcedure
    .meta({ openapi: { method: 'GET', path: '/pacs/studies', tags: ['pacs'], summary: 'Search the PACS for studies (QIDO-RS)' } })
    .input(pacsSearchSchema)
    .output(z.array(pacsStudyViewSchema))
    .query(({ ctx, input }) => searchPacsStudies(ctx, input)),

  /** Retrieves a study (WADO-RS) and imports it as a case, exactly as an upload of its files would be. */
  pull: protectedProcedure
    .meta({ openapi: { method: 'POST', path: '/pacs/pull', tags: ['pacs'], summary: 'Import a study from the PACS as a case (WADO-RS)' } })
    .input(pacsPullSchema)
    .output(dicomUploadResultSchema.extend({ instances: z.number().int() }))
    .mutation(async ({ ctx, input }) => {
      const { caseId, report, instances } = await pullPacsStudy(ctx, ctx.user, {
        studyInstanceUid: input.studyInstanceUid,
        name: input.name,
        dryRun: input.dryRun ?? false,
        workDir: path.join(path.resolve(ctx.config.DATA_DIR), 'uploads'),
      });
      return {
        case: caseId ? await getCaseDetail(ctx.db, viewerOf(ctx.user), caseId, volumeLinks(ctx)) : null,
        import: report,
        instances,
      };
    }),

  /** Queues "send to PACS" of a job's mask or a corrected version as a DICOM SEG (STOW-RS, retried); follow it with `pushes.byId`. */
  push: protectedProcedure
    .meta({ openapi: { method: 'POST', path: '/pacs/push', tags: ['pacs'], summary: 'Send a DICOM SEG to the PACS (a durable job)' } })
    .input(pacsPushInputSchema)
    .output(pacsPushSchema)
    .mutation(async ({ ctx, input }) => {
      const source = input.jobId ? { jobId: input.jobId } : { maskVersionId: input.maskVersionId! };
      return toPushView(await requestPush({ db: ctx.db, boss: (await ctx.jobs).boss, config: ctx.config }, viewerOf(ctx.user), source));
    }),

  pushes: router({
    byId: protectedProcedure
      .meta({
        openapi: { method: 'GET', path: '/pacs/pushes/{id}', tags: ['pacs'], summary: 'A PACS push: status, attempts, the PACS answer' },
      })
      .input(z.object({ id: z.uuid({ error: 'Not a valid id' }) }))
      .output(pacsPushSchema)
      .query(async ({ ctx, input }) => toPushView(await findPush(ctx.db, viewerOf(ctx.user), input.id))),
  }),
});
