import { z } from 'zod';
import { segExportSchema, segSourceSchema } from '../../shared/dicom.js';
import { okSchema } from '../../shared/errors.js';
import { endRefineSchema, refineInputSchema, refineResultSchema } from '../../shared/refine.js';
import { listMasksSchema, maskIdSchema, maskPageSchema, maskVersionViewSchema, saveMaskFieldsSchema } from '../../shared/masks.js';
import { type Context, viewerOf, volumeLinks } from '../context.js';
import { exportSeg } from '../dicom/export.js';
import { invalid } from '../errors.js';
import { spooledFiles } from '../http/uploads/procedure-input.js';
import { deleteMaskVersion, findMaskVersion, listMaskVersions, saveMaskVersion, toMaskView } from '../masks/service.js';
import { refineMask } from '../refine/service.js';
import { protectedProcedure, router } from '../trpc.js';

export const masksRouter = router({
  /** multipart/form-data: caseId, file (.nii/.nii.gz), jobId?, note?. Stored as the next version for this case and user. */
  save: protectedProcedure
    .input(z.instanceof(FormData))
    .output(maskVersionViewSchema)
    .mutation(async ({ ctx, input }) => {
      const fields = saveMaskFieldsSchema.safeParse({
        caseId: input.get('caseId') ?? undefined,
        jobId: input.get('jobId') || undefined,
        note: input.get('note') ?? undefined,
        rejectedLesions: input.get('rejectedLesions') || undefined,
        penStrokes: input.get('penStrokes') || undefined,
      });
      if (!fields.success) {
        const field = fields.error.issues[0]?.path[0];
        throw invalid(fields.error.issues.map((i) => i.message).join('; '), { field: field === undefined ? undefined : String(field) });
      }
      const { file } = spooledFiles(input, ctx.uploads, ['file'], 'the mask (send it as "file")');
      if (!file) throw invalid('file: expected a .nii or .nii.gz file', { field: 'file' });
      const viewer = viewerOf(ctx.user);
      const { rejectedLesions, penStrokes, ...rest } = fields.data;
      const id = await saveMaskVersion(ctx, viewer, {
        ...rest,
        file,
        maxVoxels: ctx.config.MAX_VOXELS,
        edits: { rejectedLesions, penStrokes },
        // the clicks this server refined since the last save; the editing session ends with the save
        clicks: ctx.refine.clicksOf(viewer.userId, rest.caseId),
      });
      ctx.refine.take(viewer.userId, rest.caseId);
      ctx.log.info({ maskId: id, caseId: fields.data.caseId }, 'mask version saved');
      return toMaskView(ctx.db, await findMaskVersion(ctx.db, viewer, id), volumeLinks(ctx));
    }),

  /**
   * Refines a mask by clicks with an interactive model (the built-in click-grow-v1 unless named):
   * starts from a job's result, a saved version or the editor's working mask, and answers the new
   * mask and its lesion list. Nothing is stored; saving makes the version.
   */
  refine: protectedProcedure
    .meta({ openapi: { method: 'POST', path: '/masks/refine', tags: ['masks'], summary: 'Refine a mask by clicks (nothing is stored)' } })
    .input(refineInputSchema)
    .output(refineResultSchema)
    .mutation(({ ctx, input }) => refineMask(ctx, viewerOf(ctx.user), input)),

  /** The editor left the case: the server frees the decoded volumes it kept for the clicks. */
  endRefine: protectedProcedure
    .meta({ openapi: { method: 'POST', path: '/masks/refine/end', tags: ['masks'], summary: 'End an editing session (frees its cache)' } })
    .input(endRefineSchema)
    .output(okSchema)
    .mutation(({ ctx, input }) => {
      ctx.refine.end(ctx.user.id, input.caseId);
      return { ok: true as const };
    }),

  /**
   * A job's mask or a corrected version of a DICOM-imported case as a DICOM SEG, built in the CPU
   * pool; base64 here (the file itself is `GET /api/masks/{id}/seg.dcm` or `/api/jobs/{id}/seg.dcm`).
   * A case uploaded as NIfTI has no source series to reference: 422.
   */
  exportSeg: protectedProcedure
    .input(segSourceSchema)
    .output(segExportSchema)
    .query(async ({ ctx, input }) => {
      const seg = await exportSeg(segDeps(ctx), viewerOf(ctx.user), input);
      ctx.log.info({ caseId: seg.caseId, frames: seg.frames, algorithm: seg.algorithmType }, 'DICOM SEG exported');
      const { bytes, ...rest } = seg;
      return { ...rest, data: Buffer.from(bytes).toString('base64') };
    }),

  /** The versions of a case the caller may see (their own; admins all), newest first. */
  list: protectedProcedure
    .meta({ openapi: { method: 'GET', path: '/masks', tags: ['masks'], summary: 'Corrected mask versions of a case' } })
    .input(listMasksSchema)
    .output(maskPageSchema)
    .query(async ({ ctx, input }) => {
      const rows = await listMaskVersions(ctx.db, viewerOf(ctx.user), input.caseId);
      const links = volumeLinks(ctx);
      return { items: await Promise.all(rows.map((r) => toMaskView(ctx.db, r, links))), nextCursor: null };
    }),

  byId: protectedProcedure
    .meta({ openapi: { method: 'GET', path: '/masks/{id}', tags: ['masks'], summary: 'One corrected mask version' } })
    .input(maskIdSchema)
    .output(maskVersionViewSchema)
    .query(async ({ ctx, input }) => toMaskView(ctx.db, await findMaskVersion(ctx.db, viewerOf(ctx.user), input.id), volumeLinks(ctx))),

  /** The author or an admin. */
  delete: protectedProcedure
    .meta({
      openapi: { method: 'DELETE', path: '/masks/{id}', tags: ['masks'], summary: 'Delete a mask version (its author or an admin)' },
    })
    .input(maskIdSchema)
    .output(okSchema)
    .mutation(async ({ ctx, input }) => {
      await deleteMaskVersion(ctx.db, ctx.store, viewerOf(ctx.user), input.id);
      return { ok: true as const };
    }),
});

/** What the SEG export needs from a procedure's context. */
export const segDeps = (ctx: Context) => ({
  db: ctx.db,
  store: ctx.store,
  cpu: ctx.cpu,
  modelVersion: (id: string) => ctx.models.models.get(id)?.manifest.version ?? null,
});
