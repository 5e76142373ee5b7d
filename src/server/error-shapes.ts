import { TRPCError, getTRPCErrorFromUnknown } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { TRPC_ERROR_CODES_BY_KEY, type TRPC_ERROR_CODE_KEY } from '@trpc/server/rpc';
import type { Context as HonoContext } from 'hono';
import type { ContentfulStatusCode } from 'hono/utils/http-status';
import { type ErrorData, INTERNAL_ERROR_MESSAGE } from '../shared/errors.js';
import { DATABASE_RETRY_AFTER_S, databaseUnavailableMessage, isDatabaseUnavailable } from './db/unavailable.js';
import {
  DomainError,
  type DomainErrorKind,
  STORAGE_RETRY_AFTER_S,
  STORAGE_UNAVAILABLE_MESSAGE,
  isStorageUnavailable,
  storageMisconfiguration,
  storageMisconfiguredMessage,
} from './errors.js';
import type { Logger } from './logger.js';

// How an error looks on the wire, in one place for both surfaces: tRPC's error shape (`/trpc`,
// and middleware that answers before tRPC runs) and the REST shape (`/api`), which is the same
// shape with the code as its name — what trpc-to-openapi sends for the routes it serves.

/** The tRPC mapping: the code each domain error kind is answered with. */
export const TRPC_CODES: Record<DomainErrorKind, TRPC_ERROR_CODE_KEY> = {
  invalid: 'BAD_REQUEST',
  unauthorized: 'UNAUTHORIZED',
  'invalid-token': 'UNAUTHORIZED',
  forbidden: 'FORBIDDEN',
  'not-found': 'NOT_FOUND',
  conflict: 'CONFLICT',
  'too-large': 'PAYLOAD_TOO_LARGE',
  unprocessable: 'UNPROCESSABLE_CONTENT',
  'too-many': 'TOO_MANY_REQUESTS',
  timeout: 'TIMEOUT',
  unavailable: 'SERVICE_UNAVAILABLE',
  cancelled: 'CLIENT_CLOSED_REQUEST',
};

/** Anything thrown, as the tRPC error a client sees: a domain error by its kind, the database or the object store being down as 503, the rest as it is. */
export function toTRPCError(err: unknown): TRPCError {
  const error = getTRPCErrorFromUnknown(err);
  if (error.code !== 'INTERNAL_SERVER_ERROR') return error;
  const cause = error.cause;
  if (isDatabaseUnavailable(cause))
    return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: databaseUnavailableMessage(cause), cause });
  if (isStorageUnavailable(cause)) return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: STORAGE_UNAVAILABLE_MESSAGE, cause });
  const misconfigured = storageMisconfiguration(cause);
  // No Retry-After: retrying will not help until an operator creates the bucket.
  if (misconfigured) return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: storageMisconfiguredMessage(misconfigured), cause });
  if (cause instanceof DomainError) return new TRPCError({ code: TRPC_CODES[cause.kind], message: cause.message, cause });
  return error;
}

/** Seconds the client should wait before trying again (the Retry-After header), when the error says. */
export function retryAfterOf(error: TRPCError): number | undefined {
  if (error.cause instanceof DomainError && error.cause.retryAfterSeconds !== undefined) {
    return Math.max(1, Math.ceil(error.cause.retryAfterSeconds));
  }
  if (error.code === 'SERVICE_UNAVAILABLE' && isDatabaseUnavailable(error.cause)) return DATABASE_RETRY_AFTER_S;
  if (error.code === 'SERVICE_UNAVAILABLE' && isStorageUnavailable(error.cause)) return STORAGE_RETRY_AFTER_S;
  return undefined;
}

/**
 * RFC 6750's challenge for a refused bearer token (the WWW-Authenticate header), when the error is
 * one: clients and proxies that know the RFC can tell "this token is bad" from "send a token".
 */
export function authChallengeOf(error: TRPCError): string | undefined {
  if (!(error.cause instanceof DomainError) || error.cause.kind !== 'invalid-token') return undefined;
  // A quoted-string: the messages are ours, but keep it well-formed whatever they become.
  return `Bearer error="invalid_token", error_description="${error.cause.message.replace(/["\\\r\n]/g, '')}"`;
}

/** The headers an error answer carries whatever surface sends it: Retry-After, WWW-Authenticate. */
export function errorHeaders(error: TRPCError): Record<string, string> {
  const headers: Record<string, string> = {};
  const retryAfter = retryAfterOf(error);
  if (retryAfter !== undefined) headers['retry-after'] = String(retryAfter);
  const challenge = authChallengeOf(error);
  if (challenge !== undefined) headers['www-authenticate'] = challenge;
  return headers;
}

