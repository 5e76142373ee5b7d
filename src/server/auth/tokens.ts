import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

/** Prefixes say what a bearer token is, so a leaked one is recognisable and lookups go to one table. */
export const SESSION_TOKEN_PREFIX = 'svs_';
export const API_TOKEN_PREFIX = 'svt_';

/** 256 bits from the OS CSPRNG, base64url. */
export function newToken(prefix: string): string {
  return `${prefix}${randomBytes(32).toString('base64url')}`;
}

/** Only this digest is stored: a database leak does not leak usable tokens. */
export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** Constant-time comparison of two hex digests. */
export function sameDigest(a: string, b: string): boolean {
  const x = Buffer.from(a, 'hex');
  const y = Buffer.from(b, 'hex');
  return x.length === y.length && x.length > 0 && timingSafeEqual(x, y);
}
