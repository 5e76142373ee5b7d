import type { Role } from '../../shared/auth.js';
import { MiB } from '../../shared/units.js';
import type { Env } from '../env.js';

/** What one DICOM import may hold (unpack.ts enforces it; the upload route caps the body with `maxBytes`). */
export interface DicomLimits {
  maxFiles: number;
  /** All files together, bytes. */
  maxBytes: number;
  /** One file, bytes. */
  maxFileBytes: number;
  /** A zip entry may inflate to at most this many times its compressed size. */
  maxZipRatio: number;
}

/** The limits of an import by this kind of account (a guest's total is its upload cap); `local`: a folder on the server's own disk. */
export function dicomLimits(
  env: Pick<Env, 'DICOM_MAX_FILES' | 'DICOM_MAX_MB' | 'DICOM_MAX_FILE_MB' | 'DICOM_MAX_ZIP_RATIO' | 'GUEST_MAX_UPLOAD_MB'>,
  role: Role | 'local',
): DicomLimits {
  const perFile = { maxFileBytes: env.DICOM_MAX_FILE_MB * MiB, maxZipRatio: env.DICOM_MAX_ZIP_RATIO };
  // The operator's own folder: only the per-file cap and the zip-bomb ratio hold.
  if (role === 'local') return { maxFiles: Number.MAX_SAFE_INTEGER, maxBytes: Number.POSITIVE_INFINITY, ...perFile };
  const total = role === 'guest' ? Math.min(env.GUEST_MAX_UPLOAD_MB, env.DICOM_MAX_MB) : env.DICOM_MAX_MB;
  return { maxFiles: env.DICOM_MAX_FILES, maxBytes: total * MiB, ...perFile };
}
