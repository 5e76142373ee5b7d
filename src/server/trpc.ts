import { initTRPC } from '@trpc/server';
import { type ErrorData, INTERNAL_ERROR_MESSAGE } from '../shared/errors.js';
import type { Context } from './context.js';

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

function fieldErrorsOf(issues: Issue[]): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const issue of issues) {
    const key = issue.path.map(String).join('.') || '(input)';
    out[key] = [...(out[key] ?? []), issue.message];
  }
  return out;
}

const t = initTRPC.context<Context>().create({
  /**
   * Internal errors reach the client as one plain sentence: no stack, no SQL, no driver text —
   * even outside production. Validation errors become a readable message plus per-field messages.
   */
  errorFormatter({ shape, error }) {
    const issues = error.code === 'BAD_REQUEST' ? validationIssues(error.cause) : undefined;
    const data: ErrorData = {
      code: shape.data.code,
      httpStatus: shape.data.httpStatus,
      ...(shape.data.path ? { path: shape.data.path } : {}),
    };
    let message = shape.message;
    if (error.code === 'INTERNAL_SERVER_ERROR') {
      message = INTERNAL_ERROR_MESSAGE;
    } else if (issues) {
      data.fieldErrors = fieldErrorsOf(issues);
      message = `Invalid input: ${Object.entries(data.fieldErrors)
        .map(([field, msgs]) => `${field}: ${msgs.join(', ')}`)
        .join('; ')}`;
    }
    return { message, code: shape.code, data };
  },
});

export const router = t.router;
export const publicProcedure = t.procedure;
export const middleware = t.middleware;
export const createCallerFactory = t.createCallerFactory;
export const mergeRouters = t.mergeRouters;
