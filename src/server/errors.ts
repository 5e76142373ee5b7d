/**
 * What the domain says went wrong, without HTTP in it: services throw these, and the tRPC layer
 * (trpc.ts, `domainErrors`) maps each kind to its code in one place — the same for /trpc and /api.
 */
export type DomainErrorKind =
  'invalid' | 'unauthorized' | 'forbidden' | 'not-found' | 'conflict' | 'unprocessable' | 'too-many' | 'unavailable';

export class DomainError extends Error {
  override name = 'DomainError';
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
    /** For `too-many` and `unavailable`: how long to wait (sent as Retry-After). */
    readonly retryAfterSeconds?: number,
  ) {
    super(message);
  }
}

export const invalid = (message: string) => new DomainError('invalid', message);
export const unauthorized = (message: string) => new DomainError('unauthorized', message);
export const forbidden = (message: string) => new DomainError('forbidden', message);
export const notFound = (message: string) => new DomainError('not-found', message);
export const conflict = (message: string) => new DomainError('conflict', message);
export const tooMany = (message: string, retryAfterSeconds: number) => new DomainError('too-many', message, retryAfterSeconds);
export const unavailable = (message: string, retryAfterSeconds: number) => new DomainError('unavailable', message, retryAfterSeconds);

const SYSTEM_ERRORS: Record<string, string> = {
  ENOENT: 'a stored file of this case is missing',
  ENOSPC: 'the server ran out of disk space',
  EDQUOT: 'the server ran out of disk space',
  EACCES: 'the server may not read or write its data folder',
  EPERM: 'the server may not read or write its data folder',
  EROFS: 'the server may not write its data folder',
  EIO: 'a disk read or write failed',
  EMFILE: 'the server has too many files open',
};

/** A Node system error (fs, net) as a plain phrase without paths, or undefined for anything else. */
export function systemErrorPhrase(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string' || !/^E[A-Z]+$/.test(code)) return undefined;
  return SYSTEM_ERRORS[code] ?? `a system error (${code})`;
}
