import type { Role } from '../../shared/auth.js';
import { MiB } from '../../shared/units.js';
import type { Env } from '../env.js';

/**
 * What each kind of account may use at once. Guests are anonymous and free to make, so theirs are
 * well under a user's, and all guests together get only a share of the global job queue: a crowd
 * of throw-away guests cannot lock real users out.
 */
type QuotaConfig = Pick<
  Env,
  | 'MAX_UPLOAD_MB'
  | 'MAX_ACTIVE_JOBS_PER_USER'
  | 'MAX_QUEUED_JOBS'
  | 'GUEST_MAX_UPLOAD_MB'
  | 'GUEST_MAX_ACTIVE_JOBS'
  | 'GUEST_QUEUE_SHARE'
  | 'GUEST_MAX_CASES'
  | 'MAX_CONCURRENT_UPLOADS'
  | 'MAX_UPLOADS_PER_USER'
  | 'MAX_MASK_VERSIONS'
  | 'GUEST_MAX_MASK_VERSIONS'
  | 'GUEST_MAX_STORED_MB'
  | 'NEW_ACCOUNT_QUEUE_SHARE'
>;

/** The largest upload (all files together) this account may send, MiB. */
export function uploadLimitMb(cfg: QuotaConfig, role: Role): number {
  return role === 'guest' ? Math.min(cfg.GUEST_MAX_UPLOAD_MB, cfg.MAX_UPLOAD_MB) : cfg.MAX_UPLOAD_MB;
}

/** Jobs this account may have queued or running at once. */
export function activeJobLimit(cfg: QuotaConfig, role: Role): number {
  return role === 'guest' ? Math.min(cfg.GUEST_MAX_ACTIVE_JOBS, cfg.MAX_ACTIVE_JOBS_PER_USER) : cfg.MAX_ACTIVE_JOBS_PER_USER;
}

/** Jobs all guests together may have queued or running. */
export function guestQueueLimit(cfg: QuotaConfig): number {
  return Math.floor(cfg.MAX_QUEUED_JOBS * cfg.GUEST_QUEUE_SHARE);
}

/** Cases this account may keep (guests only; users are not capped). */
export function caseLimit(cfg: QuotaConfig, role: Role): number {
  return role === 'guest' ? cfg.GUEST_MAX_CASES : Number.POSITIVE_INFINITY;
}

/** Uploads (cases, masks) this account may have in flight at once in one process: a guest 1. */
export function uploadSlotLimit(cfg: QuotaConfig, role: Role): number {
  return role === 'guest' ? 1 : Math.min(cfg.MAX_UPLOADS_PER_USER, cfg.MAX_CONCURRENT_UPLOADS);
}

/** Corrected mask versions this account may keep: a user per case, a guest in all. */
export function maskVersionLimit(cfg: QuotaConfig, role: Role): { perCase: boolean; limit: number } {
  return role === 'guest' ? { perCase: false, limit: cfg.GUEST_MAX_MASK_VERSIONS } : { perCase: true, limit: cfg.MAX_MASK_VERSIONS };
}

/** What this account's cases and masks may take in the store together, bytes (guests only). */
export function storedBytesLimit(cfg: QuotaConfig, role: Role): number {
  return role === 'guest' ? cfg.GUEST_MAX_STORED_MB * MiB : Number.POSITIVE_INFINITY;
}

/** Jobs all new accounts together may have queued or running (fresh registrations cannot fill the queue). */
export function newAccountQueueLimit(cfg: QuotaConfig): number {
  return Math.floor(cfg.MAX_QUEUED_JOBS * cfg.NEW_ACCOUNT_QUEUE_SHARE);
}
