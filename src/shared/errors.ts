import { z } from 'zod';

/** Extra fields the server puts in every tRPC error's `data`. */
export interface ErrorData {
  code: string;
  httpStatus: number;
  path?: string;
  /** Set for validation errors: messages per input field (`"email"`, `"volumes.0.role"`). */
  fieldErrors?: Record<string, string[]>;
  /**
   * Set when the request's bearer token was refused (malformed, unknown, revoked or expired):
   * RFC 6750's error code, also sent as `WWW-Authenticate`. A new token is needed; retrying won't help.
   */
  authError?: 'invalid_token';
}

/** The message users see for errors the server does not explain (bugs, database failures). */
export const INTERNAL_ERROR_MESSAGE = 'Something went wrong on the server. Please try again later.';

/** What a mutation with nothing else to say returns. */
export const okSchema = z.object({ ok: z.literal(true) });
