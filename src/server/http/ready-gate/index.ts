import type { MiddlewareHandler } from 'hono';
import type { Readiness } from '../../readiness.js';
import { errorResponse, formatOf } from '../../error-shapes.js';
import { unavailable } from '../../errors.js';

export interface ReadyGateOptions {
  readiness: Readiness;
  /** Seconds a client is told to wait before trying again. */
  retryAfterSeconds?: number;
}

/**
 * Until boot has finished, answers at once with 503 + Retry-After (in the caller's error shape) rather
 * than letting a request hang on a database that is still opening. Clients treat 503 as "waking
 * up" and retry.
 */
export function readyGate(options: ReadyGateOptions): MiddlewareHandler {
  const retryAfter = options.retryAfterSeconds ?? 2;
  return async function readyGate(c, next) {
    const { state } = options.readiness;
    if (state === 'ready' || (state === 'stopping' && options.readiness.services)) {
      await next();
      return;
    }
    c.header('Cache-Control', 'no-store');
    const message = state === 'failed' ? 'strokeview could not start; see the server log' : 'strokeview is starting up; retry shortly';
    return errorResponse(c, formatOf(c), unavailable(message, retryAfter));
  };
}
