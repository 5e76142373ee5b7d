import { TRPCError, initTRPC } from '@trpc/server';
import { getHTTPStatusCodeFromError } from '@trpc/server/http';
import { TRPC_ERROR_CODES_BY_KEY } from '@trpc/server/rpc';
import { type ErrorData, INTERNAL_ERROR_MESSAGE } from '../shared/errors.js';
import type { Context } from './context.js';
import { DATABASE_RETRY_AFTER_S, DATABASE_UNAVAILABLE_MESSAGE, isDatabaseUnavailable } from './db/unavailable.js';
import { DomainError, type DomainErrorKind } from './errors.js';

interface Issue {
  path: PropertyKey[];
  message: string;
}

/** Who may call a procedure. Every procedure without `access` is public and must be on the allowlist. */
export interface Meta {
  access?: 'user' | 'admin';
  /**
   * Also served as a REST route under `/api` and described in `/api/openapi.json`
   * (trpc-to-openapi reads this; see http/openapi). `protect: false` marks a public route.
   */
  openapi?: {
    method: 'GET' | 'POST' | 'DELETE';
    path: `/${string}`;
    summary?: string;
    description?: string;
    tags?: string[];
    protect?: boolean;
  };
}

function validationIssues(cause: unknown): Issue[] | undefined {
  if (cause && typeof cause === 'object' && Array.isArray((cause as { issues?: unknown }).issues)) {
    return (cause as { issues: Issue[] }).issues;
  }
  return undefined;
}

function fieldErrorsOf(issues: Issue[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const issue of issues) {
    const key = issue.path.map(String).join('.') || '(input)';
    out[key] = [...(out[key] ?? []), issue.message];
  }
  return out;
}

const t = initTRPC
  .context<Context>()
  .meta<Meta>()
  .create({
    // SSE subscriptions: a ping every 10 s keeps proxies from cutting an idle stream; the client
    // reconnects (resuming from the last event id) when it hears nothing for 25 s.
    sse: { ping: { enabled: true, intervalMs: 10_000 }, client: { reconnectAfterInactivityMs: 25_000 } },
    /**
     * Internal errors reach the client as one plain sentence: no stack, no SQL, no driver text —
     * even outside production. Validation errors become a readable message plus per-field messages.
     */
    errorFormatter({ shape, error: raw }) {
      // A domain error thrown where no middleware sees it (inside a subscription's stream) is
      // mapped here, the same way as domainErrors below maps it for queries and mutations.
      const error = fromDomain(raw);
      const issues = error.code === 'BAD_REQUEST' ? validationIssues(error.cause) : undefined;
      const data: ErrorData = {
        code: error.code,
        httpStatus: getHTTPStatusCodeFromError(error),
        ...(shape.data.path ? { path: shape.data.path } : {}),
      };
      let message = error === raw ? shape.message : error.message;
      if (error.code === 'INTERNAL_SERVER_ERROR') {
        message = INTERNAL_ERROR_MESSAGE;
      } else if (issues) {
        data.fieldErrors = fieldErrorsOf(issues);
        message = `Invalid input: ${Object.entries(data.fieldErrors)
          .map(([field, msgs]) => `${field}: ${msgs.join(', ')}`)
          .join('; ')}`;
      }
      return { message, code: TRPC_ERROR_CODES_BY_KEY[error.code], data };
    },
  });

/** A tRPC error whose cause is a domain error, as the code that domain error means; others unchanged. */
export function fromDomain(error: TRPCError): TRPCError {
  const cause = error.cause;
  if (error.code === 'INTERNAL_SERVER_ERROR' && isDatabaseUnavailable(cause)) {
    return new TRPCError({ code: 'SERVICE_UNAVAILABLE', message: DATABASE_UNAVAILABLE_MESSAGE, cause });
  }
  if (!(cause instanceof DomainError) || error.code !== 'INTERNAL_SERVER_ERROR') return error;
  return new TRPCError({ code: CODES[cause.kind], message: cause.message, cause });
}

const CODES: Record<DomainErrorKind, TRPCError['code']> = {
  invalid: 'BAD_REQUEST',
  unauthorized: 'UNAUTHORIZED',
  forbidden: 'FORBIDDEN',
  'not-found': 'NOT_FOUND',
  conflict: 'CONFLICT',
  unprocessable: 'UNPROCESSABLE_CONTENT',
  'too-many': 'TOO_MANY_REQUESTS',
  unavailable: 'SERVICE_UNAVAILABLE',
};

/**
 * The one mapping from the domain's errors (errors.ts) to tRPC codes; errors that say how long
 * to wait (rate limits, caps) also get a Retry-After header.
 */
const domainErrors = t.middleware(async ({ ctx, next }) => {
  const result = await next();
  if (result.ok) return result;
  const cause = result.error.cause;
  if (result.error.code === 'INTERNAL_SERVER_ERROR' && isDatabaseUnavailable(cause)) {
    ctx.resHeaders.set('Retry-After', String(DATABASE_RETRY_AFTER_S));
    return { ...result, error: fromDomain(result.error) };
  }
  if (!(cause instanceof DomainError)) return result;
  if (cause.retryAfterSeconds !== undefined) ctx.resHeaders.set('Retry-After', String(Math.max(1, Math.ceil(cause.retryAfterSeconds))));
  return { ...result, error: fromDomain(result.error) };
});

export const router = t.router;
export const middleware = t.middleware;
export const createCallerFactory = t.createCallerFactory;

export const publicProcedure = t.procedure.use(domainErrors);

/** Signed in (any role, guests included); narrows `ctx.user` to non-null. */
export const protectedProcedure = publicProcedure.meta({ access: 'user' }).use(({ ctx, next }) => {
  if (!ctx.user) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'Sign in to continue' });
  return next({ ctx: { user: ctx.user } });
});

export const adminProcedure = publicProcedure.meta({ access: 'admin' }).use(({ ctx, next }) => {
  if (!ctx.user) throw new TRPCError({ code: 'UNAUTHORIZED', message: 'Sign in to continue' });
  if (ctx.user.role !== 'admin') throw new TRPCError({ code: 'FORBIDDEN', message: 'Administrators only' });
  return next({ ctx: { user: ctx.user } });
});
