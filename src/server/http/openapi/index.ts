import { TRPCError, type AnyRouter } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { Hono, type Context as HonoContext } from 'hono';
import { createOpenApiFetchHandler, generateOpenApiDocument } from 'trpc-to-openapi';
import { z } from 'zod';
import { caseDetailSchema } from '../../../shared/cases.js';
import { INTERNAL_ERROR_MESSAGE } from '../../../shared/errors.js';
import { maskVersionViewSchema } from '../../../shared/masks.js';
import type { Context } from '../../context.js';

export interface OpenApiOptions {
  router: AnyRouter;
  version: string;
  /** The public base URL of the server (the document's `servers`). */
  baseUrl: (c: HonoContext) => string;
  /** A procedure context for a REST request: bearer tokens only (no cookies, so no CSRF surface). */
  createContext: (c: HonoContext, resHeaders: Headers) => Promise<Context>;
  onInternalError: (c: HonoContext, path: string | undefined, err: unknown) => void;
}

/**
 * The procedures that take files are tRPC procedures with FormData input, which trpc-to-openapi
 * cannot describe (it wants a zod object). They are served here as multipart routes that call the
 * very same procedure, and described by hand below — the only hand-written part of the document.
 */
const MULTIPART_ROUTES = {
  '/cases': {
    procedure: 'cases.upload',
    /** Served by the streaming upload route (http/uploads), registered before these. */
    streamed: true,
    summary: 'Upload a case (multipart: name, dwi, adc, flair?, mask? as .nii or .nii.gz files)',
    tag: 'cases',
    fields: { name: 'string', dwi: 'binary', adc: 'binary', flair: 'binary', mask: 'binary' },
    required: ['name', 'dwi', 'adc'],
    output: caseDetailSchema,
  },
  '/masks': {
    procedure: 'masks.save',
    streamed: false,
    summary: 'Save a corrected mask as the next version (multipart: caseId, file, jobId?, note?)',
    tag: 'masks',
    fields: { caseId: 'string', file: 'binary', jobId: 'string', note: 'string' },
    required: ['caseId', 'file'],
    output: maskVersionViewSchema,
  },
} as const;

export const MULTIPART_PATHS = Object.keys(MULTIPART_ROUTES).map((p) => `/api${p}`);

/** The OpenAPI 3 document: generated from the routers' `openapi` meta and zod schemas. */
export function openApiDocument(router: AnyRouter, opts: { version: string; baseUrl: string }) {
  const doc = generateOpenApiDocument(router, {
    title: 'strokeview API',
    version: opts.version,
    description:
      'Ischemic-stroke lesion segmentation. Authenticate with `Authorization: Bearer <token>` (create one with ' +
      '`strokeview tokens create` or `auth.tokens.create`). Volume and mask files are downloaded from the signed ' +
      '`url`/`downloadUrl` of a volume descriptor. Errors are `{ message, code }` with the HTTP status.',
    baseUrl: `${opts.baseUrl}/api`,
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API token' } },
  });
  const paths = (doc.paths ??= {}) as Record<string, Record<string, unknown>>;
  for (const [path, route] of Object.entries(MULTIPART_ROUTES)) {
    const properties = Object.fromEntries(
      Object.entries(route.fields).map(([k, kind]) => [k, kind === 'binary' ? { type: 'string', format: 'binary' } : { type: 'string' }]),
    );
    paths[path] = {
      ...paths[path],
      post: {
        operationId: route.procedure.replace('.', '-'),
        summary: route.summary,
        tags: [route.tag],
        security: [{ bearer: [] }],
        requestBody: {
          required: true,
          content: { 'multipart/form-data': { schema: { type: 'object', properties, required: [...route.required] } } },
        },
        responses: {
          200: {
            description: 'Stored',
            content: { 'application/json': { schema: z.toJSONSchema(route.output, { io: 'output', target: 'openapi-3.0' }) } },
          },
          400: { description: 'Invalid input' },
          401: { description: 'No or invalid token' },
          413: { description: 'Too large' },
          422: { description: 'Not a usable NIfTI volume (the message says why)' },
        },
      },
    };
  }
  return doc;
}

/** A procedure's error as REST answers it: `{ message, code }` with the HTTP status; internal errors masked. */
export function restError(c: HonoContext, err: unknown) {
  const error = err instanceof TRPCError ? err : new TRPCError({ code: 'INTERNAL_SERVER_ERROR', cause: err });
  const status = getHTTPStatusCodeFromError(error);
  const message = error.code === 'INTERNAL_SERVER_ERROR' ? INTERNAL_ERROR_MESSAGE : error.message;
  return c.json({ message, code: error.code }, status as 400);
}

/** `/api`: REST routes for the main procedures, and `/api/openapi.json`. */
export function openApiRoutes(opts: OpenApiOptions): Hono {
  const app = new Hono();
  let cached: { base: string; doc: unknown } | undefined;

  app.get('/api/openapi.json', (c) => {
    const base = opts.baseUrl(c);
    if (cached?.base !== base) cached = { base, doc: openApiDocument(opts.router, { version: opts.version, baseUrl: base }) };
    return c.json(cached.doc);
  });

  for (const [path, route] of Object.entries(MULTIPART_ROUTES)) {
    if (route.streamed) continue;
    app.post(`/api${path}`, async (c) => {
      const resHeaders = new Headers();
      let form: FormData;
      try {
        form = await c.req.formData();
      } catch {
        return c.json({ message: 'Send the files as multipart/form-data', code: 'BAD_REQUEST' }, 400);
      }
      try {
        const ctx = await opts.createContext(c, resHeaders);
        const caller = opts.router.createCaller(ctx) as Record<string, Record<string, (input: FormData) => Promise<unknown>>>;
        const [domain, verb] = route.procedure.split('.') as [string, string];
        const data = await caller[domain]![verb]!(form);
        const res = c.json(data as object, 200);
        resHeaders.forEach((v, k) => res.headers.set(k, v));
        return res;
      } catch (err) {
        if (!(err instanceof TRPCError) || err.code === 'INTERNAL_SERVER_ERROR') opts.onInternalError(c, route.procedure, err);
        const res = restError(c, err);
        resHeaders.forEach((v, k) => res.headers.set(k, v));
        return res;
      }
    });
  }

  app.all('/api/*', async (c) => {
    const resHeaders = new Headers();
    const res = await createOpenApiFetchHandler({
      req: c.req.raw,
      endpoint: '/api',
      router: opts.router as never,
      createContext: () => opts.createContext(c, resHeaders),
      onError: ({ error, path }: { error: TRPCError; path?: string }) => {
        if (error.code === 'INTERNAL_SERVER_ERROR') opts.onInternalError(c, path, error.cause ?? error);
      },
    } as never);
    // Headers procedures set (Retry-After on a 429) travel with the answer.
    resHeaders.forEach((v, k) => {
      if (k !== 'set-cookie') res.headers.set(k, v);
    });
    return res;
  });
  return app;
}
