import { TRPCError, type AnyRouter, getTRPCErrorFromUnknown } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { getErrorShape } from '@trpc/server/unstable-core-do-not-import';
import type { Context as HonoContext } from 'hono';
import type { Context } from '../../context.js';
import { restError } from '../openapi/index.js';
import type { StreamedUpload } from './index.js';

export type AnswerFormat = 'trpc' | 'rest';

/** The caller's procedure context, made once before the body is read (and the headers it sets). */
export interface UploadAuth {
  ctx: Context;
  resHeaders: Headers;
}

/** A refusal before the procedure runs, in the caller's format. */
export function refusal(
  format: AnswerFormat,
  c: HonoContext,
  status: number,
  code: string,
  message: string,
  retryAfterS?: number,
): Response {
  const headers: Record<string, string> = retryAfterS ? { 'retry-after': String(retryAfterS) } : {};
  const body =
    format === 'trpc' ? { error: { message, code: -32600, data: { code, httpStatus: status, path: 'cases.upload' } } } : { message, code };
  return c.json(body, status as 400, headers);
}

/**
 * `cases.upload` for a streamed upload: the same procedure, called with the spooled files in its
 * context, answered as tRPC (`/trpc/cases.upload`) or REST (`POST /api/cases`) would answer.
 */
export function caseUploadHandler(opts: {
  router: AnyRouter;
  format: AnswerFormat;
  onInternalError: (c: HonoContext, err: unknown) => void;
}) {
  return async (c: HonoContext, upload: StreamedUpload, auth: UploadAuth): Promise<Response> => {
    const { resHeaders } = auth;
    const ctx: Context = { ...auth.ctx, uploads: upload.files };
    let res: Response;
    try {
      const form = new FormData();
      for (const [k, v] of Object.entries(upload.fields)) form.set(k, v);
      const caller = opts.router.createCaller(ctx) as { cases: { upload: (f: FormData) => Promise<unknown> } };
      const data = await caller.cases.upload(form);
      res = c.json(opts.format === 'trpc' ? { result: { data } } : (data as object));
    } catch (cause) {
      const error = cause instanceof TRPCError ? cause : getTRPCErrorFromUnknown(cause);
      if (error.code === 'INTERNAL_SERVER_ERROR') opts.onInternalError(c, error.cause ?? error);
      const status = getHTTPStatusCodeFromError(error);
      if (opts.format === 'trpc') {
        const shape = getErrorShape({
          config: opts.router._def._config,
          error,
          type: 'mutation',
          path: 'cases.upload',
          input: undefined,
          ctx,
        });
        res = c.json({ error: shape }, status as 400);
      } else {
        res = restError(c, error);
      }
    }
    resHeaders.forEach((v, k) => res.headers.append(k, v));
    return res;
  };
}
