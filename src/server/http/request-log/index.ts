import type { MiddlewareHandler } from 'hono';
import type { Logger } from '../../logger.js';

export interface RequestLogOptions {
  logger: Logger;
  /** Rewrites a path before it is logged (signed-URL tokens must not reach the log). */
  redactPath?: (path: string) => string;
}

/**
 * One JSON line per request: method, path (no query string: it may carry tokens), status,
 * duration and the request id that `requestId()` put on the context and the response.
 */
export function requestLog(options: RequestLogOptions): MiddlewareHandler {
  const redact = options.redactPath ?? ((p: string) => p);
  return async function requestLog(c, next) {
    const started = performance.now();
    let failed: unknown;
    try {
      await next();
    } catch (err) {
      failed = err;
      throw err;
    } finally {
      // Responses built outside Hono (tRPC's) do not carry headers set before them; set it again.
      const reqId = c.get('requestId') as string | undefined;
      if (reqId && !failed) c.res.headers.set('X-Request-Id', reqId);
      const status = failed ? 500 : c.res.status;
      const line = {
        reqId,
        method: c.req.method,
        path: redact(c.req.path),
        status,
        durationMs: Math.round((performance.now() - started) * 10) / 10,
      };
      if (status >= 500) options.logger.warn(line, 'request');
      else options.logger.info(line, 'request');
    }
  };
}