/** Neither a domain error nor an outage: a bug or an unexplained failure, logged in full. */
export function isUnexplained(error: TRPCError): boolean {
  return error.code === 'INTERNAL_SERVER_ERROR' && !(error.cause instanceof DomainError);
}

/**
 * Logs a failed call once, by what it means: unexplained failures in full (the client saw a masked
 * message), the database being down as a warning, expected domain errors not at all.
 */
export function reportError(log: Logger, error: TRPCError, where: { reqId?: string | undefined; path?: string | undefined }): void {
  if (error.code === 'SERVICE_UNAVAILABLE' && isDatabaseUnavailable(error.cause)) {
    log.warn({ ...where, err: (error.cause as Error).message }, 'database unavailable');
  } else if (error.code === 'SERVICE_UNAVAILABLE' && isStorageUnavailable(error.cause)) {
    log.warn({ ...where, err: (error.cause as Error).message }, 'object store unavailable');
  } else if (error.code === 'SERVICE_UNAVAILABLE' && storageMisconfiguration(error.cause)) {
    log.error({ ...where, err: storageMisconfiguration(error.cause) }, 'object store misconfigured (STORAGE_URL)');
  } else if (error.code === 'SERVICE_UNAVAILABLE' && error.cause instanceof DomainError && error.cause.detail) {
    log.warn({ ...where, err: error.cause.detail }, error.cause.message);
  } else if (isUnexplained(error)) {
    log.error({ ...where, err: error.cause ?? error }, 'procedure failed');
  }
}

interface Issue {
  path: PropertyKey[];
  message: string;
}

function validationIssues(cause: unknown): Issue[] | undefined {
  if (cause && typeof cause === 'object' && Array.isArray((cause as { issues?: unknown }).issues)) {
    return (cause as { issues: Issue[] }).issues;
  }
  return undefined;
}

export interface TrpcErrorShape {
  message: string;
  code: number;
  data: ErrorData;
}

/**
 * tRPC's error shape. Internal errors reach the client as one plain sentence (no stack, no SQL,
 * no driver text, even outside production); validation errors as a readable message plus messages
 * per field; a domain error about one field or file names it in `data.fieldErrors` too.
 */
export function trpcShape(error: TRPCError, path?: string): TrpcErrorShape {
  const data: ErrorData = { code: error.code, httpStatus: getHTTPStatusCodeFromError(error), ...(path ? { path } : {}) };
  let message = error.message;
  const issues = error.code === 'BAD_REQUEST' ? validationIssues(error.cause) : undefined;
  if (error.code === 'INTERNAL_SERVER_ERROR') {
    message = INTERNAL_ERROR_MESSAGE;
  } else if (issues) {
    const fieldErrors: Record<string, string[]> = {};
    for (const issue of issues) {
      const key = issue.path.map(String).join('.') || '(input)';
      fieldErrors[key] = [...(fieldErrors[key] ?? []), issue.message];
    }
    data.fieldErrors = fieldErrors;
    message = `Invalid input: ${Object.entries(fieldErrors)
      .map(([field, msgs]) => `${field}: ${msgs.join(', ')}`)
      .join('; ')}`;
  } else if (error.cause instanceof DomainError && error.cause.field) {
    data.fieldErrors = { [error.cause.field]: [message] };
  }
  // In the body too: a batched or SSE client cannot read the response's headers.
  if (authChallengeOf(error)) data.authError = 'invalid_token';
  return { message, code: TRPC_ERROR_CODES_BY_KEY[error.code], data };
}

/** The surface a non-tRPC route answers for: `/trpc/...` (tRPC's shape) or `/api/...` (REST's). */
export type ErrorFormat = 'trpc' | 'rest';

/** REST's error body: tRPC's shape with the code's name (`"NOT_FOUND"`) instead of its number. */
export function restShape(shape: TrpcErrorShape): Omit<TrpcErrorShape, 'code'> & { code: string } {
  return { ...shape, code: shape.data.code };
}

/**
 * An error answered in the caller's format, by routes and middleware outside tRPC's handler
 * (uploads, CSRF, readiness, body limits, rate limits); unexplained errors are logged in full.
 */
export function errorResponse(c: HonoContext, format: ErrorFormat, err: unknown, opts: { path?: string; log?: Logger } = {}): Response {
  const error = toTRPCError(err);
  if (opts.log) reportError(opts.log, error, { reqId: c.get('requestId') as string | undefined, path: opts.path });
  const shape = trpcShape(error, opts.path);
  return c.json(
    format === 'trpc' ? { error: shape } : restShape(shape),
    shape.data.httpStatus as ContentfulStatusCode,
    errorHeaders(error),
  );
}

/** The format a request expects from its path: REST under `/api`, tRPC's elsewhere. */
export function formatOf(c: HonoContext): ErrorFormat {
  return c.req.path.startsWith('/api/') ? 'rest' : 'trpc';
}
