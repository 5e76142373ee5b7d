import { TRPCError } from '@trpc/server';
import { z } from 'zod';
import {
  VOLUME_ROLES,
  type VolumeRole,
  caseDetailSchema,
  caseIdSchema,
  caseNameSchema,
  casePageSchema,
  listCasesSchema,
} from '../../shared/cases.js';
import { caseLimit, uploadLimitMb } from '../auth/quotas.js';
import { CaseInputError } from '../cases/prepare.js';
import { createCase, deleteCase, getCaseDetail, toSummary } from '../cases/service.js';
import { viewerOf, volumeLinks } from '../context.js';
import type { UploadedFile } from '../http/uploads/index.js';
import { countOwnCases, listCases } from '../db/cases.js';
import { toPage } from '../db/paging.js';
import { okSchema } from '../../shared/errors.js';
import { protectedProcedure, publicProcedure, router } from '../trpc.js';

/**
 * Reads the multipart form of an upload into checked fields (clear messages per field). Files
 * come from the streamed upload on disk (`uploads`: the usual path over HTTP) or, for callers
 * without one, from the form itself.
 */
async function readUploadForm(form: FormData, maxBytes: number, uploads?: Record<string, UploadedFile>) {
  const name = caseNameSchema.safeParse(form.get('name') ?? '');
  if (!name.success) {
    throw new TRPCError({ code: 'BAD_REQUEST', message: name.error.issues[0]?.message ?? 'Give the case a name' });
  }
  if (uploads) {
    for (const role of VOLUME_ROLES) {
      const text = form.get(role);
      if (typeof text === 'string' && text !== '')
        throw new TRPCError({ code: 'BAD_REQUEST', message: `${role}: expected a file, got text` });
    }
    const files: Partial<Record<VolumeRole, string>> = {};
    for (const [field, file] of Object.entries(uploads)) {
      if (!(VOLUME_ROLES as readonly string[]).includes(field))
        throw new TRPCError({ code: 'BAD_REQUEST', message: `${field}: not a volume role (dwi, adc, flair, mask)` });
      files[field as VolumeRole] = file.path;
    }
    return { name: name.data, files };
  }
  const files: Partial<Record<VolumeRole, Uint8Array>> = {};
  let total = 0;
  for (const role of VOLUME_ROLES) {
    const value = form.get(role);
    if (value === null || value === '') continue;
    if (typeof value === 'string') {
      throw new TRPCError({ code: 'BAD_REQUEST', message: `${role}: expected a file, got text` });
    }
    total += value.size;
    if (total > maxBytes) {
      throw new TRPCError({ code: 'PAYLOAD_TOO_LARGE', message: `The upload is larger than ${Math.round(maxBytes / 1048576)} MiB` });
    }
    files[role] = new Uint8Array(await value.arrayBuffer());
  }
  return { name: name.data, files };
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
    .query(async ({ ctx, input }) => {
      const viewer = viewerOf(ctx.user);
      const limit = input?.limit ?? 50;
      const rows = await listCases(ctx.db, viewer, { search: input?.search, cursor: input?.cursor, limit: limit + 1 });
      const { page, nextCursor } = toPage(rows, limit);
      return { items: page.map((r) => toSummary(r, viewer)), nextCursor };
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
      const { name, files } = await readUploadForm(input, uploadLimitMb(ctx.config, ctx.user.role) * 1048576, ctx.uploads);
      const maxCases = caseLimit(ctx.config, ctx.user.role);
      if (Number.isFinite(maxCases) && (await countOwnCases(ctx.db, ctx.user.id)) >= maxCases) {
        throw new TRPCError({ code: 'FORBIDDEN', message: `Guests may keep ${maxCases} cases; delete one, or create an account for more` });
      }
      let prepared;
      try {
        // Decoding, validation, gzip and hashing run in the CPU pool, not on the event loop.
        prepared = await ctx.cpu.prepareCase(files, {
          maxVoxels: ctx.config.MAX_VOXELS,
          maxInflatedBytes: ctx.config.MAX_INFLATED_MB * 1048576,
        });
      } catch (err) {
        if (err instanceof CaseInputError) {
          throw new TRPCError({ code: 'UNPROCESSABLE_CONTENT', message: err.message, cause: err });
        }
        throw err;
      }
      const id = await createCase(ctx.db, ctx.store, { ownerId: ctx.user.id, name, source: 'upload' }, prepared);
      ctx.log.info({ caseId: id, roles: prepared.map((p) => p.role) }, 'case uploaded');
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
