/**
 * What the domain says went wrong, without HTTP in it: services throw these, and the tRPC layer
 * (trpc.ts, `domainErrors`) maps each kind to its code in one place — the same for /trpc and /api.
 */
export type DomainErrorKind = 'invalid' | 'unauthorized' | 'forbidden' | 'not-found' | 'conflict' | 'unprocessable' | 'too-many';

export class DomainError extends Error {
  override name = 'DomainError';
  constructor(
    readonly kind: DomainErrorKind,
    message: string,
    /** For `too-many`: how long to wait (sent as Retry-After). */
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
