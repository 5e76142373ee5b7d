import path from 'node:path';
import type { AnyRouter } from '@trpc/server';
import { Hono, type Context as HonoContext } from 'hono';
import { MiB } from '../../../shared/units.js';
import { uploadLimitMb, uploadSlotLimit } from '../../auth/quotas.js';
import type { Context, CreateRequestContext } from '../../context.js';
import type { Env } from '../../env.js';
import { type ErrorFormat, errorResponse } from '../../error-shapes.js';
import type { Logger } from '../../logger.js';
import { dicomLimits } from '../../dicom/limits.js';
import type { FleetLeases } from '../../limits/leases.js';
import { type StreamedUpload, streamingUpload, uploadSlots } from './index.js';

/**
 * The procedures that take files (multipart). Each is served at `/trpc/<procedure>` and at its
 * REST path, always the same way: authenticated before a byte of the body is read, streamed to
 * disk under a per-role size cap, then the procedure is called with the spooled files in its
 * context (`ctx.uploads`) and answered in the caller's format.
 */
export const MULTIPART_PROCEDURES = [
  { procedure: 'cases.upload', restPath: '/api/cases' },
  { procedure: 'masks.save', restPath: '/api/masks' },
  // A DICOM study: a .zip (`file`) or many loose files (`files`, repeated), under the DICOM limits.
  { procedure: 'cases.uploadDicom', restPath: '/api/cases/dicom', dicom: true },
] as const;

export interface UploadRoutesOptions {
  env: Env;
  router: AnyRouter;
  createContext: CreateRequestContext;
  log: Logger;
  /** Where uploads are spooled while they arrive (default `DATA_DIR/uploads`). */
  dir?: string | undefined;
  /** Uploads counted across the fleet (MAX_UPLOADS_IN_FLIGHT and each account's cap). */
  fleet?: FleetLeases;
}

/** The caller's procedure context, made once before the body is read (and the headers it sets). */
interface UploadAuth {
  ctx: Context;
  resHeaders: Headers;
}

/** Calls a multipart procedure with the spooled files and answers as `/trpc` or `/api` would. */
async function callProcedure(
  c: HonoContext,
  opts: { router: AnyRouter; procedure: string; format: ErrorFormat; log: Logger },
  upload: StreamedUpload,
  auth: UploadAuth,
): Promise<Response> {
  let res: Response;
  try {
    const form = new FormData();
    for (const [k, v] of Object.entries(upload.fields)) form.set(k, v);
    const caller = opts.router.createCaller({
      ...auth.ctx,
      uploads: upload.files,
      uploadLists: upload.lists,
    }) as Record<string, Record<string, (f: FormData) => unknown>>;
    const [domain, verb] = opts.procedure.split('.') as [string, string];
    const data = (await caller[domain]![verb]!(form)) as object;
    res = c.json(opts.format === 'trpc' ? { result: { data } } : data);
  } catch (err) {
    res = errorResponse(c, opts.format, err, { path: opts.procedure, log: opts.log });
  }
  // Headers the procedure set travel with the answer (Retry-After once, cookies as they are).
  auth.resHeaders.forEach((v, k) => (k === 'set-cookie' ? res.headers.append(k, v) : res.headers.set(k, v)));
  return res;
}

export function uploadRoutes(options: UploadRoutesOptions): Hono {
  const { env, router, log } = options;
  const app = new Hono();
  const dir = options.dir ?? path.join(path.resolve(env.DATA_DIR), 'uploads');
  const slots = uploadSlots(env.MAX_CONCURRENT_UPLOADS);
  for (const route of MULTIPART_PROCEDURES) {
    const { procedure, restPath } = route;
    const dicom = 'dicom' in route;
    for (const format of ['trpc', 'rest'] as const) {
      const handler = streamingUpload<UploadAuth>({
        dir,
        slots,
        ...(options.fleet ? { fleet: { leases: options.fleet, maxInFlight: env.MAX_UPLOADS_IN_FLIGHT } } : {}),
        format,
        procedure,
        log,
        maxBytes: (auth) => (dicom ? dicomLimits(env, auth.ctx.user!.role).maxBytes : uploadLimitMb(env, auth.ctx.user!.role) * MiB),
        ...(dicom ? { maxFiles: env.DICOM_MAX_FILES, repeatable: ['files'] } : {}),
        holder: (auth) => ({ key: auth.ctx.user!.id, limit: uploadSlotLimit(env, auth.ctx.user!.role) }),
        idleTimeoutMs: env.UPLOAD_IDLE_TIMEOUT_S * 1000,
        // Anonymous bodies are never spooled; the context made here is the procedure's.
        authorize: async (c) => {
          const resHeaders = new Headers();
          const ctx = await options.createContext(c, { resHeaders, bearerOnly: format === 'rest' });
          return ctx.user ? { ctx, resHeaders } : null;
        },
        handle: (c, upload, auth) => callProcedure(c, { router, procedure, format, log }, upload, auth),
      });
      app.post(format === 'trpc' ? `/trpc/${procedure}` : restPath, handler);
    }
  }
  return app;
}
