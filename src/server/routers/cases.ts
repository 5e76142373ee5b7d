import { z } from 'zod';
import { VOLUME_ROLES, caseDetailSchema, caseIdSchema, caseNameSchema, casePageSchema, listCasesSchema } from '../../shared/cases.js';
import { dicomUploadResultSchema, seriesChoiceSchema } from '../../shared/dicom.js';
import { okSchema } from '../../shared/errors.js';
import { deleteCase, getCaseDetail, listCasePage, uploadCase } from '../cases/service.js';
import { viewerOf, volumeLinks } from '../context.js';
import { invalid } from '../errors.js';
import { spooledFiles } from '../http/uploads/procedure-input.js';
import { uploadDicomCase } from '../dicom/service.js';
import { protectedProcedure, publicProcedure, router } from '../trpc.js';

/** The `series` field of a DICOM upload: JSON naming a series per role, or absent. */
function parseSeriesChoice(raw: ReturnType<FormData['get']>) {
  if (raw === null || raw === '') return {};
  if (typeof raw !== 'string') throw invalid('series: expected JSON text, got a file', { field: 'series' });
  let json: unknown;
  try {
    json = JSON.parse(raw);
  } catch {
    throw invalid('series: not JSON (e.g. {"dwi":"701","adc":"computed","flair":"none"})', { field: 'series' });
  }
  const parsed = seriesChoiceSchema.safeParse(json);
  if (!parsed.success) throw invalid(`series: ${parsed.error.issues[0]?.message ?? 'not a series choice'}`, { field: 'series' });
  return parsed.data;
}

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
    .query(({ ctx, input }) => {
      const viewer = viewerOf(ctx.user);
      const opts = { search: input?.search, cursor: input?.cursor, limit: input?.limit ?? 50 };
      const load = () => listCasePage(ctx.db, viewer, opts);
      // Embedded: the page is kept until any write (db/read-cache.ts); keyed by everything it depends on.
      return ctx.readCache
        ? ctx.readCache.read(`cases.list\0${JSON.stringify([viewer.userId, viewer.admin, viewer.guest ?? false, opts])}`, load)
        : load();
    }),

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

  /**
   * multipart/form-data: a DICOM study as one `file` (.zip) or many `files` (loose DICOM files,
   * e.g. a folder), optional `name`, `series` (JSON: which series is dwi / adc / flair; see
   * seriesChoiceSchema) and `dryRun` (`true`: report the series and roles, store nothing).
   */
  uploadDicom: protectedProcedure
    .input(z.instanceof(FormData))
    .output(dicomUploadResultSchema)
    .mutation(async ({ ctx, input }) => {
      const rawName = input.get('name');
      let name: string | undefined;
      if (typeof rawName === 'string' && rawName.trim() !== '') {
        const parsed = caseNameSchema.safeParse(rawName);
        if (!parsed.success) throw invalid(parsed.error.issues[0]?.message ?? 'Give the case a name', { field: 'name' });
        name = parsed.data;
      }
      const choice = parseSeriesChoice(input.get('series'));
      const dryRun = String(input.get('dryRun') ?? '').toLowerCase() === 'true';
      if (!ctx.uploads && !ctx.uploadLists) throw invalid('Send the DICOM files as multipart/form-data');
      for (const field of Object.keys(ctx.uploads ?? {})) {
        if (field !== 'file') throw invalid(`${field}: not a DICOM upload field (file: a .zip, files: DICOM files)`, { field });
      }
      for (const field of Object.keys(ctx.uploadLists ?? {})) {
        if (field !== 'files') throw invalid(`${field}: not a DICOM upload field (file: a .zip, files: DICOM files)`, { field });
      }
      const parts = [...(ctx.uploads?.file ? [ctx.uploads.file] : []), ...(ctx.uploadLists?.files ?? [])];
      const { caseId, report } = await uploadDicomCase(ctx, ctx.user, {
        name,
        inputs: parts.map((p, i) => ({ path: p.path, name: p.filename || `file ${i + 1}` })),
        choice,
        dryRun,
      });
      return { case: caseId ? await getCaseDetail(ctx.db, viewerOf(ctx.user), caseId, volumeLinks(ctx)) : null, import: report };
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
