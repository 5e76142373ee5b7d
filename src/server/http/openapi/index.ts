import type { AnyRouter, TRPCError } from '@trpc/server';
import { Hono, type Context as HonoContext } from 'hono';
import type * as OpenApiLibrary from 'trpc-to-openapi';
import { z } from 'zod';
import { caseDetailSchema } from '../../../shared/cases.js';
import { dicomUploadResultSchema } from '../../../shared/dicom.js';
import { maskVersionViewSchema } from '../../../shared/masks.js';
import type { CreateRequestContext } from '../../context.js';
import { reportError } from '../../error-shapes.js';
import type { Logger } from '../../logger.js';

export interface OpenApiOptions {
  router: AnyRouter;
  version: string;
  /** The public base URL of the server (the document's `servers`). */
  baseUrl: (c: HonoContext) => string;
  /** Makes a request's procedure context; REST takes bearer tokens only (no cookies, so no CSRF surface). */
  createContext: CreateRequestContext;
  log: Logger;
}

/**
 * The procedures that take files are tRPC procedures with FormData input, which trpc-to-openapi
 * cannot describe (it wants a zod object). They are served by the streaming upload routes
 * (http/uploads/routes.ts) and described by hand here — the only hand-written part of the document.
 */
const MULTIPART_ROUTES = {
  '/cases': {
    procedure: 'cases.upload',
    summary: 'Upload a case (multipart: name, dwi, adc, flair?, mask? as .nii or .nii.gz files)',
    tag: 'cases',
    fields: { name: 'string', dwi: 'binary', adc: 'binary', flair: 'binary', mask: 'binary' },
    required: ['name', 'dwi', 'adc'],
    output: caseDetailSchema,
  },
  '/masks': {
    procedure: 'masks.save',
    summary: 'Save a corrected mask as the next version (multipart: caseId, file, jobId?, note?)',
    tag: 'masks',
    fields: { caseId: 'string', file: 'binary', jobId: 'string', note: 'string' },
    required: ['caseId', 'file'],
    output: maskVersionViewSchema,
  },
  '/cases/dicom': {
    procedure: 'cases.uploadDicom',
    summary:
      'Import a DICOM study as a case (multipart: file — a .zip — or files — DICOM files, repeated —, name?, series? as JSON {"dwi","adc","flair"}, dryRun?). ' +
      "Converted with dcm2niix; the trace DWI and the ADC come from the diffusion series or the scanner's own. The answer says which series became which role and why.",
    tag: 'cases',
    fields: { file: 'binary', files: 'binary[]', name: 'string', series: 'string', dryRun: 'string' },
    required: [],
    output: dicomUploadResultSchema,
  },
} as const;

/**
 * trpc-to-openapi, loaded on first use: it is the largest import of the server (~1.5 s of a boot
 * on a busy 2-core machine) and nothing before ready needs it; the server warms it after ready.
 */
let library: Promise<typeof OpenApiLibrary> | undefined;
export const loadOpenApiLibrary = () => (library ??= import('trpc-to-openapi'));

/** The OpenAPI 3 document: generated from the routers' `openapi` meta and zod schemas. */
export async function openApiDocument(router: AnyRouter, opts: { version: string; baseUrl: string }) {
  const { generateOpenApiDocument } = await loadOpenApiLibrary();
  const doc = generateOpenApiDocument(router, {
    title: 'strokeview API',
    version: opts.version,
    description:
      'Ischemic-stroke lesion segmentation. Authenticate with `Authorization: Bearer <token>` (create one with ' +
      '`strokeview tokens create`, or `auth.tokens.create` from a signed-in browser session). A token the server refuses ' +
      '(malformed, unknown, revoked or expired) is a 401 with `WWW-Authenticate: Bearer error="invalid_token"` on every route. Volume and mask files are downloaded from the signed ' +
      '`url`/`downloadUrl` of a volume descriptor. Errors are `{ message, code, data }` with the HTTP status (`data.fieldErrors` names the input or file at fault).',
    baseUrl: `${opts.baseUrl}/api`,
    securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API token' } },
  });
  const paths = (doc.paths ??= {}) as Record<string, Record<string, unknown>>;
  for (const [path, route] of Object.entries(MULTIPART_ROUTES)) {
    const properties = Object.fromEntries(
      Object.entries(route.fields).map(([k, kind]) => [
        k,
        kind === 'binary'
          ? { type: 'string', format: 'binary' }
          : kind === 'binary[]'
            ? { type: 'array', items: { type: 'string', format: 'binary' } }
            : { type: 'string' },
      ]),
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
          422: {
            description:
              route.procedure === 'cases.uploadDicom'
                ? 'Not a usable DICOM study (the message says why)'
                : 'Not a usable NIfTI volume (the message says why)',
          },
        },
      },
    };
  }
  return doc;
}

/** `/api`: REST routes for the main procedures, and `/api/openapi.json`. */
export function openApiRoutes(opts: OpenApiOptions): Hono {
  const app = new Hono();
  let cached: { base: string; doc: unknown } | undefined;

  app.get('/api/openapi.json', async (c) => {
    const base = opts.baseUrl(c);
    if (cached?.base !== base) cached = { base, doc: await openApiDocument(opts.router, { version: opts.version, baseUrl: base }) };
    return c.json(cached.doc);
  });

  app.all('/api/*', async (c) => {
    const resHeaders = new Headers();
    const { createOpenApiFetchHandler } = await loadOpenApiLibrary();
    const res = await createOpenApiFetchHandler({
      req: c.req.raw,
      endpoint: '/api',
      router: opts.router as never,
      createContext: () => opts.createContext(c, { resHeaders, bearerOnly: true }),
      onError: ({ error, path }: { error: TRPCError; path?: string }) => reportError(opts.log, error, { reqId: c.get('requestId'), path }),
    } as never);
    // Headers procedures set (Retry-After on a 429) travel with the answer.
    resHeaders.forEach((v, k) => {
      if (k !== 'set-cookie') res.headers.set(k, v);
    });
    return res;
  });
  return app;
}
