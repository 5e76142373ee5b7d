import type { MiddlewareHandler } from 'hono';
import { bodyLimit } from 'hono/body-limit';
import { KiB, MiB } from '../../../shared/units.js';
import { errorResponse, formatOf } from '../../error-shapes.js';
import { tooLarge } from '../../errors.js';

export interface BodyLimitsOptions {
  /**
   * Routes whose bodies stream to disk (http/uploads), capped there while streaming and after
   * authentication. Only a declared Content-Length is checked here: Hono's bodyLimit would read a
   * chunked body (no length) into memory before anything else ran — the whole upload, unauthenticated.
   */
  streamed: { paths: readonly string[]; maxBytes: number }[];
  /** Every other body (tRPC calls, REST JSON), read whole by their handlers: small. */
  maxBytes: number;
}

/** The one table of body limits, answered 413 in the caller's error shape (tRPC's or REST's). */
export function bodyLimits(options: BodyLimitsOptions): MiddlewareHandler {
  // Each streamed path's cap (NIfTI uploads and DICOM studies differ).
  const streamed = new Map(options.streamed.flatMap((g) => g.paths.map((p) => [p, g.maxBytes] as const)));
  const small = bodyLimit({
    maxSize: options.maxBytes,
    onError: (c) => errorResponse(c, formatOf(c), tooLarge(`The request body is larger than ${Math.round(options.maxBytes / KiB)} KiB`)),
  });
  return async function bodyLimits(c, next) {
    // A GET or HEAD request reaches the app without a body (@hono/node-server never attaches one, as
    // fetch's Request forbids it), so there is nothing to limit; asking Hono's bodyLimit would turn the
    // server's lightweight request into a full undici Request first (~5 % of a cases.list).
    if (c.req.method === 'GET' || c.req.method === 'HEAD') return next();
    const max = c.req.method === 'POST' ? streamed.get(c.req.path) : undefined;
    if (max === undefined) return small(c, next);
    const length = c.req.header('content-length');
    if (length !== undefined && !c.req.header('transfer-encoding') && Number(length) > max) {
      return errorResponse(c, formatOf(c), tooLarge(`The upload is larger than ${Math.round(max / MiB)} MiB`));
    }
    await next();
  };
}
