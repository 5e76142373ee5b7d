/**
 * The one error model. Every failure the domain expects is a DomainError — a kind, a message a
 * person can act on, optionally the input or file it is about (`field`) and how long to wait
 * (`retryAfterSeconds`) — thrown by domain code, carried unchanged across the CPU pool's threads
 * (`toWire` / `fromWire`), and mapped to HTTP in one place per surface (error-shapes.ts: tRPC's own
 * codes, and the REST shape derived from them). Anything else is an internal error: masked to the
 * client, logged in full.
 *
 * Adding a kind: add it to DomainErrorKind (and a helper below), then one line in
 * error-shapes.ts's TRPC_CODES if no existing code fits.
 */
export type DomainErrorKind =
  | 'invalid'
  | 'unauthorized'
  /**
   * A credential was presented and refused (a bearer token malformed, unknown, revoked or
   * expired): a 401 with RFC 6750's `invalid_token` challenge, never a fall-back to anonymous.
   */
  | 'invalid-token'
  | 'forbidden'
  | 'not-found'
  | 'conflict'
  | 'too-large'
  | 'unprocessable'
  | 'too-many'
  /** The client stopped sending (an idle upload body): it may try again. */
  | 'timeout'
  | 'unavailable'
  /** The work was stopped on purpose (cancel, timeout, shutdown): a control signal, never shown as a fault. */
  | 'cancelled';

export interface DomainErrorOptions {
  /** The input field or uploaded file the error is about (`dwi`, `file`, `caseId`); reaches clients as `data.fieldErrors`. */
  field?: string | undefined;
  /** For `too-many` and `unavailable`: how long to wait (sent as Retry-After). */
  retryAfterSeconds?: number | undefined;
  /** What lay underneath (a socket's code, a store's status), for the server's log only: never sent to a client. */
  detail?: string | undefined;
}

export class DomainError extends Error {
  override name = 'DomainError';
  readonly field: string | undefined;
  readonly retryAfterSeconds: number | undefined;
  readonly detail: string | undefined;
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
    options: DomainErrorOptions = {},
  ) {
    super(message);
    this.field = options.field;
    this.retryAfterSeconds = options.retryAfterSeconds;
    this.detail = options.detail;
  }
}

export function isDomainError(err: unknown, kind?: DomainErrorKind): err is DomainError {
  return err instanceof DomainError && (kind === undefined || err.kind === kind);
}

type Options = DomainErrorOptions;
export const invalid = (message: string, o?: Options) => new DomainError('invalid', message, o);
export const unauthorized = (message: string) => new DomainError('unauthorized', message);
export const invalidToken = (message: string) => new DomainError('invalid-token', message);
export const forbidden = (message: string) => new DomainError('forbidden', message);
export const notFound = (message: string, o?: Options) => new DomainError('not-found', message, o);
export const conflict = (message: string) => new DomainError('conflict', message);
export const tooLarge = (message: string, o?: Options) => new DomainError('too-large', message, o);
/** Well-formed but unusable input (a file that is not a volume, grids that differ): the person can fix it. */
export const unprocessable = (message: string, o?: Options) => new DomainError('unprocessable', message, o);
export const tooMany = (message: string, retryAfterSeconds: number) => new DomainError('too-many', message, { retryAfterSeconds });
export const unavailable = (message: string, retryAfterSeconds: number, detail?: string) =>
  new DomainError('unavailable', message, { retryAfterSeconds, detail });
export const timedOut = (message: string) => new DomainError('timeout', message);
export const cancelled = () => new DomainError('cancelled', 'Cancelled');

/** An error as data, for a thread boundary: a DomainError whole, anything else as an internal error. */
export type WireError =
  | { kind: DomainErrorKind; message: string; field?: string; retryAfterSeconds?: number }
  | { kind: 'internal'; message: string; stack?: string };

export function toWire(err: unknown): WireError {
  if (err instanceof DomainError) {
    return {
      kind: err.kind,
      message: err.message,
      ...(err.field !== undefined ? { field: err.field } : {}),
      ...(err.retryAfterSeconds !== undefined ? { retryAfterSeconds: err.retryAfterSeconds } : {}),
    };
  }
  const e = err as Error | undefined;
  return { kind: 'internal', message: e?.message ?? String(err), ...(e?.stack ? { stack: e.stack } : {}) };
}

export function fromWire(w: WireError): Error {
  if (w.kind === 'internal') {
    const err = new Error(w.message);
    if (w.stack) err.stack = w.stack;
    return err;
  }
  return new DomainError(w.kind, w.message, { field: w.field, retryAfterSeconds: w.retryAfterSeconds });
}

const SYSTEM_ERRORS: Record<string, string> = {
  ENOENT: 'a stored file of this case is missing',
  ENOSPC: 'the server ran out of disk space',
  EDQUOT: 'the server ran out of disk space',
  EACCES: 'the server may not read or write its data folder',
  EPERM: 'the server may not read or write its data folder',
  EROFS: 'the server may not write its data folder',
  EIO: 'a disk read or write failed',
  EMFILE: 'the server has too many files open',
  // volumes/s3-store.ts: the object store unreachable, timing out or answering 5xx
  ESTORAGE: 'the object store (STORAGE_URL) is not answering',
};

/** A Node system error (fs, net) as a plain phrase without paths, or undefined for anything else. */
export function systemErrorPhrase(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return undefined;
  // volumes/s3-store.ts StorageMisconfigured: its message names the bucket (no path, no secret)
  if (code === 'EBUCKET' && err instanceof Error) return err.message;
  return SYSTEM_ERRORS[code] ?? `a system error (${code})`;
}

/**
 * The object store could not answer (volumes/s3-store.ts: unreachable, timed out, 5xx), anywhere in
 * the cause chain: an outage like the database's, answered 503 + Retry-After naming the storage
 * wherever it surfaces (a procedure reading a volume, an upload storing one), never a 500.
 */
export function isStorageUnavailable(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === 'ESTORAGE') return true;
  }
  return false;
}

/**
 * The object store answered that STORAGE_URL's bucket does not exist (volumes/s3-store.ts
 * StorageMisconfigured), anywhere in the cause chain: a configuration error, answered 503 naming
 * the bucket but without Retry-After. Returns the phrase ("the bucket … does not exist") or undefined.
 */
export function storageMisconfiguration(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 4; e = (e as { cause?: unknown }).cause, depth++) {
    if ((e as { code?: unknown }).code === 'EBUCKET' && e instanceof Error) return e.message;
  }
  return undefined;
}

/** What a client reads when the store's bucket is missing: whose problem it is and what fixes it. */
export function storageMisconfiguredMessage(phrase: string): string {
  return `The object store is misconfigured: ${phrase} (STORAGE_URL); an operator must create the bucket or correct STORAGE_URL`;
}

export const STORAGE_UNAVAILABLE_MESSAGE = 'The object store (STORAGE_URL) is not answering right now; retry in a few seconds';
/** A store outage is usually a blip (a restart, a failover), unlike a full disk: come back soon. */
export const STORAGE_RETRY_AFTER_S = 5;
