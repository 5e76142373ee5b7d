import { TRPCClientError } from '@trpc/client';
import { HttpStatusError, failureFacts } from '../shared/retry.js';
import type { AppRouter } from './router.js';

/** What went wrong, as a code a program can branch on. */
export type StrokeviewErrorCode =
  /** tRPC's codes: the server answered with an error. */
  | 'BAD_REQUEST'
  | 'UNAUTHORIZED'
  | 'FORBIDDEN'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'PAYLOAD_TOO_LARGE'
  | 'UNPROCESSABLE_CONTENT'
  | 'TOO_MANY_REQUESTS'
  | 'INTERNAL_SERVER_ERROR'
  | 'SERVICE_UNAVAILABLE'
  /** No answer at all (connection refused, DNS, reset), after the retry policy gave up. */
  | 'NETWORK_ERROR'
  /** A job ended failed or cancelled (`job` holds it). */
  | 'JOB_FAILED'
  | 'JOB_CANCELLED'
  /** The caller's AbortSignal fired. */
  | 'ABORTED'
  | (string & {});

/**
 * Every error the SDK throws. It is a TRPCClientError too (so tRPC tooling still recognises it),
 * with the tRPC code, the HTTP status (null when the server was never reached) and, for
 * validation errors, the messages per field.
 */
export class StrokeviewError extends TRPCClientError<AppRouter> {
  readonly code: StrokeviewErrorCode;
  readonly status: number | null;
  readonly retryAfterS: number | null;
  readonly fieldErrors: Record<string, string[]>;
  /**
   * The server refused the API token itself (malformed, unknown, revoked or expired; code
   * UNAUTHORIZED, RFC 6750 `invalid_token`): a new token is needed, retrying will not help.
   */
  readonly tokenRefused: boolean;
  /** For JOB_FAILED / JOB_CANCELLED: the job as it ended. */
  job?: unknown;

  constructor(
    message: string,
    opts: {
      code: StrokeviewErrorCode;
      status?: number | null;
      retryAfterS?: number | null;
      fieldErrors?: Record<string, string[]>;
      tokenRefused?: boolean;
      cause?: unknown;
    },
  ) {
    super(message, opts.cause instanceof Error ? { cause: opts.cause } : {});
    // TRPCClientError's constructor pins the prototype to its own; put ours back.
    Object.setPrototypeOf(this, new.target.prototype);
    this.name = 'StrokeviewError';
    this.code = opts.code;
    this.status = opts.status ?? null;
    this.retryAfterS = opts.retryAfterS ?? null;
    this.fieldErrors = opts.fieldErrors ?? {};
    this.tokenRefused = opts.tokenRefused ?? false;
  }

  /** Anything thrown by a tRPC link, fetch or the SDK itself, as a StrokeviewError. */
  static wrap(err: unknown): StrokeviewError {
    if (err instanceof StrokeviewError) return err;
    const facts = failureFacts(err);
    const data = (
      err as { data?: { code?: string; httpStatus?: number; fieldErrors?: Record<string, string[]>; authError?: string } } | null
    )?.data;
    const message = err instanceof Error ? err.message : String(err);
    if (data?.code) {
      const e = new StrokeviewError(message, {
        code: data.code,
        status: data.httpStatus ?? null,
        retryAfterS: facts.retryAfterS ?? null,
        fieldErrors: data.fieldErrors ?? {},
        tokenRefused: data.authError === 'invalid_token',
        cause: err,
      });
      // What tRPC tooling reads off a TRPCClientError stays where it looks.
      const { shape, meta } = err as { shape?: unknown; meta?: unknown };
      Object.assign(e, { data, shape, meta });
      return e;
    }
    if (facts.status !== undefined) {
      const code = facts.status === 503 ? 'SERVICE_UNAVAILABLE' : facts.status >= 500 ? 'INTERNAL_SERVER_ERROR' : `HTTP_${facts.status}`;
      const text = err instanceof HttpStatusError ? err.message : `The server answered ${facts.status}`;
      return new StrokeviewError(text, { code, status: facts.status, retryAfterS: facts.retryAfterS ?? null, cause: err });
    }
    if ((err as { name?: string } | null)?.name === 'AbortError') return new StrokeviewError('Aborted', { code: 'ABORTED', cause: err });
    return new StrokeviewError(`Cannot reach the server: ${message}`, { code: 'NETWORK_ERROR', cause: err });
  }
}
