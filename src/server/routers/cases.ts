import { z } from 'zod';
import { VOLUME_ROLES, caseDetailSchema, caseIdSchema, caseNameSchema, casePageSchema, listCasesSchema } from '../../shared/cases.js';
import { okSchema } from '../../shared/errors.js';
import { deleteCase, getCaseDetail, listCasePage, uploadCase } from '../cases/service.js';
import { viewerOf, volumeLinks } from '../context.js';
import { invalid } from '../errors.js';
import { spooledFiles } from '../http/uploads/procedure-input.js';
import { protectedProcedure, publicProcedure, router } from '../trpc.js';

export const casesRouter = router({
  /** Public: signed out, only demo (shared) cases; signed in, also one's own; admins, all. */
  list: publicProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/cases',
        tags: ['cases'],
        protect: false,
        summary: 'Cases you may see (demo cases, your own; admins all)',
      },
    })
    .input(listCasesSchema)
    .output(casePageSchema)
    .query(({ ctx, input }) =>
      listCasePage(ctx.db, viewerOf(ctx.user), { search: input?.search, cursor: input?.cursor, limit: input?.limit ?? 50 }),
    ),

  /** Public for shared cases; another user's case is NOT_FOUND. Volume URLs are signed and short-lived. */
  byId: publicProcedure
    .meta({
      openapi: {
        method: 'GET',
        path: '/cases/{id}',
        tags: ['cases'],
        protect: false,
        summary: 'A case with its volumes (signed, short-lived URLs)',
      },
    })
    .input(caseIdSchema)
    .output(caseDetailSchema)
    .query(({ ctx, input }) => getCaseDetail(ctx.db, viewerOf(ctx.user), input.id, volumeLinks(ctx))),

  /** multipart/form-data: name, dwi, adc, flair?, mask?. All files are checked before anything is stored. */
  upload: protectedProcedure
    .input(z.instanceof(FormData))
    .output(caseDetailSchema)
    .mutation(async ({ ctx, input }) => {
      const name = caseNameSchema.safeParse(input.get('name') ?? '');
      if (!name.success) throw invalid(name.error.issues[0]?.message ?? 'Give the case a name', { field: 'name' });
      const files = spooledFiles(input, ctx.uploads, VOLUME_ROLES, 'a volume role (dwi, adc, flair, mask)');
      const id = await uploadCase(ctx, ctx.user, { name: name.data, files });
      return getCaseDetail(ctx.db, viewerOf(ctx.user), id, volumeLinks(ctx));
    }),

  /** The owner, or an admin (who may also delete shared cases). */
  delete: protectedProcedure
    .meta({ openapi: { method: 'DELETE', path: '/cases/{id}', tags: ['cases'], summary: 'Delete a case you own (admins: any)' } })
    .input(caseIdSchema)
    .output(okSchema)
    .mutation(async ({ ctx, input }) => {
      await deleteCase(ctx.db, ctx.store, viewerOf(ctx.user), input.id);
      return { ok: true as const };
    }),
});
