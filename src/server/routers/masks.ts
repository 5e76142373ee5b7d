import { TRPCError } from '@trpc/server';
import { z } from 'zod';
import { okSchema } from '../../shared/errors.js';
import { listMasksSchema, maskIdSchema, maskPageSchema, maskVersionViewSchema, saveMaskFieldsSchema } from '../../shared/masks.js';
import { viewerOf, volumeLinks } from '../context.js';
import {
  MaskInputError,
  MaskNotFoundError,
  deleteMaskVersion,
  findMaskVersion,
  listMaskVersions,
  saveMaskVersion,
  toMaskView,
} from '../masks/service.js';
import { protectedProcedure, router } from '../trpc.js';

/** Domain errors → tRPC codes, in one place for this router. */
async function mapped<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof MaskNotFoundError) throw new TRPCError({ code: 'NOT_FOUND', message: err.message, cause: err });
    if (err instanceof MaskInputError) throw new TRPCError({ code: 'UNPROCESSABLE_CONTENT', message: err.message, cause: err });
    throw err;
  }
}

export const masksRouter = router({
  /** multipart/form-data: caseId, file (.nii/.nii.gz), jobId?, note?. Stored as the next version for this case and user. */
  save: protectedProcedure
    .input(z.instanceof(FormData))
    .output(maskVersionViewSchema)
    .mutation(({ ctx, input }) =>
      mapped(async () => {
        const fields = saveMaskFieldsSchema.safeParse({
          caseId: input.get('caseId') ?? undefined,
          jobId: input.get('jobId') || undefined,
          note: input.get('note') ?? undefined,
        });
        if (!fields.success) {
          throw new TRPCError({ code: 'BAD_REQUEST', message: fields.error.issues.map((i) => i.message).join('; ') });
        }
        const file = input.get('file');
        if (!(file instanceof Blob)) throw new TRPCError({ code: 'BAD_REQUEST', message: 'file: expected a .nii or .nii.gz file' });
        if (file.size > ctx.config.MAX_UPLOAD_MB * 1048576) {
          throw new TRPCError({ code: 'PAYLOAD_TOO_LARGE', message: `The mask is larger than ${ctx.config.MAX_UPLOAD_MB} MiB` });
        }
        const viewer = { ...viewerOf(ctx.user), userId: ctx.user.id };
        const id = await saveMaskVersion(
          ctx.db,
          ctx.store,
          viewer,
          {
            ...fields.data,
            file: new Uint8Array(await file.arrayBuffer()),
            maxVoxels: ctx.config.MAX_VOXELS,
          },
          ctx.cpu,
        );
        ctx.log.info({ maskId: id, caseId: fields.data.caseId }, 'mask version saved');
        return toMaskView(ctx.db, await findMaskVersion(ctx.db, viewer, id), volumeLinks(ctx));
      }),
    ),

  /** The versions of a case the caller may see (their own; admins all), newest first. */
  list: protectedProcedure
    .meta({ openapi: { method: 'GET', path: '/masks', tags: ['masks'], summary: 'Corrected mask versions of a case' } })
    .input(listMasksSchema)
    .output(maskPageSchema)
    .query(({ ctx, input }) =>
      mapped(async () => {
        const rows = await listMaskVersions(ctx.db, viewerOf(ctx.user), input.caseId);
        const links = volumeLinks(ctx);
        return { items: await Promise.all(rows.map((r) => toMaskView(ctx.db, r, links))), nextCursor: null };
      }),
    ),

  byId: protectedProcedure
    .meta({ openapi: { method: 'GET', path: '/masks/{id}', tags: ['masks'], summary: 'One corrected mask version' } })
    .input(maskIdSchema)
    .output(maskVersionViewSchema)
    .query(({ ctx, input }) =>
      mapped(async () => toMaskView(ctx.db, await findMaskVersion(ctx.db, viewerOf(ctx.user), input.id), volumeLinks(ctx))),
    ),

  /** The author or an admin. */
  delete: protectedProcedure
    .meta({
      openapi: { method: 'DELETE', path: '/masks/{id}', tags: ['masks'], summary: 'Delete a mask version (its author or an admin)' },
    })
    .input(maskIdSchema)
    .output(okSchema)
    .mutation(({ ctx, input }) =>
      mapped(async () => {
        await deleteMaskVersion(ctx.db, ctx.store, viewerOf(ctx.user), input.id);
        return { ok: true as const };
      }),
    ),
});
